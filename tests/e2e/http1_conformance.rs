//! HTTP/1.1 strictness end to end: a corpus of malformed and ambiguous requests (RFC 9112
//! sections 2 to 7, RFC 9110, and the published request-smuggling and path-confusion classes)
//! sent over raw sockets to the real binary, in front of an origin that records every byte it
//! receives. Every refusal must be Aralez's own answer with the RFC's status, and nothing of a
//! refused request may reach the origin.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{Proxy, ProxyOpts};
use crate::recording::Origin;

fn upstreams(origin: &Origin) -> String {
    format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{a}\"]\n    \"/private\":\n      authorization:\n        type: apikey\n        creds: \"0123456789abcdef0123\"\n      servers: [\"{a}\"]\n",
        a = origin.addr
    )
}

fn start(main_extra: &str) -> (Origin, Proxy) {
    let origin = Origin::start();
    let proxy = Proxy::start_opts(
        &upstreams(&origin),
        ProxyOpts {
            main_extra,
            ..ProxyOpts::default()
        },
    );
    (origin, proxy)
}

/// Sends `request` on a new connection; returns everything answered until the server closes
/// (or 3 s pass).
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if complete(&out) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    out
}

/// A whole response with a `Content-Length` body has arrived.
fn complete(out: &[u8]) -> bool {
    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| out.len() >= end + 4 + n)
}

fn status_of(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// (name, request, expected status)
const REFUSED: &[(&str, &str, u16)] = &[
    // request line
    ("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    ("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    ("HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("no version", "GET /\r\nHost: a\r\n\r\n", 400),
    ("control byte in target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("fragment in target", "GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    ("TRACE", "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
    ("authority-form", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("asterisk outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("absolute-form other host", "GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    // line endings
    ("bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare LF in a field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    ("bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    // fields
    ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    ("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
    ("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
    ("empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400),
    // Host
    ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("Host with markup", "GET / HTTP/1.1\r\nHost: <script>\r\n\r\n", 400),
    ("Host with path", "GET / HTTP/1.1\r\nHost: evil.example/path\r\n\r\n", 400),
    ("Host with bad port", "GET / HTTP/1.1\r\nHost: localhost:abc\r\n\r\n", 400),
    ("Host open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    ("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
    // framing
    ("CL twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    ("CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    ("CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
    ("CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400),
    ("CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\nx", 400),
    ("TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE chunked, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE unknown", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE with space in name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
    // chunked bodies
    ("chunk 0x prefix", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk leading space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5zz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk -0", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-0\r\n\r\n", 400),
    ("chunk overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext bare CR", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext control", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk data too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello world\r\n0\r\n\r\n", 400),
    ("chunk data bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
    ("bad trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", 400),
    ("valid chunks then bad", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\nzz\r\n", 400),
    // paths
    ("encoded slash dot-dot", "GET /x/..%2fprivate HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("encoded leading slash", "GET /%2fprivate HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("encoded trailing slash", "GET /private%2f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("encoded backslash", "GET /x%5c..%5cprivate HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("encoded NUL", "GET /private%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("bad escape", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("matrix parameter", "GET /private;x HTTP/1.1\r\nHost: a\r\n\r\n", 401),
    ("dot-dot-semicolon", "GET /x/..;/private HTTP/1.1\r\nHost: a\r\n\r\n", 401),
    ("escape above root", "GET /%2e%2e/private HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    // sizes and expectations
    ("long target", "LONG_TARGET", 414),
    ("huge head", "HUGE_HEAD", 431),
    ("unknown expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
    ("broken h2 preface", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 0),
];

fn expand(req: &str) -> Vec<u8> {
    match req {
        "LONG_TARGET" => {
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20 * 1024)).into_bytes()
        }
        "HUGE_HEAD" => format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(40 * 1024)
        )
        .into_bytes(),
        _ => req.as_bytes().to_vec(),
    }
}

#[test]
fn malformed_requests_are_refused_and_never_reach_the_origin() {
    let (origin, proxy) = start("");
    let mut failures = Vec::new();
    for (name, req, want) in REFUSED {
        let before = origin.received_len();
        let answer = exchange(proxy.http, &expand(req));
        let got = status_of(&answer);
        let text = String::from_utf8_lossy(&answer);
        if got != *want {
            failures.push(format!("{name}: status {got}, want {want}: {text:?}"));
        }
        if text.to_ascii_lowercase().contains("pingora") {
            failures.push(format!("{name}: the answer names pingora: {text:?}"));
        }
        if *want != 401 && origin.received_len() != before {
            failures.push(format!("{name}: bytes reached the origin"));
        }
        if *want == 0 && answer.starts_with(b"HTTP/") {
            failures.push(format!("{name}: an HTTP/1.1 answer to an HTTP/2 preface"));
        }
    }
    // the 401s were refused by auth: nothing of them reached the origin either
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        origin.received_len(),
        0,
        "{:?}",
        String::from_utf8_lossy(&origin.received())
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn well_formed_requests_pass_unchanged() {
    let (_origin, proxy) = start("");
    for (req, line) in [
        ("GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1"),
        ("GET /a?x=%2F HTTP/1.1\r\nHost: a\r\n\r\n", "GET /a?x=%2F HTTP/1.1"),
        (
            "GET http://a.example/abs HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "GET /abs HTTP/1.1",
        ),
        (
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"v\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            "POST /c HTTP/1.1",
        ),
        ("\r\nGET /lead HTTP/1.1\r\nHost: a\r\n\r\n", "GET /lead HTTP/1.1"),
    ] {
        let answer = exchange(proxy.http, req.as_bytes());
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), 200, "{req:?}: {text}");
        assert!(text.contains(&format!("origin saw {line}")), "{req:?}: {text}");
    }
}

#[test]
fn a_request_shorter_than_the_h2_preface_is_answered_at_once() {
    let (_origin, proxy) = start("");
    let started = Instant::now();
    let answer = exchange(proxy.http, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        status_of(&answer),
        200,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (origin, proxy) = start("");
    let mut s = TcpStream::connect(proxy.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    let one = text.find("origin saw GET /one").expect(&text);
    let two = text
        .find("origin saw POST /two HTTP/1.1 body=3")
        .expect(&text);
    let three = text.find("origin saw GET /three").expect(&text);
    assert!(one < two && two < three, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    assert!(origin.received_len() > 0);
}

#[test]
fn escaped_slashes_keep_forwards_them() {
    let (_origin, proxy) = start("escaped_slashes: keep\n");
    let answer = exchange(proxy.http, b"GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("origin saw GET /a%2Fb HTTP/1.1"), "{text}");
    // control bytes stay refused whatever the setting
    let answer = exchange(proxy.http, b"GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status_of(&answer), 400);
}

#[test]
fn hop_by_hop_fields_stay_on_their_hop() {
    let (origin, proxy) = start("");
    let answer = exchange(
        proxy.http,
        b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\r\n",
    );
    assert_eq!(
        status_of(&answer),
        200,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let seen = String::from_utf8_lossy(&origin.received()).to_ascii_lowercase();
    for field in [
        "x-secret",
        "keep-alive: timeout",
        "proxy-connection",
        "te: trailers",
    ] {
        assert!(!seen.contains(field), "{field} reached the origin: {seen}");
    }
    // a Connection field that nominates a field the proxy itself sets is refused
    let before = origin.received_len();
    let answer = exchange(
        proxy.http,
        b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close, X-Forwarded-For\r\n\r\n",
    );
    assert_eq!(
        status_of(&answer),
        400,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(origin.received_len(), before);
}
