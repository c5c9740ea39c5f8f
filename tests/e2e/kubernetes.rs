//! End to end: `provider: kubernetes` (service mode) against a loopback API server double over
//! HTTPS ([`K8sDouble`]): discovery to the first request, endpoint churn under client loops,
//! namespaces kept apart, an API outage and `410 Gone`, token file rotation, a stalled watch, and
//! three processes converging on one generation hash. The settings (in-cluster defaults, `check`,
//! `route`) are in `kubernetes_config`. Every server and backend is on 127.0.0.1
//! and stopped by its test; every wait is bounded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::{get, Backend, Proxy, TempDir};
use crate::consul::{hit, metric, start, ClientLoop};
use crate::k8s_double::K8sDouble;
use crate::tls_common::{write_root, Alg, Pki};

/// Churn must reach clients within this.
const VISIBLE: Duration = Duration::from_secs(2);
pub(crate) const NS: &str = "shop";

/// A double with its CA, and the service-account folder (`token`, `ca.crt`) Aralez reads.
pub(crate) struct Cluster {
    pub(crate) api: K8sDouble,
    pub(crate) sa: TempDir,
}

impl Cluster {
    pub(crate) fn start() -> Self {
        let pki = Pki::new();
        let leaf = pki.leaf(&["127.0.0.1", "kubernetes.default.svc"], Alg::P256);
        let sa = TempDir::new("k8s-sa");
        let root = write_root(&sa, &pki);
        std::fs::rename(root, sa.path().join("ca.crt")).unwrap();
        sa.write("token", "token-one\n");
        let api = K8sDouble::start(&leaf.chain_pem, &leaf.key_pem, "token-one");
        Self { api, sa }
    }

    /// upstreams.yaml: the `web` Service (port `http`) on web.test and sticky.test, `extra`
    /// lines in the `kubernetes:` section, and a static host.
    pub(crate) fn upstreams(&self, extra: &str, static_backend: &Backend) -> String {
        format!(
            "provider: kubernetes\nkubernetes:\n  servers: [\"{}\"]\n  tokenpath: \"{}\"\n  namespace: {NS}\n{extra}  services:\n    - hostname: web.test\n      upstream: \"web:http\"\n    - hostname: sticky.test\n      upstream: \"web:http\"\n      sticky_sessions: 60\nstatic.test:\n  paths:\n    \"/\": {{servers: [\"{}\"]}}\n",
            self.api.addr,
            self.sa.path().join("token").display(),
            static_backend.addr
        )
    }

    /// Upserts one slice of `web` in the test namespace per backend (`NAME-PORT`: every test
    /// backend listens on 127.0.0.1, and a slice has one port set), `ready` ones and `unready`
    /// ones.
    fn slice(&self, name: &str, ready: &[&Backend], unready: &[&Backend]) {
        let all = ready
            .iter()
            .map(|b| (b, true))
            .chain(unready.iter().map(|b| (b, false)));
        for (b, is_ready) in all {
            self.api.set_slice(
                NS,
                "web",
                &format!("{name}-{}", b.addr.port()),
                &[(&b.addr.ip().to_string(), is_ready)],
                &[("http", b.addr.port()), ("metrics", 9)],
            );
        }
    }
}

fn provider_up(p: &Proxy) -> Option<f64> {
    metric(p, "aralez_provider_up{provider=\"kubernetes\"}")
}

/// The provider's last error on `/config/status`.
fn last_error(p: &Proxy) -> String {
    p.config_status()["providers"]["kubernetes"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The backends that answered `n` GETs of `host`.
fn spread(p: &Proxy, host: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| hit(p, host).unwrap_or_else(|e| format!("error: {e}")))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn discovery_serves_ready_endpoints_of_its_namespace_with_health_and_sticky() {
    let (a, b, c, x, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
        Backend::start("x"),
        Backend::start("static"),
    );
    let k = Cluster::start();
    k.api.set_slice(
        NS,
        "web",
        "web-a",
        &[("127.0.0.1", true)],
        &[("http", a.addr.port())],
    );
    k.api.set_slice(
        NS,
        "web",
        "web-b",
        &[("127.0.0.1", true)],
        &[("metrics", 9), ("http", b.addr.port())],
    );
    // not ready: never served
    k.api.set_slice(
        NS,
        "web",
        "web-c",
        &[("127.0.0.1", false)],
        &[("http", c.addr.port())],
    );
    // the same Service name in another namespace: another Service
    k.api.set_slice(
        "other",
        "web",
        "web-x",
        &[("127.0.0.1", true)],
        &[("http", x.addr.port())],
    );
    let began = Instant::now();
    let p = start(&k.upstreams("", &s));
    let first = p.wait_for(Duration::from_secs(10), || hit(&p, "web.test").is_ok());
    assert!(first.is_some(), "no discovered backend:\n{}", p.log_text());
    eprintln!(
        "kubernetes: first discovered request {:?} after start",
        began.elapsed()
    );
    assert_eq!(spread(&p, "web.test", 20), set(&["a", "b"]));
    assert_eq!(hit(&p, "static.test").unwrap(), "static");

    let status = p.config_status();
    let kube = &status["providers"]["kubernetes"];
    assert_eq!(kube["state"], "up", "{status}");
    assert_eq!(
        kube["services"]["web:http"]["endpoints"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{status}"
    );
    assert_eq!(provider_up(&p), Some(1.0), "{}", p.metrics());
    assert!(
        metric(
            &p,
            "aralez_provider_updates_total{provider=\"kubernetes\",result=\"changed\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{}",
        p.metrics()
    );
    // what the API server saw: the bearer token, the label selector, a watch from the list's
    // version with bookmarks; one list + watch though two routes use the Service
    let requests = k.api.seen();
    assert!(
        requests
            .iter()
            .all(|r| r.token.as_deref() == Some("token-one") && r.status == 200),
        "{requests:?}"
    );
    let lists: Vec<_> = requests
        .iter()
        .filter(|r| !r.target.contains("watch=true"))
        .collect();
    assert_eq!(lists.len(), 1, "{requests:?}");
    assert_eq!(
        lists[0].target,
        "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb"
    );
    assert!(
        requests.iter().any(|r| r
            .target
            .contains("&watch=true&allowWatchBookmarks=true&resourceVersion=")),
        "{requests:?}"
    );

    // sticky sessions pin a discovered backend
    let first = get(p.http, "sticky.test", "/", &[]).unwrap();
    let cookie = first
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("backend_id="))
        .expect("sticky cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let pinned = first.echo()["backend"].as_str().unwrap().to_string();
    for _ in 0..10 {
        let r = get(p.http, "sticky.test", "/", &[("Cookie", &cookie)]).unwrap();
        assert_eq!(r.echo()["backend"], pinned.as_str());
    }

    // health checks probe discovered backends: a failing one leaves rotation, still discovered
    b.set_probe_status(500);
    let only_a = p.wait_for(Duration::from_secs(10), || {
        spread(&p, "web.test", 6) == set(&["a"])
    });
    assert!(only_a.is_some(), "{}", p.log_text());
    assert!(b.probes() > 0);
    b.set_probe_status(0);
    assert_eq!(x.hits(), 0, "a Service of another namespace was served");
    assert_eq!(c.hits(), 0, "a not-ready endpoint was served");
}

#[test]
fn endpoint_churn_under_load_reaches_clients_quickly_without_failing_requests() {
    let (a, b, c, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
        Backend::start("static"),
    );
    let k = Cluster::start();
    k.slice("web", &[&a, &b], &[]);
    let p = start(&k.upstreams("", &s));
    let ready = p.wait_for(Duration::from_secs(10), || {
        spread(&p, "web.test", 6) == set(&["a", "b"])
    });
    assert!(ready.is_some(), "{}", p.log_text());
    let hash = p.active_hash();
    let clients: Vec<ClientLoop> = (0..4).map(|_| ClientLoop::start(&p)).collect();
    std::thread::sleep(Duration::from_millis(300));

    // add c (a new slice: ADDED)
    let t_add = Instant::now();
    k.slice("web", &[&c], &[]);
    let added = p.wait_for(Duration::from_secs(5), || {
        clients[0].first_seen("c", t_add).is_some()
    });
    assert!(added.is_some(), "c never served:\n{}", p.log_text());
    let add_latency = clients[0].first_seen("c", t_add).unwrap() - t_add;
    let status = p.config_status();
    assert_ne!(status["active"]["hash"], hash.as_str(), "{status}");
    assert_eq!(status["active"]["trigger"], "kubernetes", "{status}");

    // a's slice is deleted (DELETED; a still runs: a leaving backend fails no request)
    let t_remove = Instant::now();
    k.api.delete_slice(NS, &format!("web-{}", a.addr.port()));
    std::thread::sleep(VISIBLE + Duration::from_millis(500));
    let remove_latency = clients
        .iter()
        .filter_map(|c| c.last_seen("a"))
        .max()
        .unwrap()
        .saturating_duration_since(t_remove);

    // b is no longer ready (MODIFIED)
    let t_unready = Instant::now();
    k.slice("web", &[], &[&b]);
    std::thread::sleep(VISIBLE + Duration::from_millis(500));
    let unready_latency = clients
        .iter()
        .filter_map(|c| c.last_seen("b"))
        .max()
        .unwrap()
        .saturating_duration_since(t_unready);
    let before: usize = clients.iter().map(ClientLoop::len).sum();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        clients.iter().map(ClientLoop::len).sum::<usize>() > before,
        "the client loops stalled"
    );
    let (mut total, mut failed) = (0, Vec::new());
    for c in clients {
        let (n, f) = c.stop();
        total += n;
        failed.extend(f);
    }
    eprintln!(
        "kubernetes churn: add visible after {add_latency:?}, deletion after {remove_latency:?}, not ready after {unready_latency:?}; {total} requests, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(add_latency < VISIBLE, "add took {add_latency:?}");
    assert!(remove_latency < VISIBLE, "deletion took {remove_latency:?}");
    assert!(
        unready_latency < VISIBLE,
        "not ready took {unready_latency:?}"
    );
    assert_eq!(spread(&p, "web.test", 6), set(&["c"]));
}

#[test]
fn an_outage_keeps_the_last_endpoints_and_a_gone_version_relists() {
    let (a, b, c, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
        Backend::start("static"),
    );
    let k = Cluster::start();
    k.slice("web", &[&a], &[]);
    let p = start(&k.upstreams("", &s));
    assert!(
        p.wait_for(Duration::from_secs(10), || hit(&p, "web.test").as_deref()
            == Ok("a"))
            .is_some(),
        "{}",
        p.log_text()
    );

    k.api.set_failing(true);
    let down = p.wait_for(Duration::from_secs(5), || {
        last_error(&p).contains("status 500")
    });
    assert!(down.is_some(), "{}", p.log_text());
    assert_eq!(provider_up(&p), Some(0.0));
    let status = p.config_status();
    assert_eq!(
        status["providers"]["kubernetes"]["state"], "down",
        "{status}"
    );
    // the last good set keeps serving through the outage
    for _ in 0..10 {
        assert_eq!(hit(&p, "web.test").as_deref(), Ok("a"));
    }
    assert!(metric(
        &p,
        "aralez_provider_updates_total{provider=\"kubernetes\",result=\"error\"}"
    )
    .is_some_and(|n| n >= 1.0));
    // changed while the API was down: seen once it is back
    k.slice("web", &[&b], &[]);
    let t_back = Instant::now();
    k.api.set_failing(false);
    let recovered = p.wait_for(Duration::from_secs(10), || {
        spread(&p, "web.test", 6) == set(&["a", "b"])
    });
    assert!(recovered.is_some(), "{}", p.log_text());
    eprintln!(
        "kubernetes: recovered {:?} after the outage ended",
        t_back.elapsed()
    );
    assert!(p
        .wait_for(Duration::from_secs(2), || provider_up(&p) == Some(1.0))
        .is_some());

    // the history is compacted and the watches cut: the watch from the old version gets an
    // ERROR event with a 410 Status, and the provider lists again
    k.api.compact_and_cut();
    std::thread::sleep(Duration::from_millis(300));
    k.slice("web", &[&c], &[]);
    let relisted = p.wait_for(Duration::from_secs(5), || {
        spread(&p, "web.test", 9) == set(&["a", "b", "c"])
    });
    assert!(relisted.is_some(), "{}", p.log_text());
    assert!(
        p.log_text().contains("is gone (410); listing again"),
        "{}",
        p.log_text()
    );
    let lists = k
        .api
        .seen()
        .iter()
        .filter(|r| !r.target.contains("watch=true") && r.status == 200)
        .count();
    assert!(lists >= 3, "{:?}", k.api.seen());
}

#[test]
fn a_rotated_token_file_is_used_and_a_stalled_watch_is_restarted() {
    let (a, b, c, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
        Backend::start("static"),
    );
    let k = Cluster::start();
    k.slice("web", &[&a], &[]);
    let p = start(&k.upstreams("  watch_idle_seconds: 1\n", &s));
    assert!(
        p.wait_for(Duration::from_secs(10), || hit(&p, "web.test").as_deref()
            == Ok("a"))
            .is_some(),
        "{}",
        p.log_text()
    );

    // the API server now wants another token, and the open watch is cut: 401 until the file
    // holds the new one, the last good set serving meanwhile
    k.api.set_token("token-two");
    k.api.compact_and_cut();
    let refused = p.wait_for(Duration::from_secs(5), || last_error(&p).contains("401"));
    assert!(refused.is_some(), "{}", p.log_text());
    assert_eq!(provider_up(&p), Some(0.0));
    assert_eq!(hit(&p, "web.test").as_deref(), Ok("a"));
    k.sa.write_atomic("token", "token-two\n");
    k.slice("web", &[&b], &[]);
    let rotated = p.wait_for(Duration::from_secs(5), || {
        spread(&p, "web.test", 6) == set(&["a", "b"])
    });
    assert!(rotated.is_some(), "{}", p.log_text());
    assert!(k
        .api
        .seen()
        .iter()
        .any(|r| r.token.as_deref() == Some("token-two") && r.status == 200));

    // a watch that sends nothing, not even bookmarks, for watch_idle_seconds is restarted
    let watches = |k: &Cluster| {
        k.api
            .seen()
            .iter()
            .filter(|r| r.target.contains("watch=true"))
            .count()
    };
    k.api.set_stalled(true);
    let before = watches(&k);
    let restarted = p.wait_for(Duration::from_secs(5), || watches(&k) >= before + 2);
    assert!(restarted.is_some(), "{:?}", k.api.seen());
    assert!(
        p.log_text().contains("sent nothing for too long"),
        "{}",
        p.log_text()
    );
    k.api.set_stalled(false);
    k.slice("web", &[&c], &[]);
    let resumed = p.wait_for(Duration::from_secs(5), || {
        spread(&p, "web.test", 9) == set(&["a", "b", "c"])
    });
    assert!(resumed.is_some(), "{}", p.log_text());
}

#[test]
fn three_processes_converge_on_the_same_generation_hash() {
    let (a, b, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("static"),
    );
    let k = Cluster::start();
    k.slice("web", &[&a], &[]);
    let text = k.upstreams("", &s);
    let proxies: Vec<Proxy> = (0..3).map(|_| start(&text)).collect();
    for p in &proxies {
        assert!(
            p.wait_for(Duration::from_secs(10), || hit(p, "web.test").as_deref()
                == Ok("a"))
                .is_some(),
            "{}",
            p.log_text()
        );
    }
    let hashes = |ps: &[Proxy]| {
        ps.iter()
            .map(Proxy::active_hash)
            .collect::<BTreeSet<String>>()
    };
    let before = hashes(&proxies);
    assert_eq!(before.len(), 1, "{before:?}");
    let t = Instant::now();
    k.slice("web", &[&b], &[]);
    let converged = proxies[0].wait_for(Duration::from_secs(5), || {
        let now = hashes(&proxies);
        now.len() == 1 && now != before
    });
    let took = t.elapsed();
    eprintln!("kubernetes: three processes converged after {took:?}");
    assert!(converged.is_some(), "{:?}", hashes(&proxies));
    assert!(took < VISIBLE, "convergence took {took:?}");
    for p in &proxies {
        assert_eq!(spread(p, "web.test", 6), set(&["a", "b"]));
    }
}
