//! The parsed TOML document, before serde reads it: finding a key or value
//! by its span to name its full key path (`clusters.edge.static.endpoints[0].address`),
//! and removing unknown keys so that reading can go on past them.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// Top-level tables whose keys are names the profile chooses, so every value
/// in them is the same kind of table.
const NAMED_TABLES: &[&str] = &["zones", "proxies", "clusters"];

/// `domains[0].routes[2].cluster`, as messages show key paths.
pub(super) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The path of the key whose own span is `span`.
pub(super) fn find_key(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
    let mut path = Vec::new();
    find_key_in(table, span, &mut path).then_some(path)
}

fn find_key_in(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    for (k, v) in table.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        if k.span() == *span || find_key_value(v.get_ref(), span, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_key_value(v: &DeValue<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    match v {
        DeValue::Table(t) => find_key_in(t, span, path),
        DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
            path.push(Seg::Index(i));
            let found = find_key_value(item.get_ref(), span, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

/// Where to report an error serde located at `span`, and the key path of
/// the deepest key whose value holds it. A table opened only by a deeper
/// header (`[clusters.edge.health_check]` opens `clusters.edge`) has no text
/// of its own; its error is put at its first key instead of the file's start.
pub(super) fn locate(table: &DeTable<'_>, span: Range<usize>) -> (Range<usize>, String) {
    let mut best: Option<(Vec<Seg>, Range<usize>)> = None;
    let mut path = Vec::new();
    deepest(table, &span, &mut path, &mut best);
    match best {
        Some((path, key_span)) => {
            let at = if span.is_empty() && span.start == 0 { key_span } else { span };
            (at, render(&path))
        }
        None => (span, String::new()),
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    !a.is_empty() && a.start < b.end.max(b.start + 1) && b.start < a.end
}

fn holds(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    !outer.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

fn deepest(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>, best: &mut Option<(Vec<Seg>, Range<usize>)>) {
    for (k, v) in table.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        // A table with no text of its own (span 0..0) is held by nothing; an
        // error at 0..0 names the first such table serde was reading.
        let empty_here = span.is_empty() && span.start == 0 && v.span().is_empty();
        // A table header (`[domains.routes.direct_response]`) is the error's
        // span and holds each key it names: the deepest of them is the table.
        if (overlaps(&k.span(), span) || holds(&v.span(), span) || empty_here)
            && best.as_ref().is_none_or(|(p, _)| p.len() < path.len())
        {
            *best = Some((path.clone(), k.span()));
        }
        deepest_value(v.get_ref(), span, path, best);
        path.pop();
    }
}

fn deepest_value(
    v: &DeValue<'_>,
    span: &Range<usize>,
    path: &mut Vec<Seg>,
    best: &mut Option<(Vec<Seg>, Range<usize>)>,
) {
    match v {
        DeValue::Table(t) => deepest(t, span, path, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                if holds(&item.span(), span) && best.as_ref().is_none_or(|(p, _)| p.len() < path.len()) {
                    *best = Some((path.clone(), item.span()));
                }
                deepest_value(item.get_ref(), span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// An unknown key taken out of the document.
pub(super) struct Removed {
    pub span: Range<usize>,
    /// Its full key path.
    pub key: String,
    pub name: String,
    /// The key path of the table it was in.
    pub table: String,
}

/// Removes every key not in `expected` from the table at `parent` and from
/// every table of the same kind: the same path with any array index, and
/// any name under `zones`, `proxies` or `clusters`, so one pass covers a
/// typo repeated in every route.
pub(super) fn remove_unknown(root: &mut DeTable<'_>, parent: &[Seg], expected: &[&str]) -> Vec<Removed> {
    let mut removed = Vec::new();
    let mut path = Vec::new();
    prune_table(root, parent, 0, expected, &mut path, &mut removed);
    removed
}

fn prune_table(
    table: &mut DeTable<'_>,
    pattern: &[Seg],
    depth: usize,
    expected: &[&str],
    path: &mut Vec<Seg>,
    removed: &mut Vec<Removed>,
) {
    let Some(seg) = pattern.get(depth) else {
        let unknown: Vec<_> = table.keys().filter(|k| !expected.contains(&k.get_ref().as_ref())).cloned().collect();
        for k in unknown {
            table.remove(&k);
            let mut p = path.clone();
            p.push(Seg::Key(k.get_ref().to_string()));
            removed.push(Removed {
                span: k.span(),
                key: render(&p),
                name: k.get_ref().to_string(),
                table: render(path),
            });
        }
        return;
    };
    let any_name = depth == 1 && matches!(&pattern[0], Seg::Key(k) if NAMED_TABLES.contains(&k.as_str()));
    for (k, v) in table.iter_mut() {
        let name = k.get_ref().to_string();
        if any_name || *seg == Seg::Key(name.clone()) {
            path.push(Seg::Key(name));
            prune_value(v.get_mut(), pattern, depth + 1, expected, path, removed);
            path.pop();
        }
    }
}

fn prune_value(
    v: &mut DeValue<'_>,
    pattern: &[Seg],
    depth: usize,
    expected: &[&str],
    path: &mut Vec<Seg>,
    removed: &mut Vec<Removed>,
) {
    match v {
        DeValue::Table(t) => prune_table(t, pattern, depth, expected, path, removed),
        DeValue::Array(items) if matches!(pattern.get(depth), Some(Seg::Index(_))) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                prune_value(item.get_mut(), pattern, depth + 1, expected, path, removed);
                path.pop();
            }
        }
        _ => {}
    }
}
