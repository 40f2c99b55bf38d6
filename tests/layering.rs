//! The shape of `src/`, checked from the source text: the pure core imports
//! no I/O crate, and no two modules import each other (the module import
//! graph has no cycle). A module is one file; a parent declaring or
//! re-exporting its own submodules is structure, not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Files that make up the core: no runtime, no network, no file watching.
const CORE: &[&str] = &[
    "model",
    "model::profile",
    "model::endpoints",
    "profile::validate",
    "profile::raw",
    "publish",
    "personal",
    "xds::translate",
    "xds::load_assignment",
    "xds::node",
    "xds::snapshot",
    "xds::stream",
    "xds::delta",
    "xds::rest",
    "xds::json",
    "xds::dump",
    "discovery::index",
    "discovery::index::objects",
    "discovery::error",
    "discovery::plan",
    "probe::plan",
    "onboard",
    "onboard::starter",
    "explain",
    "explain::cluster",
    "explain::matching",
    "explain::render",
    "explain::request",
    "profile::diff",
    "profile::diff::words",
    "doctor",
    "doctor::render",
    "doctor::source",
    "events::diff",
    "admin::page::view",
];

const IO_CRATES: &[&str] = &["tokio", "tokio_util", "tokio_stream", "tonic", "hyper", "hyper_util", "kube", "notify"];

/// Every non-test source file of `src/`, by module path (`xds::server`).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "tests" {
                    let mut p = prefix.to_vec();
                    p.push(name);
                    walk(&path, &p, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") && name != "tests" {
                let mut p = prefix.to_vec();
                if !(prefix.is_empty() && (name == "lib" || name == "main")) {
                    p.push(name);
                }
                out.insert(p.join("::"), strip_tests(&std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &[], &mut out);
    out.remove(""); // lib.rs and main.rs: the crate root only declares
    out
}

/// The code before an inline `#[cfg(test)] mod tests { .. }` (which may
/// use anything), without comment lines (which may name anything).
fn strip_tests(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every path a file names: `use` trees and inline `crate::`/`super::` paths,
/// as module paths relative to the crate.
fn imports(module: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let here: Vec<&str> = if module.is_empty() { vec![] } else { module.split("::").collect() };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<&str> = Vec::new();
        if segs.first() == Some(&"crate") {
            segs.remove(0);
        } else {
            base = here.clone();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        // The longest prefix that is a module.
        let mut full: Vec<&str> = base;
        full.extend(segs);
        while !full.is_empty() && !known.contains(&full.join("::")) {
            full.pop();
        }
        let target = full.join("::");
        if !target.is_empty() && target != module {
            out.insert(target);
        }
    }
    out
}

/// Whether `a` is `b`'s ancestor module.
fn is_ancestor(a: &str, b: &str) -> bool {
    b.starts_with(&format!("{a}::"))
}

#[test]
fn the_core_imports_no_io_crate() {
    let modules = modules();
    let mut found = Vec::new();
    for name in CORE {
        let text = modules.get(*name).unwrap_or_else(|| panic!("no module {name} in src/"));
        for krate in IO_CRATES {
            for pattern in [format!("use {krate}::"), format!(" {krate}::"), format!("({krate}::")] {
                if text.contains(&pattern) {
                    found.push(format!("{name} uses {krate}"));
                }
            }
        }
    }
    found.dedup();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn the_module_import_graph_has_no_cycle() {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let graph: BTreeMap<&str, BTreeSet<String>> = modules
        .iter()
        .map(|(m, text)| {
            let deps = imports(m, text, &known).into_iter().filter(|d| !is_ancestor(m, d)).collect();
            (m.as_str(), deps)
        })
        .collect();
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<&'a str, BTreeSet<String>>,
        done: &mut BTreeSet<&'a str>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == m) {
            return Some(stack[i..].iter().chain([&m]).map(|s| s.to_string()).collect());
        }
        if !done.insert(m) {
            return None;
        }
        stack.push(m);
        for d in graph.get(m).into_iter().flatten() {
            if let Some((k, _)) = graph.get_key_value(d.as_str())
                && let Some(cycle) = visit(k, graph, done, stack)
            {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        let cycle = visit(m, &graph, &mut done, &mut Vec::new());
        assert_eq!(cycle, None, "modules that import each other");
    }
}

#[test]
fn the_core_imports_only_the_core() {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let core: BTreeSet<&str> = CORE.iter().copied().collect();
    let mut found = Vec::new();
    for name in CORE {
        for dep in imports(name, &modules[*name], &known) {
            // A parent module is structure; its items are looked at as its own module.
            let outside = !core.contains(dep.as_str()) && !is_ancestor(&dep, name);
            if outside {
                found.push(format!("{name} imports {dep}"));
            }
        }
    }
    assert_eq!(found, Vec::<String>::new(), "the core reaches outside itself");
}
