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
            // The bootstrap's default for an Envoy on this machine.
            let looks = crate::certs::CertPaths::default_location().map(|p| p.client_dir(&proxy));
            for line in issue_next_steps(&proxy, &written, looks.as_deref()) {
                println!("  {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What to do with a client certificate just written to `written`: mount
/// it in a container at the bootstrap's default, or, for an Envoy on this
/// machine, name it with `--tls-dir` unless it is where the bootstrap looks.
fn issue_next_steps(proxy: &str, written: &std::path::Path, default: Option<&std::path::Path>) -> Vec<String> {
    let tls_dir = match Some(written) == default {
        true => String::new(),
        false => format!(" --tls-dir {}", written.display()),
    };
    vec![
        "ca.pem, cert.pem, key.pem (key 0600).".into(),
        "A sidecar in a container: mount this folder at /etc/devbridge/tls, where the bootstrap looks:".into(),
        format!("  devbridge bootstrap <profile> --proxy {proxy} --for docker --tls   (or --for compose, minikube)"),
        "An Envoy on this machine:".into(),
        format!("  devbridge bootstrap <profile> --proxy {proxy} --tls{tls_dir}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_dir_is_named_only_when_the_files_are_not_where_the_bootstrap_looks() {
        let default = std::path::Path::new("/home/me/.config/devbridge/tls/proxies/p");
        let steps = issue_next_steps("p", default, Some(default));
        assert!(steps.iter().all(|l| !l.contains("--tls-dir")), "{steps:?}");
        assert!(steps.iter().any(|l| l.contains("--for docker --tls")), "{steps:?}");
        let steps = issue_next_steps("p", std::path::Path::new("out/tls"), Some(default));
        assert_eq!(steps.last().unwrap(), "  devbridge bootstrap <profile> --proxy p --tls --tls-dir out/tls");
        assert!(steps.iter().any(|l| l.contains("mount this folder at /etc/devbridge/tls")), "{steps:?}");
    }
}
