//! End to end: `provider: consul` against a loopback Consul double ([`ConsulDouble`]): discovery
//! to the first request, endpoint churn under a client loop, an API outage, token file rotation
//! and failover between servers. Every server and backend is on 127.0.0.1 and stopped by its
//! test; every wait is bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{get, Backend, Proxy, ProxyOpts, TempDir};
use crate::consul_double::{ConsulDouble, Instance};

const FAST_HC: &str = "hc_interval: 1\n";
/// Churn must reach clients within this.
const VISIBLE: Duration = Duration::from_secs(2);

/// upstreams.yaml with the `web` service on web.test (and sticky.test, sticky), `extra` lines
/// in the `consul:` section, and a static host beside them.
pub(crate) fn upstreams(servers: &[String], extra: &str, static_backend: &Backend) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "provider: consul\nconsul:\n  servers: [{}]\n  wait_seconds: 10\n{extra}  services:\n    - hostname: web.test\n      upstream: web\n    - hostname: sticky.test\n      upstream: web\n      sticky_sessions: 60\nstatic.test:\n  paths:\n    \"/\": {{servers: [\"{}\"]}}\n",
        servers.join(", "),
        static_backend.addr
    )
}

pub(crate) fn start(upstreams: &str) -> Proxy {
    Proxy::start_opts(
        upstreams,
        ProxyOpts {
            main_extra: FAST_HC,
            ..Default::default()
        },
    )
}

/// The backend that answered a GET of `host`, or the status when it failed.
pub(crate) fn hit(p: &Proxy, host: &str) -> Result<String, String> {
    match get(p.http, host, "/", &[]) {
        Ok(r) if r.status == 200 => Ok(r.echo()["backend"].as_str().unwrap_or("").to_string()),
        Ok(r) => Err(format!("status {}", r.status)),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn metric(p: &Proxy, line_prefix: &str) -> Option<f64> {
    p.metrics()
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

pub(crate) fn provider_up(p: &Proxy) -> Option<f64> {
    metric(p, "aralez_provider_up{provider=\"consul\"}")
}

/// Every answer of a client loop with its time: the backend, or why it failed.
type AnswerLog = Arc<Mutex<Vec<(Instant, Result<String, String>)>>>;

/// A client loop on web.test: every answer with its time, until stopped (at most 60 s).
pub(crate) struct ClientLoop {
    stop: Arc<AtomicBool>,
    log: AnswerLog,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientLoop {
    pub(crate) fn start(p: &Proxy) -> Self {
        let (addr, stop, log) = (
            p.http,
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let (s, l) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let began = Instant::now();
            while !s.load(Ordering::SeqCst) && began.elapsed() < Duration::from_secs(60) {
                let r = match get(addr, "web.test", "/", &[]) {
                    Ok(r) if r.status == 200 => {
                        Ok(r.echo()["backend"].as_str().unwrap_or("").to_string())
                    }
                    Ok(r) => Err(format!("status {}", r.status)),
                    Err(e) => Err(e.to_string()),
                };
                l.lock().unwrap().push((Instant::now(), r));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// When `name` first answered after `since`.
    pub(crate) fn first_seen(&self, name: &str, since: Instant) -> Option<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(t, r)| *t >= since && r.as_deref() == Ok(name))
            .map(|(t, _)| *t)
    }

    /// When `name` last answered.
    pub(crate) fn last_seen(&self, name: &str) -> Option<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, r)| r.as_deref() == Ok(name))
            .map(|(t, _)| *t)
    }

    pub(crate) fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Stops the loop; returns every failed request.
    pub(crate) fn stop(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let log = self.log.lock().unwrap();
        let failed = log
            .iter()
            .filter_map(|(_, r)| r.as_ref().err().cloned())
            .collect();
        (log.len(), failed)
    }
}

#[test]
fn discovery_serves_beside_static_hosts_with_token_datacenter_health_and_sticky() {
    let (a, b, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("static"),
    );
    let consul = ConsulDouble::start();
    consul.set_token(Some("s3cr3t-consul-token"));
    consul.set_service(
        "web",
        vec![Instance::at("a", a.addr), Instance::at("b", b.addr)],
    );
    let text = upstreams(
        &[consul.url()],
        "  token: \"s3cr3t-consul-token\"\n  datacenter: \"dc-test\"\n",
        &s,
    );
    let began = Instant::now();
    let p = start(&text);
    let first = p.wait_for(Duration::from_secs(10), || hit(&p, "web.test").is_ok());
    assert!(first.is_some(), "no discovered backend:\n{}", p.log_text());
    eprintln!(
        "consul: first discovered request {:?} after start",
        began.elapsed()
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        seen.insert(hit(&p, "web.test").unwrap());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(hit(&p, "static.test").unwrap(), "static");

    // status, metrics and what Consul saw
    let status = p.config_status();
    let c = &status["providers"]["consul"];
    assert_eq!(c["state"], "up", "{status}");
    assert!(c["last_sync"].as_u64().is_some(), "{status}");
    let endpoints = c["services"]["web"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{status}");
    assert_eq!(provider_up(&p), Some(1.0), "{}", p.metrics());
    assert!(
        metric(
            &p,
            "aralez_provider_updates_total{provider=\"consul\",result=\"changed\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{}",
        p.metrics()
    );
    assert!(p
        .metrics()
        .contains("aralez_provider_last_sync_timestamp_seconds{provider=\"consul\"}"));
    let requests = consul.seen();
    assert!(
        requests.iter().all(|r| r.status == 200 || r.status == 0),
        "{requests:?}"
    );
    assert!(requests
        .iter()
        .all(|r| r.token.as_deref() == Some("s3cr3t-consul-token")
            && r.target
                .starts_with("/v1/health/service/web?passing=true&dc=dc-test")));
    // the next query blocks on the index of the first answer
    assert!(
        requests
            .iter()
            .any(|r| r.target.contains("&index=") && r.target.contains("&wait=10s")),
        "{requests:?}"
    );
    // one watch for the service, though two routes use it
    let initial = requests
        .iter()
        .filter(|r| !r.target.contains("index="))
        .count();
    assert_eq!(initial, 1, "{requests:?}");

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
        (0..6).all(|_| hit(&p, "web.test").as_deref() == Ok("a"))
    });
    assert!(only_a.is_some(), "{}", p.log_text());
    assert!(b.probes() > 0);
    b.set_probe_status(0);
}

#[test]
fn endpoint_churn_reaches_clients_quickly_without_failing_requests() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let s = Backend::start("static");
    let consul = ConsulDouble::start();
    consul.set_service(
        "web",
        vec![Instance::at("a", a.addr), Instance::at("b", b.addr)],
    );
    let p = start(&upstreams(&[consul.url()], "", &s));
    let ready = p.wait_for(Duration::from_secs(10), || {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            seen.insert(hit(&p, "web.test").unwrap_or_default());
        }
        seen.len() == 2 && seen.contains("a") && seen.contains("b")
    });
    assert!(ready.is_some(), "{}", p.log_text());
    let hash = p.active_hash();
    let client = ClientLoop::start(&p);
    std::thread::sleep(Duration::from_millis(300));

    // add c
    let t_add = Instant::now();
    consul.set_service(
        "web",
        vec![
            Instance::at("a", a.addr),
            Instance::at("b", b.addr),
            Instance::at("c", c.addr),
        ],
    );
    let added = p.wait_for(Duration::from_secs(5), || {
        client.first_seen("c", t_add).is_some()
    });
    assert!(added.is_some(), "c never served:\n{}", p.log_text());
    let add_latency = client.first_seen("c", t_add).unwrap() - t_add;
    let status = p.config_status();
    assert_ne!(status["active"]["hash"], hash.as_str(), "{status}");
    assert_eq!(status["active"]["trigger"], "consul", "{status}");

    // remove a (still running: a leaving backend must not fail requests)
    let t_remove = Instant::now();
    consul.set_service(
        "web",
        vec![Instance::at("b", b.addr), Instance::at("c", c.addr)],
    );
    std::thread::sleep(VISIBLE + Duration::from_millis(500));
    let last_a = client.last_seen("a").unwrap();
    let remove_latency = last_a.saturating_duration_since(t_remove);

    // b's check fails: it leaves discovery (passing=true), c stays
    let t_fail = Instant::now();
    consul.set_passing("web", "b", false);
    std::thread::sleep(VISIBLE + Duration::from_millis(500));
    let last_b = client.last_seen("b").unwrap();
    let fail_latency = last_b.saturating_duration_since(t_fail);
    let before = client.len();
    std::thread::sleep(Duration::from_millis(300));
    assert!(client.len() > before, "the client loop stalled");
    let (total, failed) = client.stop();

    eprintln!(
        "consul churn: add visible after {add_latency:?}, removal after {remove_latency:?}, failing check after {fail_latency:?}; {total} requests, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(add_latency < VISIBLE, "add took {add_latency:?}");
    assert!(remove_latency < VISIBLE, "removal took {remove_latency:?}");
    assert!(
        fail_latency < VISIBLE,
        "failing check took {fail_latency:?}"
    );
    for _ in 0..6 {
        assert_eq!(hit(&p, "web.test").unwrap(), "c");
    }
    let status = p.config_status();
    assert_eq!(
        status["providers"]["consul"]["services"]["web"]["endpoints"],
        serde_json::json!([c.addr.to_string()]),
        "{status}"
    );
}

#[test]
fn an_outage_keeps_the_last_endpoints_and_recovers() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let s = Backend::start("static");
    let consul = ConsulDouble::start();
    consul.set_service("web", vec![Instance::at("a", a.addr)]);
    let p = start(&upstreams(&[consul.url()], "", &s));
    let ready = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "web.test").as_deref() == Ok("a") && provider_up(&p) == Some(1.0)
    });
    assert!(ready.is_some(), "{}", p.log_text());
    let client = ClientLoop::start(&p);

    consul.set_failing(true);
    let down = p.wait_for(Duration::from_secs(5), || provider_up(&p) == Some(0.0));
    assert!(down.is_some(), "{}", p.log_text());
    let status = p.config_status();
    let c = &status["providers"]["consul"];
    assert_eq!(c["state"], "down", "{status}");
    assert!(
        c["last_error"].as_str().unwrap_or("").contains("500"),
        "{status}"
    );
    assert_eq!(
        c["services"]["web"]["endpoints"],
        serde_json::json!([a.addr.to_string()])
    );
    // the outage goes on for a while: still served by the last good set
    std::thread::sleep(Duration::from_secs(2));
    assert!(metric(
        &p,
        "aralez_provider_updates_total{provider=\"consul\",result=\"error\"}"
    )
    .is_some_and(|n| n >= 2.0));

    consul.set_failing(false);
    let up = p.wait_for(Duration::from_secs(15), || provider_up(&p) == Some(1.0));
    assert!(up.is_some(), "{}", p.log_text());
    eprintln!(
        "consul outage: provider up again {:?} after the API recovered",
        up.unwrap()
    );
    let (total, failed) = client.stop();
    assert!(
        total > 20 && failed.is_empty(),
        "{total} requests, failed: {failed:?}"
    );

    // and changes flow again
    consul.set_service(
        "web",
        vec![Instance::at("a", a.addr), Instance::at("b", b.addr)],
    );
    let b_seen = p.wait_for(Duration::from_secs(5), || {
        (0..4).any(|_| hit(&p, "web.test").as_deref() == Ok("b"))
    });
    assert!(b_seen.is_some(), "{}", p.log_text());
    let log = p.log_text();
    assert_eq!(log.matches("consul: provider down").count(), 1, "{log}");
}

#[test]
fn a_rotated_token_file_is_used() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let s = Backend::start("static");
    let secrets = TempDir::new("consul-token");
    let token_file = secrets.write("consul.token", "first-token-000111\n");
    let consul = ConsulDouble::start();
    consul.set_token(Some("first-token-000111"));
    consul.set_service("web", vec![Instance::at("a", a.addr)]);
    let extra = format!("  token_file: \"{}\"\n", token_file.display());
    let p = start(&upstreams(&[consul.url()], &extra, &s));
    let ready = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "web.test").as_deref() == Ok("a")
    });
    assert!(ready.is_some(), "{}", p.log_text());

    // Consul's token rotates first: the old one is refused (403)
    consul.set_token(Some("second-token-222333"));
    let refused = p.wait_for(Duration::from_secs(5), || provider_up(&p) == Some(0.0));
    assert!(refused.is_some(), "{}", p.log_text());
    consul.set_service(
        "web",
        vec![Instance::at("a", a.addr), Instance::at("b", b.addr)],
    );
    assert!(consul.seen().iter().any(|r| r.status == 403));
    let status = p.config_status();
    assert!(
        status["providers"]["consul"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("403"),
        "{status}"
    );
    assert_eq!(hit(&p, "web.test").unwrap(), "a", "last good set serves");

    // then the file: the next query uses the new token
    secrets.write_atomic("consul.token", "second-token-222333\n");
    let b_seen = p.wait_for(Duration::from_secs(10), || {
        (0..4).any(|_| hit(&p, "web.test").as_deref() == Ok("b"))
    });
    assert!(b_seen.is_some(), "{}", p.log_text());
    assert_eq!(provider_up(&p), Some(1.0));
    assert!(consul
        .seen()
        .iter()
        .any(|r| r.status == 200 && r.token.as_deref() == Some("second-token-222333")));
    assert!(
        !p.log_text().contains("second-token-222333"),
        "token logged"
    );
}

#[test]
fn failover_to_the_second_server() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let s = Backend::start("static");
    let (first, second) = (ConsulDouble::start(), ConsulDouble::start());
    for d in [&first, &second] {
        d.set_service("web", vec![Instance::at("a", a.addr)]);
    }
    let p = start(&upstreams(&[first.url(), second.url()], "", &s));
    let ready = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "web.test").as_deref() == Ok("a")
    });
    assert!(ready.is_some(), "{}", p.log_text());
    assert!(!first.seen().is_empty());
    assert!(second.seen().is_empty(), "the first server is used first");

    // the first server dies (held query cut, connections refused); the second has news
    first.kill();
    second.set_service("web", vec![Instance::at("b", b.addr)]);
    let moved = p.wait_for(Duration::from_secs(5), || {
        (0..4).all(|_| hit(&p, "web.test").as_deref() == Ok("b"))
    });
    assert!(moved.is_some(), "{}", p.log_text());
    eprintln!(
        "consul failover: second server's set served {:?} after the first died",
        moved.unwrap()
    );
    let status = p.config_status();
    let web = &status["providers"]["consul"]["services"]["web"];
    assert_eq!(web["server"], second.url().as_str(), "{status}");
    assert_eq!(web["state"], "up", "{status}");
    assert!(!second.seen().is_empty());
}
