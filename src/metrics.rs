//! Counters shared by the tasks that serve Envoy, and their Prometheus
//! form for the admin server's `/metrics`.
//!
//! The hot counters are plain atomics: every writer increments, readers
//! (tests, the admin server) take a copy, and a scrape turns the copy into
//! `prometheus-client` constants. The latency histogram and the per-source
//! counters are `prometheus-client` metrics themselves (shared by `Arc`
//! inside), since a histogram or a label family is not a single atomic.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::xds::ResourceType;

/// Every metric name starts with this.
pub const METRICS_PREFIX: &str = "devbridge";
/// The content type of `/metrics`: OpenMetrics text, which Prometheus
/// negotiates and parses (a superset of its classic text format).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Change-to-push latency buckets, in seconds: a push is expected in well
/// under a millisecond, so the resolution is there; the tail catches a
/// stalled stream.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Probe latency buckets, in seconds: loopback answers in well under a
/// millisecond, a VPN hop in tens of milliseconds; the probe timeout (2 s)
/// ends the scale.
pub const PROBE_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// A connection refused during the TLS handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TlsRefusal {
    pub peer: String,
    pub reason: String,
    pub at_ms: u64,
}

#[derive(Debug)]
pub struct XdsMetrics {
    /// Overrides in force (run-time and the profile's), read from the
    /// override store at each scrape.
    pub overrides: AtomicI64,
    pub streams_active: AtomicI64,
    pub streams_total: AtomicU64,
    pub unknown_nodes: AtomicU64,
    /// Streams refused because the client certificate names another proxy.
    pub identity_refused: AtomicU64,
    /// TLS handshakes refused (no client certificate, another CA, plain text).
    pub tls_refused: AtomicU64,
    /// The last TLS refusal, for `/status`.
    pub last_tls_refusal: std::sync::Mutex<Option<TlsRefusal>>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pushes: [AtomicU64; 4],
    acks: [AtomicU64; 4],
    nacks: [AtomicU64; 4],
    change_to_push: Histogram,
    source_events: Family<SourceLabels, Counter>,
    source_errors: Family<SourceLabels, Counter>,
    probe_latency: Histogram,
    /// Per probed cluster: endpoints reachable, unreachable, not probed yet.
    probe_counts: std::sync::Mutex<Vec<(String, [usize; 3])>>,
}

impl Default for XdsMetrics {
    fn default() -> Self {
        Self {
            overrides: AtomicI64::default(),
            streams_active: AtomicI64::default(),
            streams_total: AtomicU64::default(),
            unknown_nodes: AtomicU64::default(),
            identity_refused: AtomicU64::default(),
            tls_refused: AtomicU64::default(),
            last_tls_refusal: std::sync::Mutex::new(None),
            reloads_ok: AtomicU64::default(),
            reloads_failed: AtomicU64::default(),
            pushes: Default::default(),
            acks: Default::default(),
            nacks: Default::default(),
            change_to_push: Histogram::new(LATENCY_BUCKETS),
            source_events: Family::default(),
            source_errors: Family::default(),
            probe_latency: Histogram::new(PROBE_BUCKETS),
            probe_counts: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl XdsMetrics {
    /// Records a refused TLS handshake; true when it is worth a WARN (a new
    /// reason, or a minute since the last one), so a misconfigured Envoy
    /// retrying every second does not flood the log.
    pub fn tls_refused(&self, peer: String, reason: String, at_ms: u64) -> bool {
        self.tls_refused.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_tls_refusal.lock().unwrap_or_else(|p| p.into_inner());
        let loud = last.as_ref().is_none_or(|l| l.reason != reason || at_ms.saturating_sub(l.at_ms) > 60_000);
        *last = Some(TlsRefusal { peer, reason, at_ms });
        loud
    }

    /// A profile reload: served (`ok`) or rejected.
    pub fn reload(&self, ok: bool) {
        let counter = if ok { &self.reloads_ok } else { &self.reloads_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn push(&self, ty: ResourceType) {
        self.pushes[ty.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn ack(&self, ty: ResourceType) {
        self.acks[ty.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn nack(&self, ty: ResourceType) {
        self.nacks[ty.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn pushes(&self, ty: ResourceType) -> u64 {
        self.pushes[ty.index()].load(Ordering::Relaxed)
    }
    pub fn acks(&self, ty: ResourceType) -> u64 {
        self.acks[ty.index()].load(Ordering::Relaxed)
    }
    pub fn nacks(&self, ty: ResourceType) -> u64 {
        self.nacks[ty.index()].load(Ordering::Relaxed)
    }

    /// A response sent because of a published change, `latency` after the
    /// change was published.
    pub fn change_pushed(&self, latency: Duration) {
        self.change_to_push.observe(latency.as_secs_f64());
    }

    /// An event (add, update, delete, resync) from a discovery source.
    pub fn source_event(&self, source: &str) {
        self.source_events.get_or_create(&SourceLabels { source: source.to_string() }).inc();
    }

    /// A failure (watch error, probe failure) of a discovery source.
    pub fn source_error(&self, source: &str) {
        self.source_errors.get_or_create(&SourceLabels { source: source.to_string() }).inc();
    }

    /// A probe that answered, in `latency`.
    pub fn probe_latency(&self, latency: Duration) {
        self.probe_latency.observe(latency.as_secs_f64());
    }

    /// Each probed cluster's endpoints: reachable, unreachable, not probed
    /// yet. Replaces the last counts (a cluster no longer probed goes).
    pub fn set_probe_counts(&self, counts: Vec<(String, [usize; 3])>) {
        *self.probe_counts.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    /// Every metric, in OpenMetrics text ([`METRICS_CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut registry = Registry::with_prefix(METRICS_PREFIX);
        registry.register_collector(Box::new(Counts::of(self)));
        registry.register(
            "xds_change_to_push_seconds",
            "Time from a change being published to an ADS stream sending the response it caused",
            self.change_to_push.clone(),
        );
        registry.register("source_events", "Events received from a discovery source", self.source_events.clone());
        registry.register("source_errors", "Errors of a discovery source", self.source_errors.clone());
        registry.register(
            "probe_latency_seconds",
            "Time a probe from this machine took to an endpoint that answered (TCP connect, or HTTP GET)",
            self.probe_latency.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

/// A copy of the atomic counters, taken at scrape time.
#[derive(Debug)]
struct Counts {
    overrides: i64,
    streams_active: i64,
    streams_total: u64,
    unknown_nodes: u64,
    identity_refused: u64,
    tls_refused: u64,
    reloads: [(&'static str, u64); 2],
    per_type: [(&'static str, &'static str, [u64; 4]); 3],
    probes: Vec<(String, [usize; 3])>,
}

impl Counts {
    fn of(m: &XdsMetrics) -> Self {
        let load = |a: &[AtomicU64; 4]| ResourceType::ALL.map(|t| a[t.index()].load(Ordering::Relaxed));
        Self {
            overrides: m.overrides.load(Ordering::Relaxed),
            streams_active: m.streams_active.load(Ordering::Relaxed),
            streams_total: m.streams_total.load(Ordering::Relaxed),
            unknown_nodes: m.unknown_nodes.load(Ordering::Relaxed),
            identity_refused: m.identity_refused.load(Ordering::Relaxed),
            tls_refused: m.tls_refused.load(Ordering::Relaxed),
            reloads: [
                ("ok", m.reloads_ok.load(Ordering::Relaxed)),
                ("failed", m.reloads_failed.load(Ordering::Relaxed)),
            ],
            per_type: [
                ("xds_pushes", "ADS responses sent, per type", load(&m.pushes)),
                ("xds_acks", "ADS responses Envoy accepted (ACK), per type", load(&m.acks)),
                ("xds_nacks", "ADS responses Envoy rejected (NACK), per type", load(&m.nacks)),
            ],
            probes: m.probe_counts.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

impl Collector for Counts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(self.overrides);
        gauge.encode(encoder.encode_descriptor(
            "overrides",
            "Overrides in force: set at run time (devbridge override) and declared in the profile",
            None,
            gauge.metric_type(),
        )?)?;
        let gauge = ConstGauge::new(self.streams_active);
        gauge.encode(encoder.encode_descriptor(
            "xds_streams",
            "ADS streams connected now",
            None,
            gauge.metric_type(),
        )?)?;
        let counter = ConstCounter::new(self.streams_total);
        counter.encode(encoder.encode_descriptor(
            "xds_streams_opened",
            "ADS streams opened",
            None,
            counter.metric_type(),
        )?)?;
        let counter = ConstCounter::new(self.unknown_nodes);
        counter.encode(encoder.encode_descriptor(
            "xds_unmatched_nodes",
            "Times an Envoy's node matched no proxy of the profile (it gets no configuration)",
            None,
            counter.metric_type(),
        )?)?;
        let counter = ConstCounter::new(self.identity_refused);
        counter.encode(encoder.encode_descriptor(
            "xds_identity_refused",
            "ADS streams refused because the Envoy's client certificate names another proxy than its node claims",
            None,
            counter.metric_type(),
        )?)?;
        let counter = ConstCounter::new(self.tls_refused);
        counter.encode(encoder.encode_descriptor(
            "xds_tls_refused",
            "Connections to the xDS port refused in the TLS handshake (no client certificate, another CA, plain text)",
            None,
            counter.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "profile_reloads",
            "Profile reloads, by result (ok: served; failed: rejected, the previous profile kept)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (result, n) in self.reloads {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        for (name, help, counts) in &self.per_type {
            let mut family =
                encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
            for ty in ResourceType::ALL {
                ConstCounter::new(counts[ty.index()]).encode(family.encode_family(&[("type", ty.short())])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "probe_endpoints",
            "Endpoints of each probed cluster by what the last probe from this machine found \
             (state: reachable, unreachable, unknown = not probed yet)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (cluster, counts) in &self.probes {
            for (state, n) in ["reachable", "unreachable", "unknown"].into_iter().zip(counts) {
                ConstGauge::new(*n as i64)
                    .encode(family.encode_family(&[("cluster", cluster.as_str()), ("state", state)])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_shows_every_counter_with_its_labels() {
        let m = XdsMetrics::default();
        m.push(ResourceType::Cluster);
        m.nack(ResourceType::Cluster);
        m.reload(false);
        m.source_event("kubernetes");
        m.change_pushed(Duration::from_micros(300));
        m.probe_latency(Duration::from_micros(800));
        m.set_probe_counts(vec![("edge".into(), [2, 1, 0])]);
        let text = m.encode();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for expected in [
            "devbridge_xds_streams 0",
            "devbridge_xds_pushes_total{type=\"CDS\"} 1",
            "devbridge_xds_pushes_total{type=\"EDS\"} 0",
            "devbridge_xds_nacks_total{type=\"CDS\"} 1",
            "devbridge_profile_reloads_total{result=\"ok\"} 0",
            "devbridge_profile_reloads_total{result=\"failed\"} 1",
            "devbridge_source_events_total{source=\"kubernetes\"} 1",
            "devbridge_xds_change_to_push_seconds_bucket{le=\"0.0005\"} 1",
            "devbridge_xds_change_to_push_seconds_count 1",
            "devbridge_probe_endpoints{cluster=\"edge\",state=\"reachable\"} 2",
            "devbridge_probe_endpoints{cluster=\"edge\",state=\"unreachable\"} 1",
            "devbridge_probe_endpoints{cluster=\"edge\",state=\"unknown\"} 0",
            "devbridge_probe_latency_seconds_bucket{le=\"0.001\"} 1",
        ] {
            assert!(samples.contains(&expected), "{expected} missing from:\n{text}");
        }
        assert_eq!(text.lines().last(), Some("# EOF"));
    }
}
