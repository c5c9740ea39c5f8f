//! End to end: traffic policy (rate and 4xx limits, health checks and failover, retries, sticky
//! sessions, upstream keep-alive) on the real binary with real backends.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{get, request, Backend, Proxy, ProxyOpts, Resp};

/// Health checks every second (the fastest setting), so the tests wait little.
const FAST_HC: &str = "hc_interval: 1\n";

fn metrics(proxy: &Proxy) -> String {
    get(proxy.admin, "admin", "/metrics", &[]).unwrap().text()
}

/// The value of one sample (`name{labels}` exactly as exported), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

fn statuses(
    proxy: &Proxy,
    host: &str,
    path: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> Vec<Resp> {
    (0..n)
        .map(|_| get(proxy.http, host, path, headers).unwrap())
        .collect()
}

fn count(resps: &[Resp], status: u16) -> usize {
    resps.iter().filter(|r| r.status == status).count()
}

#[test]
fn rate_limits_per_client_and_virtual_host_most_specific_wins() {
    let b = Backend::start("b");
    let proxy = Proxy::start(&format!(
        r#"provider: "file"
rate_limit: 10
a.example.com:
  paths:
    "/":
      servers: ["{b}"]
    "/fast":
      rate_limit: 100
      servers: ["{b}"]
b.example.com:
  paths:
    "/":
      servers: ["{b}"]
c.example.com:
  rate_limit: 3
  paths:
    "/":
      servers: ["{b}"]
"#,
        b = b.addr
    ));

    // 40 requests as fast as one client can send them (well within half a second): 9..=11 pass
    let started = Instant::now();
    let resps = statuses(&proxy, "a.example.com", "/", 40, &[]);
    let took = started.elapsed();
    let ok = count(&resps, 200);
    assert!((9..=11).contains(&ok), "{ok} passed in {took:?}");
    assert_eq!(count(&resps, 429), 40 - ok);
    let limited = resps.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(b.hits(), ok, "refused requests never reach the backend");

    // another virtual host: its own budget for the same client
    let resps = statuses(&proxy, "b.example.com", "/", 10, &[]);
    assert_eq!(count(&resps, 200), 10);

    // a path's own limit overrides the global one
    let resps = statuses(&proxy, "a.example.com", "/fast/x", 40, &[]);
    assert_eq!(count(&resps, 200), 40, "per-path rate_limit: 100");

    // the host's limit overrides the global one for its paths
    let resps = statuses(&proxy, "c.example.com", "/", 10, &[]);
    assert_eq!(count(&resps, 200), 3, "host-level rate_limit: 3");

    let t = metrics(&proxy);
    let rejected = sample(
        &t,
        "aralez_ratelimit_rejected_total{kind=\"rate\",route=\"a.example.com/\"}",
    );
    assert_eq!(rejected, Some((40 - ok) as f64), "{t}");
    assert_eq!(
        sample(
            &t,
            "aralez_ratelimit_rejected_total{kind=\"rate\",route=\"c.example.com/\"}"
        ),
        Some(7.0)
    );
    // the budget comes back after a second
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(
        get(proxy.http, "c.example.com", "/", &[]).unwrap().status,
        200
    );
}

#[test]
fn limits_follow_trusted_forwarded_for_and_ignore_spoofed_ones() {
    let b = Backend::start("b");
    let up = format!(
        "provider: file\nrate_limit: 5\nx.example.com:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        b.addr
    );
    // behind a trusted proxy (loopback), each forwarded client has its own budget
    let trusted = Proxy::start_opts(
        &up,
        ProxyOpts {
            main_extra: "trusted_proxies: [\"127.0.0.0/8\"]\n",
            ..Default::default()
        },
    );
    for client in ["203.0.113.1", "203.0.113.2"] {
        let resps = statuses(
            &trusted,
            "x.example.com",
            "/",
            8,
            &[("X-Forwarded-For", client)],
        );
        assert_eq!(count(&resps, 200), 5, "client {client}");
    }
    // the right-most untrusted entry is the client: a spoofed left part does not matter
    let resps: Vec<Resp> = (0..8)
        .map(|i| {
            let xff = format!("198.51.100.{i}, 203.0.113.3, 127.0.0.9");
            get(
                trusted.http,
                "x.example.com",
                "/",
                &[("X-Forwarded-For", &xff)],
            )
            .unwrap()
        })
        .collect();
    assert_eq!(count(&resps, 200), 5, "one client behind two proxies");

    // from an untrusted peer, X-Forwarded-For is ignored: rotating it buys nothing
    let untrusted = Proxy::start(&up);
    let resps: Vec<Resp> = (0..8)
        .map(|i| {
            let xff = format!("192.0.2.{i}");
            get(
                untrusted.http,
                "x.example.com",
                "/",
                &[("X-Forwarded-For", &xff)],
            )
            .unwrap()
        })
        .collect();
    assert_eq!(count(&resps, 200), 5, "spoofed X-Forwarded-For is ignored");
}

#[test]
fn four_xx_limit_bans_for_a_second_and_does_not_extend_itself() {
    let missing = Backend::start_with("missing", Vec::new(), 404);
    let fine = Backend::start("fine");
    let proxy = Proxy::start(&format!(
        r#"provider: "file"
x4xx_limit: 3
x.example.com:
  paths:
    "/":
      servers: ["{fine}"]
    "/missing":
      servers: ["{missing}"]
"#,
        fine = fine.addr,
        missing = missing.addr
    ));
    for _ in 0..4 {
        assert_eq!(
            get(proxy.http, "x.example.com", "/missing", &[])
                .unwrap()
                .status,
            404
        );
    }
    let last_4xx = Instant::now();
    // the 4xx is counted when the request is logged, just after the response went out
    std::thread::sleep(Duration::from_millis(50));
    // more than 3 4xx in the last second: 429, also on the host's other paths
    let r = get(proxy.http, "x.example.com", "/", &[]).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    // keep knocking: our own 429s do not count, so the ban ends about a second after the last 404
    let mut first_ok = None;
    while last_4xx.elapsed() < Duration::from_secs(3) {
        let r = get(proxy.http, "x.example.com", "/", &[]).unwrap();
        if r.status == 200 {
            first_ok = Some(last_4xx.elapsed());
            break;
        }
        assert_eq!(r.status, 429);
        std::thread::sleep(Duration::from_millis(30));
    }
    let first_ok = first_ok.expect("the ban never ended");
    assert!(
        first_ok > Duration::from_millis(500) && first_ok < Duration::from_millis(1600),
        "{first_ok:?}"
    );
    let t = metrics(&proxy);
    let rejected = sample(
        &t,
        "aralez_ratelimit_rejected_total{kind=\"x4xx\",route=\"x.example.com/\"}",
    )
    .unwrap_or(0.0);
    assert!(rejected >= 2.0, "{t}");
}

#[test]
fn a_backend_failing_its_probe_leaves_rotation_and_comes_back() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start_opts(
        &format!(
            "provider: file\nx.example.com:\n  paths:\n    \"/app\":\n      servers: [\"{}\", \"{}\"]\n",
            a.addr, b.addr
        ),
        ProxyOpts {
            main_extra: FAST_HC,
            ..Default::default()
        },
    );
    let healthy = |m: &str, who: &Backend| {
        sample(
            m,
            &format!(
                "aralez_upstream_healthy{{backend=\"{}\",route=\"x.example.com/app\"}}",
                who.addr
            ),
        )
    };
    assert_eq!(healthy(&metrics(&proxy), &b), Some(1.0));
    b.set_probe_status(500);
    let out = proxy.wait_for(Duration::from_secs(3), || {
        healthy(&metrics(&proxy), &b) == Some(0.0)
    });
    assert!(out.is_some(), "{}", proxy.log_text());
    let before = b.hits();
    for _ in 0..6 {
        let r = get(proxy.http, "x.example.com", "/app", &[]).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.echo()["backend"], "a");
    }
    assert_eq!(b.hits(), before, "no traffic to the unhealthy backend");
    // probes went to the route path with the configured method (HEAD by default)
    assert!(
        proxy
            .wait_for(Duration::from_secs(3), || b.probes() >= 2)
            .is_some(),
        "probes keep going to the unhealthy backend"
    );
    b.set_probe_status(0);
    let back = proxy.wait_for(Duration::from_secs(3), || {
        healthy(&metrics(&proxy), &b) == Some(1.0)
    });
    assert!(back.is_some(), "{}", proxy.log_text());
    let seen: Vec<String> = (0..4)
        .map(|_| {
            get(proxy.http, "x.example.com", "/app", &[])
                .unwrap()
                .echo()["backend"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(seen.iter().any(|s| s == "b"), "{seen:?}");
    assert!(proxy.log_text().contains("is down"), "{}", proxy.log_text());
}

#[test]
fn probes_use_hc_method_on_the_route_path_and_honour_fall_and_rise() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start_opts(
        &format!(
            "provider: file\nx.example.com:\n  paths:\n    \"/status\":\n      servers: [\"{}\", \"{}\"]\n",
            a.addr, b.addr
        ),
        ProxyOpts {
            main_extra: "hc_interval: 1\nhc_method: GET\nhc_fall: 3\nhc_rise: 2\n",
            ..Default::default()
        },
    );
    let series = format!(
        "aralez_upstream_healthy{{backend=\"{}\",route=\"x.example.com/status\"}}",
        b.addr
    );
    let probed = proxy.wait_for(Duration::from_secs(3), || b.probes() >= 1);
    assert!(probed.is_some());
    assert_eq!(b.probe_log.lock().unwrap()[0], "GET /status x.example.com");
    // three failed probes in a row are needed: after the first two it is still in rotation
    let seen = b.probes();
    b.set_probe_status(503);
    let failed_since = Instant::now();
    assert!(proxy
        .wait_for(Duration::from_secs(4), || b.probes() >= seen + 2)
        .is_some());
    assert_eq!(sample(&metrics(&proxy), &series), Some(1.0), "fall is 3");
    let down = proxy.wait_for(Duration::from_secs(4), || {
        sample(&metrics(&proxy), &series) == Some(0.0)
    });
    assert!(down.is_some(), "{}", proxy.log_text());
    assert!(failed_since.elapsed() > Duration::from_millis(1500));
    // two passed probes bring it back
    let seen = b.probes();
    b.set_probe_status(0);
    assert!(proxy
        .wait_for(Duration::from_secs(4), || b.probes() > seen)
        .is_some());
    assert_eq!(sample(&metrics(&proxy), &series), Some(0.0), "rise is 2");
    let up = proxy.wait_for(Duration::from_secs(4), || {
        sample(&metrics(&proxy), &series) == Some(1.0)
    });
    assert!(up.is_some(), "{}", proxy.log_text());
}

#[test]
fn all_backends_down_is_503_and_never_falls_through_to_a_shorter_path() {
    let live = Backend::start("live");
    let proxy = Proxy::start_opts(
        &format!(
            "provider: file\nx.example.com:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n    \"/api\":\n      servers: [\"{}\", \"{}\"]\n",
            live.addr,
            dead_addr(),
            dead_addr()
        ),
        ProxyOpts {
            main_extra: FAST_HC,
            ..Default::default()
        },
    );
    let down = proxy.wait_for(Duration::from_secs(3), || {
        get(proxy.http, "x.example.com", "/api/v1", &[]).is_ok_and(|r| r.status == 503)
    });
    assert!(down.is_some(), "{}", proxy.log_text());
    let r = get(proxy.http, "x.example.com", "/api/v1", &[]).unwrap();
    assert_eq!(r.status, 503);
    assert!(r.text().contains("no usable backend"), "{}", r.text());
    assert_eq!(live.hits(), 0, "never served by the parent path");
    assert_eq!(
        get(proxy.http, "x.example.com", "/other", &[])
            .unwrap()
            .status,
        200
    );
}

#[test]
fn connection_refused_is_retried_once_on_the_next_backend() {
    let live = Backend::start("live");
    let dead = dead_addr();
    // healthcheck: false keeps the dead backend in rotation, so every other request meets it
    let proxy = Proxy::start(&format!(
        "provider: file\nx.example.com:\n  paths:\n    \"/\":\n      healthcheck: false\n      servers: [\"{dead}\", \"{}\"]\n",
        live.addr
    ));
    for i in 0..6 {
        let r = request(
            proxy.http,
            "POST",
            "x.example.com",
            "/p",
            &[],
            format!("body-{i}").as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", proxy.log_text());
        assert_eq!(r.echo()["backend"], "live");
        assert_eq!(
            r.echo()["body"],
            format!("body-{i}"),
            "the body is replayed"
        );
    }
    let t = metrics(&proxy);
    let retries = sample(
        &t,
        "aralez_upstream_retries_total{route=\"x.example.com/\"}",
    )
    .unwrap();
    assert!((1.0..=6.0).contains(&retries), "{t}");
    assert!(
        t.contains(&format!(
            "aralez_upstream_requests_total{{backend=\"{dead}\",outcome=\"connect_error\",route=\"x.example.com/\"}}"
        )),
        "{t}"
    );
    // healthcheck: false backends are always reported in rotation
    assert_eq!(
        sample(
            &t,
            &format!("aralez_upstream_healthy{{backend=\"{dead}\",route=\"x.example.com/\"}}")
        ),
        Some(1.0)
    );
}

/// A keep-alive backend that answers the first request of each connection in full, and the second
/// one with half a response before hanging up.
fn half_answering_backend() -> (SocketAddr, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let served = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let (s2, r2) = (served.clone(), requests.clone());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let (served, requests) = (s2.clone(), r2.clone());
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(c.try_clone().unwrap());
                let mut w = c;
                for n in 0..2 {
                    // read one request head
                    let mut detect = false;
                    loop {
                        let mut line = String::new();
                        if std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        detect |= line.contains("aralez-detect");
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if detect {
                        // protocol detection's `HEAD /`: answered, not counted
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                        return;
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    if n == 0 {
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    } else {
                        let _ =
                            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
                        served.store(true, Ordering::SeqCst);
                        let _ = w.shutdown(std::net::Shutdown::Both);
                    }
                }
            });
        }
    });
    (addr, served, requests)
}

#[test]
fn no_retry_once_the_upstream_has_started_answering() {
    let (half, served, half_requests) = half_answering_backend();
    let good = Backend::start("good");
    let proxy = Proxy::start(&format!(
        "provider: file\nx.example.com:\n  paths:\n    \"/\":\n      healthcheck: false\n      servers: [\"{half}\", \"{}\"]\n",
        good.addr
    ));
    // round robin: half (full answer, connection pooled), good, then half again on the pooled
    // connection, which starts answering and dies mid-body
    assert_eq!(
        get(proxy.http, "x.example.com", "/", &[]).unwrap().text(),
        "ok"
    );
    assert_eq!(
        get(proxy.http, "x.example.com", "/", &[]).unwrap().echo()["backend"],
        "good"
    );
    let r = get(proxy.http, "x.example.com", "/", &[]);
    assert!(
        served.load(Ordering::SeqCst),
        "the pooled connection was reused"
    );
    if let Ok(r) = r {
        assert_ne!(
            r.echo()["backend"],
            "good",
            "a started response is not retried"
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        half_requests.load(Ordering::SeqCst),
        2,
        "not retried on the same backend either"
    );
    assert_eq!(
        good.hits(),
        1,
        "no retry after the upstream started answering"
    );
}

#[test]
fn sticky_cookie_pins_survives_reload_keeps_upstream_cookies_and_moves_on_death() {
    let extra = || {
        vec![(
            "Set-Cookie".to_string(),
            "app_session=s1; Path=/".to_string(),
        )]
    };
    let (a, b, c) = (
        Backend::start_with("a", extra(), 200),
        Backend::start_with("b", extra(), 200),
        Backend::start_with("c", extra(), 200),
    );
    let up = |marker: &str| {
        format!(
            "provider: file\nsticky_sessions: 60\nheaders: [\"X-Marker:{marker}\"]\nx.example.com:\n  paths:\n    \"/\":\n      servers: [\"{}\", \"{}\", \"{}\"]\n",
            a.addr, b.addr, c.addr
        )
    };
    let proxy = Proxy::start_opts(
        &up("one"),
        ProxyOpts {
            main_extra: FAST_HC,
            ..Default::default()
        },
    );
    let first = get(proxy.http, "x.example.com", "/", &[]).unwrap();
    let cookies = first.header_all("set-cookie");
    assert!(cookies.contains(&"app_session=s1; Path=/"), "{cookies:?}");
    let ours = cookies
        .iter()
        .find(|c| c.starts_with("backend_id="))
        .unwrap()
        .to_string();
    assert!(
        ours.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"),
        "{ours}"
    );
    let token = ours.split(';').next().unwrap().to_string();
    for b in [&a, &b, &c] {
        assert!(
            !token.contains(&b.addr.port().to_string()),
            "opaque: {token}"
        );
    }
    let pinned = first.echo()["backend"].as_str().unwrap().to_string();
    for _ in 0..20 {
        let r = get(proxy.http, "x.example.com", "/", &[("Cookie", &token)]).unwrap();
        assert_eq!(r.echo()["backend"], pinned.as_str());
        let set = r.header_all("set-cookie");
        assert_eq!(
            set,
            vec!["app_session=s1; Path=/"],
            "no new pin while pinned"
        );
    }

    // a reload that keeps the backend keeps the pin
    let hash = proxy.active_hash();
    proxy.write_upstreams(&up("two"));
    let applied = proxy.wait_for(Duration::from_secs(3), || proxy.active_hash() != hash);
    assert!(applied.is_some(), "{}", proxy.log_text());
    for _ in 0..5 {
        let r = get(proxy.http, "x.example.com", "/", &[("Cookie", &token)]).unwrap();
        assert_eq!(r.header("x-marker"), Some("two"));
        assert_eq!(r.echo()["backend"], pinned.as_str());
    }

    // the pinned backend dies: the client is re-pinned elsewhere with a new cookie
    let victim = [&a, &b, &c].into_iter().find(|x| x.name == pinned).unwrap();
    victim.kill();
    let moved = proxy.wait_for(Duration::from_secs(4), || {
        get(proxy.http, "x.example.com", "/", &[("Cookie", &token)]).is_ok_and(|r| {
            r.status == 200
                && r.echo()["backend"] != pinned.as_str()
                && r.header_all("set-cookie")
                    .iter()
                    .any(|c| c.starts_with("backend_id=") && !c.starts_with(&format!("{token};")))
        })
    });
    assert!(moved.is_some(), "{}", proxy.log_text());
    let r = get(proxy.http, "x.example.com", "/", &[("Cookie", &token)]).unwrap();
    let new_token = r
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("backend_id="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let new_home = r.echo()["backend"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let r = get(proxy.http, "x.example.com", "/", &[("Cookie", &new_token)]).unwrap();
        assert_eq!(r.echo()["backend"], new_home.as_str());
    }
}

#[test]
fn upstream_connections_are_reused() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&format!(
        "provider: file\nx.example.com:\n  paths:\n    \"/\":\n      healthcheck: false\n      servers: [\"{}\"]\n",
        a.addr
    ));
    for _ in 0..20 {
        assert_eq!(
            get(proxy.http, "x.example.com", "/", &[]).unwrap().status,
            200
        );
    }
    assert_eq!(a.hits(), 20);
    assert!(
        a.accepted() <= 4,
        "20 requests opened {} connections",
        a.accepted()
    );
}

#[test]
fn a_backend_killed_under_load_during_a_reload_costs_only_in_flight_requests() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let up = |marker: &str| {
        format!(
            "provider: file\nheaders: [\"X-Marker:{marker}\"]\nx.example.com:\n  paths:\n    \"/\":\n      servers: [\"{}\", \"{}\"]\n",
            a.addr, b.addr
        )
    };
    let proxy = Arc::new(Proxy::start_opts(
        &up("one"),
        ProxyOpts {
            main_extra: FAST_HC,
            ..Default::default()
        },
    ));
    let stop = Arc::new(AtomicBool::new(false));
    // (start, end, status or 0 for a transport error)
    let log = Arc::new(Mutex::new(Vec::<(Instant, Instant, u16)>::new()));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (proxy, stop, log) = (proxy.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < 2000 {
                    n += 1;
                    let t0 = Instant::now();
                    let status = get(proxy.http, "x.example.com", "/?delay_ms=20", &[])
                        .map_or(0, |r| r.status);
                    log.lock().unwrap().push((t0, Instant::now(), status));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let killed_at = Instant::now();
    b.kill();
    let kill_done = Instant::now();
    proxy.write_upstreams(&up("two"));
    std::thread::sleep(Duration::from_millis(2500));
    // within two intervals the dead backend is out: no more retries towards it
    let m = metrics(&proxy);
    assert_eq!(
        sample(
            &m,
            &format!(
                "aralez_upstream_healthy{{backend=\"{}\",route=\"x.example.com/\"}}",
                b.addr
            )
        ),
        Some(0.0),
        "{m}"
    );
    let retries = |m: &str| sample(m, "aralez_upstream_retries_total{route=\"x.example.com/\"}");
    let before = retries(&m);
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        retries(&metrics(&proxy)),
        before,
        "the dead backend is not tried any more"
    );
    let log = log.lock().unwrap();
    let failed: Vec<_> = log.iter().filter(|(_, _, s)| *s != 200).collect();
    assert!(log.len() > 50, "load ran: {} requests", log.len());
    // only requests in flight when the backend died may fail: at most one per client
    assert!(failed.len() <= 3, "{} failed: {failed:?}", failed.len());
    for (start, end, _) in &failed {
        assert!(
            *start <= kill_done && *end >= killed_at,
            "failed outside the kill"
        );
    }
    let after_kill_ok = log
        .iter()
        .filter(|(s, _, st)| *s > killed_at && *st == 200)
        .count();
    assert!(after_kill_ok > 20, "{after_kill_ok}");
    assert!(proxy.log_text().contains("is down"));
}
