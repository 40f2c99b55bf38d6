//! The Envoy bootstrap for one proxy: its node identity, ADS to devbridge,
//! admin on loopback, and a short reconnect backoff so a restarted devbridge
//! is picked up within about a second; per sidecar runtime, the address at
//! which that runtime reaches devbridge.

use std::net::{IpAddr, SocketAddr};

use serde_json::{Value, json};

use crate::model::{Profile, Proxy, ProxyKind};

/// Name of the static cluster through which Envoy reaches devbridge.
pub const XDS_CLUSTER: &str = "devbridge_xds";
/// First and longest wait between ADS reconnect attempts.
pub const DEFAULT_RECONNECT_BASE: &str = "0.1s";
pub const DEFAULT_RECONNECT_MAX: &str = "1s";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("profile {profile:?} has no proxy {name:?}; its proxies: {known}")]
    UnknownProxy { profile: String, name: String, known: String },
    #[error("profile {profile:?} has {count} proxies ({known}); name one with --proxy")]
    Ambiguous { profile: String, count: usize, known: String },
    #[error("profile {profile:?} has no proxies; add a [proxies.NAME] table")]
    NoProxies { profile: String },
    #[error("proxy {name:?} is {is}; {wanted}")]
    WrongKind { name: String, is: &'static str, wanted: String },
    #[error("profile {profile:?} has no {kind} proxy; {hint}")]
    NoneOfKind { profile: String, kind: &'static str, hint: String },
}

/// Where the Envoy sidecar runs, which decides how it reaches devbridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// An OS process on this machine: devbridge on loopback.
    Process,
    /// A `docker run` container: devbridge at `host.docker.internal`.
    Docker,
    /// A docker compose service: as docker, with `extra_hosts`.
    Compose,
    /// A container in a minikube pod: devbridge at `host.minikube.internal`.
    Minikube,
    /// A proxyless gRPC application on this machine (a proxy with
    /// `kind = "grpc"`): the JSON bootstrap its xDS client reads from
    /// `GRPC_XDS_BOOTSTRAP`; devbridge on loopback.
    Grpc,
}

/// Which xDS protocol the sidecar speaks to devbridge (Envoy's
/// `ads_config.api_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum XdsApi {
    /// State-of-the-world ADS over gRPC (`GRPC`).
    #[default]
    Grpc,
    /// Incremental ADS over gRPC (`DELTA_GRPC`).
    Delta,
    /// JSON polled over HTTP/1.1 from devbridge's admin port (`REST`):
    /// no stream, each type asked for every `refresh_delay`.
    Rest,
}

impl XdsApi {
    /// The value of Envoy's `api_type`.
    pub fn api_type(self) -> &'static str {
        match self {
            XdsApi::Grpc => "GRPC",
            XdsApi::Delta => "DELTA_GRPC",
            XdsApi::Rest => "REST",
        }
    }

    /// What the user must know of this protocol, as comment lines: how a
    /// restarted devbridge is picked up, and what is sent.
    pub fn notes(self) -> Vec<String> {
        let reconnect = "Envoy retries devbridge every 0.1 s to 1 s: a restart is picked up within about a second.";
        match self {
            XdsApi::Grpc => vec![reconnect.into()],
            XdsApi::Delta => vec![
                reconnect.into(),
                "Envoy speaks delta (incremental) xDS: each change, and each reconnect, sends only what differs."
                    .into(),
            ],
            // No stream to reconnect: the poll itself is the retry.
            XdsApi::Rest => vec![format!(
                "Envoy polls devbridge's admin port over REST (JSON) every {} s per type: no stream to keep.",
                crate::xds::rest::REFRESH_DELAY.as_secs()
            )],
        }
    }

    /// How `/status` names a stream of this protocol.
    pub fn protocol(self) -> &'static str {
        match self {
            XdsApi::Grpc => "sotw",
            XdsApi::Delta => "delta",
            XdsApi::Rest => "rest",
        }
    }
}

/// Output format of a bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

impl Runtime {
    /// The host at which this runtime reaches a devbridge listening on `listen`.
    pub fn xds_host(self, listen: SocketAddr) -> String {
        match self {
            Runtime::Process | Runtime::Grpc => crate::settings::reachable_xds_address(listen).0,
            Runtime::Docker | Runtime::Compose => "host.docker.internal".into(),
            Runtime::Minikube => "host.minikube.internal".into(),
        }
    }

    /// Where the proxy's client certificate is, as the sidecar sees it.
    pub fn default_tls_dir(self, proxy: &str) -> String {
        match self {
            Runtime::Process | Runtime::Grpc => crate::certs::CertPaths::default_location()
                .map(|p| p.client_dir(proxy).display().to_string())
                .unwrap_or_else(|| format!("~/.config/devbridge/tls/proxies/{proxy}")),
            _ => "/etc/devbridge/tls".into(),
        }
    }

    /// The notes for a bootstrap, with or without TLS.
    pub fn notes_with(self, profile: &str, proxy: &str, xds: &str, tls: Option<&ClientTls>) -> Vec<String> {
        if self == Runtime::Grpc {
            return grpc_notes(profile, proxy, xds, tls);
        }
        let Some(tls) = tls else { return self.notes(profile, proxy, xds) };
        let mut out =
            vec![format!("Envoy bootstrap for proxy {proxy:?} of profile {profile:?} ({self:?} runtime, mutual TLS).")];
        out.push(format!("Envoy reaches devbridge at {xds} over TLS with the certificate in {}", tls.dir));
        out.push(format!("(ca.pem, cert.pem, key.pem: `devbridge certs issue {proxy}`)."));
        out.push(match self {
            Runtime::Docker | Runtime::Compose => {
                "devbridge must serve TLS where containers reach it: devbridge connect <profile> --tls --for docker"
                    .into()
            }
            _ => "devbridge must serve TLS there: devbridge connect <profile> --tls --xds-listen <address>".into(),
        });
        // Where the files are on this machine, when `certs issue` put them
        // where this bootstrap can see (beside --out, or the default place).
        let issue_first = || format!("Issue the certificate first (devbridge certs issue {proxy} [--out DIR]), then");
        match (self, &tls.host_dir) {
            (Runtime::Process | Runtime::Grpc, _) => {}
            (Runtime::Docker, Some(host)) => {
                out.push("  docker run --add-host=host.docker.internal:host-gateway \\".into());
                out.push(format!("    -v {host}:{}:ro ...", tls.dir));
            }
            (Runtime::Compose, Some(host)) => {
                out.push("  extra_hosts: [\"host.docker.internal:host-gateway\"]".into());
                out.push(format!("  volumes: [\"{host}:{}:ro\"]", tls.dir));
            }
            (Runtime::Docker | Runtime::Compose, None) => {
                out.push(format!("{} mount the folder it wrote at {}:", issue_first(), tls.dir));
                out.push(format!(
                    "  -v <that folder>:{}:ro, with --add-host=host.docker.internal:host-gateway",
                    tls.dir
                ));
            }
            (Runtime::Minikube, host) => {
                // An absolute path: the shell expands no `~` after `--from-file=`.
                let certs = host.clone().unwrap_or_else(|| "<that folder>".into());
                if host.is_none() {
                    out.push(format!("{} put the folder it wrote in a Secret:", issue_first()));
                }
                out.push(format!("  kubectl create secret generic <secret> --from-file={certs}"));
                out.push(format!("  and mount that Secret (the pod's secretName: <secret>) at {}.", tls.dir));
            }
        }
        out
    }

    /// Where the sidecar listens, from the profile devbridge serves it:
    /// each HTTP port with its domains, each TCP service with its cluster,
    /// and for a container how to publish them.
    pub fn port_notes(self, profile: &Profile, proxy: &Proxy) -> Vec<String> {
        let mut out = Vec::new();
        if proxy.kind == ProxyKind::Grpc {
            for (target, domain) in crate::xds::translate::grpc_targets(profile, proxy) {
                out.push(format!("xds:///{target} -> domain {}", domain.name));
            }
            return out;
        }
        for port in proxy.ports(profile) {
            let names: Vec<&str> = proxy
                .domains
                .iter()
                .filter_map(|d| profile.domains.get(d))
                .filter(|d| d.port == port)
                .map(|d| d.host.as_str())
                .collect();
            out.push(format!("HTTP on {}: {}", SocketAddr::new(proxy.listen_address, port), names.join(", ")));
        }
        for t in &proxy.tcp {
            out.push(format!(
                "TCP service {} on {} -> cluster {}{}",
                t.name,
                SocketAddr::new(proxy.listen_address, t.port),
                t.cluster,
                t.idle_timeout
                    .map(|d| format!(" (idle timeout {})", humantime::format_duration(d)))
                    .unwrap_or_default()
            ));
        }
        let ports: Vec<u16> = proxy.ports(profile).into_iter().chain(proxy.tcp.iter().map(|t| t.port)).collect();
        if matches!(self, Runtime::Docker | Runtime::Compose) && !ports.is_empty() {
            let flags: Vec<String> = ports.iter().map(|p| format!("-p {p}:{p}")).collect();
            out.push(format!(
                "To reach these from the host, listen_address must be 0.0.0.0 in the profile; publish: {}",
                flags.join(" ")
            ));
        }
        out
    }

    /// What the user must know to run this bootstrap, as comment lines.
    pub fn notes(self, profile: &str, proxy: &str, xds: &str) -> Vec<String> {
        let beyond_loopback = [
            "A container reaches the host from outside its loopback, and devbridge".to_string(),
            "serves beyond loopback only over TLS: add --tls to this command (after".to_string(),
            "`devbridge certs init` and `devbridge certs issue <proxy>`), or run the".to_string(),
            "sidecar on the host network (`--network host`, compose `network_mode: host`)".to_string(),
            "with `--for process`, which keeps devbridge on 127.0.0.1.".to_string(),
        ];
        let mut out = vec![format!("Envoy bootstrap for proxy {proxy:?} of profile {profile:?} ({self:?} runtime).")];
        match self {
            Runtime::Process => {
                out.push(format!("Run: envoy -c <this file>   (devbridge serves xDS at {xds})."));
                out.push("Or let devbridge run and supervise Envoy: devbridge connect <profile> --envoy.".into());
            }
            Runtime::Grpc => return grpc_notes(profile, proxy, xds, None),
            Runtime::Docker => {
                out.push(format!("The container reaches devbridge at {xds}. On Linux, give it that name:"));
                out.push("  docker run --add-host=host.docker.internal:host-gateway ...".into());
                out.extend(beyond_loopback);
            }
            Runtime::Compose => {
                out.push(format!("The sidecar service reaches devbridge at {xds}. On Linux, add to it:"));
                out.push("  extra_hosts: [\"host.docker.internal:host-gateway\"]".into());
                out.extend(beyond_loopback);
            }
            Runtime::Minikube => {
                out.push(format!("The pod reaches devbridge at {xds} (minikube's name for the host)."));
                out.push("Mount this file from a ConfigMap: kubectl create configmap <name> --from-file=envoy.yaml=<this file>".into());
                out.push("devbridge must listen on the host's address in minikube's network (e.g.".into());
                out.push("192.168.49.1), beyond loopback, which it does only over TLS: add --tls to".into());
                out.push("this command (after `devbridge certs init` and `devbridge certs issue <proxy>`).".into());
            }
        }
        out
    }
}

/// The bootstrap as text: YAML with the notes as a comment header, or JSON
/// (which has no comments; the caller shows the notes elsewhere).
pub fn render(value: &Value, format: Format, notes: &[String]) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(value).expect("a JSON value serialises") + "\n",
        Format::Yaml => {
            let mut out: String = notes.iter().map(|n| format!("# {n}\n")).collect();
            out.push_str(&to_yaml(value));
            out
        }
    }
}

/// Picks the Envoy proxy named, or the only one.
pub fn select_proxy<'a>(profile: &'a Profile, name: Option<&str>) -> Result<&'a Proxy, BootstrapError> {
    select_proxy_of(profile, name, ProxyKind::Envoy)
}

/// Picks the proxy named, or the only one of `kind`.
pub fn select_proxy_of<'a>(
    profile: &'a Profile,
    name: Option<&str>,
    kind: ProxyKind,
) -> Result<&'a Proxy, BootstrapError> {
    let known = profile.proxies.keys().cloned().collect::<Vec<_>>().join(", ");
    let (what, hint) = match kind {
        ProxyKind::Envoy => ("an Envoy", "a proxyless gRPC client takes `devbridge bootstrap --for grpc`"),
        ProxyKind::Grpc => ("a proxyless gRPC client", "set kind = \"grpc\" on the proxy its gRPC application is"),
    };
    if let Some(n) = name {
        let p = profile.proxies.get(n).ok_or_else(|| BootstrapError::UnknownProxy {
            profile: profile.name.clone(),
            name: n.to_string(),
            known,
        })?;
        if p.kind != kind {
            let is = match p.kind {
                ProxyKind::Envoy => "an Envoy proxy",
                ProxyKind::Grpc => "a proxyless gRPC client (kind = \"grpc\")",
            };
            return Err(BootstrapError::WrongKind {
                name: n.to_string(),
                is,
                wanted: format!("this needs {what}: {hint}"),
            });
        }
        return Ok(p);
    }
    let of_kind: Vec<&Proxy> = profile.proxies.values().filter(|p| p.kind == kind).collect();
    match of_kind.as_slice() {
        [one] => Ok(one),
        [] if profile.proxies.is_empty() => Err(BootstrapError::NoProxies { profile: profile.name.clone() }),
        [] => Err(BootstrapError::NoneOfKind {
            profile: profile.name.clone(),
            kind: match kind {
                ProxyKind::Envoy => "Envoy",
                ProxyKind::Grpc => "proxyless gRPC (kind = \"grpc\")",
            },
            hint: format!("its proxies: {known}; {hint}"),
        }),
        many => Err(BootstrapError::Ambiguous {
            profile: profile.name.clone(),
            count: many.len(),
            known: many.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// The bootstrap a proxyless gRPC client reads (`GRPC_XDS_BOOTSTRAP`,
/// gRFC A27): devbridge as its one xDS server, and the node identity the
/// proxy matches, its zone as the locality. Over mutual TLS, the `tls`
/// channel credentials of gRFC A65 with the proxy's certificate.
pub fn grpc_bootstrap(proxy: &Proxy, target: &XdsTarget, tls: Option<&ClientTls>) -> Value {
    let server_uri = match target {
        XdsTarget::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        XdsTarget::Tcp { host, port } => format!("{host}:{port}"),
        XdsTarget::Pipe { path } => format!("unix:{path}"),
    };
    let creds = match tls {
        None => json!({ "type": "insecure" }),
        Some(tls) => {
            let file = |name: &str| format!("{}/{name}", tls.dir.trim_end_matches('/'));
            json!({ "type": "tls", "config": {
                "ca_certificate_file": file("ca.pem"),
                "certificate_file": file("cert.pem"),
                "private_key_file": file("key.pem"),
            }})
        }
    };
    json!({
        "xds_servers": [{
            "server_uri": server_uri,
            "channel_creds": [creds],
            // gRPC releases before 1.42 speak xDS v2 unless told.
            "server_features": ["xds_v3"]
        }],
        "node": {
            "id": proxy.node_id.clone().unwrap_or_else(|| proxy.name.clone()),
            "cluster": proxy.node_cluster,
            "locality": { "zone": proxy.zone }
        }
    })
}

/// What to do with a gRPC bootstrap.
fn grpc_notes(profile: &str, proxy: &str, xds: &str, tls: Option<&ClientTls>) -> Vec<String> {
    let mut out = vec![format!("gRPC xDS bootstrap for proxy {proxy:?} of profile {profile:?} (proxyless gRPC).")];
    out.push(format!(
        "The application's gRPC library reads it from GRPC_XDS_BOOTSTRAP and asks devbridge at {xds}{}.",
        if tls.is_some() { " over mutual TLS" } else { "" }
    ));
    out.push("Run: GRPC_XDS_BOOTSTRAP=<this file> <your app>, dialling the targets below as xds:///TARGET.".into());
    out
}

/// The bootstrap as a JSON value (Envoy reads it as YAML or JSON).
pub fn bootstrap(proxy: &Proxy, xds_host: &str, xds_port: u16) -> Value {
    bootstrap_for(proxy, xds_host, xds_port, XdsApi::Grpc)
}

/// [`bootstrap`] speaking the given xDS protocol.
pub fn bootstrap_for(proxy: &Proxy, xds_host: &str, xds_port: u16, api: XdsApi) -> Value {
    bootstrap_with(proxy, &XdsTarget::Tcp { host: xds_host.to_string(), port: xds_port }, None, api)
}

/// How the sidecar reaches devbridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdsTarget {
    Tcp {
        host: String,
        port: u16,
    },
    /// A Unix domain socket (Envoy's `pipe` address).
    Pipe {
        path: String,
    },
}

/// The client side of devbridge's mutual TLS, as the sidecar sees it: a
/// directory holding `ca.pem`, `cert.pem` and `key.pem`
/// (`devbridge certs issue <proxy>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub dir: String,
    /// Where the same files are on this machine, when known: the folder a
    /// container mounts at `dir`. Only the notes use it.
    pub host_dir: Option<String>,
}

/// The bootstrap for `proxy`, reaching devbridge at `target`, over mutual
/// TLS when `tls` is given (the server certificate must name the host),
/// speaking `api`.
pub fn bootstrap_with(proxy: &Proxy, target: &XdsTarget, tls: Option<&ClientTls>, api: XdsApi) -> Value {
    let (address, kind, host) = match target {
        XdsTarget::Tcp { host, port } => {
            let kind = if host.parse::<IpAddr>().is_ok() { "STATIC" } else { "STRICT_DNS" };
            (json!({ "socket_address": { "address": host, "port_value": port } }), kind, Some(host.as_str()))
        }
        XdsTarget::Pipe { path } => (json!({ "pipe": { "path": path } }), "STATIC", None),
    };
    let mut xds_cluster = json!({
        "name": XDS_CLUSTER,
        "type": kind,
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": { "interval": "20s", "timeout": "10s" }
                    }
                }
            }
        },
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address }}]}]
        }
    });
    if kind == "STRICT_DNS" {
        xds_cluster["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    if let Some(tls) = tls {
        let file = |name: &str| json!({ "filename": format!("{}/{name}", tls.dir.trim_end_matches('/')) });
        let mut validation = json!({ "trusted_ca": file("ca.pem") });
        let mut context = json!({
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [{ "certificate_chain": file("cert.pem"), "private_key": file("key.pem") }],
            }
        });
        // SNI carries host names only (RFC 6066; rustls warns at every
        // handshake that presents an IP): an IP address is left out, and
        // the SAN match below still pins the certificate to it.
        match host {
            Some(h) if h.parse::<IpAddr>().is_ok() => {}
            h => context["sni"] = json!(h.unwrap_or("localhost")),
        }
        // Check that the server certificate names the host dialled, not
        // only that it chains to the CA.
        if let Some(host) = host {
            let san_type = if host.parse::<IpAddr>().is_ok() { "IP_ADDRESS" } else { "DNS" };
            validation["match_typed_subject_alt_names"] =
                json!([{ "san_type": san_type, "matcher": { "exact": host } }]);
        }
        context["common_tls_context"]["validation_context"] = validation;
        context["@type"] = json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
        xds_cluster["transport_socket"] = json!({ "name": "envoy.transport_sockets.tls", "typed_config": context });
    }
    if api == XdsApi::Rest {
        // JSON over HTTP/1.1 to the admin port: no HTTP/2, and TLS says so.
        if let Some(o) = xds_cluster.as_object_mut() {
            o.remove("typed_extension_protocol_options");
        }
        if tls.is_some() {
            xds_cluster["transport_socket"]["typed_config"]["common_tls_context"]["alpn_protocols"] =
                json!(["http/1.1"]);
        }
    }
    let ads = json!({ "ads": {}, "resource_api_version": "V3" });
    let rest = json!({
        "resource_api_version": "V3",
        "api_config_source": {
            "api_type": "REST",
            "transport_api_version": "V3",
            "cluster_names": [XDS_CLUSTER],
            "refresh_delay": format!("{}s", crate::xds::rest::REFRESH_DELAY.as_secs()),
            "request_timeout": "1s"
        }
    });
    let dynamic = if api == XdsApi::Rest {
        json!({ "cds_config": rest, "lds_config": rest })
    } else {
        json!({
            "ads_config": {
                "api_type": api.api_type(),
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{
                    "envoy_grpc": {
                        "cluster_name": XDS_CLUSTER,
                        "retry_policy": {
                            "retry_back_off": {
                                "base_interval": DEFAULT_RECONNECT_BASE,
                                "max_interval": DEFAULT_RECONNECT_MAX
                            }
                        }
                    }
                }]
            },
            "cds_config": ads,
            "lds_config": ads
        })
    };
    json!({
        "node": {
            "id": proxy.node_id.clone().unwrap_or_else(|| proxy.name.clone()),
            "cluster": proxy.node_cluster,
            "locality": { "zone": proxy.zone }
        },
        "admin": {
            "address": { "socket_address": {
                "address": proxy.admin.ip().to_string(),
                "port_value": proxy.admin.port()
            }}
        },
        "dynamic_resources": dynamic,
        "static_resources": { "clusters": [xds_cluster] }
    })
}

/// Renders a JSON value as block-style YAML. Strings are written as JSON
/// strings, which YAML reads as double-quoted scalars, so nothing needs
/// YAML-specific escaping.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) if m.is_empty() => Some("{}".into()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(_) | Value::Array(_) => None,
        other => Some(other.to_string()),
    }
}

fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match scalar(val) {
                    Some(s) => out.push_str(&format!("{pad}{}: {s}\n", key(k))),
                    None => {
                        out.push_str(&format!("{pad}{}:\n", key(k)));
                        emit(val, indent + 2, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        // Render the item two deeper, then hang its first line on the dash.
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_proxy() -> Proxy {
        let src = "[zones.z]\n[proxies.dev-proxy]\nzone = \"z\"\n";
        crate::profile::parse_profile("p.toml", "p", src).unwrap().proxies["dev-proxy"].clone()
    }

    fn tls_context(host: &str) -> Value {
        let target = XdsTarget::Tcp { host: host.into(), port: 18000 };
        let tls = ClientTls { dir: "/etc/devbridge/tls".into(), host_dir: None };
        let b = bootstrap_with(&mk_proxy(), &target, Some(&tls), XdsApi::Grpc);
        b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"].clone()
    }

    #[test]
    fn an_ip_address_is_not_sent_as_sni_but_is_still_checked_against_the_certificate() {
        // RFC 6066 allows only host names in SNI; rustls warns at every
        // handshake that carries an IP there.
        let ctx = tls_context("127.0.0.1");
        assert_eq!(ctx.get("sni"), None, "{ctx}");
        assert_eq!(
            ctx["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"],
            json!([{ "san_type": "IP_ADDRESS", "matcher": { "exact": "127.0.0.1" } }])
        );
        assert_eq!(tls_context("::1").get("sni"), None);
        assert_eq!(tls_context("host.docker.internal")["sni"], "host.docker.internal");
    }

    #[test]
    fn the_minikube_tls_note_names_a_path_the_shell_reads_and_no_made_up_secret() {
        let tls = ClientTls { dir: "/etc/devbridge/tls".into(), host_dir: Some("/home/me/out/tls".into()) };
        let notes = Runtime::Minikube.notes_with("p", "dev-proxy", "host.minikube.internal:18000", Some(&tls));
        let secret = notes.iter().find(|n| n.contains("kubectl create secret")).expect("a secret line");
        assert!(!secret.contains("dev-proxy-devbridge-tls"), "the deployment names the secret: {secret}");
        assert!(secret.ends_with("kubectl create secret generic <secret> --from-file=/home/me/out/tls"), "{secret}");
        assert!(notes.iter().any(|n| n.contains("<secret>") && n.contains("/etc/devbridge/tls")), "{notes:?}");
    }

    #[test]
    fn a_container_tls_note_mounts_the_folder_the_certificate_is_in_or_says_to_issue_it() {
        let found = ClientTls { dir: "/etc/devbridge/tls".into(), host_dir: Some("/work/out/tls".into()) };
        let notes = Runtime::Docker.notes_with("p", "dev-proxy", "host.docker.internal:18000", Some(&found));
        assert!(notes.contains(&"    -v /work/out/tls:/etc/devbridge/tls:ro ...".to_string()), "{notes:?}");
        assert!(notes.iter().any(|n| n.ends_with("devbridge connect <profile> --tls --for docker")), "{notes:?}");
        assert!(!notes.iter().any(|n| n.contains(".config/devbridge")), "no other folder is named: {notes:?}");
        let notes = Runtime::Compose.notes_with("p", "dev-proxy", "host.docker.internal:18000", Some(&found));
        assert!(notes.contains(&"  volumes: [\"/work/out/tls:/etc/devbridge/tls:ro\"]".to_string()), "{notes:?}");

        let unknown = ClientTls { host_dir: None, ..found };
        let notes = Runtime::Docker.notes_with("p", "dev-proxy", "host.docker.internal:18000", Some(&unknown));
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("Issue the certificate first (devbridge certs issue dev-proxy [--out DIR])")),
            "{notes:?}"
        );
        assert!(!notes.iter().any(|n| n.contains(".config/devbridge")), "{notes:?}");
    }

    #[test]
    fn yaml_nests_maps_and_hangs_list_items_on_dashes() {
        let v = json!({"a": {"b": 1, "@type": "x"}, "l": [{"k": "v", "m": [1, 2]}, "s"], "e": {}});
        assert_eq!(
            to_yaml(&v),
            "a:\n  b: 1\n  \"@type\": \"x\"\nl:\n  - k: \"v\"\n    m:\n      - 1\n      - 2\n  - \"s\"\ne: {}\n"
        );
    }
}
