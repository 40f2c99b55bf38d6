//! `devbridge explain` against a real Envoy: a generated profile of many
//! overlapping routes, each answering with a body that names it, and
//! thousands of generated requests (hosts, paths, queries, headers,
//! methods) sent through Envoy. For every request, the route Envoy chose
//! must be the route explain chose. Seeded: a failure names the seed and the
//! request, and `DEVBRIDGE_EXPLAIN_SEED=<n>` replays it.

mod support;

use std::net::SocketAddr;

use devbridge::app::Daemon;
use devbridge::bootstrap::{bootstrap, select_proxy, to_yaml};
use devbridge::explain::{ExplainRequest, Live, Request, explain};
use devbridge::profile::parse_profile;
use support::{Envoy, free_port, http_request, loopback_listener};
use tokio_util::sync::CancellationToken;

const REQUESTS: usize = 1500;
const ROUTE_ATTEMPTS: usize = 40;

/// splitmix64: small, seeded, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const PREFIXES: &[&str] = &["/", "/a", "/a/", "/a/b", "/api", "/api/v1", "/API", "/b", "/ab", "/api/v2/x"];
const EXACT: &[&str] = &["/", "/a", "/a/b", "/api", "/api/v1", "/b/c", "/API"];
const REGEXES: &[&str] =
    &["/a/[0-9]+", "/(a|b)/.*", "/api/v[12]/.*", "/[a-z]+", r"/\d+", "/api.*", "(?i)/api/.*", "/a/b/?"];
const HEADER_NAMES: &[&str] = &["x-a", "x-b", "x-c"];
const VALUES: &[&str] = &["1", "12", "abc", "ABC", "", "a1", "x y"];
const VALUE_PREFIXES: &[&str] = &["1", "a", "A", "ab"];
const VALUE_REGEXES: &[&str] = &["[0-9]+", "a.*", "[a-z]+", "(?i)abc", ".*"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
const QUERY_NAMES: &[&str] = &["q", "r"];

/// One random header or query condition, as TOML.
fn value_match(rng: &mut Rng, names: &[&str], header: bool) -> String {
    let name = rng.pick(names);
    let cond = match rng.below(4) {
        0 => format!("exact = {:?}", rng.pick(VALUES)),
        1 => format!("prefix = {:?}", rng.pick(VALUE_PREFIXES)),
        2 => format!("regex = {:?}", rng.pick(VALUE_REGEXES)),
        // Query parameters only take `present = true`.
        _ => format!("present = {}", !header || rng.chance(60)),
    };
    let invert = if header && rng.chance(25) { ", invert = true" } else { "" };
    format!("{{ name = \"{name}\", {cond}{invert} }}")
}

/// One random route's match, as TOML lines (no action).
fn route_match(rng: &mut Rng) -> String {
    let mut lines = Vec::new();
    match rng.below(3) {
        0 => lines.push(format!("prefix = {:?}", rng.pick(PREFIXES))),
        1 => lines.push(format!("path = {:?}", rng.pick(EXACT))),
        _ => lines.push(format!("regex = {:?}", rng.pick(REGEXES))),
    }
    let headers: Vec<String> = (0..rng.below(3)).map(|_| value_match(rng, HEADER_NAMES, true)).collect();
    if !headers.is_empty() {
        lines.push(format!("headers = [{}]", headers.join(", ")));
    }
    if rng.chance(30) {
        lines.push(format!("query = [{}]", value_match(rng, QUERY_NAMES, false)));
    }
    if rng.chance(30) {
        let n = 1 + rng.below(2);
        let ms: Vec<String> = (0..n).map(|_| format!("{:?}", rng.pick(METHODS))).collect();
        lines.push(format!("methods = [{}]", ms.join(", ")));
    }
    lines.join("\n")
}

struct Domain {
    name: String,
    aliases: &'static [&'static str],
    routes: Vec<String>,
}

fn render(domains: &[Domain], tag: bool) -> String {
    let names: Vec<String> = domains.iter().map(|d| format!("{:?}", d.name)).collect();
    let mut out = format!(
        "[zones.z]\n[proxies.sidecar]\nzone = \"z\"\nadmin = \"127.0.0.1:0\"\ndomains = [{}]\n",
        names.join(", ")
    );
    for (di, d) in domains.iter().enumerate() {
        let aliases: Vec<String> = d.aliases.iter().map(|a| format!("{a:?}")).collect();
        out.push_str(&format!("\n[[domains]]\nname = {:?}\naliases = [{}]\n", d.name, aliases.join(", ")));
        for (ri, r) in d.routes.iter().enumerate() {
            let body = if tag { format!("d{di}r{ri}") } else { String::new() };
            out.push_str(&format!("[[domains.routes]]\n{r}\ndirect_response = {{ status = 200, body = {body:?} }}\n"));
        }
    }
    out
}

/// Domains with overlapping routes; a route the profile would refuse as
/// shadowed by an earlier one is left out.
fn generate(rng: &mut Rng, port: u16) -> String {
    let mut domains = vec![
        Domain { name: format!("a.test:{port}"), aliases: &["*.wild.test", "alias.test"], routes: vec![] },
        Domain { name: format!("b.test:{port}"), aliases: &["*.b.wild.test"], routes: vec![] },
        Domain { name: format!("exact.wild.test:{port}"), aliases: &[], routes: vec![] },
    ];
    // Envoy sets these before routing: a route on them checks that explain knows.
    domains[0].routes.push("prefix = \"/probe\"\nheaders = [{ name = \"x-request-id\", present = false }]".into());
    domains[0]
        .routes
        .push("prefix = \"/probe\"\nheaders = [{ name = \"x-forwarded-proto\", exact = \"http\" }]".into());
    for d in 0..domains.len() {
        for _ in 0..ROUTE_ATTEMPTS {
            let candidate = route_match(rng);
            domains[d].routes.push(candidate);
            if let Err(e) = parse_profile("gen.toml", "gen", &render(&domains, false)) {
                assert!(e.to_string().contains("is shadowed by"), "generated an invalid profile: {e}");
                domains[d].routes.pop();
            }
        }
    }
    render(&domains, true)
}

const HOSTS: &[&str] = &[
    "a.test",
    "a.test:PORT",
    "A.TEST:PORT",
    "b.test",
    "alias.test:PORT",
    "x.wild.test",
    "y.wild.test:PORT",
    "q.b.wild.test:PORT",
    "exact.wild.test",
    "wild.test",
    "unknown.test",
    "a.test:1",
];
const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/",
    "/a/b",
    "/a/b/",
    "/a/12",
    "/a/1x",
    "/ab",
    "/api",
    "/api/",
    "/api/v1",
    "/api/v1/x",
    "/api/v2/x",
    "/API/x",
    "/Api",
    "/b",
    "/b/c",
    "/b/c/d",
    "/123",
    "/probe",
    "//a",
    "/a%2Fb",
    "/apix",
];
const QUERIES: &[&str] = &["", "?q=1", "?q=12", "?q=abc&r=1", "?r", "?q=&q=1", "?q=ABC", "?x=1&q=a1", "?q"];

struct Sent {
    method: &'static str,
    host: String,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
}

fn request(rng: &mut Rng, port: u16) -> Sent {
    let host = rng.pick(HOSTS).replace("PORT", &port.to_string());
    let path = format!("{}{}", rng.pick(PATHS), rng.pick(QUERIES));
    let mut headers = Vec::new();
    for name in HEADER_NAMES {
        if rng.chance(40) {
            headers.push((*name, *rng.pick(VALUES)));
            if rng.chance(10) {
                headers.push((*name, *rng.pick(VALUES)));
            }
        }
    }
    let method = METHODS[rng.below(METHODS.len())];
    Sent { method, host, path, headers }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_chooses_the_route_envoy_chooses_for_every_generated_request() {
    let seed: u64 = std::env::var("DEVBRIDGE_EXPLAIN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    let mut rng = Rng(seed);
    let port = free_port();
    let text = generate(&mut rng, port);
    let profile = parse_profile("gen.toml", "gen", &text).expect("generated profile is valid");
    let routes: usize = profile.domains.values().map(|d| d.routes.len()).sum();
    let proxy = select_proxy(&profile, None).unwrap().clone();
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start(profile.clone(), xds, None, CancellationToken::new()).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    envoy.wait_listening(listener).await;
    let stats = envoy.stats().await;
    let rejected: Vec<(&String, &u64)> =
        stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
    assert!(
        rejected.is_empty(),
        "Envoy rejected the generated profile: {rejected:?}\n{:?}\n{}",
        daemon.streams.all(),
        envoy.log()
    );

    let (mut routed, mut unrouted) = (0, 0);
    let mut disagreements = Vec::new();
    for i in 0..REQUESTS {
        let sent = request(&mut rng, port);
        let mut headers: Vec<(String, String)> = vec![("host".into(), sent.host.clone())];
        headers.extend(sent.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let ask = ExplainRequest {
            url: format!("http://127.0.0.1:{port}{}", sent.path),
            method: Some(sent.method.into()),
            headers,
            proxy: None,
        };
        let req = Request::parse(&ask).expect("generated request parses");
        let e = explain(&profile, &req, None, &Live::default()).expect("explains");
        let expected = match (&e.virtual_host, e.chosen) {
            (Some(v), Some(r)) => {
                let di = proxy.domains.iter().position(|d| *d == v.domain).unwrap();
                Some(format!("d{di}r{r}"))
            }
            _ => None,
        };
        let r = http_request(listener, sent.method, &sent.host, &sent.path, &sent.headers, b"")
            .await
            .unwrap_or_else(|err| panic!("request {i} through envoy: {err}"));
        let got = (r.status == 200).then(|| r.body.clone());
        if got.is_some() {
            routed += 1;
        } else {
            assert_eq!(r.status, 404, "request {i}: Envoy answered neither a route's body nor 404: {r:?}");
            unrouted += 1;
        }
        if got != expected {
            disagreements.push(format!(
                "request {i}: {} {} Host {:?} {:?}: envoy {:?}, explain {:?}",
                sent.method, sent.path, sent.host, sent.headers, got, expected
            ));
        }
    }
    println!(
        "seed {seed}: {routes} routes over 3 domains, {REQUESTS} requests: {routed} routed, {unrouted} not; {} disagreements",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "seed {seed}: {} of {REQUESTS} disagree:\n{}\nprofile:\n{text}",
        disagreements.len(),
        disagreements.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    // Both outcomes occur often enough to mean something.
    assert!(routed > REQUESTS / 5 && unrouted > REQUESTS / 20, "routed {routed}, not {unrouted}");
}
