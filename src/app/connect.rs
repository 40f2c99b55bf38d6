//! `devbridge connect`: refuses to serve beyond loopback without TLS, binds
//! the listeners, starts the [`Daemon`], runs the sidecar Envoy under the
//! daemon's task tracker when asked, and turns signals into shutdown.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Daemon, Options};
use crate::bootstrap::{self, Format, Runtime};
use crate::model::{Profile, Proxy};
use crate::settings::Settings;
use crate::supervise::{self, EnvoyCommand, SuperviseError};
use crate::tls::TlsFiles;
use crate::xds::server::XdsListener;

/// Everything `connect` needs, checked before anything starts.
pub struct Connect {
    pub profile: Profile,
    pub settings: Settings,
    /// The profile file to follow; `None` for a compiled-in profile.
    pub follow: Option<PathBuf>,
    /// The Envoy to run beside the daemon (`--envoy`).
    pub sidecar: Option<Sidecar>,
    /// Serve xDS on this Unix socket instead of TCP.
    pub xds_socket: Option<PathBuf>,
    /// The sidecars run in containers (`--for docker`): a loopback endpoint
    /// is theirs, not this machine's, so the prober leaves it alone.
    pub in_containers: bool,
}

/// The supervised Envoy: its binary and the proxy it is.
#[derive(Debug, Clone)]
pub struct Sidecar {
    pub bin: PathBuf,
    pub proxy: Proxy,
    /// The xDS protocol its bootstrap speaks.
    pub api: bootstrap::XdsApi,
}

/// Why `--envoy` cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// No Envoy binary: something needed is not there.
    #[error(transparent)]
    NoEnvoy(#[from] SuperviseError),
    /// The proxy named (or left out) does not fit the profile.
    #[error("{0}")]
    Proxy(String),
}

impl Sidecar {
    /// Finds the Envoy binary and the proxy it serves, before anything starts.
    pub fn find(profile: &Profile, proxy: Option<&str>, bin: Option<&Path>) -> Result<Self, SidecarError> {
        let bin = supervise::find_envoy(bin)?;
        let proxy = bootstrap::select_proxy(profile, proxy).map_err(|e| SidecarError::Proxy(e.to_string()))?;
        Ok(Self { bin, proxy: proxy.clone(), api: bootstrap::XdsApi::default() })
    }
}

impl Connect {
    /// Runs until the first signal has drained every task.
    pub fn run_blocking(self) -> anyhow::Result<()> {
        // More descriptors than the soft default, where the hard limit allows.
        let _ = crate::accept::raise_fd_limit();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(self.run())
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let Connect { profile, settings, follow, sidecar, xds_socket, in_containers } = self;
        refuse_exposed(&settings, xds_socket.is_some())?;
        let tls = tls_files(&settings)?;
        let admin_tls = tls.is_some() && !settings.admin_listen.ip().is_loopback();
        let xds: XdsListener = match &xds_socket {
            Some(path) => crate::xds::server::bind_unix(path)?.into(),
            None => tokio::net::TcpListener::bind(settings.xds_listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen for xDS on {}; is another devbridge running? (--xds-listen)",
                        settings.xds_listen
                    )
                })?
                .into(),
        };
        let admin = tokio::net::TcpListener::bind(settings.admin_listen)
            .await
            .with_context(|| format!("cannot listen for admin on {} (--admin-listen)", settings.admin_listen))?;
        let shutdown = CancellationToken::new();
        let (name, file) = (profile.name.clone(), profile.file.clone());
        if follow.is_none() {
            info!(profile = %name, "the profile is compiled in; edits are not followed (copy it into a profile directory to edit it)");
        }
        let identity = crate::settings::identity(settings.identity.as_deref());
        match (&identity, &profile.identity_header) {
            (Some(who), Some(header)) => {
                info!(identity = %who, header = %header, "every request the sidecar sends carries the identity (setting `identity`)")
            }
            (None, Some(_)) => info!("no identity is sent: set `identity` (settings file or DEVBRIDGE_IDENTITY)"),
            _ => {}
        }
        let options = Options {
            overrides_file: crate::overrides::default_state_file(&name),
            identity,
            state_file: crate::registered::default_state_file(&name),
            follow,
            tls,
            admin_tls,
            discovery: Default::default(),
            limits: settings.limits(),
            probe: crate::probe::Options {
                pacing: crate::probe::plan::Pacing { skip_loopback: in_containers, ..Default::default() },
                ..Default::default()
            },
        };
        let daemon = Daemon::start_with(profile, xds, Some(admin), shutdown.clone(), options)?;
        let xds_at = match &daemon.xds_socket {
            Some(path) => format!("unix:{}", path.display()),
            None => daemon.xds_addr.to_string(),
        };
        let admin_at = daemon.admin_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
        info!(profile = %name, %file, xds = %xds_at, admin = %admin_at, "devbridge is serving; point Envoy at the xDS address (devbridge bootstrap)");
        // The supervised Envoy's bootstrap lives in a private directory,
        // removed once every task (the Envoy among them) has ended.
        let _envoy_dir = match sidecar {
            Some(sidecar) => Some(start_envoy(&daemon, &name, sidecar)?),
            None => None,
        };
        tokio::spawn(signals(shutdown));
        daemon.wait().await?;
        info!("devbridge stopped");
        Ok(())
    }
}

/// Nothing answers beyond loopback without TLS unless the user insists
/// (`--insecure`, logged at WARN on every start).
pub fn refuse_exposed(settings: &Settings, xds_on_socket: bool) -> anyhow::Result<()> {
    // An xDS Unix socket replaces the xDS TCP listener.
    let xds = (!xds_on_socket).then_some(("xDS", settings.xds_listen));
    let exposed = xds.into_iter().chain([("admin", settings.admin_listen)]).filter(|(_, a)| !a.ip().is_loopback());
    for (what, addr) in exposed {
        if settings.tls {
            continue;
        }
        if !settings.insecure {
            anyhow::bail!(
                "refusing to serve {what} on {addr} without TLS: anyone who can reach it would get the routing configuration{}. Run `devbridge certs init` and add --tls, or listen on 127.0.0.1 (--insecure accepts the risk)",
                if what == "admin" { " and the admin API" } else { "" }
            );
        }
        warn!(%addr, what, "serving without TLS beyond loopback (--insecure): anyone who reaches this address gets the routing configuration and the admin API");
    }
    Ok(())
}

/// The certificate files for `--tls`, from `--tls-dir` or the default place.
fn tls_files(settings: &Settings) -> anyhow::Result<Option<TlsFiles>> {
    if !settings.tls {
        return Ok(None);
    }
    Ok(Some(TlsFiles::from_paths(&cert_paths(settings)?)))
}

/// Where `devbridge certs init` put the CA and server certificate: `--tls-dir`, or the default place.
pub fn cert_paths(settings: &Settings) -> anyhow::Result<crate::certs::CertPaths> {
    settings
        .tls_dir
        .clone()
        .map(crate::certs::CertPaths::new)
        .or_else(crate::certs::CertPaths::default_location)
        .context("--tls needs a certificate directory; pass --tls-dir")
}

/// Writes the sidecar's bootstrap into a private directory and starts
/// supervising it; the directory must outlive the daemon.
fn start_envoy(daemon: &Daemon, profile: &str, sidecar: Sidecar) -> anyhow::Result<tempfile::TempDir> {
    let Sidecar { bin, proxy, api } = sidecar;
    let dir = tempfile::Builder::new()
        .prefix("devbridge-envoy-")
        .tempdir()
        .context("cannot create a directory for Envoy's bootstrap")?;
    let path = dir.path().join(format!("{}.yaml", proxy.name));
    // REST polls the admin port; the streams, the xDS port.
    let serving = match (api, daemon.admin_addr) {
        (bootstrap::XdsApi::Rest, Some(admin)) => admin,
        (bootstrap::XdsApi::Rest, None) => {
            anyhow::bail!("--xds rest polls the admin port, which this daemon does not serve")
        }
        _ => daemon.xds_addr,
    };
    let (host, port) = crate::settings::reachable_xds_address(serving);
    let mut notes = Runtime::Process.notes(profile, &proxy.name, &format!("{host}:{port}"));
    notes.extend(api.notes());
    notes.extend(Runtime::Process.port_notes(&daemon.current().profile, &proxy));
    let text = bootstrap::render(&bootstrap::bootstrap_for(&proxy, &host, port, api), Format::Yaml, &notes);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let cmd = EnvoyCommand { bin, bootstrap: path, admin_address_path: dir.path().join("envoy-admin-address") };
    daemon.supervise_envoy(cmd, &proxy.name);
    Ok(dir)
}

/// First Ctrl-C or SIGTERM: graceful shutdown. Second: exit at once.
pub async fn signals(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for round in 0..2 {
        match term.as_mut() {
            Some(t) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} },
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        if round == 0 {
            info!("shutting down; press Ctrl-C again to exit at once");
            shutdown.cancel();
        }
    }
    warn!("second signal: exiting now");
    std::process::exit(130);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Flags;

    fn mk_settings(xds: &str, admin: &str, tls: bool, insecure: bool) -> Settings {
        let empty = tempfile::NamedTempFile::with_suffix(".toml").expect("a temp file");
        let flags = Flags {
            xds_listen: Some(xds.parse().unwrap()),
            admin_listen: Some(admin.parse().unwrap()),
            tls: tls.then_some(true),
            insecure: insecure.then_some(true),
            settings_file: Some(empty.path().to_path_buf()),
            ..Flags::default()
        };
        Settings::load(&flags, None).expect("settings from flags")
    }

    #[test]
    fn loopback_listeners_need_no_tls() {
        refuse_exposed(&mk_settings("127.0.0.1:0", "[::1]:0", false, false), false).expect("loopback is fine");
    }

    #[test]
    fn an_exposed_admin_port_without_tls_is_refused_and_named() {
        let e = refuse_exposed(&mk_settings("127.0.0.1:0", "0.0.0.0:18001", false, false), false).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("refusing to serve admin on 0.0.0.0:18001 without TLS"), "{text}");
        assert!(text.contains("and the admin API"), "{text}");
    }

    #[test]
    fn tls_or_insecure_allows_an_exposed_port_and_a_socket_replaces_the_xds_port() {
        refuse_exposed(&mk_settings("0.0.0.0:0", "127.0.0.1:0", true, false), false).expect("TLS");
        refuse_exposed(&mk_settings("0.0.0.0:0", "127.0.0.1:0", false, true), false).expect("insecure");
        refuse_exposed(&mk_settings("0.0.0.0:0", "127.0.0.1:0", false, false), true).expect("xDS on a socket");
    }
}
