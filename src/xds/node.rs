//! Which proxy an Envoy is: its node identity looked up in the profile, and,
//! with mutual TLS, checked against the proxy its certificate names. Pure;
//! the ADS shell logs and counts what [`NodeMatch::update`] reports.

use crate::model::Profile;

/// How an Envoy identifies itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeId<'a> {
    pub cluster: &'a str,
    pub id: &'a str,
    /// `node.locality.zone`; empty when the node states none.
    pub zone: &'a str,
}

/// What a new match means for the log: each condition is reported once,
/// not on every publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing new to say.
    Quiet,
    /// The node now is this proxy.
    Matched(String),
    /// The certificate names another proxy than the node (a new reason).
    Refused(String),
    /// No proxy of this profile matches the node.
    NoProxy { profile: String, known: Vec<String> },
    /// The node states no zone and matches several proxies.
    Ambiguous { profile: String, candidates: Vec<String> },
}

/// A stream's match, kept from one publish to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMatch {
    /// The proxy this Envoy is served as.
    pub proxy: Option<String>,
    /// Why it is served nothing, for status.
    pub unmatched: Option<String>,
    warned_unmatched: bool,
}

impl NodeMatch {
    /// Matches `node` in `profile`. `identity` is `None` when certificates
    /// are not checked, else the proxy the client certificate names (if any).
    pub fn update(&mut self, profile: &Profile, node: NodeId<'_>, identity: Option<Option<&str>>) -> Change {
        let candidates: Vec<String> =
            profile.proxies_for_node(node.cluster, node.id, node.zone).into_iter().map(|p| p.name.clone()).collect();
        let found = match candidates.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        // An Envoy may only be the proxy its certificate names.
        if let (Some(named), Some(p)) = (identity, &found)
            && named != Some(p.as_str())
        {
            let why =
                format!("its client certificate names {}, but its node claims proxy {p}", named.unwrap_or("no proxy"));
            let new = self.unmatched.as_ref() != Some(&why);
            self.unmatched = Some(why.clone());
            self.proxy = None;
            return if new { Change::Refused(why) } else { Change::Quiet };
        }
        self.unmatched = match &found {
            Some(_) => None,
            None if candidates.is_empty() => Some(format!(
                "no proxy of profile {} matches node.cluster {:?}, node.id {:?}, zone {:?}",
                profile.name, node.cluster, node.id, node.zone
            )),
            None => Some(format!(
                "the node states no zone and matches several proxies ({}); set node.locality.zone",
                candidates.join(", ")
            )),
        };
        let change = match &found {
            Some(p) if self.proxy.as_ref() != Some(p) => {
                self.warned_unmatched = false;
                Change::Matched(p.clone())
            }
            // Warn once per profile that still does not know this node.
            None if !self.warned_unmatched || self.proxy.is_some() => {
                self.warned_unmatched = true;
                if candidates.is_empty() {
                    let known = profile
                        .proxies
                        .values()
                        .map(|p| format!("{} (node.cluster={:?}, zone={:?})", p.name, p.node_cluster, p.zone))
                        .collect();
                    Change::NoProxy { profile: profile.name.clone(), known }
                } else {
                    Change::Ambiguous { profile: profile.name.clone(), candidates }
                }
            }
            _ => Change::Quiet,
        };
        self.proxy = found;
        change
    }
}

#[cfg(test)]
mod tests;
