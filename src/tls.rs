//! TLS for devbridge's own listeners, from the files `devbridge certs init`
//! writes: the server certificate and key, and the CA that client
//! certificates must chain to (mutual TLS, always: a listener reachable from
//! outside this machine must not hand routing config, or the admin API, to
//! whoever connects). rustls with the ring provider only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::CertPaths;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}; create it with `devbridge certs init`", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} holds no usable {what}", path.display())]
    Parse { path: PathBuf, what: &'static str },
    #[error("the TLS configuration is not usable: {0}")]
    Config(String),
}

/// The files a TLS listener needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates must chain to this CA.
    pub client_ca: PathBuf,
}

impl TlsFiles {
    pub fn from_paths(paths: &CertPaths) -> Self {
        Self { cert: paths.server_cert(), key: paths.server_key(), client_ca: paths.ca_cert() }
    }

    fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
    }

    /// An acceptor requiring a client certificate from the CA, offering the
    /// ALPN protocols given (`h2` for gRPC, `http/1.1` for the admin API).
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let (certs, key, roots) = self.load()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, rustls::RootCertStore), TlsError> {
        let certs = pem_certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&Self::read(&self.key)?)
            .map_err(|_| TlsError::Parse { path: self.key.clone(), what: "private key" })?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in pem_certs(&self.client_ca)? {
            roots.add(ca).map_err(|_| TlsError::Parse { path: self.client_ca.clone(), what: "CA certificate" })?;
        }
        Ok((certs, key, roots))
    }
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = TlsFiles::read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Parse { path: path.to_path_buf(), what: "certificate" });
    }
    Ok(certs)
}
