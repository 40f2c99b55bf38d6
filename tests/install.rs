//! `install.sh` as a user runs it, inside a temporary home: `--service`
//! writes the user unit (or launchd agent) and drives a fake `systemctl`
//! (`launchctl`) that records its arguments; `--uninstall` removes what was
//! installed and keeps profiles and state. `DEVBRIDGE_INSTALL_BIN` skips the
//! release build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

/// A temporary home with PREFIX, XDG directories and a `fakebin` on PATH.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("fakebin")).unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A fake command that appends its arguments to `calls` and exits with `code`
    /// (0 for everything, or `code` for `--user show-environment`).
    fn fake(&self, name: &str, show_environment_code: u8) {
        let path = self.path("fakebin").join(name);
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n[ \"$*\" = '--user show-environment' ] && exit {show_environment_code}\nexit 0\n",
            self.path("calls").display()
        );
        std::fs::write(&path, script).unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn install(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!("{}:{}", self.path("fakebin").display(), std::env::var("PATH").unwrap());
        let mut cmd = Command::new("bash");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
            .args(args)
            .env("HOME", self.path("home"))
            .env("PREFIX", self.path("prefix"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env("PATH", path)
            .env("DEVBRIDGE_INSTALL_BIN", BIN)
            .env_remove("DEVBRIDGE_PROFILE_PATH")
            .env_remove("DEVBRIDGE_INSTALL_OS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn service_installs_a_systemd_user_unit_again_idempotently_and_uninstall_removes_it_keeping_profiles() {
    let home = Home::new();
    home.fake("systemctl", 0);

    let first = ok(&home.install(&["--service", "demo"], &[]));

    let bin = home.path("prefix/bin/devbridge");
    let unit = home.path("config/systemd/user/devbridge.service");
    assert!(bin.is_file());
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        format!(
            "# Installed by devbridge's install.sh; remove with ./install.sh --uninstall.
[Unit]
Description=devbridge: control plane for the local Envoy sidecar (profile demo)
After=network.target

[Service]
Type=exec
WorkingDirectory=%h
ExecStart=\"{}\" connect \"demo\"
Restart=on-failure
RestartSec=2
# 64: the profile is invalid; restarting will not fix it.
RestartPreventExitStatus=64

[Install]
WantedBy=default.target
",
            bin.display()
        )
    );
    let started = [
        "systemctl --user show-environment",
        "systemctl --user daemon-reload",
        "systemctl --user enable devbridge.service",
        "systemctl --user restart devbridge.service",
    ];
    assert_eq!(home.calls(), started);
    assert!(first.contains(&format!("    added    {}\n", unit.display())), "{first}");
    assert!(first.contains("enabled and (re)started devbridge.service"), "{first}");

    // Again: nothing changes but the service is restarted (a new binary, say).
    let second = ok(&home.install(&["--service", "demo"], &[]));
    assert!(second.contains(&format!("    current  {}\n", unit.display())), "{second}");
    assert_eq!(home.calls(), [started, started].concat());

    // An Envoy installed by --with-envoy: its virtualenv and the link to it.
    let venv_envoy = home.path("prefix/share/devbridge/envoy/bin/envoy");
    std::fs::create_dir_all(venv_envoy.parent().unwrap()).unwrap();
    std::fs::write(&venv_envoy, "").unwrap();
    std::os::unix::fs::symlink(&venv_envoy, home.path("prefix/bin/envoy")).unwrap();
    std::fs::create_dir_all(home.path("state/devbridge")).unwrap();

    let removed = ok(&home.install(&["--uninstall"], &[]));

    assert_eq!(
        home.calls()[8..],
        [
            "systemctl --user show-environment",
            "systemctl --user disable --now devbridge.service",
            "systemctl --user show-environment",
            "systemctl --user daemon-reload",
        ]
    );
    for gone in ["config/systemd/user/devbridge.service", "prefix/bin/devbridge", "prefix/share/devbridge"] {
        assert!(!home.path(gone).exists(), "{gone} is still there:\n{removed}");
    }
    assert!(home.path("prefix/bin/envoy").symlink_metadata().is_err(), "the envoy link is gone");
    for kept in ["config/devbridge/profiles/demo.toml", "config/devbridge/profiles/staging.toml", "state/devbridge"] {
        assert!(home.path(kept).exists(), "{kept} was removed");
    }
    assert!(removed.contains("kept: your profiles and settings"), "{removed}");

    // Uninstalling again finds nothing to do.
    let again = ok(&home.install(&["--uninstall"], &[]));
    assert!(again.contains("    not installed\n"), "{again}");
}

#[test]
fn without_a_systemd_user_session_the_unit_is_written_and_the_commands_are_shown() {
    let home = Home::new();
    home.fake("systemctl", 1);

    let out = ok(&home.install(&["--service", "demo"], &[]));

    assert!(home.path("config/systemd/user/devbridge.service").is_file());
    assert_eq!(home.calls(), ["systemctl --user show-environment"]);
    assert!(
        out.contains("      systemctl --user daemon-reload && systemctl --user enable --now devbridge.service\n"),
        "{out}"
    );
}

#[test]
fn an_invalid_profile_installs_no_service() {
    let home = Home::new();
    home.fake("systemctl", 0);
    let profile = home.path("broken.toml");
    std::fs::write(&profile, "[proxies.p]\nzone = \"nowhere\"\n").unwrap();

    let out = home.install(&["--service", profile.to_str().unwrap()], &[]);

    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the service was not installed"));
    assert!(!home.path("config/systemd/user/devbridge.service").exists());
    assert_eq!(home.calls(), Vec::<String>::new());
}

#[test]
fn on_macos_service_installs_and_loads_a_launchd_agent() {
    let home = Home::new();
    home.fake("launchctl", 0);
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/demo.toml");

    ok(&home.install(&["--service", profile.to_str().unwrap()], &[("DEVBRIDGE_INSTALL_OS", "Darwin")]));

    let agent = std::fs::read_to_string(home.path("home/Library/LaunchAgents/dev.devbridge.connect.plist")).unwrap();
    let args = format!(
        "<array><string>{}</string><string>connect</string><string>{}</string></array>",
        home.path("prefix/bin/devbridge").display(),
        profile.display()
    );
    assert!(agent.contains(&args), "{agent}");
    assert!(agent.contains("<key>RunAtLoad</key><true/>"), "{agent}");
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let uid = uid.trim();
    let agent_path = home.path("home/Library/LaunchAgents/dev.devbridge.connect.plist");
    assert_eq!(
        home.calls(),
        [
            format!("launchctl bootout gui/{uid}/dev.devbridge.connect"),
            format!("launchctl bootstrap gui/{uid} {}", agent_path.display()),
        ]
    );

    ok(&home.install(&["--uninstall"], &[]));
    assert!(!agent_path.exists());
}
