//! End to end: `limits_store` with Debian's real `redis-server` on a loopback port: two proxies
//! share one budget, and killing Redis mid-test applies `on_error` within `timeout_ms`, then
//! recovers by itself when Redis is back.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, get, Backend, Proxy, ProxyOpts, TempDir};

const HOST: &str = "app.example.com";

/// A `redis-server` child on 127.0.0.1 (no persistence), killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Redis {
    fn start_on(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    fn start_with(port: u16, extra: &[&str]) -> Self {
        let dir = TempDir::new("redis");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(extra)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn proxy(backend: &Backend, redis_port: u16, rate: u32, on_error: &str) -> Proxy {
    let upstreams = format!(
        "provider: file\nrate_limit: {rate}\n{HOST}:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        backend.addr
    );
    let main = format!(
        "limits_store:\n  url: \"redis://127.0.0.1:{redis_port}/0\"\n  timeout_ms: 50\n  on_error: {on_error}\n  key_prefix: \"t{redis_port}:\"\n"
    );
    let p = Proxy::start_opts(
        &upstreams,
        ProxyOpts {
            main_extra: &main,
            ..Default::default()
        },
    );
    let up = p.wait_for(Duration::from_secs(10), || store_up(&p.metrics(), 1));
    assert!(up.is_some(), "store never up:\n{}", p.log_text());
    p
}

#[test]
fn two_processes_share_one_budget() {
    let redis = Redis::start_on(free_port());
    let backend = Backend::start("b");
    let a = proxy(&backend, redis.port, 10, "open");
    let b = proxy(&backend, redis.port, 10, "open");
    // 40 requests from one client, alternating between the two processes, within half a second
    let start = Instant::now();
    let mut passed = 0;
    let mut limited = 0;
    for i in 0..40u32 {
        let target = if i % 2 == 0 { a.http } else { b.http };
        match get(target, HOST, "/", &[]).unwrap().status {
            200 => passed += 1,
            429 => limited += 1,
            other => panic!("status {other}"),
        }
        let due = start + Duration::from_millis(12) * (i + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let took = start.elapsed();
    eprintln!("shared budget: {passed} passed, {limited} limited in {took:?}");
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert!(
        (9..=12).contains(&passed),
        "{passed} passed, {limited} limited in {took:?}"
    );
    assert_eq!(passed + limited, 40);
    let status = a.config_status();
    assert_eq!(status["limits_store"]["up"], true, "{status}");
}

#[test]
fn redis_down_applies_on_error_within_the_timeout_and_recovers() {
    let port = free_port();
    let mut redis = Redis::start_on(port);
    let backend = Backend::start("b");
    let closed = proxy(&backend, port, 1000, "closed");
    let open = proxy(&backend, port, 1000, "open");
    assert_eq!(get(closed.http, HOST, "/", &[]).unwrap().status, 200);

    redis.kill();
    let killed = Instant::now();
    // closed: 429 on the limited route as soon as the store is seen down
    let refused = closed.wait_for(Duration::from_secs(3), || {
        get(closed.http, HOST, "/", &[]).unwrap().status == 429
    });
    let refused = refused.expect("on_error: closed never refused");
    eprintln!("on_error closed applied {refused:?} after redis was killed");
    // timeout_ms (50) + one sync interval (20), plus scheduling slack on a busy machine
    assert!(
        killed.elapsed() < Duration::from_millis(1000),
        "{refused:?}"
    );
    // open: the local limiter decides, quickly (never waiting on Redis)
    let t = Instant::now();
    assert_eq!(get(open.http, HOST, "/", &[]).unwrap().status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let m = closed.metrics();
    assert!(store_up(&m, 0), "{m}");
    assert!(!m.contains("aralez_limits_store_errors_total 0"), "{m}");
    let status = closed.config_status();
    assert_eq!(status["limits_store"]["up"], false, "{status}");
    assert_eq!(status["limits_store"]["on_error"], "closed", "{status}");

    // Redis back on the same port: both recover by themselves
    let _redis = Redis::start_on(port);
    let back = closed.wait_for(Duration::from_secs(10), || {
        get(closed.http, HOST, "/", &[]).unwrap().status == 200
    });
    assert!(back.is_some(), "no recovery:\n{}", closed.log_text());
    eprintln!("recovered {back:?} after redis restarted");
    assert!(store_up(&closed.metrics(), 1));
    assert_eq!(closed.config_status()["limits_store"]["up"], true);
}

#[test]
fn a_password_from_password_file_authenticates() {
    let port = free_port();
    let _redis = Redis::start_with(port, &["--requirepass", "s3cret-for-tests"]);
    let backend = Backend::start("b");
    let upstreams = format!(
        "provider: file\nrate_limit: 2\n{HOST}:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        backend.addr
    );
    let main = format!(
        "limits_store:\n  url: \"redis://127.0.0.1:{port}\"\n  password_file: redis.pass\n  on_error: closed\n"
    );
    let dir = TempDir::new("redis-pass");
    let pass = dir.write("redis.pass", "s3cret-for-tests\n");
    let main = main.replace("redis.pass", &pass.display().to_string());
    let p = Proxy::start_opts(
        &upstreams,
        ProxyOpts {
            main_extra: &main,
            ..Default::default()
        },
    );
    let up = p.wait_for(Duration::from_secs(10), || store_up(&p.metrics(), 1));
    assert!(up.is_some(), "store never up:\n{}", p.log_text());
    let statuses: Vec<u16> = (0..3)
        .map(|_| get(p.http, HOST, "/", &[]).unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 429],
        "{}\n{}",
        p.log_text(),
        p.config_status()
    );
}

#[test]
fn the_4xx_limit_is_shared_too() {
    let redis = Redis::start_on(free_port());
    let backend = Backend::start_with("b", Vec::new(), 404);
    let upstreams = format!(
        "provider: file\nx4xx_limit: 3\n{HOST}:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        backend.addr
    );
    let main = format!(
        "limits_store:\n  url: \"redis://127.0.0.1:{}\"\n  key_prefix: \"x{}:\"\n",
        redis.port, redis.port
    );
    let start = |_: u8| {
        let p = Proxy::start_opts(
            &upstreams,
            ProxyOpts {
                main_extra: &main,
                ..Default::default()
            },
        );
        let up = p.wait_for(Duration::from_secs(10), || store_up(&p.metrics(), 1));
        assert!(up.is_some(), "store never up:\n{}", p.log_text());
        p
    };
    let (a, b) = (start(0), start(1));
    // alternating, 30 ms apart: alone, each process would let 4 answers of 404 through (8)
    let mut not_found = 0;
    for i in 0..16u32 {
        let target = if i % 2 == 0 { a.http } else { b.http };
        match get(target, HOST, "/", &[]).unwrap().status {
            404 => not_found += 1,
            429 => {}
            other => panic!("status {other}"),
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!((4..=6).contains(&not_found), "{not_found} answers of 404");
}

/// Whether the metrics text holds the sample `aralez_limits_store_up <value>` (a whole line: its
/// HELP text starts with "1 while", so a substring match would always find "up 1").
fn store_up(metrics: &str, value: u8) -> bool {
    metrics
        .lines()
        .any(|l| l == format!("aralez_limits_store_up {value}"))
}
