//! Daemon-wide settings, layered with the `config` crate:
//! defaults < settings file < the profile's `[listen]` < `DEVBRIDGE_*`
//! environment < command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::accept::{self, Limits};
use crate::model::ListenOverrides;

pub const DEFAULT_XDS_LISTEN: &str = "127.0.0.1:18000";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:18001";
pub const DEFAULT_LOG: &str = "info";
pub const SETTINGS_FILE: &str = "settings.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings after every layer is applied.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Settings {
    pub xds_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// A `RUST_LOG`-style filter, e.g. `info,devbridge=debug`.
    pub log: String,
    pub log_format: LogFormat,
    /// Serve xDS over mutual TLS (and the admin API too when it is not on loopback).
    pub tls: bool,
    /// Where `devbridge certs init` put the CA and server certificate
    /// (default `<config dir>/devbridge/tls`).
    pub tls_dir: Option<PathBuf>,
    /// Allow a non-loopback listen address without TLS (logged at WARN).
    pub insecure: bool,
    /// How long a client may take from connecting to its first request
    /// bytes (TLS handshake included), and on the admin port to send each
    /// request's headers, e.g. `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    /// Open connections per listener (xDS, admin); more wait to be accepted.
    pub max_connections: usize,
    /// Concurrent ADS streams on one HTTP/2 connection.
    pub max_streams_per_connection: u32,
    /// Who the developer is, sent in the profile's identity header on every
    /// request the sidecar sends out (`""` or `"none"`: nothing is sent).
    /// Unset: `git config user.email`, else the login name ([`identity`]).
    #[serde(default)]
    pub identity: Option<String>,
}

impl Settings {
    /// The listener limits these settings name.
    pub fn limits(&self) -> Limits {
        Limits {
            read_timeout: self.read_timeout,
            max_connections: self.max_connections,
            max_streams_per_connection: self.max_streams_per_connection,
        }
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    match humantime::parse_duration(&text) {
        Ok(t) if !t.is_zero() => Ok(t),
        Ok(_) => Err(serde::de::Error::custom("read_timeout must be more than zero")),
        Err(e) => Err(serde::de::Error::custom(format!("{text:?} is not a duration ({e}); expected e.g. \"10s\""))),
    }
}

/// Values from the command line; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub settings_file: Option<PathBuf>,
    pub xds_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub log: Option<String>,
    pub log_format: Option<LogFormat>,
    pub tls: Option<bool>,
    pub tls_dir: Option<PathBuf>,
    pub insecure: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Config(#[from] config::ConfigError),
    #[error("settings file {} does not exist", .0.display())]
    Missing(PathBuf),
}

/// The default settings file: `<config dir>/devbridge/settings.toml`.
pub fn default_settings_file() -> Option<PathBuf> {
    crate::profile::load::config_dir().map(|d| d.join(SETTINGS_FILE))
}

impl Settings {
    /// Loads every layer. `profile` is `None` before a profile is read (for
    /// logging) and for commands that have none.
    pub fn load(flags: &Flags, profile: Option<&ListenOverrides>) -> Result<Self, SettingsError> {
        let mut b = config::Config::builder()
            .set_default("xds_listen", DEFAULT_XDS_LISTEN)?
            .set_default("admin_listen", DEFAULT_ADMIN_LISTEN)?
            .set_default("log", DEFAULT_LOG)?
            .set_default("log_format", "text")?
            .set_default("tls", false)?
            .set_default("insecure", false)?
            .set_default("read_timeout", humantime::format_duration(accept::DEFAULT_READ_TIMEOUT).to_string())?
            .set_default("max_connections", accept::DEFAULT_MAX_CONNECTIONS as u64)?
            .set_default("max_streams_per_connection", u64::from(accept::DEFAULT_MAX_STREAMS_PER_CONNECTION))?;
        match &flags.settings_file {
            Some(p) if !p.is_file() => return Err(SettingsError::Missing(p.clone())),
            Some(p) => b = b.add_source(config::File::from(p.as_path())),
            None => {
                if let Some(p) = default_settings_file() {
                    b = b.add_source(config::File::from(p.as_path()).required(false));
                }
            }
        }
        if let Some(l) = profile {
            b = b.set_override_option("xds_listen", l.xds.map(|a| a.to_string()))?;
            b = b.set_override_option("admin_listen", l.admin.map(|a| a.to_string()))?;
        }
        let mut c = b.build()?;
        // The environment sits above the profile; layer it on the merged result.
        // Parsing lets DEVBRIDGE_TLS=true be a bool; listen addresses stay strings.
        let env = config::Environment::with_prefix("DEVBRIDGE").try_parsing(true);
        let mut b = config::Config::builder().add_source(c.clone()).add_source(env);
        b = b.set_override_option("xds_listen", flags.xds_listen.map(|a| a.to_string()))?;
        b = b.set_override_option("admin_listen", flags.admin_listen.map(|a| a.to_string()))?;
        b = b.set_override_option("log", flags.log.clone())?;
        b = b.set_override_option("log_format", flags.log_format.map(|f| format!("{f:?}").to_lowercase()))?;
        b = b.set_override_option("tls", flags.tls)?;
        b = b.set_override_option("tls_dir", flags.tls_dir.as_ref().map(|p| p.display().to_string()))?;
        b = b.set_override_option("insecure", flags.insecure)?;
        c = b.build()?;
        Ok(c.try_deserialize()?)
    }
}

/// Which layer a setting's value comes from (`devbridge doctor` says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// The settings file at this path.
    File(PathBuf),
    /// The profile's `[listen]` table.
    Profile,
    /// This environment variable.
    Env(String),
    /// A command-line flag.
    Flag,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(p) => write!(f, "settings file {}", p.display()),
            Origin::Profile => write!(f, "the profile's [listen]"),
            Origin::Env(v) => write!(f, "environment {v}"),
            Origin::Flag => write!(f, "command-line flag"),
        }
    }
}

/// The keys [`Settings`] has, in the order people read them.
pub const KEYS: &[&str] = &[
    "xds_listen",
    "admin_listen",
    "log",
    "log_format",
    "tls",
    "tls_dir",
    "insecure",
    "read_timeout",
    "max_connections",
    "max_streams_per_connection",
    "identity",
];

/// The developer's identity in force: the `identity` setting when set
/// (`""` or `"none"` for none), else `git config user.email`, else the
/// login name (`$USER`, `$LOGNAME`), else none.
pub fn identity(setting: Option<&str>) -> Option<String> {
    match setting.map(str::trim) {
        Some("" | "none") => return None,
        Some(s) => return Some(s.to_string()),
        None => {}
    }
    let git = std::process::Command::new("git")
        .args(["config", "--get", "user.email"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|e| !e.is_empty() && !e.chars().any(|c| c.is_control()));
    git.or_else(|| {
        ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty() && !u.chars().any(|c| c.is_control())))
    })
}

/// Where `key`'s value in force comes from, looking at the layers top down
/// as [`Settings::load`] stacks them: flag, environment, profile, file, default.
pub fn origin(key: &str, flags: &Flags, profile: Option<&ListenOverrides>) -> Origin {
    let flagged = match key {
        "xds_listen" => flags.xds_listen.is_some(),
        "admin_listen" => flags.admin_listen.is_some(),
        "log" => flags.log.is_some(),
        "log_format" => flags.log_format.is_some(),
        "tls" => flags.tls.is_some(),
        "tls_dir" => flags.tls_dir.is_some(),
        "insecure" => flags.insecure.is_some(),
        _ => false,
    };
    if flagged {
        return Origin::Flag;
    }
    let var = format!("DEVBRIDGE_{}", key.to_ascii_uppercase());
    if std::env::var_os(&var).is_some() {
        return Origin::Env(var);
    }
    let in_profile = match key {
        "xds_listen" => profile.is_some_and(|l| l.xds.is_some()),
        "admin_listen" => profile.is_some_and(|l| l.admin.is_some()),
        _ => false,
    };
    if in_profile {
        return Origin::Profile;
    }
    let file = flags.settings_file.clone().or_else(default_settings_file);
    let in_file = file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|text| text.parse::<toml::Table>().is_ok_and(|t| t.contains_key(key)));
    match (in_file, file) {
        (true, Some(p)) => Origin::File(p),
        _ => Origin::Default,
    }
}

/// Where an Envoy on this machine reaches an xDS server listening on `listen`.
pub fn reachable_xds_address(listen: SocketAddr) -> (String, u16) {
    let ip = listen.ip();
    let host = if ip.is_unspecified() {
        if ip.is_ipv6() { "::1".to_string() } else { "127.0.0.1".to_string() }
    } else {
        ip.to_string()
    };
    (host, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let (_dir, file) =
            mk_file("xds_listen = \"127.0.0.1:1000\"\nadmin_listen = \"127.0.0.1:1001\"\nlog = \"debug\"\n");
        let profile = ListenOverrides { xds: Some("127.0.0.1:2000".parse().unwrap()), admin: None };
        let flags = Flags {
            settings_file: Some(file),
            log_format: Some(LogFormat::Json),
            admin_listen: Some("127.0.0.1:3001".parse().unwrap()),
            ..Flags::default()
        };
        let s = Settings::load(&flags, Some(&profile)).unwrap();
        assert_eq!(
            s,
            Settings {
                xds_listen: "127.0.0.1:2000".parse().unwrap(),   // profile over file
                admin_listen: "127.0.0.1:3001".parse().unwrap(), // flag over file
                log: "debug".into(),                             // file over default
                log_format: LogFormat::Json,                     // flag over default
                tls: false,
                tls_dir: None,
                insecure: false,
                read_timeout: accept::DEFAULT_READ_TIMEOUT,
                max_connections: accept::DEFAULT_MAX_CONNECTIONS,
                max_streams_per_connection: accept::DEFAULT_MAX_STREAMS_PER_CONNECTION,
                identity: None,
            }
        );
    }

    #[test]
    fn an_identity_set_is_used_and_none_turns_it_off() {
        assert_eq!(identity(Some(" me@example.com ")).as_deref(), Some("me@example.com"));
        assert_eq!(identity(Some("none")), None);
        assert_eq!(identity(Some("")), None);
    }

    #[test]
    fn listener_limits_come_from_the_settings_file() {
        let (_dir, file) = mk_file("read_timeout = \"250ms\"\nmax_connections = 8\nmax_streams_per_connection = 2\n");
        let flags = Flags { settings_file: Some(file), ..Flags::default() };
        assert_eq!(
            Settings::load(&flags, None).unwrap().limits(),
            Limits { read_timeout: Duration::from_millis(250), max_connections: 8, max_streams_per_connection: 2 }
        );
    }

    #[test]
    fn a_read_timeout_that_is_not_a_duration_is_an_error() {
        let (_dir, file) = mk_file("read_timeout = \"soon\"\n");
        let flags = Flags { settings_file: Some(file), ..Flags::default() };
        let err = Settings::load(&flags, None).unwrap_err().to_string();
        assert!(err.starts_with("invalid settings: \"soon\" is not a duration"), "{err}");
    }

    #[test]
    fn a_named_settings_file_that_is_missing_is_an_error() {
        let flags = Flags { settings_file: Some("/nonexistent/settings.toml".into()), ..Flags::default() };
        assert_eq!(
            Settings::load(&flags, None).unwrap_err().to_string(),
            "settings file /nonexistent/settings.toml does not exist"
        );
    }

    #[test]
    fn each_setting_names_the_layer_it_comes_from() {
        let (_dir, file) = mk_file("log = \"debug\"\nadmin_listen = \"127.0.0.1:1001\"\n");
        let profile = ListenOverrides { xds: None, admin: Some("127.0.0.1:2001".parse().unwrap()) };
        let flags = Flags { settings_file: Some(file.clone()), log_format: Some(LogFormat::Json), ..Flags::default() };
        let at = |key| origin(key, &flags, Some(&profile));
        assert_eq!(
            [at("log"), at("admin_listen"), at("log_format"), at("max_connections")],
            [Origin::File(file), Origin::Profile, Origin::Flag, Origin::Default]
        );
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        assert_eq!(reachable_xds_address("0.0.0.0:18000".parse().unwrap()), ("127.0.0.1".to_string(), 18000));
        assert_eq!(reachable_xds_address("[::]:18000".parse().unwrap()), ("::1".to_string(), 18000));
        assert_eq!(reachable_xds_address("127.0.0.2:9".parse().unwrap()), ("127.0.0.2".to_string(), 9));
    }
}
