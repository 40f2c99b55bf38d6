//! A local certificate authority for devbridge's TLS.
//!
//! `devbridge certs init` makes the CA and the server certificate devbridge
//! presents (valid for every name a sidecar may use to reach it);
//! `devbridge certs issue <proxy>` makes the client certificate one proxy's
//! Envoy presents. A client certificate names its proxy twice: the subject
//! CN and a URI SAN `spiffe://devbridge/proxy/<name>`; the xDS server
//! checks it against the proxy the Envoy claims to be. Private keys are
//! written 0600 in a 0700 directory and never logged.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Names every sidecar runtime may use for devbridge's host.
pub const DEFAULT_SERVER_NAMES: &[&str] = &["localhost", "host.docker.internal", "host.minikube.internal"];
pub const DEFAULT_SERVER_IPS: &[&str] = &["127.0.0.1", "::1"];
/// The URI SAN prefix naming a proxy in its client certificate.
pub const PROXY_URI_PREFIX: &str = "spiffe://devbridge/proxy/";
const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 825;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no devbridge CA in {}; run `devbridge certs init` first", .0.display())]
    NoCa(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("{0:?} is not a valid name for a certificate")]
    BadName(String),
}

/// Where the files live, under one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub dir: PathBuf,
}

impl CertPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<config dir>/devbridge/tls`.
    pub fn default_location() -> Option<Self> {
        crate::profile::load::config_dir().map(|d| Self::new(d.join("tls")))
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    /// A client's directory: `ca.pem`, `cert.pem`, `key.pem`, ready to mount.
    pub fn client_dir(&self, name: &str) -> PathBuf {
        self.dir.join("proxies").join(name)
    }
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub ca_created: bool,
    pub server_names: Vec<String>,
}

/// Creates the CA (unless one exists) and (re)issues the server
/// certificate for the default names plus `extra`.
pub fn init(paths: &CertPaths, extra: &[String]) -> Result<InitReport, CertError> {
    create_private_dir(&paths.dir)?;
    let ca_created = !paths.ca_cert().exists() || !paths.ca_key().exists();
    if ca_created {
        let key = generate_key("the CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("devbridge local CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params, CA_DAYS);
        let cert = params.self_signed(&key).map_err(|source| CertError::Generate { what: "the CA".into(), source })?;
        write_private(&paths.ca_key(), &key.serialize_pem())?;
        write_public(&paths.ca_cert(), &cert.pem())?;
    }
    let mut names: Vec<String> = DEFAULT_SERVER_NAMES.iter().chain(DEFAULT_SERVER_IPS).map(|s| s.to_string()).collect();
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let issuer = load_issuer(paths)?;
    let key = generate_key("the server key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn("devbridge");
    params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, LEAF_DAYS);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| CertError::Generate { what: "the server certificate".into(), source })?;
    write_private(&paths.server_key(), &key.serialize_pem())?;
    write_public(&paths.server_cert(), &cert.pem())?;
    Ok(InitReport { ca_created, server_names: names })
}

/// Issues a client certificate for `name` into `out` (default: its
/// directory under `paths`): `ca.pem`, `cert.pem`, `key.pem`.
pub fn issue(paths: &CertPaths, name: &str, out: Option<&Path>) -> Result<PathBuf, CertError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(CertError::BadName(name.to_string()));
    }
    let issuer = load_issuer(paths)?;
    let dir = out.map_or_else(|| paths.client_dir(name), Path::to_path_buf);
    create_private_dir(&dir)?;
    let key = generate_key("the client key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(name);
    params.subject_alt_names = vec![SanType::URI(
        format!("{PROXY_URI_PREFIX}{name}").try_into().map_err(|_| CertError::BadName(name.to_string()))?,
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, LEAF_DAYS);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| CertError::Generate { what: format!("the certificate of {name:?}"), source })?;
    write_private(&dir.join("key.pem"), &key.serialize_pem())?;
    write_public(&dir.join("cert.pem"), &cert.pem())?;
    let ca =
        std::fs::read_to_string(paths.ca_cert()).map_err(|source| CertError::Read { path: paths.ca_cert(), source })?;
    write_public(&dir.join("ca.pem"), &ca)?;
    Ok(dir)
}

/// The DNS names and IP addresses a PEM certificate is valid for (its
/// subject alternative names), as text; empty when it does not parse.
pub fn subject_names(pem: &str) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, der)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else { return Vec::new() };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der.contents) else { return Vec::new() };
    let Ok(Some(sans)) = cert.subject_alternative_name() else { return Vec::new() };
    sans.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some(name.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The proxy a verified client certificate names, from its URI SAN (or, failing that, its CN).
pub fn proxy_identity(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Ok(Some(sans)) = cert.subject_alternative_name() {
        for n in &sans.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = n
                && let Some(name) = uri.strip_prefix(PROXY_URI_PREFIX)
            {
                return Some(name.to_string());
            }
        }
    }
    cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string)
}

fn load_issuer(paths: &CertPaths) -> Result<Issuer<'static, KeyPair>, CertError> {
    let (cert_path, key_path) = (paths.ca_cert(), paths.ca_key());
    if !cert_path.exists() || !key_path.exists() {
        return Err(CertError::NoCa(paths.dir.clone()));
    }
    let read =
        |p: &Path| std::fs::read_to_string(p).map_err(|source| CertError::Read { path: p.to_path_buf(), source });
    let key = KeyPair::from_pem(&read(&key_path)?)
        .map_err(|source| CertError::Generate { what: format!("reading {}", key_path.display()), source })?;
    Issuer::from_ca_cert_pem(&read(&cert_path)?, key)
        .map_err(|source| CertError::Generate { what: format!("reading {}", cert_path.display()), source })
}

fn generate_key(what: &str) -> Result<KeyPair, CertError> {
    KeyPair::generate().map_err(|source| CertError::Generate { what: format!("generating {what}"), source })
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "devbridge");
    dn
}

fn san(name: &str) -> Result<SanType, CertError> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => name.try_into().map(SanType::DnsName).map_err(|_| CertError::BadName(name.to_string())),
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks that disagree (a laptop and a VM).
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write { path: dir.to_path_buf(), source })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|source| CertError::Write { path: dir.to_path_buf(), source })
}

/// Writes a key: created 0600 before any byte is written.
fn write_private(path: &Path, text: &str) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CertError::Write { path: path.to_path_buf(), source };
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

fn write_public(path: &Path, text: &str) -> Result<(), CertError> {
    std::fs::write(path, text).map_err(|source| CertError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_makes_a_ca_and_a_server_certificate_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::new(dir.path().join("tls"));
        let report = init(&paths, &["devbridge.lan".into(), "10.1.2.3".into()]).unwrap();
        assert_eq!(
            report,
            InitReport {
                ca_created: true,
                server_names: [
                    "localhost",
                    "host.docker.internal",
                    "host.minikube.internal",
                    "127.0.0.1",
                    "::1",
                    "devbridge.lan",
                    "10.1.2.3"
                ]
                .map(String::from)
                .to_vec(),
            }
        );
        assert_eq!((mode(&paths.dir), mode(&paths.ca_key()), mode(&paths.server_key())), (0o700, 0o600, 0o600));
        // Running it again keeps the CA.
        let ca = std::fs::read(paths.ca_cert()).unwrap();
        assert!(!init(&paths, &[]).unwrap().ca_created);
        assert_eq!(std::fs::read(paths.ca_cert()).unwrap(), ca);
    }

    #[test]
    fn issued_certificates_name_their_proxy() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::new(dir.path());
        init(&paths, &[]).unwrap();
        let out = issue(&paths, "dev-proxy", None).unwrap();
        assert_eq!(out, dir.path().join("proxies/dev-proxy"));
        assert_eq!(mode(&out.join("key.pem")), 0o600);
        let pem = std::fs::read_to_string(out.join("cert.pem")).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert_eq!(proxy_identity(&der.contents), Some("dev-proxy".to_string()));
        assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), std::fs::read(paths.ca_cert()).unwrap());
    }

    #[test]
    fn issuing_without_a_ca_says_to_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let err = issue(&CertPaths::new(dir.path()), "p", None).unwrap_err().to_string();
        assert_eq!(err, format!("no devbridge CA in {}; run `devbridge certs init` first", dir.path().display()));
    }
}
