//! Reads the Kubernetes links: the kubeconfig, the API server step by step,
//! the credentials (an exec plugin is run; its token is read for its expiry
//! and dropped), SelfSubjectAccessReviews with the `Date` of their answers,
//! and the pods each selector lists, judged by `index::select_pod`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use kube::config::{AuthInfo, Kubeconfig};

use super::STEP_TIMEOUT;
use crate::discovery::Options;
use crate::discovery::plan::{Conn, Plan, Rule};
use crate::doctor::{self, Access, AuthFact, Check, KubeconfigFact, Step};
use crate::model::{Profile, Source};

/// How long an exec credential plugin may take (it may wait for a login: not waited for long).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

/// Every Kubernetes source's checks; the endpoints each cluster's pods give.
pub async fn kubernetes(p: &Profile, checks: &mut Vec<Check>) -> BTreeMap<String, Vec<SocketAddr>> {
    let plan = Plan::from_profile(p);
    let mut by_conn: BTreeMap<Conn, Vec<&crate::model::Cluster>> = BTreeMap::new();
    for c in p.clusters.values() {
        let conn = match &c.source {
            Source::Kubernetes(k) => Conn { kubeconfig: k.kubeconfig.clone(), context: k.context.clone() },
            Source::KubernetesService(s) => Conn { kubeconfig: s.kubeconfig.clone(), context: s.context.clone() },
            _ => continue,
        };
        by_conn.entry(conn).or_default().push(c);
    }
    let mut endpoints = BTreeMap::new();
    let opts = Options { connect_timeout: STEP_TIMEOUT, read_timeout: STEP_TIMEOUT, ..Options::default() };
    for (conn, clusters) in by_conn {
        let desc = conn.to_string();
        let kc = kubeconfig(&conn);
        checks.push(doctor::kubeconfig_check(&desc, kc.as_ref().map(|(f, ..)| f.clone()).map_err(Clone::clone)));
        let Ok((fact, auth)) = kc else { continue };
        let steps = reach(&fact.server).await;
        let reached = steps.iter().all(|s| s.result.is_ok());
        checks.push(doctor::api_server_check(&desc, &fact.server, &steps));
        let auth = credentials(auth.as_ref()).await;
        checks.push(doctor::auth_check(&desc, &auth, crate::model::now_ms()));
        if !reached {
            continue;
        }
        let client = match crate::discovery::kube::connect(conn.clone(), opts.clone()).await {
            Ok(c) => c.client,
            Err(e) => {
                checks.push(Check::failed(
                    doctor::kube_subject(&desc),
                    "client",
                    e.to_string(),
                    "see the checks above",
                ));
                continue;
            }
        };
        // What the watches need: list and watch of each resource they read.
        let mut asks: BTreeSet<(&str, &str, Option<String>)> = BTreeSet::new();
        for c in &clusters {
            match &c.source {
                Source::Kubernetes(k) => {
                    for ns in &k.namespaces {
                        asks.insert(("", "pods", Some(ns.clone())));
                    }
                    if k.needs_nodes() {
                        asks.insert(("", "nodes", None));
                    }
                }
                Source::KubernetesService(s) => {
                    asks.insert(("discovery.k8s.io", "endpointslices", Some(s.namespace.clone())));
                }
                _ => {}
            }
        }
        let mut answers = Vec::new();
        let mut skew = None;
        for (group, resource, ns) in &asks {
            for verb in ["list", "watch"] {
                let (access, date) = review(&client, verb, group, resource, ns.as_deref()).await;
                if let (None, Some(date)) = (skew, date) {
                    skew = Some(date);
                }
                answers.push((verb.to_string(), resource.to_string(), ns.clone(), access));
            }
        }
        let unauthorized = answers.iter().any(|a| matches!(a.3, Access::Failed(401, _)));
        checks.push(doctor::rbac_check(&desc, &answers));
        checks.push(doctor::clock_check(&desc, skew));
        if unauthorized {
            continue;
        }
        for c in &clusters {
            let (Source::Kubernetes(k), Some(plan)) = (&c.source, plan.clusters.get(&c.name)) else { continue };
            let Rule::Pods(rule) = &plan.rule else { continue };
            let mut all = Vec::new();
            let mut failed = None;
            for ns in &k.namespaces {
                let q = crate::onboard::Query {
                    kubeconfig: conn.kubeconfig.clone(),
                    context: conn.context.clone(),
                    namespace: ns.clone(),
                    selector: Some(k.selector.clone()),
                };
                match crate::onboard::fetch::inventory(&q, &opts).await {
                    Ok(inv) => {
                        let names = inv.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name));
                        let verdicts = inv.verdicts(rule).into_iter().map(|v| v.map_err(|e| e.to_string()));
                        all.extend(names.zip(verdicts));
                    }
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            let what = format!("{} in {}", k.selector, k.namespaces.join(", "));
            endpoints.insert(c.name.clone(), all.iter().filter_map(|(_, v)| v.as_ref().ok().copied()).collect());
            let verdicts = match failed {
                Some(e) => Err(e),
                None => Ok(all),
            };
            checks.push(doctor::selector_check(&desc, &c.name, &what, verdicts));
        }
    }
    endpoints
}

/// The kubeconfig a connection names, its context's server and user.
fn kubeconfig(conn: &Conn) -> Result<(KubeconfigFact, Option<AuthInfo>), String> {
    let (kc, path) = match &conn.kubeconfig {
        Some(p) => {
            let path = crate::discovery::kube::expand_home(p);
            (Kubeconfig::read_from(&path).map_err(|e| format!("cannot read kubeconfig {path}: {e}"))?, path)
        }
        None => {
            let path = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
            (Kubeconfig::read().map_err(|e| format!("cannot read kubeconfig {path}: {e}"))?, path)
        }
    };
    let name = conn
        .context
        .clone()
        .or_else(|| kc.current_context.clone())
        .ok_or_else(|| format!("{path} names no current-context and the profile names no context"))?;
    let ctx = kc.contexts.iter().find(|c| c.name == name).and_then(|c| c.context.clone()).ok_or_else(|| {
        let has: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        format!("{path} has no context {name:?} (it has: {})", has.join(", "))
    })?;
    let server = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| format!("{path}: context {name:?} names cluster {:?}, which has no server", ctx.cluster))?;
    let auth =
        ctx.user.as_ref().and_then(|u| kc.auth_infos.iter().find(|a| &a.name == u)).and_then(|a| a.auth_info.clone());
    let kind = match &auth {
        None => "no user".to_string(),
        Some(a) => auth_kind(a),
    };
    Ok((KubeconfigFact { path, context: name, server: server.trim_end_matches('/').to_string(), auth: kind }, auth))
}

fn auth_kind(a: &AuthInfo) -> String {
    if let Some(e) = &a.exec {
        format!("exec plugin {}", e.command.as_deref().unwrap_or("(no command)"))
    } else if a.token.is_some() {
        "token".into()
    } else if a.token_file.is_some() {
        "token file".into()
    } else if a.client_certificate.is_some() || a.client_certificate_data.is_some() {
        "client certificate".into()
    } else if let Some(p) = &a.auth_provider {
        format!("auth-provider {}", p.name)
    } else if a.username.is_some() {
        "basic auth".into()
    } else {
        "no credentials".into()
    }
}

/// DNS, TCP and (for https) TLS to the API server, each timed.
async fn reach(server: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let uri: hyper::Uri = match server.parse() {
        Ok(u) => u,
        Err(e) => return vec![Step { name: "DNS", result: Err(format!("{server} is not a URL: {e}")) }],
    };
    let tls = uri.scheme_str() != Some("http");
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let start = Instant::now();
    let resolved = tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await;
    let addrs: Vec<SocketAddr> = match resolved {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return vec![Step { name: "DNS", result: Err(format!("{host}: {e}")) }],
        Err(_) => return vec![Step { name: "DNS", result: Err(format!("{host}: no answer within {STEP_TIMEOUT:?}")) }],
    };
    let Some(first) = addrs.first().copied() else {
        return vec![Step { name: "DNS", result: Err(format!("{host} resolves to no address")) }];
    };
    steps.push(Step { name: "DNS", result: Ok((start.elapsed(), format!("{host} -> {}", first.ip()))) });
    let start = Instant::now();
    let stream = match tokio::time::timeout(STEP_TIMEOUT, tokio::net::TcpStream::connect(first)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            steps.push(Step { name: "TCP", result: Err(format!("{first}: {e}")) });
            return steps;
        }
        Err(_) => {
            steps.push(Step {
                name: "TCP",
                result: Err(format!("{first}: no answer within {STEP_TIMEOUT:?} (dropped)")),
            });
            return steps;
        }
    };
    steps.push(Step { name: "TCP", result: Ok((start.elapsed(), first.to_string())) });
    if tls {
        steps.push(Step { name: "TLS", result: handshake(stream, &host).await });
    } else {
        steps.push(Step { name: "TLS", result: Ok((Duration::ZERO, "not used: http://".into())) });
    }
    steps
}

/// A TLS handshake that checks nothing but that TLS is spoken: which CA the
/// kubeconfig trusts is the client's business, and kube verifies it on every request.
async fn handshake(stream: tokio::net::TcpStream, host: &str) -> Result<(Duration, String), String> {
    use tokio_rustls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    match tokio::time::timeout(STEP_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(s)) => {
            let version = s.get_ref().1.protocol_version().map_or_else(|| "TLS".into(), |v| format!("{v:?}"));
            Ok((start.elapsed(), version))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no handshake within {STEP_TIMEOUT:?}")),
    }
}

/// Accepts any certificate: the handshake is timed, not trusted (nothing is sent over it).
#[derive(Debug)]
struct AnyCert(std::sync::Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        _: &[tokio_rustls::rustls::pki_types::CertificateDer<'_>],
        _: &tokio_rustls::rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: tokio_rustls::rustls::pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<tokio_rustls::rustls::client::danger::HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<tokio_rustls::rustls::client::danger::HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What the user's credentials are; an exec plugin is run, its credential
/// read for its expiry and dropped (never shown).
async fn credentials(auth: Option<&AuthInfo>) -> AuthFact {
    let Some(a) = auth else { return AuthFact::Anonymous };
    let Some(exec) = &a.exec else {
        return match auth_kind(a).as_str() {
            "no credentials" => AuthFact::Anonymous,
            k if k.starts_with("auth-provider") => AuthFact::Other(k.to_string()),
            k => AuthFact::Static(k.to_string()),
        };
    };
    let Some(command) = exec.command.clone() else {
        return AuthFact::Exec { command: "(none)".into(), result: Err("the exec entry names no command".into()) };
    };
    let mut cmd = tokio::process::Command::new(&command);
    cmd.args(exec.args.iter().flatten()).kill_on_drop(true).stdin(std::process::Stdio::null());
    for kv in exec.env.iter().flatten() {
        if let (Some(k), Some(v)) = (kv.get("name"), kv.get("value")) {
            cmd.env(k, v);
        }
    }
    let api = exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let info = serde_json::json!({"apiVersion": api, "kind": "ExecCredential", "spec": {"interactive": false}});
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    let result = match tokio::time::timeout(EXEC_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!("gave no answer within {EXEC_TIMEOUT:?} (does it wait for a login?)")),
        Ok(Err(e)) => Err(format!("cannot run it: {e}")),
        Ok(Ok(o)) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first = err.lines().next().unwrap_or("").chars().take(200).collect::<String>();
            Err(format!("it exited with {}: {first}", o.status))
        }
        Ok(Ok(o)) => expiry(&o.stdout),
    };
    AuthFact::Exec { command, result }
}

/// The expiry of an ExecCredential (ms since the epoch), read without keeping its token.
fn expiry(stdout: &[u8]) -> Result<Option<u64>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| format!("its output is not an ExecCredential: {e}"))?;
    let s = &v["status"];
    if s["token"].as_str().is_none() && s["clientCertificateData"].as_str().is_none() {
        return Err("its ExecCredential has no token and no client certificate".into());
    }
    match s["expirationTimestamp"].as_str() {
        None => Ok(None),
        Some(t) => {
            let at = humantime::parse_rfc3339_weak(t).map_err(|e| format!("expirationTimestamp {t:?}: {e}"))?;
            Ok(Some(at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)))
        }
    }
}

/// One SelfSubjectAccessReview, and the clock skew its answer's `Date` shows.
async fn review(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> (Access, Option<i64>) {
    let body = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": resource}}
    });
    let req = hyper::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body.to_string().into_bytes()));
    let Ok(req) = req else { return (Access::Failed(0, "cannot build the request".into()), None) };
    let sent = SystemTime::now();
    let resp = match tokio::time::timeout(STEP_TIMEOUT, client.send(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return (Access::Failed(0, e.to_string()), None),
        Err(_) => return (Access::Failed(0, format!("no answer within {STEP_TIMEOUT:?}")), None),
    };
    let skew = resp
        .headers()
        .get(hyper::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .map(|server| {
            // The Date is whole seconds, taken while the request was served.
            let here = sent + sent.elapsed().unwrap_or_default() / 2;
            match here.duration_since(server) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            }
        });
    let code = resp.status().as_u16();
    let bytes = match http_body_util::BodyExt::collect(resp.into_body()).await {
        Ok(b) => b.to_bytes(),
        Err(e) => return (Access::Failed(code, e.to_string()), skew),
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let access = match code {
        200 | 201 if v["status"]["allowed"].as_bool() == Some(true) => Access::Allowed,
        200 | 201 => Access::Denied(v["status"]["reason"].as_str().unwrap_or_default().to_string()),
        _ => Access::Failed(code, v["message"].as_str().unwrap_or("no message").to_string()),
    };
    (access, skew)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_rustls::rustls;

    use super::*;

    /// A TLS server on loopback with a self-signed certificate, accepting once.
    async fn tls_server() -> SocketAddr {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(s).await;
        });
        addr
    }

    #[tokio::test]
    async fn an_https_server_is_reached_by_dns_tcp_and_tls_in_turn() {
        let addr = tls_server().await;
        let steps = reach(&format!("https://localhost:{}", addr.port())).await;
        let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
        assert_eq!(names, ["DNS", "TCP", "TLS"]);
        assert!(steps.iter().all(|s| s.result.is_ok()), "{steps:?}");
        assert_eq!(steps[2].result.as_ref().unwrap().1, "TLSv1_3");
    }

    #[tokio::test]
    async fn a_server_that_does_not_speak_tls_fails_at_the_tls_step() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = tokio::io::AsyncWriteExt::write_all(&mut s, b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let steps = reach(&format!("https://127.0.0.1:{}", addr.port())).await;
        assert_eq!(steps.len(), 3);
        assert!(steps[1].result.is_ok() && steps[2].result.is_err(), "{steps:?}");
    }

    #[test]
    fn an_exec_credential_gives_its_expiry_and_never_its_token() {
        let out =
            br#"{"kind":"ExecCredential","status":{"token":"s3cret","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#;
        assert_eq!(expiry(out), Ok(Some(1_893_456_000_000)));
        let err = expiry(br#"{"kind":"ExecCredential","status":{}}"#).unwrap_err();
        assert_eq!(err, "its ExecCredential has no token and no client certificate");
    }
}
