//! `devbridge certs`: the local CA and the certificates for TLS between
//! Envoy and devbridge.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::CertsCommand;

/// Makes the CA and server certificate, or one proxy's client certificate,
/// and says what to do next.
pub fn run(command: CertsCommand) -> anyhow::Result<ExitCode> {
    let paths = |dir: Option<PathBuf>| {
        dir.map(crate::certs::CertPaths::new)
            .or_else(crate::certs::CertPaths::default_location)
            .context("no config directory (set HOME or XDG_CONFIG_HOME, or pass --dir)")
    };
    match command {
        CertsCommand::Init { san, dir } => {
            let paths = paths(dir)?;
            let report = crate::certs::init(&paths, &san)?;
            if report.ca_created {
                println!("created the CA: {}", paths.ca_cert().display());
            } else {
                println!("kept the CA: {}", paths.ca_cert().display());
            }
            println!("issued devbridge's server certificate: {}", paths.server_cert().display());
            println!("  valid for: {}", report.server_names.join(", "));
            println!("next: devbridge certs issue <proxy>, then devbridge connect <profile> --tls");
        }
        CertsCommand::Issue { proxy, out, dir } => {
            let paths = paths(dir)?;
            let written = crate::certs::issue(&paths, &proxy, out.as_deref())?;
            println!("issued a client certificate for proxy {proxy:?} in {}", written.display());
            println!("  ca.pem, cert.pem, key.pem (0600); mount it where the sidecar runs and pass that path to");
            println!("  devbridge bootstrap <profile> --proxy {proxy} --tls --tls-dir <path>");
        }
    }
    Ok(ExitCode::SUCCESS)
}
