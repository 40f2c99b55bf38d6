//! `devbridge discover` and `devbridge init`: arguments, the one read of the
//! API server ([`crate::onboard::fetch`]), output and exit codes (0 ok, 64
//! bad input, 69 the API server does not answer or refuses).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{EXIT_INVALID, EXIT_UNAVAILABLE};
use crate::discovery::Options;
use crate::discovery::kube::KubeError;
use crate::model::{AddressKind, PortRef};
use crate::onboard::starter::{self, Starter};
use crate::onboard::{Inventory, Query, hint, parse_port};
use crate::profile::ProfileErrors;

/// A starter profile that does not validate: a defect, not the user's.
pub const EXIT_SOFTWARE: u8 = 70;

/// Which API server and pods: the flags `discover` and `init` share.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<String>,
    /// Kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the edge pods.
    #[arg(long, short = 'n')]
    pub namespace: String,
    /// Container port, by name (`http`) or number, that the edges serve on.
    #[arg(long)]
    pub port: Option<String>,
    /// Endpoint address: pod (the pod IP; the node's IP on hostNetwork),
    /// node-internal or node-external (the node's address; needs read access to nodes).
    #[arg(long, default_value = "pod")]
    pub address: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub target: Target,
    /// Label selector of the edge pods (default: every pod of the namespace).
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// The profile's name (`devbridge connect NAME`).
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// Label selector of the edge pods.
    #[arg(long, short = 'l')]
    pub selector: String,
    /// The domain the sidecar serves, HOST:PORT: the Host your service sends.
    #[arg(long, default_value = starter::DEFAULT_DOMAIN)]
    pub domain: String,
    /// Where to write it (default: ~/.config/devbridge/profiles/NAME.toml).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `devbridge discover`: prints what the API server shows; returns the exit code.
pub fn discover(args: DiscoverArgs) -> u8 {
    let t = &args.target;
    let Some(address) = address(&t.address) else { return EXIT_INVALID };
    // Validated as the profile `init` would write, so a bad flag is told
    // before the API server is asked; the port is only checked when given.
    let starter = Starter {
        name: "discover".into(),
        kubeconfig: t.kubeconfig.clone(),
        context: t.context.clone(),
        namespace: t.namespace.clone(),
        selector: args.selector.clone().unwrap_or_else(|| "app".into()),
        port: t.port.as_deref().map(parse_port).unwrap_or(PortRef::Number(1)),
        address,
        host_network: true,
        node_zones: false,
        domain: starter::DEFAULT_DOMAIN.into(),
    };
    let rule = match starter.rule() {
        Ok(rule) => rule,
        Err(e) => return invalid(&e),
    };
    let query = query(t, args.selector.clone());
    let inv = match read(&query) {
        Ok(inv) => inv,
        Err(code) => return code,
    };
    let rule = (t.port.is_some() && args.selector.is_some()).then_some(&rule);
    let text = if args.json {
        serde_json::to_string_pretty(&crate::onboard::to_json(&inv, rule)).expect("JSON serialises") + "\n"
    } else {
        crate::onboard::render(&inv, rule)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

/// `devbridge init`: writes a starter profile from what the API server shows.
pub fn init(args: InitArgs) -> u8 {
    let t = &args.target;
    let Some(address) = address(&t.address) else { return EXIT_INVALID };
    let Some(port) = t.port.as_deref() else {
        eprintln!(
            "devbridge: init needs --port NAME|NUMBER: the edges' container port (`devbridge discover` lists them)"
        );
        return EXIT_INVALID;
    };
    let mut starter = Starter {
        name: args.name.clone(),
        kubeconfig: t.kubeconfig.clone(),
        context: t.context.clone(),
        namespace: t.namespace.clone(),
        selector: args.selector.clone(),
        port: parse_port(port),
        address,
        host_network: true,
        node_zones: false,
        domain: args.domain.clone(),
    };
    if let Err(e) = starter.profile() {
        return invalid(&e);
    }
    let out =
        match args.out.clone().or_else(|| {
            crate::profile::load::config_dir().map(|d| d.join("profiles").join(format!("{}.toml", args.name)))
        }) {
            Some(p) => p,
            None => {
                eprintln!("devbridge: no config directory (set HOME or XDG_CONFIG_HOME), so pass --out FILE");
                return EXIT_INVALID;
            }
        };
    if out.exists() && !args.force {
        eprintln!("devbridge: {} exists; pass --force to overwrite it", out.display());
        return EXIT_INVALID;
    }
    let inv = match read(&query(t, Some(args.selector.clone()))) {
        Ok(inv) => inv,
        Err(code) => return code,
    };
    starter.fit(&inv);
    let (text, rule) = match starter.rule() {
        Ok(rule) => (starter.text(Some(&inv)), rule),
        Err(e) => {
            eprintln!("devbridge: the starter profile does not validate (a defect in devbridge):\n{e}");
            return EXIT_SOFTWARE;
        }
    };
    print!("{}", crate::onboard::render(&inv, Some(&rule)));
    if let Err(e) = write(&out, &text, args.force) {
        eprintln!("devbridge: cannot write {}: {e}", out.display());
        return 1;
    }
    println!("wrote {}", out.display());
    if inv.pods.is_empty() {
        println!("  no pod matches {:?} yet: the edge cluster has no endpoints until one does", args.selector);
    }
    let shown = match args.out {
        Some(_) => out.display().to_string(),
        None => args.name.clone(),
    };
    println!("next: devbridge check {shown} && devbridge connect {shown} --envoy");
    0
}

fn address(s: &str) -> Option<AddressKind> {
    match s {
        "pod" => Some(AddressKind::Pod),
        "node-internal" => Some(AddressKind::NodeInternal),
        "node-external" => Some(AddressKind::NodeExternal),
        other => {
            eprintln!("devbridge: --address: {other:?} is not allowed; expected pod, node-internal or node-external");
            None
        }
    }
}

fn query(t: &Target, selector: Option<String>) -> Query {
    Query { kubeconfig: t.kubeconfig.clone(), context: t.context.clone(), namespace: t.namespace.clone(), selector }
}

/// Each error of the starter profile, named by the flag that gave the value.
fn invalid(errors: &ProfileErrors) -> u8 {
    let mut seen = Vec::new();
    for e in &errors.0 {
        let line = format!("devbridge: {}: {}", flag(&e.key), e.message);
        if !seen.contains(&line) {
            eprintln!("{line}");
            seen.push(line);
        }
    }
    EXIT_INVALID
}

fn flag(key: &str) -> &'static str {
    let last = key.rsplit('.').next().unwrap_or(key);
    match last {
        "name" if key == "name" => "<name>",
        "selector" => "--selector",
        "port" => "--port",
        "namespace" => "--namespace",
        "context" => "--context",
        "kubeconfig" => "--kubeconfig",
        "address" => "--address",
        _ if key.starts_with("domains") || key.starts_with("proxies") => "--domain",
        _ => "profile",
    }
}

/// Reads the API server once, on a small runtime; an error is printed with
/// its hint and becomes the exit code.
fn read(query: &Query) -> Result<Inventory, u8> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devbridge: cannot start a runtime: {e}");
            return Err(1);
        }
    };
    rt.block_on(crate::onboard::fetch::inventory(query, &Options::default())).map_err(|e| {
        eprintln!("devbridge: {e}");
        if let Some(hint) = hint(&e, query) {
            eprintln!("{hint}");
        }
        match e {
            KubeError::Kubeconfig { .. } | KubeError::Context { .. } => EXIT_INVALID,
            _ => EXIT_UNAVAILABLE,
        }
    })
}

/// Writes the profile: a new file only, unless `force`, which replaces it
/// whole (a file renamed into place: a running `connect` never reads half).
fn write(path: &Path, text: &str, force: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if !force {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        return f.write_all(text.as_bytes());
    }
    let tmp = path.with_extension("toml.tmp~");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
