//! `[tracing]`: the Zipkin collector every proxy reports spans to, and the
//! share of requests sampled.

use super::*;

/// Trace every request unless the profile says otherwise: a laptop sidecar
/// carries little traffic, and a missing trace is what people notice.
pub const DEFAULT_SAMPLING_PERCENT: f64 = 100.0;

impl Cx<'_> {
    pub(super) fn tracing(&mut self, t: S<RawTracing>, clusters: &BTreeSet<String>) -> Option<Tracing> {
        let t = t.into_inner();
        let zipkin = t.zipkin.into_inner();
        let cluster = self.cluster_ref(&zipkin.cluster, "tracing.zipkin.cluster", clusters);
        let path = self.path(&zipkin.path, "tracing.zipkin.path");
        let sampling = match &t.sampling {
            None => Some(DEFAULT_SAMPLING_PERCENT),
            Some(s) if (0.0..=100.0).contains(s.get_ref()) => Some(*s.get_ref()),
            Some(s) => {
                self.err(
                    s.span(),
                    "tracing.sampling",
                    format!("{} is out of range; expected a percentage from 0 to 100", s.get_ref()),
                );
                None
            }
        };
        Some(Tracing {
            zipkin: Zipkin { cluster: cluster.then(|| zipkin.cluster.into_inner())?, path: path? },
            sampling: sampling?,
        })
    }
}
