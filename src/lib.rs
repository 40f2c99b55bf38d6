//! devbridge: the control plane of a local Envoy sidecar that sends a
//! laptop service's calls to a remote staging cluster.
//!
//! ```text
//!  profiles/*.toml ─parse+validate─▶ Profile ─ profile::watch ─watch<Arc<Profile>>─┬──────────────▶ builder (app.rs)
//!  discovery (kube watch ─▶ index) ──────────── discovery.rs ─watch<Arc<Discovered>>─┤                 │
//!  admin API ─▶ registered.rs ─────────────────────────────── watch<Arc<EndpointSet>>─┤   watch<Arc<Published>>
//!  admin API ─▶ overrides.rs ─────────────────────────────────── watch<Arc<Personal>>─┘
//!                                                                                           ▼
//!                                          ADS stream tasks (xds::node, StreamState) ──gRPC──▶ Envoy
//! ```
//!
//! # Layout
//! - [`model`]: the shared nouns: the validated profile, endpoint sets, what is served.
//! - [`profile`]: TOML on disk -> model: validation with located errors, lookup, hot reload.
//! - [`discovery`]: endpoints found at run time, per cluster: Kubernetes pods and
//!   EndpointSlices, watched with `kube`, indexed by a pure index, published EDS-only.
//! - [`xds`]: translation, snapshots, per-stream protocol state (state of the world, delta), REST answers and Envoy JSON by reflection (pure), and the tonic server.
//! - [`explain`]: where a request would go and why, matched as Envoy matches (pure).
//! - [`bootstrap`]: the Envoy bootstrap for a proxy.
//! - [`settings`]: daemon-wide settings (listen addresses, logging), layered.
//! - [`status`]: the `/status` schema, its client and its rendering.
//! - [`cli`]: every subcommand and flag, and the commands that print and exit.
//! - [`admin`]: the admin HTTP API: health, readiness, status, config dump, metrics, registered endpoints, REST xDS.
//! - [`publish`]: the builder's pure steps; [`app`]: wires the tasks and channels, runs the builder,
//!   and `connect` (listeners, TLS, the supervised Envoy, signals).
//! - [`events`]: the events log: reloads, Envoys, discovery and endpoint changes in words, from the
//!   existing channels (the words are pure, `events::diff`).
//! - [`metrics`]: shared counters and their Prometheus form.
//! - [`accept`]: the accept loop of every listener and its limits; [`throttle`]: rate-limited WARNs.
//! - [`registered`]: endpoints registered at run time, kept in a state file.
//! - [`personal`]: the profile as one developer's sidecar serves it: overrides and the identity
//!   header applied (pure); [`overrides`]: overrides set at run time, their state file and expiry.
//! - [`probe`]: edge probing: whether the laptop reaches each endpoint (one probe in `probe::check`,
//!   what to probe and what was found in `probe::plan`, pure), and the unhealthy marks the builder takes.
//! - [`onboard`]: `devbridge discover` and `devbridge init`: what a cluster shows, and a starter profile from it.
//! - [`doctor`]: `devbridge doctor`: the chain from profile to edges as checks with fixes (verdicts pure,
//!   `doctor::gather` reads).
//! - [`certs`], [`tls`]: the local CA and the TLS of devbridge's listeners; [`supervise`]: the
//!   Envoy child of `connect --envoy`.

pub mod accept;
pub mod admin;
pub mod app;
pub mod bootstrap;
pub mod certs;
pub mod cli;
pub mod discovery;
pub mod doctor;
pub mod events;
pub mod explain;
pub mod metrics;
pub mod model;
pub mod onboard;
pub mod overrides;
pub mod personal;
pub mod probe;
pub mod profile;
pub mod publish;
pub mod registered;
pub mod settings;
pub mod status;
pub mod supervise;
pub mod throttle;
pub mod tls;
pub mod xds;
