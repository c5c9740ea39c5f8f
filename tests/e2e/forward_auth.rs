//! End to end: forward authentication against a real auth service double on loopback: allow,
//! deny with 401, a login redirect with `Set-Cookie` (followed with curl), answer headers copied
//! and client spoofing removed, the service down or slow (503 within the timeout), limits before
//! auth, and the positive-answer cache.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{get, Backend, Proxy};
use crate::forward_auth_double::AuthDouble;

const HOST: &str = "app.example.com";

fn upstreams(backend: &Backend, auth: &AuthDouble, extra: &str) -> String {
    format!(
        r#"provider: file
{HOST}:
  paths:
    "/":
      servers: ["{b}"]
    "/private":
      servers: ["{b}"]
      authorization:
        type: forward
        url: "http://{a}/verify?app=1"
        timeout_ms: 400
        request_headers: [Authorization, Cookie]
        response_headers: [X-User]
{extra}"#,
        b = backend.addr,
        a = auth.addr,
    )
}

fn counter(text: &str, needle: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn allow_deny_redirect_and_answer_headers() {
    let backend = Backend::start("b");
    let auth = AuthDouble::start();
    let proxy = Proxy::start(&upstreams(&backend, &auth, ""));

    // the open path never asks
    assert_eq!(get(proxy.http, HOST, "/", &[]).unwrap().status, 200);
    assert_eq!(auth.asked(), 0);

    // allow: the listed answer header replaces the client's own, unlisted ones are not copied
    let r = get(
        proxy.http,
        HOST,
        "/private/doc?x=1",
        &[("Authorization", "Bearer good"), ("X-User", "root")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = r.echo();
    assert_eq!(echo["headers"]["x-user"], "alice");
    assert!(echo["headers"].get("x-unlisted").is_none());
    assert_eq!(echo["headers"]["authorization"], "Bearer good");
    assert!(r.header("x-request-id").is_some());
    let asked = &auth.seen()[0];
    assert_eq!(asked[":method"], "GET");
    assert_eq!(asked[":target"], "/verify?app=1");
    assert_eq!(asked["x-forwarded-method"], "GET");
    assert_eq!(asked["x-forwarded-proto"], "http");
    assert_eq!(asked["x-forwarded-host"], HOST);
    assert_eq!(asked["x-forwarded-uri"], "/private/doc?x=1");
    assert_eq!(asked["x-forwarded-for"], "127.0.0.1");
    assert_eq!(asked["authorization"], "Bearer good");
    assert!(
        asked.get("x-user").is_none(),
        "unlisted client headers are not sent"
    );

    // a spoofed X-User without credentials never reaches the backend
    let hits = backend.hits();
    let r = get(proxy.http, HOST, "/private/", &[("X-User", "root")]).unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(backend.hits(), hits);

    // an allow that answers no X-User still removes the client's
    let r = get(
        proxy.http,
        HOST,
        "/private/",
        &[("Cookie", "session=ok"), ("X-User", "root")],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.echo()["headers"]["x-user"], "bob");

    // deny: the service's status, challenge and body
    let r = get(
        proxy.http,
        HOST,
        "/private/",
        &[("Authorization", "Bearer bad")],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"double\"")
    );
    assert_eq!(r.text(), "token refused");
    assert!(r.header("x-request-id").is_some());
    assert_eq!(backend.hits(), hits + 1);

    // login flow with curl: redirected with cookies, then let in with the session cookie
    let url = format!("http://{}/private/page", proxy.http);
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--max-time",
            "5",
            "-H",
            &format!("Host: {HOST}"),
            &url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("HTTP/1.1 302"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("location: http://login.example.com/?rd=/private/page"),
        "{text}"
    );
    assert!(text.contains("csrf=abc; Path=/; HttpOnly"), "{text}");
    assert!(text.contains("flow=1; Path=/"), "{text}");
    assert!(text.ends_with("please log in"), "{text}");
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-H",
            &format!("Host: {HOST}"),
            "-b",
            "session=ok",
            &url,
        ])
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["headers"]["x-user"], "bob");

    // the connections to the auth service are pooled
    assert!(auth.asked() >= 6);
    assert!(
        auth.accepted() < auth.asked(),
        "{} connections for {} requests",
        auth.accepted(),
        auth.asked()
    );
    let m = proxy.metrics();
    assert_eq!(
        counter(
            &m,
            "aralez_auth_rejected_total{route=\"app.example.com/private\",scheme=\"forward\"}"
        ),
        3,
        "{m}"
    );
}

#[test]
fn auth_service_down_or_slow_fails_closed_within_the_timeout() {
    let backend = Backend::start("b");
    let auth = AuthDouble::start();
    let proxy = Proxy::start(&upstreams(&backend, &auth, ""));
    let good = [("Authorization", "Bearer good")];
    assert_eq!(
        get(proxy.http, HOST, "/private/", &good).unwrap().status,
        200
    );

    // slow: 503 after timeout_ms (400), not after the service's 1500
    auth.set_delay_ms(1500);
    let t = Instant::now();
    let r = get(proxy.http, HOST, "/private/", &good).unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 503);
    assert!(took >= Duration::from_millis(350), "{took:?}");
    assert!(took < Duration::from_millis(1400), "{took:?}");
    auth.set_delay_ms(0);

    // down: 503 at once
    auth.kill();
    let t = Instant::now();
    let r = get(proxy.http, HOST, "/private/", &good).unwrap();
    assert_eq!(r.status, 503);
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    let hits = backend.hits();
    assert_eq!(hits, 1, "only the first request reached the backend");

    let m = proxy.metrics();
    let route = "route=\"app.example.com/private\"";
    assert_eq!(
        counter(
            &m,
            &format!("aralez_forward_auth_errors_total{{reason=\"timeout\",{route}}}")
        ),
        1,
        "{m}"
    );
    assert_eq!(
        counter(
            &m,
            &format!("aralez_forward_auth_errors_total{{reason=\"io\",{route}}}")
        ),
        1,
        "{m}"
    );
}

#[test]
fn limits_run_before_the_auth_service_and_answers_may_be_cached() {
    let backend = Backend::start("b");
    let auth = AuthDouble::start();
    let yaml = upstreams(&backend, &auth, "")
        .replace(
            "timeout_ms: 400",
            "timeout_ms: 400\n        cache_seconds: 30",
        )
        .replace("provider: file\n", "provider: file\nrate_limit: 3\n");
    let proxy = Proxy::start(&yaml);
    let good = [("Authorization", "Bearer good")];
    let statuses: Vec<u16> = (0..5)
        .map(|_| get(proxy.http, HOST, "/private/", &good).unwrap().status)
        .collect();
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|&s| s == 429), "{statuses:?}");
    // one question: the next two allowed requests were answered from the cache, the limited
    // ones never asked
    assert_eq!(auth.asked(), 1);
    // other credentials are another cache entry (and a denial is never cached)
    std::thread::sleep(Duration::from_millis(1100));
    let bad = [("Authorization", "Bearer bad")];
    assert_eq!(
        get(proxy.http, HOST, "/private/", &bad).unwrap().status,
        401
    );
    assert_eq!(
        get(proxy.http, HOST, "/private/", &bad).unwrap().status,
        401
    );
    assert_eq!(auth.asked(), 3);
}
