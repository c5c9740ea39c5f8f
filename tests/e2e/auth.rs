//! End to end: Basic, API key and JWT authentication at the proxy, global and per path, with the
//! real binary and real backends.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{get, request, Backend, Proxy, ProxyOpts, Resp, TempDir};
use aralez::auth::base64::encode_std;
use aralez::auth::jwt;

const MASTER: &str = "master-key-for-tests-0123456789abcdef";
const HOST: &str = "app.example.com";

fn basic(creds: &str) -> String {
    format!("Basic {}", encode_std(creds.as_bytes()))
}

fn master_opts() -> String {
    format!("master_key: \"{MASTER}\"\n")
}

fn start(upstreams: &str) -> Proxy {
    Proxy::start_opts(
        upstreams,
        ProxyOpts {
            main_extra: &master_opts(),
            ..Default::default()
        },
    )
}

/// A token from the admin API's `POST /jwt`.
fn issue(proxy: &Proxy, minutes: i64) -> String {
    let body = format!(r#"{{"master_key":"{MASTER}","owner":"tester","valid":{minutes}}}"#);
    let r = request(proxy.admin, "POST", "admin", "/jwt", &[], body.as_bytes()).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

fn metrics(proxy: &Proxy) -> String {
    let bearer = format!("Bearer {MASTER}");
    get(proxy.admin, "a", "/metrics", &[("Authorization", &bearer)])
        .unwrap()
        .text()
}

fn counter(text: &str, needle: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn assert_401(r: &Resp, challenge: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some(challenge));
}

#[test]
fn basic_per_path() {
    let b = Backend::start("b");
    let proxy = start(&format!(
        r#"provider: file
{HOST}:
  paths:
    "/":
      servers: ["{0}"]
    "/private":
      authorization: {{type: basic, creds: "alice:correct-horse-battery"}}
      servers: ["{0}"]
"#,
        b.addr
    ));
    // the open path stays open
    assert_eq!(get(proxy.http, HOST, "/", &[]).unwrap().status, 200);
    let ok = get(
        proxy.http,
        HOST,
        "/private/x",
        &[("Authorization", &basic("alice:correct-horse-battery"))],
    )
    .unwrap();
    assert_eq!(ok.status, 200);
    // the credentials are not forwarded
    assert!(
        ok.echo()["headers"].get("authorization").is_none(),
        "{}",
        ok.text()
    );
    // scheme is case-insensitive
    let lower = basic("alice:correct-horse-battery").replacen("Basic", "basic", 1);
    assert_eq!(
        get(proxy.http, HOST, "/private", &[("Authorization", &lower)])
            .unwrap()
            .status,
        200
    );
    let hits = b.hits();
    let challenge = "Basic realm=\"aralez\"";
    for headers in [
        vec![],
        vec![("Authorization", basic("alice:wrong"))],
        vec![("Authorization", basic("alice"))],
        vec![("Authorization", "Basic %%%".to_string())],
        vec![("Authorization", format!("Bearer {}", "x.y.z"))],
        vec![
            ("Authorization", basic("alice:correct-horse-battery")),
            ("Authorization", basic("alice:correct-horse-battery")),
        ],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(proxy.http, HOST, "/private", &h).unwrap();
        assert_401(&r, challenge);
        assert_eq!(r.text(), "authentication required\n");
    }
    assert_eq!(b.hits(), hits, "refused requests never reach the backend");
    let m = metrics(&proxy);
    assert_eq!(
        counter(
            &m,
            &format!("aralez_auth_rejected_total{{route=\"{HOST}/private\",scheme=\"basic\"}}")
        ),
        6,
        "{m}"
    );
    // request counters are updated when the exchange is logged, just after the response is sent
    let want = format!(
        "aralez_http_requests_total{{code=\"401\",method=\"GET\",route=\"{HOST}/private\"}} 6"
    );
    let seen = proxy.wait_for(std::time::Duration::from_secs(2), || {
        metrics(&proxy).contains(&want)
    });
    assert!(seen.is_some(), "{}", metrics(&proxy));
}

#[test]
fn apikey_global_and_forwarding() {
    let b = Backend::start("b");
    let proxy = start(&format!(
        r#"provider: file
authorization: {{type: apikey, creds: "key-0123456789abcdef"}}
{HOST}:
  paths:
    "/":
      servers: ["{0}"]
    "/fwd":
      forward_auth_header: true
      servers: ["{0}"]
"#,
        b.addr
    ));
    let ok = get(
        proxy.http,
        HOST,
        "/",
        &[("x-api-key", "key-0123456789abcdef")],
    )
    .unwrap();
    assert_eq!(ok.status, 200);
    assert!(ok.echo()["headers"].get("x-api-key").is_none());
    // other client headers still reach the backend
    let ok = get(
        proxy.http,
        HOST,
        "/",
        &[
            ("x-api-key", "key-0123456789abcdef"),
            ("Authorization", "Bearer upstream-token"),
        ],
    )
    .unwrap();
    assert_eq!(
        ok.echo()["headers"]["authorization"],
        "Bearer upstream-token"
    );
    let fwd = get(
        proxy.http,
        HOST,
        "/fwd",
        &[("x-api-key", "key-0123456789abcdef")],
    )
    .unwrap();
    assert_eq!(fwd.status, 200);
    assert_eq!(fwd.echo()["headers"]["x-api-key"], "key-0123456789abcdef");
    let challenge = "ApiKey realm=\"aralez\"";
    assert_401(&get(proxy.http, HOST, "/", &[]).unwrap(), challenge);
    assert_401(
        &get(
            proxy.http,
            HOST,
            "/",
            &[("x-api-key", "key-0123456789abcdeF")],
        )
        .unwrap(),
        challenge,
    );
    assert_401(
        &get(
            proxy.http,
            HOST,
            "/",
            &[("x-api-key", "key-0123456789abcde")],
        )
        .unwrap(),
        challenge,
    );
    assert_401(
        &get(
            proxy.http,
            HOST,
            "/fwd",
            &[("x-api-key", "key-0123456789abcdef x")],
        )
        .unwrap(),
        challenge,
    );
    assert_401(
        &get(
            proxy.http,
            HOST,
            "/",
            &[("x-api-key", "nope"), ("x-api-key", "key-0123456789abcdef")],
        )
        .unwrap(),
        challenge,
    );
}

#[test]
fn jwt_from_the_admin_api_via_header_and_query() {
    let b = Backend::start("b");
    // global jwt with the master key as secret; one path overrides it with Basic
    let proxy = start(&format!(
        r#"provider: file
authorization: {{type: jwt}}
{HOST}:
  paths:
    "/":
      servers: ["{0}"]
    "/basic":
      authorization: {{type: basic, creds: "bob:another-long-password"}}
      servers: ["{0}"]
"#,
        b.addr
    ));
    let token = issue(&proxy, 10);
    let bearer = format!("Bearer {token}");
    let r = get(proxy.http, HOST, "/api?x=1", &[("Authorization", &bearer)]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.echo()["headers"].get("authorization").is_none());
    assert_eq!(r.echo()["path"], "/api?x=1");

    // the query form: the parameter is removed, the rest of the query reaches the backend as is
    let target = format!("/api?a=1&araleztoken={token}&b=%20two&c");
    let r = get(proxy.http, HOST, &target, &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echo()["path"], "/api?a=1&b=%20two&c");
    let r = get(proxy.http, HOST, &format!("/only?araleztoken={token}"), &[]).unwrap();
    assert_eq!(r.echo()["path"], "/only");
    for p in b.paths.lock().unwrap().iter() {
        assert!(!p.contains("araleztoken"), "token reached the backend: {p}");
    }

    // refused: expired, wrong secret, malformed, missing, query given twice
    let key = jwt::key(MASTER.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = jwt::issue(&key, "old", now - 3600, 60);
    let foreign = jwt::issue(
        &jwt::key(b"some-other-secret-0123456789").unwrap(),
        "x",
        now,
        600,
    );
    let hits = b.hits();
    for (target, auth) in [
        ("/".to_string(), format!("Bearer {expired}")),
        (format!("/?araleztoken={expired}"), String::new()),
        ("/".to_string(), format!("Bearer {foreign}")),
        ("/".to_string(), "Bearer not-a-token".to_string()),
        ("/".to_string(), format!("Bearer {token}.")),
        ("/".to_string(), String::new()),
        (
            format!("/?araleztoken={token}&araleztoken={token}"),
            String::new(),
        ),
        ("/".to_string(), basic("bob:another-long-password")),
    ] {
        let h: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("Authorization", auth.as_str())]
        };
        assert_401(&get(proxy.http, HOST, &target, &h).unwrap(), "Bearer");
    }
    assert_eq!(b.hits(), hits);

    // the per-path Basic wins over the global jwt
    assert_401(
        &get(proxy.http, HOST, "/basic", &[("Authorization", &bearer)]).unwrap(),
        "Basic realm=\"aralez\"",
    );
    assert_eq!(
        get(
            proxy.http,
            HOST,
            "/basic",
            &[("Authorization", &basic("bob:another-long-password"))]
        )
        .unwrap()
        .status,
        200
    );

    // the token never shows up in the log (access log is on in the harness)
    let log = proxy.log_text();
    assert!(log.contains("/api"), "access log missing:\n{log}");
    assert!(!log.contains(&token), "token logged:\n{log}");
    assert!(!log.contains("araleztoken"), "query logged:\n{log}");
    let m = metrics(&proxy);
    assert_eq!(
        counter(
            &m,
            &format!("aralez_auth_rejected_total{{route=\"{HOST}/\",scheme=\"jwt\"}}")
        ),
        8,
        "{m}"
    );
}

#[test]
fn jwt_route_secret_and_forwarding() {
    let b = Backend::start("b");
    let secret = "route-secret-0123456789abcdef";
    let proxy = start(&format!(
        r#"provider: file
{HOST}:
  paths:
    "/":
      authorization: {{type: jwt, creds: "{secret}"}}
      forward_auth_header: true
      servers: ["{0}"]
"#,
        b.addr
    ));
    // a master-key token does not open a route with its own secret
    let master_token = issue(&proxy, 5);
    assert_401(
        &get(
            proxy.http,
            HOST,
            "/",
            &[("Authorization", &format!("Bearer {master_token}"))],
        )
        .unwrap(),
        "Bearer",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = jwt::issue(&jwt::key(secret.as_bytes()).unwrap(), "svc", now, 60);
    let bearer = format!("Bearer {t}");
    let r = get(proxy.http, HOST, "/", &[("Authorization", &bearer)]).unwrap();
    assert_eq!(r.status, 200);
    // forward_auth_header: the header goes upstream; the query token never does
    assert_eq!(r.echo()["headers"]["authorization"], bearer);
    let r = get(proxy.http, HOST, &format!("/q?araleztoken={t}&k=v"), &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.echo()["path"], "/q?k=v");
}

#[test]
fn jwt_issuer_and_audience() {
    let b = Backend::start("b");
    let proxy = start(&format!(
        r#"provider: file
authorization: {{type: jwt, issuer: "https://aralez.test", audience: [orders, billing]}}
{HOST}:
  paths:
    "/":
      servers: ["{0}"]
    "/strict":
      authorization: {{type: jwt, issuer: "https://aralez.test", audience: orders, leeway_seconds: 0}}
      servers: ["{0}"]
    "/other":
      authorization: {{type: jwt, issuer: "https://elsewhere.test"}}
      servers: ["{0}"]
"#,
        b.addr
    ));
    let key = jwt::key(MASTER.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |iss: Option<&str>, aud: &[&str]| jwt::ClaimRules {
        issuer: iss.map(str::to_string),
        audience: aud.iter().map(|a| (*a).to_string()).collect(),
        ..jwt::ClaimRules::default()
    };
    let token = |iss: Option<&str>, aud: &[&str], exp_in: i64| {
        jwt::issue_with(&key, "svc", now, exp_in, &claims(iss, aud))
    };
    let status = |path: &str, token: &str| {
        let bearer = format!("Bearer {token}");
        get(proxy.http, HOST, path, &[("Authorization", &bearer)])
            .unwrap()
            .status
    };
    let iss = Some("https://aralez.test");
    // the right claims pass (one matching audience is enough)
    assert_eq!(status("/", &token(iss, &["billing"], 600)), 200);
    assert_eq!(status("/", &token(iss, &["web", "orders"], 600)), 200);
    let hits = b.hits();
    for bad in [
        token(Some("https://evil.test"), &["orders"], 600), // wrong iss
        token(None, &["orders"], 600),                      // no iss
        token(iss, &["web"], 600),                          // wrong aud
        token(iss, &[], 600),                               // no aud
    ] {
        assert_401(
            &get(
                proxy.http,
                HOST,
                "/",
                &[("Authorization", &format!("Bearer {bad}"))],
            )
            .unwrap(),
            "Bearer",
        );
    }
    assert_eq!(b.hits(), hits, "refused tokens never reach the backend");

    // leeway: expired 5 s ago passes under the default 30 s, not under leeway_seconds: 0
    let stale = token(iss, &["orders"], -5);
    assert_eq!(status("/", &stale), 200);
    assert_eq!(status("/strict", &stale), 401);
    assert_eq!(status("/strict", &token(iss, &["orders"], 600)), 200);

    // POST /jwt issues tokens with the global iss/aud, which pass the global routes
    let issued = issue(&proxy, 5);
    let c = jwt::verify(issued.as_bytes(), &key, now).unwrap();
    assert_eq!(c.all["iss"], "https://aralez.test");
    assert_eq!(c.all["aud"], serde_json::json!(["orders", "billing"]));
    assert_eq!(status("/", &issued), 200);
    assert_eq!(status("/strict", &issued), 200);
    // a path with its own issuer is not what POST /jwt issues for
    assert_eq!(status("/other", &issued), 401);
    assert_eq!(
        status("/other", &token(Some("https://elsewhere.test"), &[], 600)),
        200
    );
}

/// Starts the binary on a config expected to be refused; returns (exit code, stderr).
fn refused_start(upstreams: &str, main_extra: &str) -> (Option<i32>, String) {
    let dir = TempDir::new("auth-refused");
    dir.write("upstreams.yaml", upstreams);
    let main = format!(
        "proxy_address_http: \"127.0.0.1:{}\"\nconfig_address: \"127.0.0.1:{}\"\nupstreams_conf: upstreams.yaml\nupgrade_sock: \"{}\"\n{main_extra}",
        crate::common::free_port(),
        crate::common::free_port(),
        dir.path().join("u.sock").display()
    );
    let main_path = dir.write("main.yaml", &main);
    let mut child = Command::new(crate::common::aralez_bin())
        .arg("-c")
        .arg(&main_path)
        .env_remove("ARALEZ_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, "still running".into())
}

#[test]
fn jwt_without_any_secret_is_refused_at_start() {
    let b = Backend::start("b");
    let (code, err) = refused_start(
        &format!(
            "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      authorization: {{type: jwt}}\n      servers: [\"{}\"]\n",
            b.addr
        ),
        "",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("E0803") && err.contains("master key"), "{err}");
}

#[test]
fn creds_file_is_read_and_rotated_on_sighup() {
    let b = Backend::start("b");
    let dir = TempDir::new("creds");
    let key_file = dir.write("api.key", "first-key-0123456789abcdef\n");
    let proxy = start(&format!(
        "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      authorization: {{type: apikey, creds_file: \"{}\"}}\n      servers: [\"{}\"]\n",
        key_file.display(),
        b.addr
    ));
    // the trailing newline of the file is not part of the key
    assert_eq!(
        get(
            proxy.http,
            HOST,
            "/",
            &[("x-api-key", "first-key-0123456789abcdef")]
        )
        .unwrap()
        .status,
        200
    );
    std::fs::write(&key_file, "second-key-0123456789abcdef").unwrap();
    proxy.sighup();
    let rotated = proxy.wait_for(Duration::from_secs(5), || {
        get(
            proxy.http,
            HOST,
            "/",
            &[("x-api-key", "second-key-0123456789abcdef")],
        )
        .is_ok_and(|r| r.status == 200)
    });
    assert!(rotated.is_some(), "{}", proxy.log_text());
    assert_eq!(
        get(
            proxy.http,
            HOST,
            "/",
            &[("x-api-key", "first-key-0123456789abcdef")]
        )
        .unwrap()
        .status,
        401
    );
    // a file that disappears makes the next reload fail; the loaded key keeps working
    std::fs::remove_file(&key_file).unwrap();
    proxy.sighup();
    let logged = proxy.wait_for(Duration::from_secs(5), || {
        proxy.log_text().contains("E0803")
    });
    assert!(logged.is_some(), "{}", proxy.log_text());
    assert_eq!(
        get(
            proxy.http,
            HOST,
            "/",
            &[("x-api-key", "second-key-0123456789abcdef")]
        )
        .unwrap()
        .status,
        200
    );
}

#[test]
fn a_rotated_creds_file_applies_without_sighup() {
    let b = Backend::start("b");
    let dir = TempDir::new("creds");
    let key_file = dir.write("api.key", "first-key-0123456789abcdef");
    let main_extra = format!("{}admin_public_readonly: true\n", master_opts());
    let upstreams = format!(
        "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      authorization: {{type: apikey, creds_file: \"{}\"}}\n      servers: [\"{}\"]\n",
        key_file.display(),
        b.addr
    );
    let proxy = Proxy::start_opts(
        &upstreams,
        ProxyOpts {
            main_extra: &main_extra,
            ..Default::default()
        },
    );
    let status = |key: &str| {
        get(proxy.http, HOST, "/", &[("x-api-key", key)])
            .unwrap()
            .status
    };
    assert_eq!(status("first-key-0123456789abcdef"), 200);
    assert_eq!(
        proxy.config_status()["watch"]["secrets"]["active"],
        true,
        "{}",
        proxy.config_status()
    );
    std::fs::write(&key_file, "second-key-0123456789abcdef").unwrap();
    let rotated = proxy.wait_for(Duration::from_secs(3), || {
        status("second-key-0123456789abcdef") == 200
    });
    assert!(rotated.is_some(), "{}", proxy.log_text());
    assert_eq!(status("first-key-0123456789abcdef"), 401);
    assert_eq!(proxy.config_status()["active"]["trigger"], "file");
}

#[test]
fn unreadable_creds_file_is_refused_at_start() {
    let (code, err) = refused_start(
        &format!(
            "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      authorization: {{type: basic, creds_file: \"missing.creds\"}}\n      servers: [\"127.0.0.1:9\"]\n"
        ),
        &master_opts(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("E0803") && err.contains("missing.creds"),
        "{err}"
    );
}

#[test]
fn check_with_main_reports_unresolvable_secrets() {
    let dir = TempDir::new("auth-check");
    dir.write(
        "upstreams.yaml",
        &format!(
            "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      authorization: {{type: jwt}}\n      servers: [\"127.0.0.1:9\"]\n    \"/k\":\n      authorization: {{type: apikey, creds_file: \"nope.key\"}}\n      servers: [\"127.0.0.1:9\"]\n"
        ),
    );
    dir.write(
        "main.yaml",
        "proxy_address_http: \"127.0.0.1:1\"\nupstreams_conf: upstreams.yaml\n",
    );
    let (code, _out, err) = crate::common::run_cli(&["check", "--main", "main.yaml"], dir.path());
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("E0803").count(), 2, "{err}");
    assert!(
        err.contains("master key") && err.contains("nope.key"),
        "{err}"
    );
    // with the master key and the file in place, it passes
    dir.write("nope.key", "a-key-that-is-long-enough\n");
    dir.write(
        "main.yaml",
        &format!(
            "proxy_address_http: \"127.0.0.1:1\"\nupstreams_conf: upstreams.yaml\n{}",
            master_opts()
        ),
    );
    let (code, out, err) = crate::common::run_cli(&["check", "--main", "main.yaml"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    // a short secret in a file is a warning, like an inline one
    dir.write("nope.key", "short\n");
    let (code, _out, err) = crate::common::run_cli(
        &["check", "--main", "main.yaml", "--deny-warnings"],
        dir.path(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("W0003") && err.contains("shorter than 16"),
        "{err}"
    );
}
