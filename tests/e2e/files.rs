//! End to end: the built-in file server, directly and through the proxy.

use crate::common::{get, raw, request, Proxy, ProxyOpts, TempDir};

fn site() -> TempDir {
    let d = TempDir::new("www");
    d.write("index.html", "<h1>home</h1>");
    d.write("style.css", "body{}");
    d.write("data.json", "{\"a\":1}");
    d.write("sub/index.html", "<p>sub</p>");
    d.write("noindex/file.txt", "plain text");
    d.write(".secret", "hidden");
    std::os::unix::fs::symlink("/etc", d.path().join("etc-link")).unwrap();
    d
}

fn start(site: &TempDir) -> Proxy {
    // the file server address is only known after start: route with a placeholder, then rewrite
    let proxy = Proxy::start_opts(
        "provider: file\nlocalhost:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:1\"]\n",
        ProxyOpts {
            file_server: Some(site.path()),
            ..Default::default()
        },
    );
    let files = proxy.files.unwrap();
    proxy.write_upstreams(&format!(
        "provider: file\nlocalhost:\n  paths:\n    \"/\":\n      servers: [\"{files}\"]\n"
    ));
    let ok = proxy.wait_for(std::time::Duration::from_secs(5), || {
        get(proxy.http, "localhost", "/", &[]).is_ok_and(|r| r.status == 200)
    });
    assert!(ok.is_some(), "{}", proxy.log_text());
    proxy
}

#[test]
fn serves_files_with_types_through_the_proxy() {
    let s = site();
    let proxy = start(&s);
    let r = get(proxy.http, "localhost", "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>home</h1>");
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = get(proxy.http, "localhost", "/style.css", &[]).unwrap();
    assert!(r.header("content-type").unwrap().starts_with("text/css"));
    let r = get(proxy.http, "localhost", "/data.json", &[]).unwrap();
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let r = get(proxy.http, "localhost", "/sub/", &[]).unwrap();
    assert_eq!(r.text(), "<p>sub</p>");
    // no directory listing
    assert_eq!(
        get(proxy.http, "localhost", "/noindex/", &[])
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        get(proxy.http, "localhost", "/missing.txt", &[])
            .unwrap()
            .status,
        404
    );
    // HEAD: headers only, real length
    let r = request(proxy.http, "HEAD", "localhost", "/style.css", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("6"));
}

#[test]
fn conditional_and_range_requests() {
    let s = site();
    let proxy = start(&s);
    let files = proxy.files.unwrap();
    let r = get(files, "localhost", "/noindex/file.txt", &[]).unwrap();
    let etag = r.header("etag").unwrap().to_string();
    assert!(r.header("last-modified").is_some());
    let r = get(
        files,
        "localhost",
        "/noindex/file.txt",
        &[("If-None-Match", &etag)],
    )
    .unwrap();
    assert_eq!(r.status, 304);
    let r = get(
        files,
        "localhost",
        "/noindex/file.txt",
        &[("Range", "bytes=0-4")],
    )
    .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "plain");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/10"));
    let r = get(
        files,
        "localhost",
        "/noindex/file.txt",
        &[("Range", "bytes=50-60")],
    )
    .unwrap();
    assert_eq!(r.status, 416);
}

#[test]
fn traversal_attempts_never_leave_the_folder() {
    let s = site();
    let proxy = start(&s);
    let files = proxy.files.unwrap();
    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc/passwd",
        "/sub/../../../etc/passwd",
        "/etc-link/passwd",
        "/etc-link/",
        "/.secret",
        "/%2esecret",
        "/..\\..\\etc\\passwd",
        "/%00",
        "/index.html%00.txt",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        if let Ok(r) = raw(files, req.as_bytes()) {
            assert!(
                (400..500).contains(&r.status),
                "{path}: direct {}",
                r.status
            );
            assert!(!r.text().contains("root:"), "{path} leaked /etc/passwd");
        }
        if let Ok(r) = raw(proxy.http, req.as_bytes()) {
            assert!(
                (400..500).contains(&r.status),
                "{path}: via proxy {}",
                r.status
            );
            assert!(
                !r.text().contains("root:"),
                "{path} leaked /etc/passwd via proxy"
            );
        }
    }
    // methods other than GET/HEAD
    let r = request(files, "POST", "localhost", "/", &[], b"x").unwrap();
    assert_eq!(r.status, 405);
}
