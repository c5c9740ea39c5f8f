//! End to end: hot reload of upstreams.yaml while serving.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{get, Backend, Proxy, ProxyOpts};

fn one_route(host: &str, backend: &Backend) -> String {
    format!(
        "provider: file\n{host}:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        backend.addr
    )
}

#[test]
fn a_valid_edit_applies_within_two_seconds() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    assert_eq!(
        get(proxy.http, "svc.example.com", "/", &[]).unwrap().echo()["backend"],
        "a"
    );
    let before = proxy.active_hash();

    proxy.write_upstreams(&one_route("svc.example.com", &b));
    let took = proxy.wait_for(Duration::from_secs(2), || {
        get(proxy.http, "svc.example.com", "/", &[]).is_ok_and(|r| r.echo()["backend"] == "b")
    });
    assert!(
        took.is_some(),
        "edit not applied within 2 s:\n{}",
        proxy.log_text()
    );
    assert_ne!(proxy.active_hash(), before);
}

#[test]
fn an_invalid_edit_keeps_the_old_plan_serving() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    let hash = proxy.active_hash();
    proxy.write_upstreams(
        "provider: file\nsvc.example.com:\n  pathz:\n    \"/\":\n      servers: [\"nope\"]\n",
    );
    let rejected = proxy.wait_for(Duration::from_secs(3), || {
        let r = get(proxy.admin, "admin", "/config/status", &[]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["last_attempt"]["result"] == "rejected"
    });
    assert!(rejected.is_some(), "{}", proxy.log_text());
    // still serving the old plan
    assert_eq!(proxy.active_hash(), hash);
    assert_eq!(
        get(proxy.http, "svc.example.com", "/", &[]).unwrap().echo()["backend"],
        "a"
    );
    // the diagnostics are exposed with their location
    let status: serde_json::Value = serde_json::from_slice(
        &get(proxy.admin, "admin", "/config/status", &[])
            .unwrap()
            .body,
    )
    .unwrap();
    let diags = status["last_attempt"]["diagnostics"].as_array().unwrap();
    assert!(diags.iter().any(|d| d["line"] == 3), "{status}");
    assert!(proxy.log_text().contains("rejected"));
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn going_back_to_the_serving_config_after_a_rejection_reports_success() {
    let a = Backend::start("a");
    let good = one_route("svc.example.com", &a);
    let proxy = Proxy::start(&good);
    let hash = proxy.active_hash();
    proxy.write_upstreams("provider: file\nsvc.example.com:\n  pathz: {}\n");
    let rejected = proxy.wait_for(Duration::from_secs(3), || {
        proxy.config_status()["last_attempt"]["result"] == "rejected"
            && has_line(&proxy.metrics(), "aralez_config_last_reload_successful 0")
    });
    assert!(rejected.is_some(), "{}", proxy.log_text());
    proxy.write_upstreams(&good);
    let recovered = proxy.wait_for(Duration::from_secs(3), || {
        let s = proxy.config_status();
        s["last_attempt"]["result"] == "unchanged"
            && s["last_attempt"]["hash"] == hash.as_str()
            && has_line(&proxy.metrics(), "aralez_config_last_reload_successful 1")
    });
    assert!(
        recovered.is_some(),
        "{}\n{}",
        proxy.config_status(),
        proxy.log_text()
    );
}

#[test]
fn sighup_rebuilds_even_when_the_files_are_unchanged() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    proxy.sighup();
    let rebuilt = proxy.wait_for(Duration::from_secs(3), || {
        has_line(
            &proxy.metrics(),
            "aralez_config_reloads_total{result=\"applied\",trigger=\"sighup\"} 1",
        )
    });
    assert!(rebuilt.is_some(), "{}", proxy.log_text());
}

#[test]
fn sighup_reloads() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    // write in place without an inotify-visible rename is still seen by the watcher; SIGHUP forces it
    std::fs::write(
        proxy.dir.path().join("upstreams.yaml"),
        one_route("svc.example.com", &b),
    )
    .unwrap();
    proxy.sighup();
    let ok = proxy.wait_for(Duration::from_secs(2), || {
        get(proxy.http, "svc.example.com", "/", &[]).is_ok_and(|r| r.echo()["backend"] == "b")
    });
    assert!(ok.is_some(), "{}", proxy.log_text());
}

#[test]
fn conf_d_host_replaces_the_whole_host() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    proxy.dir.write(
        "conf.d/10-svc.yaml",
        &format!(
            "svc.example.com:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
            b.addr
        ),
    );
    let ok = proxy.wait_for(Duration::from_secs(3), || {
        get(proxy.http, "svc.example.com", "/", &[]).is_ok_and(|r| r.echo()["backend"] == "b")
    });
    assert!(ok.is_some(), "{}", proxy.log_text());
}

#[test]
fn no_request_fails_while_the_file_flips_twenty_times_under_load() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    let http = proxy.http;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let from_b = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
            let from_b = from_b.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match get(http, "svc.example.com", "/", &[]) {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                            if r.echo()["backend"] == "b" {
                                from_b.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(r) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", r.status)),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for i in 0..20 {
        let target = if i % 2 == 0 { &b } else { &a };
        proxy.write_upstreams(&one_route("svc.example.com", target));
        let want = if i % 2 == 0 { "b" } else { "a" };
        let applied = proxy.wait_for(Duration::from_secs(3), || {
            get(http, "svc.example.com", "/", &[]).is_ok_and(|r| r.echo()["backend"] == want)
        });
        assert!(
            applied.is_some(),
            "flip {i} not applied:\n{}",
            proxy.log_text()
        );
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "load too small: {}",
        ok.load(Ordering::SeqCst)
    );
    // the load itself saw the flipped plans, not only the checks between flips
    let from_b = from_b.load(Ordering::SeqCst);
    assert!(
        from_b > 0 && from_b < ok.load(Ordering::SeqCst),
        "{from_b} from b"
    );
}

fn routes_to(proxy: &Proxy, host: &str, backend: &str) -> bool {
    get(proxy.http, host, "/", &[]).is_ok_and(|r| r.echo()["backend"] == backend)
}

#[test]
fn file_watch_works_with_a_relative_main_yaml_path() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    // cd etc && aralez -c main.yaml
    let proxy = Proxy::start_opts(
        &one_route("svc.example.com", &a),
        ProxyOpts {
            relative_conf: true,
            ..Default::default()
        },
    );
    assert!(routes_to(&proxy, "svc.example.com", "a"));

    proxy.write_upstreams(&one_route("svc.example.com", &b));
    let took = proxy.wait_for(Duration::from_secs(2), || {
        routes_to(&proxy, "svc.example.com", "b")
    });
    assert!(
        took.is_some(),
        "edit not applied within 2 s:\n{}",
        proxy.log_text()
    );

    // a new conf.d folder and file
    proxy.dir.write(
        "conf.d/extra.yaml",
        &one_route("extra.example.com", &c).replace("provider: file\n", ""),
    );
    let took = proxy.wait_for(Duration::from_secs(2), || {
        routes_to(&proxy, "extra.example.com", "c")
    });
    assert!(
        took.is_some(),
        "conf.d file not applied within 2 s:\n{}",
        proxy.log_text()
    );

    // conf.d deleted and created again is still watched
    std::fs::remove_dir_all(proxy.dir.path().join("conf.d")).unwrap();
    let gone = proxy.wait_for(Duration::from_secs(2), || {
        get(proxy.http, "extra.example.com", "/", &[]).is_ok_and(|r| r.status == 404)
    });
    assert!(gone.is_some(), "{}", proxy.log_text());
    std::fs::create_dir(proxy.dir.path().join("conf.d")).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    proxy.dir.write(
        "conf.d/again.yaml",
        &one_route("again.example.com", &a).replace("provider: file\n", ""),
    );
    let took = proxy.wait_for(Duration::from_secs(2), || {
        routes_to(&proxy, "again.example.com", "a")
    });
    assert!(
        took.is_some(),
        "recreated conf.d not watched:\n{}",
        proxy.log_text()
    );

    // the watch is reported as armed
    let status: serde_json::Value = serde_json::from_slice(
        &get(proxy.admin, "admin", "/config/status", &[])
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(status["watch"]["upstreams"]["active"], true, "{status}");
    let metrics = get(proxy.admin, "admin", "/metrics", &[]).unwrap().text();
    assert!(
        metrics.contains("aralez_config_watch_active{source=\"upstreams\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_broken_file_left_on_disk_is_logged_once() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    proxy.write_upstreams("provider: file\nsvc.example.com:\n  pathz: {}\n");
    let rejected = proxy.wait_for(Duration::from_secs(2), || {
        proxy.log_text().contains("config rejected (file)")
    });
    assert!(rejected.is_some(), "{}", proxy.log_text());
    std::thread::sleep(Duration::from_secs(3));
    let log = proxy.log_text();
    assert_eq!(
        log.matches("config rejected (file)").count(),
        1,
        "the same rejection logged more than once:\n{log}"
    );
    // the same broken text written again is not a new rejection either
    proxy.write_upstreams("provider: file\nsvc.example.com:\n  pathz: {}\n");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        proxy.log_text().matches("config rejected (file)").count(),
        1
    );
    // a different broken text is
    proxy.write_upstreams("provider: file\nsvc.example.com:\n  pathx: {}\n");
    let again = proxy.wait_for(Duration::from_secs(2), || {
        proxy.log_text().matches("config rejected (file)").count() == 2
    });
    assert!(again.is_some(), "{}", proxy.log_text());
    assert!(routes_to(&proxy, "svc.example.com", "a"));
}

#[test]
fn config_status_answers_while_a_long_reload_runs() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    let old = proxy.active_hash();
    // 20,000 hosts: compiling and building the plan takes seconds in a debug build
    let mut big = String::from("provider: file\n");
    for i in 0..20_000 {
        big.push_str(&format!(
            "h{i}.example.com:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
            a.addr
        ));
    }
    let written = Instant::now();
    proxy.write_upstreams(&big);
    let mut slowest = Duration::ZERO;
    let mut polls = 0;
    let applied = loop {
        let asked = Instant::now();
        let s = proxy.config_status();
        slowest = slowest.max(asked.elapsed());
        polls += 1;
        if s["active"]["hash"] != old.as_str() {
            break written.elapsed();
        }
        assert!(written.elapsed() < Duration::from_secs(60), "not applied");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        applied > Duration::from_millis(1500),
        "reload too short to tell: {applied:?}"
    );
    assert!(polls > 10, "{polls} polls");
    assert!(
        slowest < Duration::from_secs(1),
        "status took {slowest:?} during a {applied:?} reload"
    );
}

#[test]
fn config_status_answers_within_100_ms_while_a_reload_waits_on_the_network() {
    let a = Backend::start("a");
    let proxy = Proxy::start_opts(
        &one_route("svc.example.com", &a),
        ProxyOpts {
            main_extra: "upstream_connect_timeout: 1\n",
            ..Default::default()
        },
    );
    // a backend that accepts connections and never answers: detecting its protocol before the
    // new generation serves waits for the probe timeouts
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let held = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            silent.set_nonblocking(true).unwrap();
            let mut conns = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok((c, _)) = silent.accept() {
                    conns.push(c);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let old = proxy.active_hash();
    let written = Instant::now();
    proxy.write_upstreams(&format!(
        "provider: file\nsvc.example.com:\n  paths:\n    \"/\":\n      servers: [\"{}\", \"{silent_addr}\"]\n",
        a.addr
    ));
    let mut times = Vec::new();
    let applied = loop {
        let asked = Instant::now();
        let s = proxy.config_status();
        times.push(asked.elapsed());
        if s["active"]["hash"] != old.as_str() {
            break written.elapsed();
        }
        assert!(written.elapsed() < Duration::from_secs(20), "not applied");
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::SeqCst);
    held.join().unwrap();
    assert!(
        applied > Duration::from_millis(1500),
        "the reload did not wait on the probes: {applied:?}\n{}",
        proxy.log_text()
    );
    let slowest = times.iter().max().copied().unwrap_or_default();
    assert!(times.len() > 20, "{} polls", times.len());
    assert!(
        slowest < Duration::from_millis(100),
        "status took {slowest:?} during a {applied:?} reload"
    );
}

#[test]
fn a_configmap_style_symlink_swap_is_applied() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start(&one_route("svc.example.com", &a));
    let dir = proxy.dir.path();
    // the layout of a Kubernetes ConfigMap volume: upstreams.yaml -> ..data/upstreams.yaml,
    // ..data -> ..<version>; an update writes a new version folder and renames a new ..data link
    // over the old one (the file upstreams.yaml itself never changes)
    let version = |name: &str, text: &str| {
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("upstreams.yaml"), text).unwrap();
    };
    version("..v1", &one_route("svc.example.com", &a));
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/upstreams.yaml", dir.join("upstreams.yaml.new")).unwrap();
    std::fs::rename(dir.join("upstreams.yaml.new"), dir.join("upstreams.yaml")).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(routes_to(&proxy, "svc.example.com", "a"));
    let before = proxy.active_hash();

    version("..v2", &one_route("svc.example.com", &b));
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    let applied = proxy.wait_for(Duration::from_secs(3), || {
        proxy.active_hash() != before && routes_to(&proxy, "svc.example.com", "b")
    });
    assert!(applied.is_some(), "{}", proxy.log_text());
}
