#!/usr/bin/env bash
# Writes build/text-order.txt: the functions of the release binary that run
# from `devbridge connect demo` to serving a connected Envoy and answering
# `devbridge status`, which build.rs has the linker place together (see
# text_order there). Run it again after a dependency update or a large
# change, then `cargo bench --bench daemon -- idle` to see the effect.
#
# Needs valgrind (Debian: valgrind), python3 and the tests' Envoy
# (tests/run.sh installs it into .venv; DEVBRIDGE_ENVOY overrides). The
# binary runs under callgrind, which records every function executed.
set -euo pipefail
cd "$(dirname "$0")/.."

envoy=${DEVBRIDGE_ENVOY:-.venv/bin/envoy}
for tool in valgrind python3 "$envoy"; do
    command -v "$tool" > /dev/null || { echo "text-order: $tool is needed" >&2; exit 69; }
done

cargo build --release --locked
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/devbridge
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
    wait 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

read -r xds admin envoy_admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

echo "==> devbridge connect demo under callgrind (xds $xds, admin $admin)"
HOME=$work valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.out" \
    "$bin" connect demo --xds-listen "127.0.0.1:$xds" --admin-listen "127.0.0.1:$admin" \
    > "$work/devbridge.log" 2>&1 &
daemon=$!
pids+=("$daemon")
for _ in $(seq 1 600); do
    "$bin" status --admin "127.0.0.1:$admin" > /dev/null 2>&1 && break
    [[ $? -eq 1 ]] && break # answers, not ready: no Envoy yet
    sleep 0.1
done

echo "==> an Envoy connects"
HOME=$work "$bin" bootstrap demo --xds-address "127.0.0.1:$xds" > "$work/bootstrap.yaml"
sed -i "s/port_value: 9901/port_value: $envoy_admin/" "$work/bootstrap.yaml"
"$envoy" -c "$work/bootstrap.yaml" --base-id "$envoy_admin" > "$work/envoy.log" 2>&1 &
pids+=("$!")
ready=
for _ in $(seq 1 600); do
    if "$bin" status --admin "127.0.0.1:$admin" > "$work/status.txt" 2>&1; then ready=1; break; fi
    sleep 0.1
done
[[ -n $ready ]] || { cat "$work/status.txt" "$work/devbridge.log" >&2; echo "text-order: Envoy never got ready" >&2; exit 1; }
sleep 2
kill -TERM "${pids[1]}"
wait "${pids[1]}" 2> /dev/null || true
kill -TERM "$daemon"
wait "$daemon" 2> /dev/null || true
pids=()

python3 - "$work/callgrind.out" "$bin" build/text-order.txt "$(rustc --version)" << 'EOF'
import re, subprocess, sys
out_file, binary, listing, rustc = sys.argv[1:]
objects, names, run = {}, {}, set()
current = None
for line in open(out_file):
    m = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not m:
        continue
    kind, key, name = m.groups()
    table = objects if kind in ("ob", "cob") else names
    if name:
        table[key] = name
    if kind == "ob":
        current = objects[key]
    elif kind == "fn" and current == binary:
        run.add(names[key])
# Callgrind marks recursion levels with a quote suffix ('2).
run = {re.sub(r"'\d+$", "", n) for n in run}
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
defined = {line.split()[2] for line in nm.splitlines() if len(line.split()) == 3 and line.split()[1] in "tTwW"}
listed = sorted(run & defined)
with open(listing, "w") as f:
    # Symbol names carry a hash of the compiler's version: build.rs warns
    # when another compiler builds with this list.
    f.write(f"# made by build/text-order.sh with {rustc}\n")
    f.write("\n".join(listed) + "\n")
print(f"==> {listing}: {len(listed)} functions ({len(run - defined)} run but not found by name, left out)")
EOF
