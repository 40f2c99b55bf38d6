//! `devbridge connect --for docker` (or `compose`): listen where a container
//! reaches this host as `host.docker.internal`, and nowhere else.
//!
//! On Linux a container is given that name with
//! `--add-host host.docker.internal:host-gateway`, which docker resolves to
//! the address of its default bridge (`docker0`, 172.17.0.1 unless the daemon
//! is set otherwise). devbridge listens on that address only: containers of
//! every docker network reach it, the LAN does not. Docker Desktop (macOS,
//! Windows) forwards `host.docker.internal` to the host's loopback, so there
//! devbridge stays on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::bootstrap::Runtime;
use crate::settings::Settings;

/// The name a container dials, which devbridge's server certificate must cover.
pub const HOST_NAME: &str = "host.docker.internal";
/// Docker's default bridge when the daemon cannot be asked which it is.
const DEFAULT_BRIDGE: &str = "docker0";
/// How long `docker network inspect` may take before the default is assumed.
const DOCKER_CLI_TIMEOUT: Duration = Duration::from_secs(5);

/// Where devbridge listens for `--for runtime`, and why, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerListen {
    pub xds_listen: SocketAddr,
    pub why: String,
}

/// Why `--for` cannot be served: a misuse (exit 64) or a missing docker (exit 69).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0:#}")]
    Usage(anyhow::Error),
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
}

/// Sets `settings.xds_listen` for sidecars in containers of `runtime`,
/// keeping its port, and checks that the server certificate covers
/// `host.docker.internal` when TLS is on. The refusal to serve beyond
/// loopback without TLS is `connect`'s, unchanged.
pub fn prepare(runtime: Runtime, settings: &mut Settings) -> Result<Option<ContainerListen>, PrepareError> {
    match runtime {
        Runtime::Process => return Ok(None),
        Runtime::Docker | Runtime::Compose => {}
        Runtime::Minikube => {
            return Err(PrepareError::Usage(anyhow::anyhow!(
                "--for minikube: devbridge cannot tell which address minikube's network reaches this host at; \
             pass --xds-listen with it (the address `minikube ssh -- getent hosts host.minikube.internal` prints) and --tls"
            )));
        }
        Runtime::Grpc => {
            return Err(PrepareError::Usage(anyhow::anyhow!(
                "--for grpc: a proxyless gRPC application on this machine reaches devbridge on loopback; leave out --for"
            )));
        }
    }
    let (ip, why) = host_address().map_err(PrepareError::Unavailable)?;
    let listen = ContainerListen { xds_listen: SocketAddr::new(ip, settings.xds_listen.port()), why };
    settings.xds_listen = listen.xds_listen;
    if settings.tls {
        let paths = super::connect::cert_paths(settings).map_err(PrepareError::Usage)?;
        check_server_names(&paths.server_cert()).map_err(PrepareError::Usage)?;
    }
    Ok(Some(listen))
}

/// The address `host.docker.internal` is inside a container, on this OS.
#[cfg(target_os = "linux")]
fn host_address() -> anyhow::Result<(IpAddr, String)> {
    let bridge = bridge_name().unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
    match interface_ipv4(&bridge) {
        Some(ip) => Ok((
            IpAddr::V4(ip),
            format!("the address of docker's bridge {bridge}, which containers reach as {HOST_NAME} (host-gateway)"),
        )),
        None => anyhow::bail!(
            "--for docker: the docker bridge {bridge} has no IPv4 address on this machine; is Docker running \
             (`docker info`)? Or pass --xds-listen with the address containers reach this host at"
        ),
    }
}

#[cfg(not(target_os = "linux"))]
fn host_address() -> anyhow::Result<(IpAddr, String)> {
    Ok((
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        format!("loopback: Docker Desktop forwards {HOST_NAME} in containers to this host's 127.0.0.1"),
    ))
}

/// The interface of docker's default network, as the daemon names it;
/// `None` when the docker CLI is missing, fails or takes too long.
fn bridge_name() -> Option<String> {
    let mut child = Command::new("docker")
        .args(["network", "inspect", "bridge", "--format", "{{index .Options \"com.docker.network.bridge.name\"}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + DOCKER_CLI_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!name.is_empty() && name != "<no value>").then_some(name)
}

/// The first IPv4 address of a network interface.
fn interface_ipv4(name: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
}

/// devbridge's server certificate must name what the container dials, or
/// every sidecar fails its handshake with nothing in devbridge's log.
fn check_server_names(cert: &std::path::Path) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(cert).with_context(|| {
        format!("cannot read devbridge's server certificate {}; run `devbridge certs init`", cert.display())
    })?;
    let names = crate::certs::subject_names(&pem);
    if names.iter().any(|n| n == HOST_NAME) {
        return Ok(());
    }
    anyhow::bail!(
        "devbridge's server certificate {} is valid for {}, not {HOST_NAME}, which a container's sidecar dials; \
         run `devbridge certs init` again (it keeps the CA and issues a server certificate with that name)",
        cert.display(),
        if names.is_empty() { "no names".to_string() } else { names.join(", ") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_ipv4_address_and_an_unknown_interface_none() {
        assert_eq!(interface_ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_ipv4("devbridge-none0"), None);
    }

    #[test]
    fn a_server_certificate_without_the_container_name_is_refused_saying_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::certs::CertPaths::new(dir.path());
        crate::certs::init(&paths, &[]).unwrap();
        check_server_names(&paths.server_cert()).unwrap();

        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let path = dir.path().join("other.pem");
        std::fs::write(&path, other.cert.pem()).unwrap();
        let err = check_server_names(&path).unwrap_err().to_string();
        assert!(err.contains("is valid for localhost, not host.docker.internal"), "{err}");
        assert!(err.contains("devbridge certs init"), "{err}");
    }

    #[test]
    fn the_process_runtime_changes_nothing_and_minikube_says_what_to_pass() {
        let mut settings = Settings::load(&Default::default(), None).unwrap();
        let before = settings.clone();
        assert_eq!(prepare(Runtime::Process, &mut settings).unwrap(), None);
        assert_eq!(settings, before);
        let err = prepare(Runtime::Minikube, &mut settings).unwrap_err().to_string();
        assert!(err.contains("pass --xds-listen"), "{err}");
        assert_eq!(settings, before);
    }
}
