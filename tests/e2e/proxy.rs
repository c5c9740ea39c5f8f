//! End to end: the real binary proxying to real backends on loopback.

use crate::common::{get, raw, request, Backend, Proxy};

fn yaml_two_hosts(a: &Backend, b: &Backend, c: &Backend) -> String {
    format!(
        r#"provider: "file"
headers:
  - "Access-Control-Allow-Origin:*"
app.example.com:
  paths:
    "/":
      headers:
        - "X-Proxy-From:Aralez"
      client_headers:
        - "X-Served-By:aralez-test"
      servers:
        - "{a}"
        - "{b}"
    "/api":
      servers:
        - "{c}"
    "/old":
      redirect_to: "https://new.example.com"
      servers:
        - "{c}"
    "/secure":
      to_https: true
      servers:
        - "{c}"
"*.wild.example.com":
  paths:
    "/":
      servers: ["{c}"]
"#,
        a = a.addr,
        b = b.addr,
        c = c.addr
    )
}

#[test]
fn routes_balances_and_injects_headers() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::start(&yaml_two_hosts(&a, &b, &c));

    // round robin over the two backends of "/"
    let mut seen = Vec::new();
    for _ in 0..6 {
        let r = get(proxy.http, "app.example.com", "/x", &[]).unwrap();
        assert_eq!(r.status, 200, "{}", proxy.log_text());
        seen.push(r.echo()["backend"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 3, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 3, "{seen:?}");
    assert_ne!(seen[0], seen[1], "alternates: {seen:?}");

    // request headers towards the upstream, X-Forwarded-*, original target kept
    let r = get(
        proxy.http,
        "App.Example.COM:80",
        "/x/y?q=1",
        &[("X-Forwarded-For", "6.6.6.6")],
    )
    .unwrap();
    let echo = r.echo();
    assert_eq!(echo["path"], "/x/y?q=1");
    assert_eq!(echo["headers"]["x-proxy-from"], "Aralez");
    assert_eq!(
        echo["headers"]["x-forwarded-for"], "127.0.0.1",
        "untrusted XFF is replaced"
    );
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert_eq!(echo["headers"]["x-forwarded-host"], "App.Example.COM:80");
    // response headers: the route's and the global ones
    assert_eq!(r.header("x-served-by"), Some("aralez-test"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("server").is_none_or(|s| !s.contains("Pingora")));

    // longest segment prefix: /api and /api/v1 go to c, /apix does not
    assert_eq!(
        get(proxy.http, "app.example.com", "/api", &[])
            .unwrap()
            .echo()["backend"],
        "c"
    );
    assert_eq!(
        get(proxy.http, "app.example.com", "/api/v1/x", &[])
            .unwrap()
            .echo()["backend"],
        "c"
    );
    assert_ne!(
        get(proxy.http, "app.example.com", "/apix", &[])
            .unwrap()
            .echo()["backend"],
        "c"
    );
    // normalised for matching: /x/../api is /api
    assert_eq!(
        get(proxy.http, "app.example.com", "/x/../api/z", &[])
            .unwrap()
            .echo()["backend"],
        "c"
    );
    assert_eq!(
        get(proxy.http, "app.example.com", "/%61pi", &[])
            .unwrap()
            .echo()["backend"],
        "c"
    );

    // wildcard host: one label only
    assert_eq!(
        get(proxy.http, "x.wild.example.com", "/", &[])
            .unwrap()
            .echo()["backend"],
        "c"
    );
    assert_eq!(
        get(proxy.http, "a.b.wild.example.com", "/", &[])
            .unwrap()
            .status,
        404
    );
}

#[test]
fn redirects_and_error_statuses() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::start(&yaml_two_hosts(&a, &b, &c));

    let r = get(proxy.http, "app.example.com", "/old/page?x=1", &[]).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://new.example.com/old/page?x=1")
    );

    let r = get(proxy.http, "app.example.com:8080", "/secure/a?b=c", &[]).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://app.example.com/secure/a?b=c")
    );
    assert_eq!(c.hits(), 0, "redirects never reach the backend");

    // unknown host: 404 with a short body
    let r = get(proxy.http, "nope.example.com", "/", &[]).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no route"));

    // a path that escapes the root: 400
    assert_eq!(
        get(proxy.http, "app.example.com", "/../etc/passwd", &[])
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        get(proxy.http, "app.example.com", "/%2e%2e/x", &[])
            .unwrap()
            .status,
        400
    );

    // HTTP/1.1 without Host: 400
    let r = raw(proxy.http, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(r.status, 400);

    // garbage: a 4xx, never a hang
    let r = raw(proxy.http, b"\x16\x03\x01 not http at all\r\n\r\n");
    if let Ok(r) = r {
        assert!((400..500).contains(&r.status), "{}", r.status);
    }
}

#[test]
fn upstream_failures_give_502_and_503() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(&format!(
        r#"provider: "file"
down.example.com:
  paths:
    "/":
      healthcheck: false
      servers: ["{dead}"]
unresolvable.example.com:
  paths:
    "/":
      servers: ["does-not-exist.invalid:80"]
"#
    ));
    let r = get(proxy.http, "down.example.com", "/", &[]).unwrap();
    assert_eq!(r.status, 502, "{}", proxy.log_text());
    let r = get(proxy.http, "unresolvable.example.com", "/", &[]).unwrap();
    assert_eq!(r.status, 503);
}

#[test]
fn connect_failure_retries_next_backend() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let live = Backend::start("live");
    let proxy = Proxy::start(&format!(
        "provider: file\nretry.example.com:\n  paths:\n    \"/\":\n      servers: [\"{dead}\", \"{}\"]\n",
        live.addr
    ));
    for _ in 0..4 {
        let r = get(proxy.http, "retry.example.com", "/", &[]).unwrap();
        assert_eq!(r.status, 200, "{}", proxy.log_text());
        assert_eq!(r.echo()["backend"], "live");
    }
}

#[test]
fn a_route_to_the_proxy_itself_is_a_508_not_a_loop() {
    let port = crate::common::free_port();
    let proxy = Proxy::start_opts(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:1\"]\n",
        crate::common::ProxyOpts::default(),
    );
    let _ = port;
    // point the catch-all at the proxy's own listener (unchecked: a health probe would take the
    // looping backend out of rotation first, and this test is about the hop guard itself)
    proxy.write_upstreams(&format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      healthcheck: false\n      servers: [\"{}\"]\n",
        proxy.http
    ));
    let applied = proxy.wait_for(std::time::Duration::from_secs(5), || {
        get(proxy.http, "loop.example.com", "/", &[]).is_ok_and(|r| r.status == 508)
    });
    assert!(applied.is_some(), "{}", proxy.log_text());
}

#[test]
fn post_bodies_and_head_pass_through() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        a.addr
    ));
    let r = request(
        proxy.http,
        "POST",
        "any.host",
        "/submit",
        &[],
        b"hello=world",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.echo()["body"], "hello=world");
    assert_eq!(r.echo()["method"], "POST");
    let r = request(proxy.http, "HEAD", "any.host", "/", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}
