//! The connected-Envoy registry: what each open ADS stream reports about
//! itself, for `/status` and `devbridge status`.
//!
//! Each stream task owns a [`StreamEntry`] and replaces its [`StreamInfo`]
//! after every step; dropping the entry (the task ending, however it ends)
//! removes it. The lock is a plain mutex held only to copy a value in or
//! out, never across an `.await`, so a slow admin client cannot stall a
//! stream. Converting protocol state to a report is pure
//! ([`TypeInfo::from_state`]). [`StreamRegistry::changes`] fires after each
//! change that altered a report (outside the lock).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::ResourceType;
use super::delta::{DeltaState, DeltaType};
use super::stream::{Nack, TypeState};

/// An Envoy's identity, from the node of its first request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeInfo {
    pub id: String,
    pub cluster: String,
    pub zone: String,
    /// `node.user_agent_name` and its version, as the client states them.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
}

impl NodeInfo {
    /// What a client's node says of it, each field at most 200 characters
    /// (the client writes them, and reports are kept).
    pub fn of(node: &envoy_types::pb::envoy::config::core::v3::Node) -> Self {
        let bounded = |s: &str| s.chars().take(200).collect::<String>();
        Self {
            id: bounded(&node.id),
            cluster: bounded(&node.cluster),
            zone: node.locality.as_ref().map(|l| bounded(&l.zone)).unwrap_or_default(),
            user_agent: user_agent(node),
        }
    }
}

/// Who the client says it is: `envoy 1.40.0`, `gRPC C-core linux Python
/// C-core 58.0.0 Python 1.85.3`. At most 80 characters, no control ones:
/// the client writes it.
fn user_agent(n: &envoy_types::pb::envoy::config::core::v3::Node) -> String {
    use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
    let version = match &n.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
        Some(UserAgentVersionType::UserAgentBuildVersion(b)) => {
            b.version.as_ref().map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch)).unwrap_or_default()
        }
        None => String::new(),
    };
    let text = format!("{} {version}", n.user_agent_name);
    text.trim().chars().filter(|c| !c.is_control()).take(80).collect()
}

/// Envoy's last rejection of a type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NackInfo {
    pub version: String,
    /// Envoy's error text, as it sent it.
    pub error: String,
    /// When devbridge received it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// One resource type on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TypeInfo {
    /// The version of the last response sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// The last version Envoy accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_nack: Option<NackInfo>,
    /// Names the client subscribed to that the profile does not serve it
    /// (an `xds:///` target with no domain, say), at most [`MISSING_SHOWN`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// How many missing names a report lists.
pub const MISSING_SHOWN: usize = 10;

impl TypeInfo {
    /// The report of one type's protocol state; `nack_at_ms` is when the
    /// stream saw the NACK that state holds (the pure state keeps no clock).
    pub fn from_state(ts: &TypeState, nack_at_ms: Option<u64>) -> Self {
        Self::from_parts(ts.sent.as_ref().map(|s| &s.version), ts.acked_version.as_ref(), ts.nack.as_ref(), nack_at_ms)
    }

    /// The same report of one type of a delta stream.
    pub fn from_delta(t: &DeltaType, nack_at_ms: Option<u64>) -> Self {
        Self::from_parts(t.sent_version.as_ref(), t.acked_version.as_ref(), t.nack.as_ref(), nack_at_ms)
    }

    fn from_parts(sent: Option<&String>, acked: Option<&String>, nack: Option<&Nack>, nack_at_ms: Option<u64>) -> Self {
        Self {
            sent: sent.cloned(),
            acked: acked.cloned(),
            last_nack: nack.map(|n| NackInfo {
                version: n.version.clone(),
                error: n.message.clone(),
                at_ms: nack_at_ms.unwrap_or_default(),
            }),
            missing: Vec::new(),
        }
    }
}

/// What one ADS stream reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct StreamInfo {
    /// Unique within this devbridge run.
    pub stream: u64,
    /// The Envoy's address as devbridge sees it.
    pub peer: Option<String>,
    /// `sotw` (state of the world) or `delta` (incremental).
    pub protocol: String,
    /// `None` until a request names a node.
    pub node: Option<NodeInfo>,
    /// The proxy this Envoy is served, if it matched one.
    pub proxy: Option<String>,
    /// Why it is served nothing, when it matched no proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmatched: Option<String>,
    /// In milliseconds since the Unix epoch.
    pub connected_at_ms: u64,
    /// Per type, by its short name (`CDS`, `EDS`, `LDS`, `RDS`); a type
    /// appears once Envoy asked for it.
    pub types: BTreeMap<String, TypeInfo>,
}

impl StreamInfo {
    /// The per-type reports of a stream's protocol state.
    pub fn types_from(state: &super::stream::StreamState, nack_at_ms: &[Option<u64>; 4]) -> BTreeMap<String, TypeInfo> {
        Self::reports(|ty| {
            let ts = state.type_state(ty);
            (ts.subscription != super::stream::Subscription::None).then(|| {
                let mut info = TypeInfo::from_state(ts, nack_at_ms[ty.index()]);
                if let (super::stream::Subscription::Names(names), Some(snapshot)) =
                    (&ts.subscription, state.snapshot())
                {
                    let served = &snapshot.resources(ty).items;
                    info.missing =
                        names.iter().filter(|n| !served.contains_key(*n)).take(MISSING_SHOWN).cloned().collect();
                }
                info
            })
        })
    }

    /// The per-type reports of a delta stream's protocol state.
    pub fn types_from_delta(state: &DeltaState, nack_at_ms: &[Option<u64>; 4]) -> BTreeMap<String, TypeInfo> {
        Self::reports(|ty| {
            let t = state.type_state(ty);
            t.started.then(|| TypeInfo::from_delta(t, nack_at_ms[ty.index()]))
        })
    }

    /// A type appears once Envoy asked for it (`report` gives `None` before).
    fn reports(report: impl Fn(ResourceType) -> Option<TypeInfo>) -> BTreeMap<String, TypeInfo> {
        ResourceType::ALL.into_iter().filter_map(|ty| report(ty).map(|info| (ty.short().to_string(), info))).collect()
    }
}

/// Envoys polling over REST (`xds::rest`), by node: what each last asked
/// and was answered, per type, reported as a stream would be (protocol
/// `rest`). A client not heard from for [`REST_FORGET_MS`] is dropped;
/// at most [`REST_CLIENTS_KEPT`] are kept (the oldest go first).
#[derive(Debug, Default)]
pub struct RestClients {
    clients: Mutex<BTreeMap<(String, String), (u64, StreamInfo)>>,
}

pub const REST_FORGET_MS: u64 = 60_000;
pub const REST_CLIENTS_KEPT: usize = 256;

/// One REST poll, as the registry records it.
#[derive(Debug, Clone)]
pub struct RestPoll {
    pub node: NodeInfo,
    pub proxy: Option<String>,
    pub unmatched: Option<String>,
    pub ty: ResourceType,
    /// The version the client says it holds (its ACK), empty on its first poll.
    pub holds: String,
    /// The version answered, if any.
    pub answered: Option<String>,
    /// The rejection the poll reports, if it does.
    pub nack: Option<String>,
}

impl RestClients {
    pub fn poll(&self, p: RestPoll, now_ms: u64) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|_, (seen, _)| now_ms.saturating_sub(*seen) < REST_FORGET_MS);
        let key = (p.node.cluster.clone(), p.node.id.clone());
        if !clients.contains_key(&key) && clients.len() >= REST_CLIENTS_KEPT {
            let oldest = clients.iter().min_by_key(|(_, (seen, _))| *seen).map(|(k, _)| k.clone());
            oldest.map(|k| clients.remove(&k));
        }
        let (seen, info) = clients.entry(key).or_insert_with(|| {
            (now_ms, StreamInfo { protocol: "rest".into(), connected_at_ms: now_ms, ..Default::default() })
        });
        *seen = now_ms;
        info.node = Some(p.node);
        info.proxy = p.proxy;
        info.unmatched = p.unmatched;
        let t = info.types.entry(p.ty.short().to_string()).or_default();
        match p.nack {
            // Envoy repeats a rejection on every poll: the first one is when.
            Some(error) if t.last_nack.as_ref().is_none_or(|n| n.error != error) => {
                t.last_nack = Some(NackInfo { version: t.sent.clone().unwrap_or_default(), error, at_ms: now_ms });
            }
            Some(_) => {}
            None if !p.holds.is_empty() => t.acked = Some(p.holds),
            None => {}
        }
        t.sent = p.answered;
    }

    /// The clients heard from in the last minute.
    pub fn all(&self, now_ms: u64) -> Vec<StreamInfo> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .values()
            .filter(|(seen, _)| now_ms.saturating_sub(*seen) < REST_FORGET_MS)
            .map(|(_, info)| info.clone())
            .collect()
    }
}

/// Every open stream's latest report.
#[derive(Debug)]
pub struct StreamRegistry {
    next: AtomicU64,
    streams: Mutex<BTreeMap<u64, StreamInfo>>,
    /// Counts changes (a stream added, updated or gone), so a reader (the
    /// events task) waits for one instead of polling.
    changes: watch::Sender<u64>,
}

impl Default for StreamRegistry {
    fn default() -> Self {
        Self { next: AtomicU64::new(0), streams: Mutex::default(), changes: watch::Sender::new(0) }
    }
}

impl StreamRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds a stream; it stays listed until the returned entry is dropped.
    pub fn register(self: &Arc<Self>, peer: Option<String>, protocol: &str, connected_at_ms: u64) -> StreamEntry {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let info = StreamInfo { stream: id, peer, protocol: protocol.into(), connected_at_ms, ..Default::default() };
        self.lock().insert(id, info);
        self.changed();
        StreamEntry { registry: self.clone(), id }
    }

    /// Fires on every change to the set of streams or to a report.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A copy of every open stream's report, oldest first.
    pub fn all(&self) -> Vec<StreamInfo> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, StreamInfo>> {
        // A panic elsewhere while holding it left a whole map: keep going.
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stream's place in the registry; removes it when dropped.
#[derive(Debug)]
pub struct StreamEntry {
    registry: Arc<StreamRegistry>,
    id: u64,
}

impl StreamEntry {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Changes the report. `f` runs under the registry lock: keep it to
    /// copying values in.
    pub fn update(&self, f: impl FnOnce(&mut StreamInfo)) {
        let changed = match self.registry.lock().get_mut(&self.id) {
            Some(info) => {
                let before = info.clone();
                f(info);
                *info != before
            }
            None => false,
        };
        if changed {
            self.registry.changed();
        }
    }
}

impl Drop for StreamEntry {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::stream::{Nack, Sent, Subscription};

    // TypeState has a private field, so it is built by assignment.
    #[allow(clippy::field_reassign_with_default)]
    fn mk_type_state(sent: &str, acked: Option<&str>, nack: Option<(&str, &str)>) -> TypeState {
        let mut ts = TypeState::default();
        ts.subscription = Subscription::Wildcard { legacy: true };
        ts.sent = Some(Sent { version: sent.into(), nonce: "7".into(), names: Default::default() });
        ts.acked_version = acked.map(String::from);
        ts.nack = nack.map(|(v, m)| Nack { version: v.into(), nonce: "7".into(), message: m.into() });
        ts
    }

    #[test]
    fn a_nack_is_reported_with_envoys_text_and_when_it_came() {
        let ts = mk_type_state("v2", Some("v1"), Some(("v2", "bad cluster")));
        assert_eq!(
            TypeInfo::from_state(&ts, Some(1234)),
            TypeInfo {
                sent: Some("v2".into()),
                acked: Some("v1".into()),
                last_nack: Some(NackInfo { version: "v2".into(), error: "bad cluster".into(), at_ms: 1234 }),
                missing: vec![],
            }
        );
    }

    #[test]
    fn a_rest_client_is_listed_with_what_it_holds_until_it_stops_polling() {
        let clients = RestClients::default();
        let node = NodeInfo { id: "e1".into(), cluster: "p".into(), ..Default::default() };
        let poll = |holds: &str, nack: Option<&str>| RestPoll {
            node: node.clone(),
            proxy: Some("p".into()),
            unmatched: None,
            ty: ResourceType::Cluster,
            holds: holds.into(),
            answered: Some("v2".into()),
            nack: nack.map(Into::into),
        };
        clients.poll(poll("", None), 1_000);
        clients.poll(poll("v2", None), 2_000);
        let all = clients.all(2_000);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].protocol.as_str(), all[0].connected_at_ms), ("rest", 1_000));
        let cds = &all[0].types["CDS"];
        assert_eq!((cds.sent.as_deref(), cds.acked.as_deref()), (Some("v2"), Some("v2")));
        // A rejection repeated on every poll keeps the time of the first.
        clients.poll(poll("v1", Some("bad")), 3_000);
        clients.poll(poll("v1", Some("bad")), 4_000);
        let nack = clients.all(4_000)[0].types["CDS"].last_nack.clone().unwrap();
        assert_eq!((nack.error.as_str(), nack.at_ms), ("bad", 3_000));
        assert!(clients.all(4_000 + REST_FORGET_MS).is_empty(), "forgotten after a minute without a poll");
    }

    #[test]
    fn an_entry_is_listed_until_it_is_dropped() {
        let registry = StreamRegistry::new();
        let a = registry.register(Some("127.0.0.1:1".into()), "sotw", 10);
        let b = registry.register(None, "delta", 20);
        a.update(|i| i.proxy = Some("sidecar".into()));
        assert_eq!(
            registry.all(),
            vec![
                StreamInfo {
                    stream: 1,
                    peer: Some("127.0.0.1:1".into()),
                    protocol: "sotw".into(),
                    proxy: Some("sidecar".into()),
                    connected_at_ms: 10,
                    ..Default::default()
                },
                StreamInfo { stream: 2, protocol: "delta".into(), connected_at_ms: 20, ..Default::default() },
            ]
        );
        drop(a);
        assert_eq!(registry.all().iter().map(|i| i.stream).collect::<Vec<_>>(), vec![b.id()]);
        drop(b);
        assert!(registry.is_empty());
    }
}
