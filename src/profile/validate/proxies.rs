//! Proxies: the zone each lives in, the domains it serves, its TCP
//! services, its listen and admin addresses, and that no two of them claim
//! the same Envoy node.

use super::*;

impl Cx<'_> {
    /// `domains` holds every domain name the profile declares, valid or not,
    /// `valid_domains` those that passed (for their ports), `clusters` every
    /// cluster name declared, `valid_clusters` those that passed.
    pub(super) fn proxies(
        &mut self,
        raw: BTreeMap<S<String>, RawProxy>,
        zones: &BTreeMap<String, Zone>,
        domains: &BTreeSet<String>,
        valid_domains: &BTreeMap<String, Domain>,
        clusters: &BTreeSet<String>,
        valid_clusters: &BTreeMap<String, Cluster>,
    ) -> BTreeMap<String, Proxy> {
        let mut proxies: BTreeMap<String, Proxy> = BTreeMap::new();
        for (name, p) in raw {
            let key = format!("proxies.{}", name.get_ref());
            self.check_name(&name, &key);
            let span = name.span();
            let Some(p) =
                self.proxy(name.into_inner(), p, &key, zones, domains, (valid_domains, valid_clusters), clusters)
            else {
                continue;
            };
            // A node is matched by the first proxy that fits, so two that can
            // fit the same node make the other one unreachable for it.
            if let Some(other) = proxies.values().find(|o| same_nodes(o, &p)) {
                self.err(
                    span,
                    key,
                    format!(
                        "matches the same Envoy nodes as proxy {:?} (node.cluster {:?}); \
                         give one of them a different node_cluster or node_id",
                        other.name, p.node_cluster
                    ),
                );
            }
            proxies.insert(p.name.clone(), p);
        }
        proxies
    }

    #[allow(clippy::too_many_arguments)]
    fn proxy(
        &mut self,
        name: String,
        p: RawProxy,
        key: &str,
        zones: &BTreeMap<String, Zone>,
        domains: &BTreeSet<String>,
        (valid_domains, valid_clusters): (&BTreeMap<String, Domain>, &BTreeMap<String, Cluster>),
        clusters: &BTreeSet<String>,
    ) -> Option<Proxy> {
        let mut ok = true;
        let kind = match &p.kind {
            None => Some(ProxyKind::Envoy),
            Some(k) => self.one_of(k, &format!("{key}.kind"), &["envoy", "grpc"]).map(|k| match k {
                "grpc" => ProxyKind::Grpc,
                _ => ProxyKind::Envoy,
            }),
        };
        if kind == Some(ProxyKind::Grpc) {
            ok &= self.proxyless(&p, key, valid_domains, valid_clusters);
        }
        if !zones.contains_key(p.zone.get_ref()) {
            let known = known_list(zones.keys(), "none (add a [zones.NAME] table)");
            self.err(
                p.zone.span(),
                format!("{key}.zone"),
                format!("{:?} is not a zone; known zones: {known}", p.zone.get_ref()),
            );
            ok = false;
        }
        let mut seen = BTreeSet::new();
        for (i, d) in p.domains.iter().enumerate() {
            let k = format!("{key}.domains[{i}]");
            if !domains.contains(d.get_ref()) {
                let known = known_list(domains, "none");
                self.err(d.span(), k, format!("{:?} is not a domain; known domains: {known}", d.get_ref()));
                ok = false;
            } else if !seen.insert(d.get_ref().clone()) {
                self.err(d.span(), k, format!("{:?} is listed twice", d.get_ref()));
                ok = false;
            }
        }
        let listen_address = match &p.listen_address {
            None => Some(IpAddr::from([127, 0, 0, 1])),
            Some(a) => match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.err(
                        a.span(),
                        format!("{key}.listen_address"),
                        format!("{:?} is not an IP address, e.g. 127.0.0.1 or 0.0.0.0", a.get_ref()),
                    );
                    None
                }
            },
        };
        let admin = match &p.admin {
            None => DEFAULT_ENVOY_ADMIN.parse().ok(),
            Some(a) => self.socket_addr(a, &format!("{key}.admin")),
        };
        for (f, v) in [("node_cluster", &p.node_cluster), ("node_id", &p.node_id)] {
            if let Some(v) = v.as_ref().filter(|v| v.get_ref().is_empty()) {
                self.err(v.span(), format!("{key}.{f}"), "is empty");
                ok = false;
            }
        }
        let http_ports: BTreeMap<u16, &str> = p
            .domains
            .iter()
            .filter_map(|d| valid_domains.get(d.get_ref()))
            .map(|d| (d.port, d.name.as_str()))
            .collect();
        let tcp = self.tcp_services(p.tcp, key, &http_ports, clusters);
        let kind = kind?;
        if !ok {
            return None;
        }
        Some(Proxy {
            tcp: tcp?,
            kind,
            node_cluster: p.node_cluster.map_or_else(|| name.clone(), S::into_inner),
            node_id: p.node_id.map(S::into_inner),
            zone: p.zone.into_inner(),
            domains: p.domains.into_iter().map(S::into_inner).collect(),
            listen_address: listen_address?,
            admin: admin?,
            name,
        })
    }
}

impl Cx<'_> {
    /// A proxy's `[[tcp]]` services: unique names and ports, no port an
    /// HTTP domain of the same proxy listens on, a known cluster.
    fn tcp_services(
        &mut self,
        raw: Vec<S<RawTcp>>,
        key: &str,
        http_ports: &BTreeMap<u16, &str>,
        clusters: &BTreeSet<String>,
    ) -> Option<Vec<TcpService>> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut names = BTreeSet::new();
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        for (i, t) in raw.into_iter().enumerate() {
            let key = format!("{key}.tcp[{i}]");
            let t = t.into_inner();
            let before = self.errors.len();
            self.check_name(&t.name, &format!("{key}.name"));
            if !names.insert(t.name.get_ref().clone()) {
                self.err(
                    t.name.span(),
                    format!("{key}.name"),
                    format!("{:?} names another TCP service of this proxy too", t.name.get_ref()),
                );
            }
            let port = self.int(&t.port, &format!("{key}.port"), 1..=65535).map(|p| p as u16);
            if let Some(p) = port {
                if let Some(domain) = http_ports.get(&p) {
                    self.err(
                        t.port.span(),
                        format!("{key}.port"),
                        format!("{p} is the port of domain {domain:?} on this proxy; expected a port of its own"),
                    );
                } else if let Some(other) = ports.get(&p) {
                    self.err(
                        t.port.span(),
                        format!("{key}.port"),
                        format!("{p} is also the port of TCP service {other:?}; expected a port of its own"),
                    );
                } else {
                    ports.insert(p, t.name.get_ref().clone());
                }
            }
            self.cluster_ref(&t.cluster, &format!("{key}.cluster"), clusters);
            let idle_timeout = self.opt_duration(&t.idle_timeout, &format!("{key}.idle_timeout"));
            if self.errors.len() > before {
                ok = false;
                continue;
            }
            out.push(TcpService {
                name: t.name.into_inner(),
                port: port?,
                cluster: t.cluster.into_inner(),
                idle_timeout: idle_timeout?,
            });
        }
        ok.then_some(out)
    }
}

impl Cx<'_> {
    /// A proxyless gRPC client's proxy: no listeners of its own (no TCP
    /// services, listen or admin address), and only domains whose every
    /// setting gRPC honours. Whether it passed.
    fn proxyless(
        &mut self,
        p: &RawProxy,
        key: &str,
        valid_domains: &BTreeMap<String, Domain>,
        clusters: &BTreeMap<String, Cluster>,
    ) -> bool {
        let before = self.errors.len();
        let no_listeners = "a proxyless gRPC client (kind = \"grpc\") opens no listeners of its own";
        if let Some(t) = p.tcp.first() {
            self.err(t.span(), format!("{key}.tcp"), format!("{no_listeners}: serve TCP services from an Envoy proxy"));
        }
        for (field, v) in [("listen_address", &p.listen_address), ("admin", &p.admin)] {
            if let Some(v) = v {
                self.err(v.span(), format!("{key}.{field}"), format!("{no_listeners}; remove {field}"));
            }
        }
        for (i, d) in p.domains.iter().enumerate() {
            let Some(domain) = valid_domains.get(d.get_ref()) else { continue };
            for problem in proxyless::grpc_problems(domain, clusters) {
                self.err(
                    d.span(),
                    format!("{key}.domains[{i}]"),
                    format!("domain {:?} {problem} (this proxy is a proxyless gRPC client)", domain.name),
                );
            }
        }
        self.errors.len() == before
    }
}

/// Whether some node identity fits both proxies: the same node.cluster and
/// zone, and node ids that agree or are left open by either.
fn same_nodes(a: &Proxy, b: &Proxy) -> bool {
    a.node_cluster == b.node_cluster
        && a.zone == b.zone
        && match (&a.node_id, &b.node_id) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}
