//! The large profile the spine and protocols benchmarks serve: 50 domains
//! on 5 ports, 20 routes each (1,000 routes), and 100 static clusters of
//! 100 endpoints (10,000 endpoints), with the one thing a run changes.

pub const DOMAINS: usize = 50;
pub const PORTS: usize = 5;
pub const ROUTES: usize = 20;
pub const CLUSTERS: usize = 100;
pub const ENDPOINTS: usize = 100;

/// What differs between two runs' profiles.
pub struct Change<'a> {
    /// The port of cluster 0's first endpoint.
    pub port: u16,
    /// The timeout of domain 0's first route.
    pub first_timeout: &'a str,
    /// The cluster domain 0's first route sends to.
    pub first_cluster: &'a str,
    /// Clusters declared beyond the 100.
    pub extra_clusters: usize,
}

impl Default for Change<'_> {
    fn default() -> Self {
        Self { port: 9000, first_timeout: "5s", first_cluster: "c0", extra_clusters: 0 }
    }
}

pub fn large_profile(change: &Change<'_>) -> String {
    let mut s = String::from("[zones.dev-local]\n[proxies.p]\nzone = \"dev-local\"\ndomains = [");
    s += &(0..DOMAINS).map(|d| format!("\"d{d}.test:{}\"", 20000 + d % PORTS)).collect::<Vec<_>>().join(", ");
    s += "]\n";
    for d in 0..DOMAINS {
        s += &format!("[[domains]]\nname = \"d{d}.test:{}\"\n", 20000 + d % PORTS);
        for r in 0..ROUTES {
            let (cluster, timeout) = if d == 0 && r == 0 {
                (change.first_cluster.to_string(), change.first_timeout)
            } else {
                (format!("c{}", (d * ROUTES + r) % CLUSTERS), "5s")
            };
            s +=
                &format!("[[domains.routes]]\nprefix = \"/r{r}/\"\ncluster = \"{cluster}\"\ntimeout = \"{timeout}\"\n");
        }
    }
    for c in 0..CLUSTERS + change.extra_clusters {
        s += &format!("[clusters.c{c}.static]\nendpoints = [\n");
        for e in 0..ENDPOINTS {
            // Cluster 0's first endpoint is the one that changes between runs.
            let port = if c == 0 && e == 0 { change.port } else { 8000 + e as u16 };
            s += &format!(
                "  {{ address = \"10.{}.{}.1:{port}\", zone = \"z{}\", metadata = {{ app = \"edge\", slot = \"{e}\" }} }},\n",
                c / 256,
                c % 256,
                e % 3
            );
        }
        s += "]\n";
    }
    s
}
