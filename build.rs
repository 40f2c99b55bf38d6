//! Compiles the descriptor set of the Envoy API messages devbridge serves,
//! from the `.proto` files the `envoy-types` crate ships, with `protox`
//! (pure Rust: no `protoc` on the machine). `xds::json` reads it to write
//! and read Envoy's proto3 JSON by reflection (REST xDS, config dumps).
//!
//! In release builds it also hands the linker `build/text-order.txt`: see
//! [`text_order`].

use std::path::PathBuf;

/// Every message type a served resource may hold, directly or in an `Any`.
const FILES: &[&str] = &[
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    "envoy/config/trace/v3/zipkin.proto",
];

fn main() {
    text_order();
    let protos = envoy_types_protos();
    let includes: Vec<PathBuf> = [
        "data-plane-api",
        "xds",
        "protoc-gen-validate",
        "googleapis",
        "cel-spec/proto",
        "opentelemetry-proto",
        "client_model",
    ]
    .iter()
    .map(|d| protos.join(d))
    .collect();
    let set = protox::compile(FILES, &includes)
        .unwrap_or_else(|e| panic!("compiling Envoy's protos in {}: {e:?}", protos.display()));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("envoy_descriptors.bin");
    std::fs::write(&out, prost::Message::encode_to_vec(&set)).expect("write the descriptor set");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
}

/// Release builds place the functions devbridge runs from start-up to
/// serving a connected Envoy (listed in `build/text-order.txt`, made by
/// `build/text-order.sh`) together at the start of its code. An idle
/// daemon's resident memory is mostly the pages of its own binary that it
/// ran, and the kernel maps a binary's pages 64 KiB at a time around each
/// one touched: with those 2,900 functions spread over 17 MiB of code, two
/// thirds of it was resident; together, they take about 3 MiB. Only the
/// layout changes, not the code. A function the list names that a build
/// lacks is skipped (and one it does not name goes after the listed ones),
/// so a stale list costs memory, never a failed build.
///
/// The list is passed to rust-lld, the default linker for
/// x86_64-unknown-linux-gnu since Rust 1.90, and only there: another linker
/// (GNU ld has no such option), another target, or
/// `DEVBRIDGE_TEXT_ORDER=0` builds without it.
fn text_order() {
    println!("cargo:rerun-if-changed=build/text-order.txt");
    println!("cargo:rerun-if-env-changed=DEVBRIDGE_TEXT_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let list = manifest_dir.join("build/text-order.txt");
    // Linker choices made in flags or in the environment are the user's.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = ["fuse-ld", "linker-features", "linker=", "link-self-contained"].iter().any(|f| flags.contains(f))
        || std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    let wanted = var("PROFILE") == "release"
        && var("DEVBRIDGE_TEXT_ORDER") != "0"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && !own_linker
        && list.is_file();
    let Some(version) = wanted.then(rustc_version).flatten() else { return };
    let minor: u32 = version.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)?.parse().ok()).unwrap_or(0);
    if minor < 90 {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", list.display());
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    // Symbol names carry a hash of the compiler's version, so a list made
    // with another compiler names functions this build does not have.
    let made_with = std::fs::read_to_string(&list).unwrap_or_default();
    let made_with = made_with.lines().next().and_then(|l| l.split_once(" with ")).map(|(_, v)| v.trim().to_string());
    if made_with.as_deref() != Some(version.trim()) {
        println!(
            "cargo:warning=build/text-order.txt was made with {}, not {}: the layout is the default one and idle memory \
             higher; run build/text-order.sh to make it again",
            made_with.as_deref().unwrap_or("an unknown compiler"),
            version.trim()
        );
    }
}

/// What the rustc building this says of itself (`rustc 1.95.0 (...)`).
fn rustc_version() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(rustc).arg("--version").output().ok()?;
    String::from_utf8(out.stdout).ok()
}

/// The `proto` folder of the `envoy-types` crate this build uses: in
/// cargo's registry at the version `Cargo.lock` pins, else where `cargo
/// metadata` finds it (vendored or patched).
fn envoy_types_protos() -> PathBuf {
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    registry_protos().unwrap_or_else(metadata_protos)
}

/// `$CARGO_HOME/registry/src/*/envoy-types-<locked version>/proto`. No
/// subprocess and nothing read beyond the lock file: a plain `cargo build`
/// has not fetched the dev-dependencies `cargo metadata` would want.
fn registry_protos() -> Option<PathBuf> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let lock = std::fs::read_to_string(manifest_dir.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    lines.find(|l| l.trim() == "name = \"envoy-types\"")?;
    let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?.to_string();
    let homes = [
        std::env::var_os("CARGO_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")),
    ];
    homes.into_iter().flatten().find_map(|home| {
        std::fs::read_dir(home.join("registry/src")).ok()?.flatten().find_map(|index| {
            let protos = index.path().join(format!("envoy-types-{version}")).join("proto");
            protos.join("data-plane-api").is_dir().then_some(protos)
        })
    })
}

/// The same folder as `cargo metadata` finds it.
fn metadata_protos() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("Cargo.toml");
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform", &target, "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let package = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .expect("envoy-types is a dependency");
    let path = PathBuf::from(package["manifest_path"].as_str().expect("a manifest path"));
    path.parent().expect("the crate's folder").join("proto")
}
