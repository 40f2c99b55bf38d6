//! `devbridge bootstrap`: the Envoy bootstrap for one of a profile's proxies.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::{BootstrapArgs, EXIT_INVALID};
use crate::bootstrap::{Format, Runtime};
use crate::model::ProxyKind;
use crate::settings::{Flags, Settings};

/// Prints (or writes to `--out`) the bootstrap, with notes on how to run it.
pub fn run(args: BootstrapArgs, flags: &Flags) -> anyhow::Result<ExitCode> {
    let BootstrapArgs { profile, proxy, xds_address, runtime, out, format, tls, tls_dir, xds_socket, xds } = args;
    let p = match super::load_profile(&profile) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let grpc = runtime == Runtime::Grpc;
    let kind = if grpc { ProxyKind::Grpc } else { ProxyKind::Envoy };
    if grpc && xds != crate::bootstrap::XdsApi::Grpc {
        eprintln!("devbridge: gRPC clients speak state-of-the-world xDS over gRPC only; leave out --xds");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let proxy = match crate::bootstrap::select_proxy_of(&p, proxy.as_deref(), kind) {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("devbridge: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let (host, port) = match xds_address {
        Some(a) => {
            let (h, port) = a.rsplit_once(':').context("--xds-address must be HOST:PORT")?;
            let port: u16 = port.parse().context("--xds-address port must be a number")?;
            (h.trim_start_matches('[').trim_end_matches(']').to_string(), port)
        }
        None => {
            let settings = Settings::load(flags, Some(&p.listen))?;
            // REST polls the admin port; the streams, the xDS port.
            let listen =
                if xds == crate::bootstrap::XdsApi::Rest { settings.admin_listen } else { settings.xds_listen };
            (runtime.xds_host(listen), listen.port())
        }
    };
    let target = match xds_socket {
        Some(path) => crate::bootstrap::XdsTarget::Pipe { path },
        None => crate::bootstrap::XdsTarget::Tcp { host: host.clone(), port },
    };
    let client_tls = tls.then(|| crate::bootstrap::ClientTls {
        dir: tls_dir.unwrap_or_else(|| runtime.default_tls_dir(&proxy.name)),
        host_dir: certs_on_host(&proxy.name, out.as_deref()).map(|d| d.display().to_string()),
    });
    let shown = match &target {
        crate::bootstrap::XdsTarget::Pipe { path } => format!("unix:{path}"),
        crate::bootstrap::XdsTarget::Tcp { .. } => format!("{host}:{port}"),
    };
    let mut notes = runtime.notes_with(&p.name, &proxy.name, &shown, client_tls.as_ref());
    if !grpc {
        notes.extend(xds.notes());
    }
    notes.extend(runtime.port_notes(&p, proxy));
    // gRPC reads JSON only.
    let (value, format) = if grpc {
        (crate::bootstrap::grpc_bootstrap(proxy, &target, client_tls.as_ref()), Format::Json)
    } else {
        (crate::bootstrap::bootstrap_with(proxy, &target, client_tls.as_ref(), xds), format)
    };
    let text = crate::bootstrap::render(&value, format, &notes);
    match out {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ({runtime:?} bootstrap for proxy {})", path.display(), proxy.name);
            if format == Format::Json {
                notes.iter().skip(1).for_each(|n| eprintln!("  {n}"));
            }
        }
        None => {
            print!("{text}");
            if format == Format::Json {
                notes.iter().for_each(|n| eprintln!("{n}"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `devbridge certs issue <proxy>` put the proxy's files on this
/// machine, if it can be seen: beside `--out` (`out/tls` for `out/envoy.yaml`,
/// as the runbooks do) or in the default place; only a `cert.pem` issued to
/// this proxy counts. Absolute, as `docker -v` wants it.
fn certs_on_host(proxy: &str, out: Option<&Path>) -> Option<PathBuf> {
    let beside = out.map(|o| o.parent().unwrap_or(Path::new("")).join("tls"));
    let default = crate::certs::CertPaths::default_location().map(|p| p.client_dir(proxy));
    let issued_to_proxy = |dir: &PathBuf| {
        let Ok(pem) = std::fs::read(dir.join("cert.pem")) else { return false };
        let Ok((_, der)) = x509_parser::pem::parse_x509_pem(&pem) else { return false };
        crate::certs::proxy_identity(&der.contents).as_deref() == Some(proxy)
    };
    beside.into_iter().chain(default).find(issued_to_proxy).and_then(|d| std::path::absolute(d).ok())
}
