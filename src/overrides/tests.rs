use super::*;
use crate::profile::parse_profile;

fn mk_profile() -> watch::Receiver<Arc<Profile>> {
    let src = r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["demo.test:8888"]
[[domains]]
name = "demo.test:8888"
routes = [{ prefix = "/", cluster = "edge" }]
[clusters.edge.static]
endpoints = [{ address = "10.0.0.1:80" }]
"#;
    let (tx, rx) = watch::channel(Arc::new(parse_profile("t.toml", "t", src).unwrap()));
    std::mem::forget(tx);
    rx
}

fn req(target: &str, to: &str) -> OverrideRequest {
    OverrideRequest { target: target.into(), to: to.into(), ..Default::default() }
}

#[test]
fn overrides_are_added_listed_removed_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.overrides.json");
    let (store, rx) = OverrideStore::open(mk_profile(), Some(file.clone()), Some("me".into()));
    assert!(rx.borrow().overrides.is_empty());
    let o1 = store.add(&req("demo.test/api", "127.0.0.1:5000")).unwrap();
    let o2 = store
        .add(&OverrideRequest {
            headers: vec!["X-Dev=me".into()],
            for_: Some("2h".into()),
            ..req("demo.test:8888/", "edge")
        })
        .unwrap();
    assert_eq!((o1.id.as_str(), o2.id.as_str()), ("o1", "o2"));
    assert_eq!(o2.headers, [("x-dev".to_string(), "me".to_string())]);
    assert_eq!(o2.to, OverrideTarget::Cluster("edge".into()));
    let listed: Vec<String> = store.list().iter().map(|r| r.description.clone()).collect();
    assert_eq!(listed, ["demo.test:8888/ [x-dev=me] -> cluster edge", "demo.test:8888/api -> 127.0.0.1:5000"]);
    assert_eq!(rx.borrow().overrides.len(), 2);
    assert_eq!(rx.borrow().identity.as_deref(), Some("me"));

    // A restart restores both.
    let (again, rx2) = OverrideStore::open(mk_profile(), Some(file.clone()), None);
    assert_eq!(rx2.borrow().overrides, [o1.clone(), o2.clone()]);
    assert_eq!(again.next_expiry(), o2.expires_at_ms);

    assert_eq!(again.remove(Some("o1")).unwrap(), [o1]);
    assert!(matches!(again.remove(Some("o9")), Err(OverrideError::NotFound { .. })));
    assert_eq!(again.remove(None).unwrap(), [o2]);
    assert_eq!(OverrideStore::open(mk_profile(), Some(file), None).1.borrow().overrides, []);
}

#[test]
fn expired_overrides_end_by_themselves_and_are_not_restored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.overrides.json");
    let (store, rx) = OverrideStore::open(mk_profile(), Some(file.clone()), None);
    let o = store.add(&OverrideRequest { for_: Some("1h".into()), ..req("demo.test/api", "127.0.0.1:5000") }).unwrap();
    let at = o.expires_at_ms.unwrap();
    assert!(store.expire(at - 1).is_empty());
    assert_eq!(store.expire(at), [o]);
    assert!(rx.borrow().overrides.is_empty());
    assert_eq!(store.next_expiry(), None);
}

#[test]
fn bad_requests_are_refused_in_words_and_change_nothing() {
    let (store, rx) = OverrideStore::open(mk_profile(), None, None);
    let cases = [
        (
            req("nope.test/api", "127.0.0.1:5000"),
            "profile t has no domain for \"nope.test\"; its domains: demo.test:8888",
        ),
        (req("demo.test/api", "somewhere"), "\"somewhere\" is neither an ip:port address"),
        (req("demo.test/api", ""), "\"to\" is empty"),
        (req("demo.test/api", "127.0.0.1:0"), "has port 0"),
        (OverrideRequest { for_: Some("soon".into()), ..req("demo.test/api", "edge") }, "\"soon\" is not a duration"),
        (OverrideRequest { headers: vec!["x-dev".into()], ..req("demo.test/api", "edge") }, "is not name=value"),
    ];
    for (r, expected) in cases {
        let e = store.add(&r).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().contains(expected), "{e} (expected {expected:?})");
    }
    assert!(rx.borrow().overrides.is_empty());
}

#[test]
fn a_fault_override_needs_no_target_and_its_shares_are_checked() {
    let (store, rx) = OverrideStore::open(mk_profile(), None, None);
    let fault = |delay: Option<&str>, dp: Option<u32>, abort: Option<u16>, ap: Option<u32>| FaultRequest {
        delay: delay.map(str::to_string),
        delay_percent: dp,
        abort,
        abort_percent: ap,
    };
    let o = store
        .add(&OverrideRequest { fault: Some(fault(Some("2s"), Some(10), Some(503), None)), ..req("demo.test/api", "") })
        .unwrap();
    assert_eq!(o.to, OverrideTarget::Route);
    assert_eq!(
        o.fault,
        Some(crate::model::Fault { delay: Some((Duration::from_secs(2), 10)), abort: Some((503, 100)) })
    );
    assert_eq!(o.describe(), "demo.test:8888/api -> its route with delay 2s for 10%, abort 503 for 100%");
    for (f, why) in [
        (fault(None, None, None, None), "injects nothing"),
        (fault(Some("soon"), None, None, None), "is not a duration"),
        (fault(None, None, Some(700), None), "is not a status"),
        (fault(None, None, Some(503), Some(101)), "out of range"),
        (fault(None, Some(5), Some(503), None), "needs its delay or abort"),
    ] {
        let e = store.add(&OverrideRequest { fault: Some(f), ..req("demo.test/api", "") }).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
    assert_eq!(rx.borrow().overrides.len(), 1);
}
