//! Slow, silent and greedy clients end to end: header and body timeouts (slowloris), request
//! buffering, body size limits, `Expect: 100-continue`, connection limits, and HTTP/2 clients that
//! open no stream or send a body that contradicts its `content-length`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{get, Proxy, ProxyOpts};
use crate::recording::Origin;

fn start(main_extra: &str) -> (Origin, Proxy) {
    let origin = Origin::start();
    let upstreams = format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        origin.addr
    );
    let proxy = Proxy::start_opts(
        &upstreams,
        ProxyOpts {
            main_extra,
            ..ProxyOpts::default()
        },
    );
    (origin, proxy)
}

/// Reads until the server closes or `limit` passes; returns what arrived and when it closed.
fn read_until_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (out, Some(start.elapsed())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (out, Some(start.elapsed())),
        }
    }
    (out, None)
}

#[test]
fn slowloris_sockets_are_closed_within_the_header_timeout_while_others_are_served() {
    let (_origin, proxy) = start("client_header_timeout: 2\n");
    const SLOW: usize = 200;
    const SILENT: usize = 50;
    let started = Instant::now();
    // (socket, sends a header line now and then); the others are silent
    let mut socks: Vec<(TcpStream, bool)> = (0..SLOW + SILENT)
        .map(|i| {
            let mut s = TcpStream::connect(proxy.http).unwrap();
            if i < SLOW {
                s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
            }
            s.set_nonblocking(true).unwrap();
            (s, i < SLOW)
        })
        .collect();
    // a normal client is served at once in the middle of the attack
    let t = Instant::now();
    let r = get(proxy.http, "a", "/normal", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // the slow ones keep sending a header line every 300 ms; none may outlive the timeout
    let mut closed_at: Vec<Option<Duration>> = vec![None; SLOW + SILENT];
    let mut answers_408 = 0;
    let mut buf = [0u8; 1024];
    while started.elapsed() < Duration::from_secs(6) && closed_at.iter().any(Option::is_none) {
        for (i, (s, talks)) in socks.iter_mut().enumerate() {
            if closed_at[i].is_some() {
                continue;
            }
            if *talks {
                let _ = s.write_all(b"X-Slow: 1\r\n");
            }
            match s.read(&mut buf) {
                Ok(0) => closed_at[i] = Some(started.elapsed()),
                Ok(n) => {
                    if buf[..n].starts_with(b"HTTP/1.1 408") {
                        answers_408 += 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => closed_at[i] = Some(started.elapsed()),
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let open = closed_at.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} slow sockets still open after 6 s");
    let earliest = closed_at.iter().flatten().min().copied().unwrap();
    let latest = closed_at.iter().flatten().max().copied().unwrap();
    assert!(
        earliest >= Duration::from_millis(1500),
        "closed too early: {earliest:?}"
    );
    assert!(
        latest <= Duration::from_millis(4500),
        "closed too late: {latest:?}"
    );
    assert!(answers_408 > 0, "the slow clients were told 408");
    assert!(proxy
        .metrics()
        .contains("aralez_downstream_refused_total{reason=\"header_timeout\"}"));
}

#[test]
fn request_bodies_are_buffered_validated_and_bounded() {
    let (origin, proxy) = start("client_body_timeout: 1\nclient_max_body_size: 2000\n");
    // buffering: the origin sees nothing until the whole body is there
    let mut s = TcpStream::connect(proxy.http).unwrap();
    s.write_all(b"POST /buf HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        origin.received_len(),
        0,
        "the head went upstream before the body"
    );
    s.write_all(b"6\r\n world\r\n0\r\n\r\n").unwrap();
    let (answer, _) = read_until_close(&mut s, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("origin saw POST /buf HTTP/1.1"), "{text}");

    // a body that stops arriving: 408 after client_body_timeout, nothing forwarded
    let before = origin.received_len();
    let mut s = TcpStream::connect(proxy.http).unwrap();
    s.write_all(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(5));
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let closed = closed.expect("closed");
    assert!(
        closed >= Duration::from_millis(800) && closed < Duration::from_secs(4),
        "{closed:?}"
    );
    assert_eq!(origin.received_len(), before);

    // too large: 413 before anything is forwarded, declared or chunked
    for req in [
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 2001\r\n\r\n".to_string(),
        format!(
            "POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{}\r\n1\r\nx\r\n0\r\n\r\n",
            "a".repeat(2000)
        ),
    ] {
        let mut s = TcpStream::connect(proxy.http).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let (answer, _) = read_until_close(&mut s, Duration::from_secs(5));
        assert!(answer.starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(origin.received_len(), before);

    // Expect: 100-continue: the gate asks for the body it buffers
    let mut s = TcpStream::connect(proxy.http).unwrap();
    s.write_all(b"POST /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut first = [0u8; 25];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"abc").unwrap();
    let (answer, _) = read_until_close(&mut s, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("origin saw POST /expect HTTP/1.1 body=3"),
        "{text}"
    );
}

fn open_idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
}

fn refused_with_503(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let (answer, _) = read_until_close(&mut s, Duration::from_secs(3));
    let text = String::from_utf8_lossy(&answer);
    text.starts_with("HTTP/1.1 503") && text.contains("too many connections")
}

#[test]
fn connection_limits_refuse_cleanly_and_free_their_places() {
    let (_o1, per_ip) = start("max_connections_per_ip: 3\n");
    let held = open_idle(per_ip.http, 3);
    std::thread::sleep(Duration::from_millis(200));
    assert!(refused_with_503(per_ip.http));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(per_ip.http, "a", "/", &[]).unwrap().status, 200);
    assert!(per_ip
        .metrics()
        .contains("aralez_downstream_refused_total{reason=\"max_connections_per_ip\"} 1"));

    let (_o2, total) = start("max_connections: 2\n");
    let held = open_idle(total.http, 2);
    std::thread::sleep(Duration::from_millis(200));
    assert!(refused_with_503(total.http));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(total.http, "a", "/", &[]).unwrap().status, 200);
}

fn h2_client(port: u16, mode: &str) -> String {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/helpers/h2_client.py"
        ))
        .arg(port.to_string())
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn h2_bodies_that_contradict_their_length_never_reach_the_origin() {
    let (origin, proxy) = start("client_max_body_size: 500\n");
    let port = proxy.http.port();
    assert_eq!(h2_client(port, "ok"), "status=200");
    // CONNECT gets our own 405 (no Server field naming pingora)
    assert_eq!(h2_client(port, "connect"), "status=405");
    let after_ok = origin.received_len();
    assert!(after_ok > 0);
    for (mode, want) in [
        ("cl_zero", "reset"),
        ("cl_short", "reset"),
        ("big", "status=413"),
    ] {
        let got = h2_client(port, mode);
        assert!(
            got.starts_with(want) || got.starts_with("status=400"),
            "{mode}: {got}"
        );
        assert_ne!(got, "status=200", "{mode}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        origin.received_len(),
        after_ok,
        "{}",
        String::from_utf8_lossy(&origin.received())
    );
}

#[test]
fn an_h2_connection_without_a_stream_gets_goaway_and_is_closed() {
    let (_origin, proxy) = start("client_header_timeout: 1\n");
    let mut s = TcpStream::connect(proxy.http).unwrap();
    // preface and an empty SETTINGS frame, then silence
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let (bytes, closed) = read_until_close(&mut s, Duration::from_secs(6));
    let closed = closed.expect("the connection was not closed");
    assert!(closed >= Duration::from_millis(800), "{closed:?}");
    // walk the frames: one of them is a GOAWAY (type 7)
    let mut at = 0;
    let mut goaway = false;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16)
            | (usize::from(bytes[at + 1]) << 8)
            | usize::from(bytes[at + 2]);
        goaway |= bytes[at + 3] == 7;
        at += 9 + len;
    }
    assert!(goaway, "no GOAWAY in {bytes:?}");
    // a silent plain connection is closed too
    let mut s = TcpStream::connect(proxy.http).unwrap();
    let (_, closed) = read_until_close(&mut s, Duration::from_secs(4));
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(3)),
        "{closed:?}"
    );
}
