use std::time::Duration;

use super::*;

fn mk_type(sent: &str, acked: Option<&str>, nack: Option<(&str, &str)>) -> TypeFact {
    TypeFact {
        sent: Some(sent.into()),
        acked: acked.map(Into::into),
        nack: nack.map(|(v, t)| (v.to_string(), t.to_string())),
    }
}

fn mk_envoy(types: &[(&str, TypeFact)]) -> EnvoyFact {
    EnvoyFact {
        node_id: "sidecar".into(),
        peer: "127.0.0.1:5000".into(),
        types: types.iter().map(|(t, f)| (t.to_string(), f.clone())).collect(),
    }
}

#[test]
fn a_nack_of_the_version_sent_fails_with_envoys_text() {
    let e = mk_envoy(&[
        ("CDS", mk_type("v2", Some("v1"), Some(("v2", "Invalid path: /x")))),
        ("LDS", mk_type("v1", Some("v1"), None)),
    ]);
    let checks = envoy_checks("sidecar", &[e]);
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[1].verdict, Verdict::Failed);
    assert_eq!(checks[1].found, "Envoy sidecar from 127.0.0.1:5000 REJECTED CDS v2: Invalid path: /x");
}

#[test]
fn an_old_nack_followed_by_an_ack_is_ok_and_a_version_in_flight_is_a_warning() {
    let acked = mk_envoy(&[("CDS", mk_type("v3", Some("v3"), Some(("v2", "bad"))))]);
    assert_eq!(envoy_checks("p", &[acked])[1].verdict, Verdict::Ok);
    let waiting = mk_envoy(&[("CDS", mk_type("v3", Some("v2"), None))]);
    let check = &envoy_checks("p", &[waiting])[1];
    assert_eq!(
        (check.verdict, check.found.as_str()),
        (Verdict::Warning, "Envoy sidecar from 127.0.0.1:5000 has not ACKed CDS yet")
    );
}

#[test]
fn no_envoy_connected_is_a_warning_not_a_failure() {
    let checks = envoy_checks("p", &[]);
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].verdict, Verdict::Warning);
}

#[test]
fn skipped_pods_are_counted_by_reason() {
    let pod = |n: &str, v: Result<&str, &str>| (n.to_string(), v.map(|a| a.parse().unwrap()).map_err(str::to_string));
    let check = selector_check(
        "context fake",
        "edge",
        "app=edge in edge",
        Ok(vec![
            pod("edge/a", Ok("10.0.0.1:80")),
            pod("edge/b", Err("not Ready")),
            pod("edge/c", Err("not Ready")),
            pod("edge/d", Err("terminating")),
        ]),
    );
    assert_eq!(check.verdict, Verdict::Ok);
    assert_eq!(check.found, "1 of 4 pods matching app=edge in edge selected (3 skipped: 2 not Ready, 1 terminating)");
    assert_eq!(check.details[1], "edge/b: skipped, not Ready");
    let none = selector_check("c", "edge", "app=edge in edge", Ok(vec![]));
    assert_eq!((none.verdict, none.found.as_str()), (Verdict::Failed, "0 pods match app=edge in edge"));
}

#[test]
fn the_clock_may_differ_by_less_than_a_minute() {
    assert_eq!(clock_check("c", Some(59_000)).verdict, Verdict::Ok);
    assert_eq!(clock_check("c", Some(-59_000)).verdict, Verdict::Ok);
    let off = clock_check("c", Some(-120_000));
    assert_eq!((off.verdict, off.found.as_str()), (Verdict::Failed, "this clock is 2m behind the API server's"));
    assert_eq!(clock_check("c", Some(3_600_000)).found, "this clock is 1h ahead of the API server's");
}

#[test]
fn an_exec_credential_is_judged_by_its_expiry() {
    let exec = |expiry| AuthFact::Exec { command: "aws".into(), result: Ok(expiry) };
    let now = 1_000_000_000;
    assert_eq!(
        auth_check("c", &exec(Some(now + 3_600_000)), now).found,
        "exec plugin aws gave a credential valid for 1h"
    );
    let expired = auth_check("c", &exec(Some(now - 120_000)), now);
    assert_eq!(
        (expired.verdict, expired.found.as_str()),
        (Verdict::Failed, "the exec plugin aws gave a credential that expired 2m ago")
    );
    let failed =
        auth_check("c", &AuthFact::Exec { command: "aws".into(), result: Err("it exited with 1".into()) }, now);
    assert_eq!(failed.verdict, Verdict::Failed);
}

#[test]
fn a_401_on_the_review_says_the_credentials_were_refused() {
    let asked = vec![(
        "list".to_string(),
        "pods".to_string(),
        Some("edge".to_string()),
        Access::Failed(401, "Unauthorized".into()),
    )];
    let check = rbac_check("c", &asked);
    assert_eq!(
        (check.verdict, check.found.as_str()),
        (Verdict::Failed, "the API server did not accept the credentials (401)")
    );
}

#[test]
fn the_api_server_check_fails_at_the_first_step_that_fails() {
    let steps = [
        Step { name: "DNS", result: Ok((Duration::from_micros(300), "api -> 10.0.0.1".into())) },
        Step { name: "TCP", result: Err("10.0.0.1:443: no answer within 3s (dropped)".into()) },
    ];
    let check = api_server_check("c", "https://api:443", &steps);
    assert_eq!(check.verdict, Verdict::Failed);
    assert_eq!(
        check.found,
        "https://api:443: DNS 0.3 ms (api -> 10.0.0.1), TCP FAILED: 10.0.0.1:443: no answer within 3s (dropped)"
    );
    assert!(check.fix.unwrap().starts_with("is the VPN up?"));
}

#[test]
fn ip_route_get_names_the_device_and_source() {
    assert_eq!(
        parse_ip_route("10.8.0.5 dev tun0 src 10.8.0.2 uid 1000 \n    cache \n"),
        Some(RouteFact::Via { dev: "tun0".into(), src: Some("10.8.0.2".into()) })
    );
    assert_eq!(parse_ip_route("RTNETLINK answers: Network is unreachable"), None);
}

#[test]
fn the_report_exits_1_on_a_failure_and_names_the_first_broken_link() {
    let mut r = Report {
        profile: Some("p".into()),
        checks: vec![
            Check::ok("daemon", "running", "yes"),
            Check::warning("proxy p", "an Envoy is connected", "none", "start one"),
        ],
    };
    assert_eq!((r.exit_code(), r.summary().as_str()), (0, "all 2 checks ok (1 warning)"));
    r.checks.push(Check::failed("cluster edge", "edges answer probes", "1 edge listed, 0 reachable", "VPN?"));
    assert_eq!(r.exit_code(), 1);
    assert_eq!(
        r.summary(),
        "1 of 3 checks failed (1 warning); the first broken link: cluster edge: edges answer probes: 1 edge listed, 0 reachable"
    );
    let json = r.to_json();
    assert_eq!(
        (json["ok"].as_bool(), json["failed"].as_u64(), json["checks"][2]["verdict"].as_str()),
        (Some(false), Some(1), Some("failed"))
    );
    assert_eq!(
        render::render(&r, false),
        "daemon\n  ok      running: yes\nproxy p\n  warning an Envoy is connected: none\n          fix: start one\n\
         cluster edge\n  FAILED  edges answer probes: 1 edge listed, 0 reachable\n          fix: VPN?\n"
            .to_string()
            + &r.summary()
            + "\n"
    );
}
