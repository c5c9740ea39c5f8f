//! End to end: systemd's notify protocol, against a datagram socket the test listens on as
//! `NOTIFY_SOCKET`: READY=1 once the proxy serves, RELOADING=1 (with MONOTONIC_USEC) and READY=1
//! around a SIGHUP reload, STOPPING=1 when SIGTERM starts the graceful shutdown.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::{get, Backend, Proxy, ProxyOpts, TempDir};

/// The next datagram, within `limit`.
fn next(socket: &UnixDatagram, limit: Duration) -> Option<String> {
    socket.set_read_timeout(Some(limit)).ok()?;
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ready_reloading_and_stopping_are_sent_to_notify_socket() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let backend = Backend::start("b1");
    let path_text = path.display().to_string();
    let mut proxy = Proxy::start_opts(
        &format!(
            "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
            backend.addr
        ),
        ProxyOpts {
            env: &[("NOTIFY_SOCKET", path_text.as_str())],
            ..Default::default()
        },
    );
    assert_eq!(
        next(&socket, Duration::from_secs(10)).as_deref(),
        Some("READY=1"),
        "{}",
        proxy.log_text()
    );
    assert_eq!(get(proxy.http, "x", "/", &[]).unwrap().status, 200);

    let before = Instant::now();
    proxy.sighup();
    let reloading = next(&socket, Duration::from_secs(10)).unwrap_or_default();
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading}");
    let usec: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(usec > 0, "{reloading}");
    assert_eq!(
        next(&socket, Duration::from_secs(10)).as_deref(),
        Some("READY=1")
    );
    assert!(before.elapsed() < Duration::from_secs(10));
    assert_eq!(proxy.config_status()["active"]["trigger"], "sighup");

    assert!(proxy.terminate().is_some());
    assert_eq!(
        next(&socket, Duration::from_secs(10)).as_deref(),
        Some("STOPPING=1")
    );
}

#[test]
fn the_unit_file_verifies() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the unit is not verified here");
        return;
    };
    assert!(out.status.success());
    let dir = TempDir::new("unit");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/systemd/aralez.service"
    ))
    .unwrap()
    .replace(
        "/usr/local/bin/aralez",
        &crate::common::aralez_bin().display().to_string(),
    );
    let path = dir.write("aralez.service", &unit);
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // the hardening keeps the exposure score low (0 best, 10 worst)
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for aralez.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(10.0);
    assert!(score <= 3.0, "{text}");
}
