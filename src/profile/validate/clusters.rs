//! Clusters: exactly one endpoint source (static, dns, kubernetes,
//! kubernetes_service or registered), the load balancing policy, timeouts,
//! health checks and circuit breakers.

use super::*;

/// The longest SNI Envoy takes (a DNS name).
pub const MAX_SNI: usize = 255;
const LB_POLICIES: &[&str] = &["round_robin", "least_request", "random", "ring_hash", "maglev"];
const SUBSET_FALLBACKS: &[&str] = &["any", "none"];

impl Cx<'_> {
    pub(super) fn cluster(&mut self, name: &S<String>, c: RawCluster, key: &str) -> Option<Cluster> {
        let sources = [
            c.static_.is_some(),
            c.dns.is_some(),
            c.kubernetes.is_some(),
            c.kubernetes_service.is_some(),
            c.registered.is_some(),
        ];
        let source = match (c.static_, c.dns, c.kubernetes, c.kubernetes_service, c.registered) {
            (Some(s), None, None, None, None) => self.static_source(s.into_inner(), &format!("{key}.static")),
            (None, Some(d), None, None, None) => self.dns_source(d, &format!("{key}.dns")),
            (None, None, Some(k), None, None) => self.kube_source(k.into_inner(), &format!("{key}.kubernetes")),
            (None, None, None, Some(k), None) => {
                self.kube_service_source(k.into_inner(), &format!("{key}.kubernetes_service"))
            }
            (None, None, None, None, Some(_)) => Some(Source::Registered),
            _ => {
                let n = sources.iter().filter(|s| **s).count();
                self.err(
                    name.span(),
                    key,
                    format!(
                        "has {n} sources; expected exactly one of [{key}.static], [{key}.dns], \
                         [{key}.kubernetes], [{key}.kubernetes_service] or [{key}.registered]"
                    ),
                );
                None
            }
        };
        let lb = match &c.lb {
            None => Some(LbPolicy::RoundRobin),
            Some(v) => self.one_of(v, &format!("{key}.lb"), LB_POLICIES).map(|p| match p {
                "least_request" => LbPolicy::LeastRequest,
                "random" => LbPolicy::Random,
                "ring_hash" => LbPolicy::RingHash,
                "maglev" => LbPolicy::Maglev,
                _ => LbPolicy::RoundRobin,
            }),
        };
        let connect_timeout = match &c.connect_timeout {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some(v) => self.duration(v, &format!("{key}.connect_timeout")),
        };
        let health_check = match c.health_check {
            None => Some(None),
            Some(h) => self.health_check(h, &format!("{key}.health_check")).map(Some),
        };
        // An out-of-range limit is reported and left unset; the error fails the profile.
        let circuit_breakers = c.circuit_breakers.map(|cb| {
            let cb = cb.into_inner();
            let mut field = |v: &Option<S<i64>>, f: &str| {
                v.as_ref().and_then(|v| self.int(v, &format!("{key}.circuit_breakers.{f}"), 0..=u32::MAX as i64))
            };
            CircuitBreakers {
                max_connections: field(&cb.max_connections, "max_connections"),
                max_pending_requests: field(&cb.max_pending_requests, "max_pending_requests"),
                max_requests: field(&cb.max_requests, "max_requests"),
                max_retries: field(&cb.max_retries, "max_retries"),
            }
        });
        let tls = match c.tls.map(S::into_inner) {
            None => Some(None),
            // SNI is a DNS name: Envoy refuses more than 255 characters.
            Some(t) if t.sni.as_ref().is_some_and(|s| s.get_ref().len() > MAX_SNI) => {
                let sni = t.sni.as_ref().map(|s| (s.span(), s.get_ref().len())).unwrap_or_default();
                self.err(
                    sni.0,
                    format!("{key}.tls.sni"),
                    format!("is {} characters; Envoy refuses an SNI over {MAX_SNI}", sni.1),
                );
                None
            }
            Some(t) => Some(Some(UpstreamTls { sni: t.sni.map(S::into_inner), ca_file: t.ca_file.map(S::into_inner) })),
        };
        let probe = self.probe(c.probe, health_check.as_ref().and_then(Option::as_ref), source.as_ref(), name, key);
        let outlier_detection = match c.outlier_detection {
            None => Some(None),
            Some(o) => self.outlier_detection(o.into_inner(), &format!("{key}.outlier_detection")).map(Some),
        };
        let mut zone_priority = Vec::new();
        let mut zones_ok = true;
        for (i, z) in c.zone_priority.iter().enumerate() {
            if z.get_ref().is_empty() {
                self.err(z.span(), format!("{key}.zone_priority[{i}]"), "is empty; expected a zone name");
                zones_ok = false;
            } else if zone_priority.contains(z.get_ref()) {
                self.err(z.span(), format!("{key}.zone_priority[{i}]"), format!("{:?} is listed twice", z.get_ref()));
                zones_ok = false;
            } else {
                zone_priority.push(z.get_ref().clone());
            }
        }
        if let (Some(v), Some(Source::Dns { .. })) = (c.zone_priority.first(), &source) {
            self.err(v.span(), format!("{key}.zone_priority"), "a dns cluster's endpoints have no zones");
            zones_ok = false;
        }
        let subset_fallback = match &c.subset_fallback {
            None => Some(SubsetFallback::Any),
            Some(v) => self.one_of(v, &format!("{key}.subset_fallback"), SUBSET_FALLBACKS).map(|f| match f {
                "none" => SubsetFallback::NoEndpoint,
                _ => SubsetFallback::Any,
            }),
        };
        Some(Cluster {
            outlier_detection: outlier_detection?,
            zone_priority: zones_ok.then_some(zone_priority)?,
            // Filled from the routes once they are read.
            subset_keys: Vec::new(),
            subset_fallback: subset_fallback?,
            name: name.get_ref().clone(),
            source: source?,
            lb: lb?,
            connect_timeout: connect_timeout?,
            http2: c.http2,
            health_check: health_check?,
            circuit_breakers,
            tls: tls?,
            probe: probe?,
        })
    }

    /// The cluster's probe: by default a TCP connect, or an HTTP GET of the
    /// health check's path when it has one; none for DNS clusters (Envoy
    /// resolves them, devbridge has no addresses to probe).
    fn probe(
        &mut self,
        p: Option<S<RawProbe>>,
        hc: Option<&HealthCheck>,
        source: Option<&Source>,
        name: &S<String>,
        key: &str,
    ) -> Option<Option<ProbeSpec>> {
        let key = format!("{key}.probe");
        let dns = matches!(source, Some(Source::Dns { .. }));
        // The health check's request as Envoy sends it: its Host is the
        // cluster's name unless the check names one.
        let http = hc.and_then(|h| Some((h.path.clone()?, h)));
        let default = match &http {
            Some((path, h)) => {
                Probe::Http { path: path.clone(), host: Some(h.host.clone().unwrap_or_else(|| name.get_ref().clone())) }
            }
            None => Probe::Tcp,
        };
        let Some(p) = p else {
            return Some((!dns).then_some(ProbeSpec { probe: default, interval: None, timeout: None }));
        };
        let span = p.span();
        let spec = match p.into_inner() {
            RawProbe::On(false) => return Some(None),
            RawProbe::On(true) => ProbeSpec { probe: default, interval: None, timeout: None },
            RawProbe::Kind(k) if k == "tcp" => ProbeSpec { probe: Probe::Tcp, interval: None, timeout: None },
            RawProbe::Kind(k) if k == "http" => match http {
                Some(_) => ProbeSpec { probe: default, interval: None, timeout: None },
                None => {
                    self.err(span, key, "\"http\" needs a path: write probe = { path = \"/healthz\" }");
                    return None;
                }
            },
            RawProbe::Kind(k) => {
                self.err(
                    span,
                    key,
                    format!(
                        "{k:?} is not a probe; expected false, \"tcp\", or {{ path = \"/healthz\" }} for an HTTP GET"
                    ),
                );
                return None;
            }
            RawProbe::Http(h) => {
                let path = match &h.path {
                    Some(p) => self.path(p, &format!("{key}.path")).map(Some),
                    None => Some(None),
                };
                let host = match &h.host {
                    Some(v) if !self.header_value(v, &format!("{key}.host")) => None,
                    v => Some(v.as_ref().map(|v| v.get_ref().clone())),
                };
                let mut dur = |v: &Option<S<String>>, f: &str| match v {
                    None => Some(None),
                    Some(v) => self.duration(v, &format!("{key}.{f}")).map(Some),
                };
                let interval = dur(&h.interval, "interval");
                let timeout = dur(&h.timeout, "timeout");
                if let (Some(Some(i)), Some(Some(t)), Some(v)) = (interval, timeout, &h.timeout)
                    && t >= i
                {
                    self.err(
                        v.span(),
                        format!("{key}.timeout"),
                        format!("{} is not shorter than the interval {}", v.get_ref(), humantime::format_duration(i)),
                    );
                    return None;
                }
                let probe = match (path?, host?) {
                    (Some(path), host) => Probe::Http { path, host },
                    // Only timing given: the default probe, at that pace.
                    (None, None) => default,
                    (None, Some(_)) => {
                        self.err(span, format!("{key}.host"), "a host needs a path to GET: add path = \"/healthz\"");
                        return None;
                    }
                };
                ProbeSpec { probe, interval: interval?, timeout: timeout? }
            }
        };
        if dns {
            self.err(span, key, "a dns cluster is not probed: Envoy resolves the names, devbridge has no addresses");
            return None;
        }
        Some(Some(spec))
    }

    fn static_source(&mut self, s: RawStatic, key: &str) -> Option<Source> {
        let mut endpoints = Vec::new();
        let mut seen = BTreeSet::new();
        let mut ok = true;
        for (i, e) in s.endpoints.into_iter().enumerate() {
            let key = format!("{key}.endpoints[{i}]");
            let e_span = e.span();
            let e = e.into_inner();
            let addr = self.socket_addr(&e.address, &format!("{key}.address")).filter(|a| {
                // Port 0 is no endpoint: Envoy would have nowhere to connect.
                if a.port() == 0 {
                    self.err(e.address.span(), format!("{key}.address"), format!("{a} has port 0; expected 1-65535"));
                }
                a.port() != 0
            });
            let weight = e.weight.as_ref().and_then(|w| self.int(w, &format!("{key}.weight"), 1..=128));
            if e.weight.is_some() && weight.is_none() {
                ok = false;
            }
            let Some(addr) = addr else {
                ok = false;
                continue;
            };
            if !seen.insert(addr) {
                self.err(e_span, key, format!("endpoint {addr} is listed twice"));
                ok = false;
            }
            endpoints.push(Endpoint {
                unhealthy: false,
                addr,
                zone: e.zone.map(S::into_inner),
                weight,
                metadata: std::sync::Arc::new(e.metadata),
            });
        }
        ok.then_some(Source::Static(endpoints))
    }

    fn dns_source(&mut self, d: S<RawDns>, key: &str) -> Option<Source> {
        let span = d.span();
        let d = d.into_inner();
        let lookup = match &d.lookup {
            None => Some(DnsLookup::Strict),
            Some(v) => self
                .one_of(v, &format!("{key}.lookup"), &["strict", "logical"])
                .map(|l| if l == "logical" { DnsLookup::Logical } else { DnsLookup::Strict }),
        };
        let mut hosts = Vec::new();
        let mut ok = true;
        for (i, h) in d.hosts.iter().enumerate() {
            match split_host_port(h.get_ref()) {
                Some((host, port)) if valid_host(host) => hosts.push((host.to_string(), port)),
                _ => {
                    self.err(
                        h.span(),
                        format!("{key}.hosts[{i}]"),
                        format!("{:?} is not host:port, e.g. \"films.svc:8080\"", h.get_ref()),
                    );
                    ok = false;
                }
            }
        }
        if d.hosts.is_empty() {
            self.err(span.clone(), format!("{key}.hosts"), "is empty; expected at least one host:port");
            ok = false;
        }
        if lookup == Some(DnsLookup::Logical) && d.hosts.len() > 1 {
            self.err(
                span,
                format!("{key}.hosts"),
                format!(
                    "has {} hosts; lookup = \"logical\" takes exactly one (use \"strict\" for several)",
                    d.hosts.len()
                ),
            );
            ok = false;
        }
        ok.then_some(Source::Dns { hosts, lookup: lookup? })
    }

    fn kube_source(&mut self, k: RawKubernetes, key: &str) -> Option<Source> {
        let mut ok = true;
        if let (Some(ns), false) = (&k.namespace, k.namespaces.is_empty()) {
            self.err(ns.span(), format!("{key}.namespace"), "give either namespace or namespaces, not both");
            ok = false;
        }
        let listed = k.namespace.iter().map(|ns| (format!("{key}.namespace"), ns));
        let listed =
            listed.chain(k.namespaces.iter().enumerate().map(|(i, ns)| (format!("{key}.namespaces[{i}]"), ns)));
        let mut namespaces: Vec<String> = Vec::new();
        for (k, ns) in listed {
            if !is_dns_label(ns.get_ref()) {
                self.err(ns.span(), k, format!("{:?} is not a valid namespace (a DNS label)", ns.get_ref()));
                ok = false;
            }
            namespaces.push(ns.get_ref().clone());
        }
        if namespaces.is_empty() {
            namespaces.push("default".to_string());
        }
        if let Err(why) = check_label_selector(k.selector.get_ref()) {
            self.err(
                k.selector.span(),
                format!("{key}.selector"),
                format!("{:?} is not a label selector: {why}", k.selector.get_ref()),
            );
            ok = false;
        }
        let port = self.port(&k.port, &format!("{key}.port"), "a container port");
        let address = match &k.address {
            None => Some(AddressKind::Pod),
            Some(v) => {
                self.one_of(v, &format!("{key}.address"), &["pod", "node-internal", "node-external"]).map(|a| match a {
                    "node-internal" => AddressKind::NodeInternal,
                    "node-external" => AddressKind::NodeExternal,
                    _ => AddressKind::Pod,
                })
            }
        };
        let source = KubernetesSource {
            kubeconfig: k.kubeconfig.map(S::into_inner),
            context: k.context.map(S::into_inner),
            namespaces,
            selector: k.selector.into_inner(),
            field_selector: k.field_selector.map(S::into_inner),
            port: port?,
            address: address?,
            host_network: k.host_network.unwrap_or(true),
            node_zones: k.node_zones.unwrap_or(false),
        };
        ok.then_some(Source::Kubernetes(source))
    }

    fn kube_service_source(&mut self, k: RawKubernetesService, key: &str) -> Option<Source> {
        let mut ok = true;
        let namespace = match &k.namespace {
            None => "default".to_string(),
            Some(ns) => {
                if !is_dns_label(ns.get_ref()) {
                    self.err(
                        ns.span(),
                        format!("{key}.namespace"),
                        format!("{:?} is not a valid namespace (a DNS label)", ns.get_ref()),
                    );
                    ok = false;
                }
                ns.get_ref().clone()
            }
        };
        // Service names are RFC 1035 labels: they also start with a letter.
        let service = k.service.get_ref();
        if !is_dns_label(service) || !service.starts_with(|c: char| c.is_ascii_lowercase()) {
            self.err(
                k.service.span(),
                format!("{key}.service"),
                format!("{service:?} is not a service name (a DNS label starting with a letter)"),
            );
            ok = false;
        }
        let port = self.port(&k.port, &format!("{key}.port"), "a service port");
        let source = KubernetesServiceSource {
            kubeconfig: k.kubeconfig.map(S::into_inner),
            context: k.context.map(S::into_inner),
            namespace,
            service: k.service.into_inner(),
            port: port?,
        };
        ok.then_some(Source::KubernetesService(source))
    }

    fn port(&mut self, port: &S<RawPort>, key: &str, what: &str) -> Option<PortRef> {
        match port.get_ref() {
            RawPort::Number(n) if (1..=65535).contains(n) => Some(PortRef::Number(*n as u16)),
            RawPort::Name(n) if is_port_name(n) => Some(PortRef::Name(n.clone())),
            other => {
                let shown = match other {
                    RawPort::Number(n) => n.to_string(),
                    RawPort::Name(n) => format!("{n:?}"),
                };
                self.err(
                    port.span(),
                    key,
                    format!(
                        "{shown} is not {what}; expected a number 1-65535 \
                         or a port name (up to 15 lowercase letters, digits, '-')"
                    ),
                );
                None
            }
        }
    }

    fn outlier_detection(&mut self, o: RawOutlierDetection, key: &str) -> Option<OutlierDetection> {
        let mut count = |v: &Option<S<i64>>, f: &str, range: RangeInclusive<i64>| match v {
            None => Some(None),
            Some(v) => self.int(v, &format!("{key}.{f}"), range).map(Some),
        };
        let consecutive_5xx = count(&o.consecutive_5xx, "consecutive_5xx", 1..=1000);
        let consecutive_gateway_failure =
            count(&o.consecutive_gateway_failure, "consecutive_gateway_failure", 1..=1000);
        let max_ejection_percent = count(&o.max_ejection_percent, "max_ejection_percent", 0..=100);
        let interval = self.opt_duration(&o.interval, &format!("{key}.interval"));
        let base_ejection_time = self.opt_duration(&o.base_ejection_time, &format!("{key}.base_ejection_time"));
        Some(OutlierDetection {
            consecutive_5xx: consecutive_5xx?,
            consecutive_gateway_failure: consecutive_gateway_failure?,
            interval: interval?,
            base_ejection_time: base_ejection_time?,
            max_ejection_percent: max_ejection_percent?,
        })
    }

    fn health_check(&mut self, h: S<RawHealthCheck>, key: &str) -> Option<HealthCheck> {
        let span = h.span();
        let h = h.into_inner();
        // An HTTP check GETs a path; a TCP check only connects.
        let path = match (&h.path, &h.tcp) {
            (Some(p), None) => self.path(p, &format!("{key}.path")).map(Some),
            (None, Some(t)) if *t.get_ref() => match &h.host {
                Some(v) => {
                    self.err(v.span(), format!("{key}.host"), "a TCP check sends no request: remove host");
                    None
                }
                None => Some(None),
            },
            (None, Some(t)) => {
                self.err(t.span(), format!("{key}.tcp"), "tcp = false needs a path: write path = \"/healthz\"");
                None
            }
            (Some(_), Some(t)) => {
                self.err(
                    t.span(),
                    format!("{key}.tcp"),
                    "a check is HTTP (path) or TCP (tcp = true), not both; remove one",
                );
                None
            }
            (None, None) => {
                self.err(span, key, "expected path = \"/healthz\" (an HTTP GET) or tcp = true (a TCP connect)");
                None
            }
        };
        let mut dur = |v: &Option<S<String>>, f: &str, d: Duration| match v {
            None => Some(d),
            Some(v) => self.duration(v, &format!("{key}.{f}")),
        };
        let interval = dur(&h.interval, "interval", Duration::from_secs(5));
        let timeout = dur(&h.timeout, "timeout", Duration::from_secs(1));
        let mut threshold = |v: &Option<S<i64>>, f: &str, d: u32| match v {
            None => Some(d),
            Some(v) => self.int(v, &format!("{key}.{f}"), 1..=1000),
        };
        let healthy_threshold = threshold(&h.healthy_threshold, "healthy_threshold", 1);
        let unhealthy_threshold = threshold(&h.unhealthy_threshold, "unhealthy_threshold", 2);
        // Envoy sends the host as the probe's Host header.
        let host = match &h.host {
            Some(v) if !self.header_value(v, &format!("{key}.host")) => None,
            v => Some(v.as_ref().map(|v| v.get_ref().clone())),
        };
        Some(HealthCheck {
            path: path?,
            host: host?,
            interval: interval?,
            timeout: timeout?,
            healthy_threshold: healthy_threshold?,
            unhealthy_threshold: unhealthy_threshold?,
        })
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
}
