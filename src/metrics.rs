//! Counters shared by the tasks that serve Envoy. Plain atomics: every
//! writer increments, readers (tests, the admin server) take a copy.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::xds::ResourceType;

#[derive(Debug, Default)]
pub struct XdsMetrics {
    pub streams_active: AtomicI64,
    pub streams_total: AtomicU64,
    pub unknown_nodes: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pushes: [AtomicU64; 4],
    acks: [AtomicU64; 4],
    nacks: [AtomicU64; 4],
}

impl XdsMetrics {
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
}
