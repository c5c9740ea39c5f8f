//! End to end: process basics (pid file, graceful SIGTERM, threads) and the admin listener.

use std::time::{Duration, Instant};

use crate::common::{get, raw, Backend, Proxy, ProxyOpts};

fn upstreams(b: &Backend) -> String {
    format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        b.addr
    )
}

#[test]
fn pid_file_and_graceful_sigterm() {
    let b = Backend::start("slow");
    let mut proxy = Proxy::start_opts(
        &upstreams(&b),
        ProxyOpts {
            main_extra: "pid_file: aralez.pid\nthreads: 2\n",
            ..Default::default()
        },
    );
    let pid_path = proxy.dir.path().join("aralez.pid");
    let pid = std::fs::read_to_string(&pid_path).unwrap();
    assert_eq!(pid.trim(), proxy.child.id().to_string());

    // a request in flight when SIGTERM arrives still completes
    let http = proxy.http;
    let inflight = std::thread::spawn(move || get(http, "x", "/?delay_ms=700", &[]));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let status = proxy.terminate().expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(12));
    let r = inflight.join().unwrap().unwrap();
    assert_eq!(r.status, 200, "in-flight request drained");
    assert!(!pid_path.exists(), "pid file removed on exit");
}

#[test]
fn admin_endpoints_need_the_master_key() {
    let b = Backend::start("a");
    let key = "k3y-that-is-long-enough-for-the-lint-0123456789";
    let proxy = Proxy::start_opts(
        &upstreams(&b),
        ProxyOpts {
            main_extra: &format!("master_key: \"{key}\"\n"),
            ..Default::default()
        },
    );
    assert_eq!(get(proxy.admin, "a", "/livez", &[]).unwrap().status, 200);
    assert_eq!(get(proxy.admin, "a", "/readyz", &[]).unwrap().status, 200);
    let r = get(proxy.admin, "a", "/config/status", &[]).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        get(
            proxy.admin,
            "a",
            "/config/status",
            &[("Authorization", "Bearer wrong")]
        )
        .unwrap()
        .status,
        401
    );
    assert_eq!(
        get(proxy.admin, "a", "/config/status?key=wrong", &[])
            .unwrap()
            .status,
        401
    );
    let bearer = format!("Bearer {key}");
    let r = get(
        proxy.admin,
        "a",
        "/config/status",
        &[("Authorization", &bearer)],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["active"]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(
        get(proxy.admin, "a", &format!("/config/status?key={key}"), &[])
            .unwrap()
            .status,
        200
    );
    assert_eq!(get(proxy.admin, "a", "/nope", &[]).unwrap().status, 404);
}

#[test]
fn oversized_request_heads_get_431() {
    let b = Backend::start("a");
    let proxy = Proxy::start_opts(
        &upstreams(&b),
        ProxyOpts {
            main_extra: "max_request_header_bytes: 2048\n",
            ..Default::default()
        },
    );
    let big = "v".repeat(4000);
    let r = get(proxy.http, "x", "/", &[("X-Big", &big)]).unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(b.hits(), 0);
    assert_eq!(get(proxy.http, "x", "/", &[]).unwrap().status, 200);
}

#[test]
fn trusted_proxies_extend_the_forwarded_chain() {
    let b = Backend::start("a");
    let proxy = Proxy::start_opts(
        &upstreams(&b),
        ProxyOpts {
            main_extra: "trusted_proxies: [\"127.0.0.0/8\"]\n",
            ..Default::default()
        },
    );
    let r = get(proxy.http, "x", "/", &[("X-Forwarded-For", "203.0.113.7")]).unwrap();
    assert_eq!(
        r.echo()["headers"]["x-forwarded-for"],
        "203.0.113.7, 127.0.0.1"
    );
}

#[test]
fn pipelined_and_malformed_requests_do_not_desync() {
    let b = Backend::start("a");
    let proxy = Proxy::start(&upstreams(&b));
    // conflicting framing: Content-Length with Transfer-Encoding is refused, not smuggled
    let r = raw(
        proxy.http,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    if let Ok(r) = r {
        assert!(
            r.status == 400 || r.echo()["path"] != "/smuggled",
            "{:?}",
            r.status
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !b.paths.lock().unwrap().iter().any(|p| p == "/smuggled"),
        "request smuggled"
    );
    // invalid header bytes: 400
    let r = raw(
        proxy.http,
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn metrics_move_with_traffic_and_reloads() {
    let b = Backend::start("a");
    let proxy = Proxy::start(&upstreams(&b));
    for _ in 0..3 {
        assert_eq!(
            get(proxy.http, "x", "/secret-path?token=abc", &[])
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(get(proxy.http, "x", "/../escape", &[]).unwrap().status, 400);
    proxy.write_upstreams("provider: file\nbroken: [\n");
    let text = || get(proxy.admin, "a", "/metrics", &[]).unwrap().text();
    let seen = proxy.wait_for(Duration::from_secs(3), || {
        text().contains("aralez_config_reloads_total{result=\"rejected\",trigger=\"file\"} 1")
    });
    assert!(seen.is_some(), "{}", text());
    let t = text();
    assert!(
        t.contains("aralez_http_requests_total{code=\"200\",method=\"GET\",route=\"DEFAULT/\"} 3"),
        "{t}"
    );
    assert!(
        t.contains("aralez_http_requests_total{code=\"400\",method=\"GET\",route=\"none\"} 1"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "aralez_upstream_requests_total{{backend=\"{}\",outcome=\"ok\",route=\"DEFAULT/\"}} 3",
            b.addr
        )),
        "{t}"
    );
    assert!(t.contains("aralez_config_last_reload_successful 0"), "{t}");
    assert!(
        t.contains(&format!(
            "aralez_config_info{{hash=\"{}\"}} 1",
            proxy.active_hash()
        )),
        "{t}"
    );
    assert!(t.contains("aralez_build_info{version="), "{t}");
    assert!(
        t.contains("aralez_http_request_duration_seconds_bucket"),
        "{t}"
    );
    // labels never carry raw paths, query strings or client addresses
    assert!(
        !t.contains("secret-path") && !t.contains("token") && !t.contains("127.0.0.1\""),
        "{t}"
    );
}

#[test]
fn idle_client_connections_are_closed_after_downstream_idle_timeout() {
    use std::io::{Read, Write};
    let b = Backend::start("a");
    let proxy = Proxy::start_opts(
        &upstreams(&b),
        ProxyOpts {
            main_extra: "downstream_idle_timeout: 1\n",
            ..Default::default()
        },
    );
    let mut s = std::net::TcpStream::connect(proxy.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    assert_eq!(
        crate::common::read_response(&mut r, false).unwrap().status,
        200
    );
    let start = Instant::now();
    let mut buf = [0u8; 1];
    let n = r.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes the idle connection");
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(4),
        "{idle:?}"
    );
}

#[test]
fn a_pid_file_that_is_a_symlink_is_refused() {
    let b = Backend::start("a");
    let dir = crate::common::TempDir::new("pidlink");
    std::os::unix::fs::symlink("/tmp/aralez-victim", dir.path().join("aralez.pid")).unwrap();
    let main = format!(
        "proxy_address_http: \"127.0.0.1:{}\"\nconfig_address: \"127.0.0.1:{}\"\nupstreams_conf: up.yaml\npid_file: aralez.pid\n",
        crate::common::free_port(),
        crate::common::free_port()
    );
    dir.write("up.yaml", &upstreams(&b));
    dir.write("main.yaml", &main);
    let (code, _, err) = crate::common::run_cli(&["-c", "main.yaml"], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert!(!std::path::Path::new("/tmp/aralez-victim").exists());
}

/// Starts aralez with `setting` on a port another process already listens on: it must exit
/// non-zero before declaring readiness, naming the address and the setting.
fn busy_port_refuses_start(setting: &str) {
    let b = Backend::start("a");
    let dir = crate::common::TempDir::new("busyport");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let free = || format!("127.0.0.1:{}", crate::common::free_port());
    let mut addrs = std::collections::BTreeMap::from([
        ("proxy_address_http", free()),
        ("config_address", free()),
        ("file_server_address", free()),
    ]);
    addrs.insert(setting, busy_addr.to_string());
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    let mut main = format!(
        "upstreams_conf: up.yaml\nfile_server_folder: www\nupgrade_sock: \"{}\"\n",
        dir.path().join("upgrade.sock").display()
    );
    for (k, v) in &addrs {
        main.push_str(&format!("{k}: \"{v}\"\n"));
    }
    dir.write("up.yaml", &upstreams(&b));
    dir.write("main.yaml", &main);
    let started = Instant::now();
    let out =
        crate::common::run_cli_bounded(&["-c", "main.yaml"], dir.path(), Duration::from_secs(8));
    let (code, _, err) = out.unwrap_or_else(|| panic!("{setting}: still running with a busy port"));
    assert_ne!(code, 0, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.contains(&format!("cannot listen on {busy_addr} ({setting})")),
        "{err}"
    );
    drop(busy);
}

#[test]
fn a_busy_proxy_port_refuses_the_start() {
    busy_port_refuses_start("proxy_address_http");
}

#[test]
fn a_busy_admin_or_file_server_port_refuses_the_start() {
    busy_port_refuses_start("config_address");
    busy_port_refuses_start("file_server_address");
}

#[test]
fn pid_file_and_error_log_errors_name_the_path() {
    let b = Backend::start("a");
    let dir = crate::common::TempDir::new("pathmsg");
    dir.write("up.yaml", &upstreams(&b));
    let base = format!(
        "proxy_address_http: \"127.0.0.1:{}\"\nconfig_address: \"127.0.0.1:{}\"\nupstreams_conf: up.yaml\n",
        crate::common::free_port(),
        crate::common::free_port()
    );
    dir.write(
        "main.yaml",
        &format!("{base}pid_file: no-such-dir/aralez.pid\n"),
    );
    let out =
        crate::common::run_cli_bounded(&["-c", "main.yaml"], dir.path(), Duration::from_secs(10));
    let (code, _, err) = out.expect("exits");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no-such-dir/aralez.pid"), "{err}");

    dir.write(
        "main.yaml",
        &format!("{base}error_log: no-such-dir/aralez.log\n"),
    );
    let out =
        crate::common::run_cli_bounded(&["-c", "main.yaml"], dir.path(), Duration::from_secs(10));
    let (code, _, err) = out.expect("exits");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot open error_log") && err.contains("no-such-dir/aralez.log"),
        "{err}"
    );
}

#[test]
fn daemon_forks_writes_the_pid_file_and_logs_to_error_log() {
    let dir = crate::common::TempDir::new("daemon");
    let backend = Backend::start("b1");
    let (http, admin) = (crate::common::free_port(), crate::common::free_port());
    dir.write("upstreams.yaml", &upstreams(&backend));
    let main = dir.write(
        "main.yaml",
        &format!(
            "proxy_address_http: \"127.0.0.1:{http}\"\nconfig_address: \"127.0.0.1:{admin}\"\nupstreams_conf: upstreams.yaml\npid_file: aralez.pid\nerror_log: aralez.log\nupgrade_sock: \"{}\"\n",
            dir.path().join("upgrade.sock").display()
        ),
    );
    let launched = crate::common::run_cli_bounded(
        &["-c", main.to_str().unwrap(), "-d"],
        dir.path(),
        Duration::from_secs(10),
    );
    let (code, _, stderr) = launched.expect("the launcher returns");
    assert_eq!(code, 0, "{stderr}");
    let pid_file = dir.path().join("aralez.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(25));
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_ne!(
        ppid,
        std::process::id(),
        "the daemon is detached from its launcher"
    );
    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    let ready = Instant::now() + Duration::from_secs(10);
    while get(admin_addr, "admin", "/readyz", &[]).map_or(true, |r| r.status != 200) {
        assert!(Instant::now() < ready, "the daemon never became ready");
        std::thread::sleep(Duration::from_millis(25));
    }
    let r = get(format!("127.0.0.1:{http}").parse().unwrap(), "x", "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    let log = std::fs::read_to_string(dir.path().join("aralez.log")).unwrap();
    assert!(log.contains("generation"), "{log}");
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let gone = Instant::now() + Duration::from_secs(15);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < gone, "the daemon did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(!pid_file.exists(), "the pid file is removed on exit");
}

#[test]
fn an_upgrade_sock_path_too_long_for_a_unix_socket_is_refused() {
    let dir = crate::common::TempDir::new("longsock");
    dir.write("upstreams.yaml", "provider: file\n");
    let long = format!("/tmp/{}/upgrade.sock", "x".repeat(120));
    let main = dir.write(
        "main.yaml",
        &format!(
            "proxy_address_http: \"127.0.0.1:{}\"\nconfig_address: \"127.0.0.1:{}\"\nupstreams_conf: upstreams.yaml\nupgrade_sock: \"{long}\"\n",
            crate::common::free_port(),
            crate::common::free_port()
        ),
    );
    let (code, _, stderr) = crate::common::run_cli_bounded(
        &["-c", main.to_str().unwrap()],
        dir.path(),
        Duration::from_secs(10),
    )
    .expect("exits");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is longer than 107 bytes, the most a Unix socket path holds"),
        "{stderr}"
    );
}
