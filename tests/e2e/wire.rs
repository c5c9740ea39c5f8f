//! The bytes on the wire of what Aralez adds to a request and a response: the header names keep
//! the spelling they always had when their spelling is made once per generation instead of on
//! every request (see docs/performance.md), and a keep-alive connection still carries request
//! after request through the gate's read-ahead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::Proxy;
use crate::recording::Origin;

fn upstreams(origin: &Origin) -> String {
    format!(
        r#"provider: file
DEFAULT:
  paths:
    "/":
      client_headers:
        - "X-Proxy-From:Aralez"
        - "Cache-Control:no-store"
      headers:
        - "X-Served-By:aralez-test"
        - "Accept-Language:de"
      servers: ["{a}"]
"#,
        a = origin.addr
    )
}

/// Reads one response (head and `Content-Length` body) from `s`, within 5 s.
fn read_one(s: &mut TcpStream) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("no complete response: {:?}", String::from_utf8_lossy(&got));
}

#[test]
fn added_headers_keep_their_wire_spelling_over_keepalive_requests() {
    let origin = Origin::start();
    let proxy = Proxy::start(&upstreams(&origin));
    let mut s = TcpStream::connect(proxy.http).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for i in 0..3 {
        let req = format!("GET /r{i} HTTP/1.1\r\nHost: wire.test\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let resp = read_one(&mut s);
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        // as pingora spells them: this standard name in title case, the others in lower case
        assert!(resp.contains("\r\nx-proxy-from: Aralez\r\n"), "{resp}");
        assert!(resp.contains("\r\nCache-Control: no-store\r\n"), "{resp}");
    }
    let sent = String::from_utf8_lossy(&origin.received()).to_string();
    for i in 0..3 {
        let start = sent.find(&format!("GET /r{i} HTTP/1.1\r\n")).expect(&sent);
        let head = &sent[start..start + sent[start..].find("\r\n\r\n").expect(&sent)];
        for line in [
            "\r\nx-served-by: aralez-test",
            "\r\naccept-language: de",
            "\r\nvia: 1.1 aralez-",
            "\r\nx-forwarded-for: 127.0.0.1",
            "\r\nx-forwarded-proto: http",
            "\r\nx-forwarded-host: wire.test",
        ] {
            assert!(head.contains(line), "{line:?} missing from {head:?}");
        }
    }
}
