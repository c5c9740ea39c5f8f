//! Tests of the static file server (`aralez::files`): the request -> decision logic against a
//! real temporary folder (traversal, dotfiles, symlinks, directories, conditionals, ranges), and a
//! few requests over TCP to the real pingora service (HEAD, streaming, keep-alive, disconnects).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use aralez::files::{file_service, Decision, FileServer};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// A unique scratch folder: `target/tmp/aralez-files-<pid>-<n>/` with `www/` (the root) and
/// `outside/` (a sibling that must never be served).
struct Fixture {
    base: PathBuf,
    server: FileServer,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

const HELLO: &[u8] = b"hello world\n";

fn big_content() -> Vec<u8> {
    // 300 KiB + 7: several 64 KiB chunks and a ragged tail.
    (0..300 * 1024 + 7).map(|i| (i % 251) as u8).collect()
}

fn fixture() -> Fixture {
    static N: AtomicU32 = AtomicU32::new(0);
    // under the target folder: the live server's fixture is a static, never dropped
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "aralez-files-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&base);
    let www = base.join("www");
    let mk = |p: &str| std::fs::create_dir_all(www.join(p)).unwrap();
    let put = |p: &str, data: &[u8]| std::fs::write(www.join(p), data).unwrap();
    let link = |target: &str, p: &str| std::os::unix::fs::symlink(target, www.join(p)).unwrap();

    mk("");
    put("hello.txt", HELLO);
    put("page.html", b"<p>page</p>");
    put("empty.txt", b"");
    put("big.bin", &big_content());
    put("style.CSS", b"body{}");
    put("index.html", b"root index");
    mk("sub");
    put("sub/index.html", b"<h1>sub</h1>");
    put("sub/data.json", b"{}");
    mk("noindex");
    put("noindex/x.txt", b"x");
    mk("evil.com");
    put("evil.com/index.html", b"evil dir");
    mk("with space");
    put("with space/index.html", b"spaced");
    put(".env", b"SECRET=1");
    mk(".git");
    put(".git/config", b"[core]");
    mk(".well-known");
    put(".well-known/security.txt", b"Contact: x");
    put(".well-known/.hidden", b"no");
    // Symlinks out of the root, to hidden files, and within the root.
    link("/etc", "link");
    link("/etc/passwd", "passwd_link");
    link("../outside", "out");
    link("../www2", "sibling");
    link(".env", "dotlink");
    link(".git", "gitlink");
    link("hello.txt", "alias.txt");
    mk("idxlink");
    link("/etc/passwd", "idxlink/index.html");
    mk("idxdir");
    mk("idxdir/index.html");

    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/secret.txt"), b"outside secret").unwrap();
    // A sibling whose name shares the root's prefix ("www" vs "www2").
    std::fs::create_dir_all(base.join("www2")).unwrap();
    std::fs::write(base.join("www2/x.txt"), b"prefix sibling").unwrap();

    let server = FileServer::new(&www).unwrap();
    Fixture { base, server }
}

impl Fixture {
    fn get(&self, path: &str) -> Decision {
        self.req(Method::GET, path, &[])
    }

    fn req(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Decision {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        self.server.plan(&method, path, query, &map)
    }
}

fn body(d: Decision) -> Vec<u8> {
    d.read_body().unwrap()
}

#[test]
fn new_refuses_missing_or_non_directory_roots() {
    let f = fixture();
    assert!(FileServer::new(&f.base.join("nope")).is_err());
    assert!(FileServer::new(&f.base.join("www/hello.txt")).is_err());
    // The root is stored canonical.
    let s = FileServer::new(&f.base.join("www/sub/..")).unwrap();
    assert_eq!(s.root(), std::fs::canonicalize(f.base.join("www")).unwrap());
}

#[test]
fn traversal_never_leaves_the_root() {
    let f = fixture();
    let root = f.server.root().to_path_buf();
    let attempts = [
        "/../etc/passwd",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/.%2e/.%2e/etc/passwd",
        "/..%2fetc/passwd",
        "/..%2Fetc%2Fpasswd",
        "/..%5cetc/passwd",
        "/..\\etc\\passwd",
        "/sub/../../x",
        "/sub/../../outside/secret.txt",
        "/sub/%2e%2e/%2e%2e/outside/secret.txt",
        "/%252e%252e/outside/secret.txt",
        "/link/passwd",
        "/link/",
        "/link",
        "/passwd_link",
        "/out/secret.txt",
        "/sibling/x.txt",
        "/idxlink/",
        "/idxlink",
        "/%00",
        "/hello.txt%00.html",
        "/etc/passwd",
        "//etc/passwd",
        "///../etc/passwd",
        "/./hello.txt",
        "/%2e/hello.txt",
        "/sub/./index.html",
        "/%",
        "/%zz",
        "/%C0%AE%C0%AE/etc/passwd",
        "/sub%2f..%2f..%2fetc/passwd",
        "../etc/passwd",
        "etc/passwd",
        "",
    ];
    let passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    for path in attempts {
        for method in [Method::GET, Method::HEAD] {
            let d = f.req(method.clone(), path, &[]);
            let status = d.status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
                "{method} {path:?} gave {status}"
            );
            assert!(
                d.served_path().is_none(),
                "{path:?} served {:?}",
                d.served_path()
            );
            let b = body(d);
            assert!(
                passwd.is_empty() || b != passwd,
                "{path:?} leaked /etc/passwd"
            );
            assert!(!String::from_utf8_lossy(&b).contains("secret"), "{path:?}");
        }
    }
    // Whatever is served is under the root.
    for path in [
        "/hello.txt",
        "/alias.txt",
        "/sub/",
        "/.well-known/security.txt",
    ] {
        let d = f.get(path);
        assert_eq!(d.status(), StatusCode::OK, "{path}");
        assert!(d.served_path().unwrap().starts_with(&root), "{path}");
    }
}

#[test]
fn bad_paths_are_400() {
    let f = fixture();
    for path in [
        "/../etc/passwd",
        "/a%2fb",
        "/a%5Cb",
        "/%00",
        "/%",
        "/a\\b",
        "/%ff",
    ] {
        assert_eq!(f.get(path).status(), StatusCode::BAD_REQUEST, "{path}");
    }
}

#[test]
fn dotfiles_are_hidden_except_well_known() {
    let f = fixture();
    for path in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/%2eenv",
        "/dotlink",
        "/gitlink/config",
        "/.well-known/.hidden",
        "/sub/.well-known/x",
    ] {
        assert_eq!(f.get(path).status(), StatusCode::NOT_FOUND, "{path}");
    }
    let d = f.get("/.well-known/security.txt");
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(body(d), b"Contact: x");
}

#[test]
fn plain_get_and_head() {
    let f = fixture();
    let d = f.get("/hello.txt?cache=bust");
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(d.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(d.header("content-length"), Some("12"));
    assert_eq!(d.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(d.header("accept-ranges"), Some("bytes"));
    assert!(d.header("etag").unwrap().starts_with("W/\""));
    assert!(d.header("last-modified").unwrap().ends_with(" GMT"));
    assert!(d.header("server").is_none());
    assert_eq!(d.file_range(), Some((0, 12)));
    assert_eq!(body(d), HELLO);

    let h = f.req(Method::HEAD, "/hello.txt", &[]);
    assert_eq!(h.status(), StatusCode::OK);
    assert_eq!(h.header("content-length"), Some("12"));
    assert_eq!(h.file_range(), None);
    assert!(body(h).is_empty());

    let e = f.get("/empty.txt");
    assert_eq!(e.status(), StatusCode::OK);
    assert_eq!(e.header("content-length"), Some("0"));
    assert!(body(e).is_empty());

    assert_eq!(
        f.get("/style.CSS").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        f.get("/sub/data.json").header("content-type"),
        Some("application/json")
    );
    assert_eq!(
        f.get("/big.bin").header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(body(f.get("/big.bin")), big_content());
    assert_eq!(f.get("/missing.txt").status(), StatusCode::NOT_FOUND);
    assert_eq!(f.get("/hello.txt/").status(), StatusCode::NOT_FOUND);
}

#[test]
fn other_methods_are_405() {
    let f = fixture();
    for m in [
        "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "FOO",
    ] {
        let d = f.req(Method::from_bytes(m.as_bytes()).unwrap(), "/hello.txt", &[]);
        assert_eq!(d.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(d.header("allow"), Some("GET, HEAD"));
        assert!(d.served_path().is_none());
    }
}

#[test]
fn directories() {
    let f = fixture();
    let d = f.get("/");
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(body(d), b"root index");

    let d = f.get("/sub");
    assert_eq!(d.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(d.header("location"), Some("/sub/"));
    let d = f.get("/sub?a=1&b=2");
    assert_eq!(d.header("location"), Some("/sub/?a=1&b=2"));

    let d = f.get("/sub/");
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(d.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(body(d), b"<h1>sub</h1>");

    // No open redirect through a leading "//".
    let d = f.get("//evil.com");
    assert_eq!(d.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(d.header("location"), Some("/evil.com/"));
    // Segments are re-encoded in the Location.
    assert_eq!(
        f.get("/with%20space").header("location"),
        Some("/with%20space/")
    );

    // No listings; no index means 404 with or without the slash.
    for path in ["/noindex", "/noindex/", "/idxdir/", "/idxdir", "/idxlink/"] {
        assert_eq!(f.get(path).status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(f.get("/noindex/x.txt").status(), StatusCode::OK);
}

#[test]
fn conditional_requests() {
    let f = fixture();
    let d = f.get("/hello.txt");
    let etag = d.header("etag").unwrap().to_owned();
    let lm = d.header("last-modified").unwrap().to_owned();

    let d = f.req(Method::GET, "/hello.txt", &[("if-none-match", &etag)]);
    assert_eq!(d.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(d.header("etag"), Some(etag.as_str()));
    assert!(d.header("content-length").is_none());
    assert!(body(d).is_empty());

    let list = format!("\"nope\", {}", etag.trim_start_matches("W/"));
    let d = f.req(Method::HEAD, "/hello.txt", &[("if-none-match", &list)]);
    assert_eq!(d.status(), StatusCode::NOT_MODIFIED);
    let d = f.req(Method::GET, "/hello.txt", &[("if-none-match", "*")]);
    assert_eq!(d.status(), StatusCode::NOT_MODIFIED);

    let d = f.req(Method::GET, "/hello.txt", &[("if-modified-since", &lm)]);
    assert_eq!(d.status(), StatusCode::NOT_MODIFIED);
    let d = f.req(
        Method::GET,
        "/hello.txt",
        &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    );
    assert_eq!(d.status(), StatusCode::OK);
    let d = f.req(
        Method::GET,
        "/hello.txt",
        &[("if-modified-since", "garbage")],
    );
    assert_eq!(d.status(), StatusCode::OK);

    // If-None-Match wins over If-Modified-Since.
    let d = f.req(
        Method::GET,
        "/hello.txt",
        &[("if-none-match", "\"other\""), ("if-modified-since", &lm)],
    );
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(body(d), HELLO);
}

#[test]
fn ranges() {
    let f = fixture();
    let d = f.req(Method::GET, "/hello.txt", &[("range", "bytes=0-4")]);
    assert_eq!(d.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(d.header("content-range"), Some("bytes 0-4/12"));
    assert_eq!(d.header("content-length"), Some("5"));
    assert_eq!(body(d), b"hello");

    let d = f.req(Method::GET, "/hello.txt", &[("range", "bytes=6-")]);
    assert_eq!(d.header("content-range"), Some("bytes 6-11/12"));
    assert_eq!(body(d), b"world\n");

    let d = f.req(Method::GET, "/hello.txt", &[("range", "bytes=-6")]);
    assert_eq!(body(d), b"world\n");

    let d = f.req(Method::GET, "/big.bin", &[("range", "bytes=70000-200000")]);
    assert_eq!(d.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body(d), &big_content()[70000..=200000]);

    let d = f.req(Method::GET, "/hello.txt", &[("range", "bytes=12-")]);
    assert_eq!(d.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(d.header("content-range"), Some("bytes */12"));

    for ignored in ["bytes=0-1,3-4", "bytes=oops", "lines=1-2", "bytes=5-1"] {
        let d = f.req(Method::GET, "/hello.txt", &[("range", ignored)]);
        assert_eq!(d.status(), StatusCode::OK, "{ignored}");
        assert_eq!(body(d), HELLO);
    }

    // HEAD ignores Range.
    let d = f.req(Method::HEAD, "/hello.txt", &[("range", "bytes=0-4")]);
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(d.header("content-length"), Some("12"));

    // If-Range: only the exact Last-Modified date lets the range through.
    let lm = f
        .get("/hello.txt")
        .header("last-modified")
        .unwrap()
        .to_owned();
    let etag = f.get("/hello.txt").header("etag").unwrap().to_owned();
    let d = f.req(
        Method::GET,
        "/hello.txt",
        &[("range", "bytes=0-4"), ("if-range", &lm)],
    );
    assert_eq!(d.status(), StatusCode::PARTIAL_CONTENT);
    for stale in [etag.as_str(), "Thu, 01 Jan 1970 00:00:00 GMT"] {
        let d = f.req(
            Method::GET,
            "/hello.txt",
            &[("range", "bytes=0-4"), ("if-range", stale)],
        );
        assert_eq!(d.status(), StatusCode::OK, "{stale}");
    }

    // Conditionals come before ranges.
    let d = f.req(
        Method::GET,
        "/hello.txt",
        &[("range", "bytes=0-4"), ("if-none-match", &etag)],
    );
    assert_eq!(d.status(), StatusCode::NOT_MODIFIED);
}

#[test]
fn fifo_is_not_served() {
    let f = fixture();
    let fifo = f.base.join("www/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        eprintln!("mkfifo unavailable; skipping");
        return;
    }
    // Must answer at once (not block on opening the FIFO) and refuse it.
    assert_eq!(f.get("/pipe").status(), StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// Over TCP, through the real pingora service.

/// Starts one pingora server for the whole test binary; returns its address and root.
fn live() -> &'static (SocketAddr, PathBuf) {
    static LIVE: OnceLock<(SocketAddr, PathBuf)> = OnceLock::new();
    LIVE.get_or_init(|| {
        let f = fixture();
        let root = f.server.root().to_path_buf();
        std::mem::forget(f); // keep the folder for the process lifetime
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let service = file_service(&root, addr).unwrap();
        std::thread::spawn(move || {
            let mut server = pingora::server::Server::new(None).unwrap();
            server.bootstrap();
            server.add_service(service);
            server.run_forever();
        });
        for _ in 0..200 {
            if TcpStream::connect(addr).is_ok() {
                return (addr, root);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("file server did not start on {addr}");
    })
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response; `head` means no body follows whatever Content-Length says.
fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if !head && status != 304 {
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).unwrap();
    }
    resp
}

fn connect() -> BufReader<TcpStream> {
    let s = TcpStream::connect(live().0).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

fn send(r: &mut BufReader<TcpStream>, req: &str) {
    r.get_mut().write_all(req.as_bytes()).unwrap();
}

#[test]
fn live_get_head_and_keepalive() {
    let mut c = connect();
    send(&mut c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, HELLO);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("server").is_none(), "{:?}", r.headers);

    // Same connection: HEAD has the real length and no body.
    send(&mut c, "HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_response(&mut c, true);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(big_content().len().to_string().as_str())
    );

    // Still the same connection: a streamed multi-chunk body arrives intact.
    send(&mut c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, big_content());

    send(
        &mut c,
        "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=65530-131080\r\n\r\n",
    );
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 65530-131080/307207"));
    assert_eq!(r.body, &big_content()[65530..=131080]);

    send(&mut c, "GET /sub HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/"));
    assert!(r.header("server").is_none());

    send(&mut c, "GET /..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 400);

    send(&mut c, "DELETE /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    let etag = {
        send(&mut c, "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        read_response(&mut c, true)
            .header("etag")
            .unwrap()
            .to_owned()
    };
    send(
        &mut c,
        &format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 304);

    send(&mut c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_response(&mut c, false).body, HELLO);
}

#[test]
fn live_client_disconnect_mid_body_is_harmless() {
    for _ in 0..5 {
        let mut c = connect();
        send(&mut c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut first = [0u8; 100];
        c.read_exact(&mut first).unwrap();
        drop(c); // hang up with most of the body unsent
    }
    // The server is still fine.
    let mut c = connect();
    send(&mut c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_response(&mut c, false).body, HELLO);
}

#[test]
fn live_request_with_body_closes_connection() {
    let mut c = connect();
    send(
        &mut c,
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    let r = read_response(&mut c, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
}
