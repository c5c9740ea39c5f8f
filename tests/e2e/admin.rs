//! End to end: the admin API (access control, `POST /conf`, `POST /jwt`, `GET /status`,
//! `/metrics`) with the real binary.

use std::time::Duration;

use crate::common::{get, request, Backend, Proxy, ProxyOpts, Resp};

const KEY: &str = "admin-master-key-0123456789abcdef0123";
const HOST: &str = "svc.example.com";

fn route(backend: &Backend, name: &str) -> String {
    format!(
        "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      headers: [\"X-Cfg:{name}\"]\n      servers: [\"{}\"]\n",
        backend.addr
    )
}

fn start(upstreams: &str, extra: &str) -> Proxy {
    Proxy::start_opts(
        upstreams,
        ProxyOpts {
            main_extra: extra,
            ..Default::default()
        },
    )
}

fn keyed() -> String {
    format!("master_key: \"{KEY}\"\n")
}

fn bearer() -> String {
    format!("Bearer {KEY}")
}

fn admin_get(p: &Proxy, path: &str) -> Resp {
    get(p.admin, "admin", path, &[("Authorization", &bearer())]).unwrap()
}

fn push(p: &Proxy, query: &str, body: &str) -> Resp {
    request(
        p.admin,
        "POST",
        "admin",
        &format!("/conf{query}"),
        &[("Authorization", &bearer())],
        body.as_bytes(),
    )
    .unwrap()
}

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
}

fn served_cfg(p: &Proxy) -> String {
    get(p.http, HOST, "/", &[]).unwrap().echo()["headers"]["x-cfg"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn active_hash(p: &Proxy) -> String {
    json(&admin_get(p, "/config/status"))["active"]["hash"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_endpoint_refuses_missing_and_wrong_keys() {
    let b = Backend::start("b");
    let p = start(&route(&b, "one"), &keyed());
    let jwt_body = br#"{"master_key":"wrong","owner":"o","valid":5}"#;
    for (method, path) in [
        ("GET", "/config/status"),
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("POST", "/conf"),
    ] {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer wrong")],
            vec![("Authorization", "Basic YWRtaW46YWRtaW4=")],
            vec![("Authorization", "Bearer ")],
        ] {
            let r = request(p.admin, method, "admin", path, &headers, b"").unwrap();
            assert_eq!(r.status, 401, "{method} {path} {headers:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
        let r = request(
            p.admin,
            method,
            "admin",
            &format!("{path}?key=wrong"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 401, "{method} {path}?key=wrong");
        // a near miss of the right length is refused too
        let near = format!("{}X", &KEY[..KEY.len() - 1]);
        let r = request(
            p.admin,
            method,
            "admin",
            &format!("{path}?key={near}"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 401);
    }
    // /jwt carries the key in its body
    let r = request(p.admin, "POST", "admin", "/jwt", &[], jwt_body).unwrap();
    assert_eq!(r.status, 403);
    let r = request(
        p.admin,
        "POST",
        "admin",
        "/jwt",
        &[],
        br#"{"owner":"o","valid":5}"#,
    )
    .unwrap();
    assert_eq!(r.status, 403);
    // nothing changed
    assert_eq!(served_cfg(&p), "one");
    // probes are open, the right key opens the rest (header and ?key=)
    assert_eq!(get(p.admin, "a", "/livez", &[]).unwrap().status, 200);
    assert_eq!(get(p.admin, "a", "/readyz", &[]).unwrap().status, 200);
    for path in ["/config/status", "/status", "/metrics"] {
        assert_eq!(admin_get(&p, path).status, 200, "{path}");
        let r = get(p.admin, "a", &format!("{path}?key={KEY}"), &[]).unwrap();
        assert_eq!(r.status, 200, "{path}?key=");
    }
    // wrong methods
    assert_eq!(
        get(p.admin, "a", "/conf", &[("Authorization", &bearer())])
            .unwrap()
            .status,
        405
    );
    assert_eq!(
        request(
            p.admin,
            "POST",
            "a",
            "/status",
            &[("Authorization", &bearer())],
            b""
        )
        .unwrap()
        .status,
        405
    );
}

#[test]
fn conf_push_valid_invalid_and_save() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let p = start(&route(&a, "one"), &keyed());
    let before = active_hash(&p);

    // valid: applied synchronously, 200 with the new hash
    let r = push(&p, "", &route(&b, "two"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    let hash = v["hash"].as_str().unwrap().to_string();
    assert_ne!(hash, before);
    assert_eq!(v["applied"], true);
    assert_eq!(v["saved"], false);
    assert_eq!(active_hash(&p), hash);
    assert_eq!(served_cfg(&p), "two");
    let status = json(&admin_get(&p, "/config/status"));
    assert_eq!(status["last_attempt"]["trigger"], "api");
    assert!(status["unsaved_push"]["at"].is_u64(), "{status}");
    // the file on disk is untouched without ?save
    let on_disk = std::fs::read_to_string(p.dir.path().join("upstreams.yaml")).unwrap();
    assert!(on_disk.contains("X-Cfg:one"));

    // invalid: 400 with diagnostics (line and column), nothing applied
    let bad = format!(
        "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      servers: [\"no-port\"]\n      rate_limitt: 3\n"
    );
    let r = push(&p, "", &bad);
    assert_eq!(r.status, 400, "{}", r.text());
    let diags = json(&r)["diagnostics"].as_array().unwrap().clone();
    assert!(diags.len() >= 2, "{diags:?}");
    for d in &diags {
        assert!(d["line"].as_u64().unwrap() >= 5, "{d}");
        assert!(d["col"].as_u64().unwrap() >= 1, "{d}");
        assert!(d["code"].as_str().unwrap().starts_with('E'), "{d}");
    }
    assert!(
        diags.iter().any(|d| d["line"] == 5 && d["code"] == "E0106"),
        "{diags:?}"
    );
    assert!(
        diags.iter().any(|d| d["line"] == 6 && d["code"] == "E0005"),
        "{diags:?}"
    );
    assert_eq!(active_hash(&p), hash, "the old plan keeps serving");
    assert_eq!(served_cfg(&p), "two");
    // not YAML at all, and not UTF-8
    assert_eq!(push(&p, "", "{{{").status, 400);
    let r = request(
        p.admin,
        "POST",
        "admin",
        "/conf",
        &[("Authorization", &bearer())],
        &[0xff, 0xfe, 0x00],
    )
    .unwrap();
    assert_eq!(r.status, 400);

    // ?save writes the file atomically, after the plan applied
    let three = route(&a, "three");
    let r = push(&p, &format!("?save&key={KEY}"), &three);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["saved"], true);
    assert_eq!(served_cfg(&p), "three");
    let on_disk = std::fs::read_to_string(p.dir.path().join("upstreams.yaml")).unwrap();
    assert_eq!(on_disk, three);
    let leftovers: Vec<_> = std::fs::read_dir(p.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    let saved_hash = active_hash(&p);
    // the file watcher sees the saved file and finds nothing new
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(active_hash(&p), saved_hash);
    assert!(json(&admin_get(&p, "/config/status"))["unsaved_push"].is_null());
    // a rejected save leaves the file alone
    assert_eq!(push(&p, "?save", &bad).status, 400);
    assert_eq!(
        std::fs::read_to_string(p.dir.path().join("upstreams.yaml")).unwrap(),
        three
    );
}

#[test]
fn unsaved_push_survives_spurious_file_events_until_the_file_changes() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let p = start(&route(&a, "disk"), &keyed());
    assert_eq!(push(&p, "", &route(&b, "pushed")).status, 200);
    // rewriting the file with the same content is not a change: the push stays
    p.write_upstreams(&route(&a, "disk"));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(served_cfg(&p), "pushed");
    // a real change of the file wins, and the log says the push was replaced
    p.write_upstreams(&route(&a, "edited"));
    let applied = p.wait_for(Duration::from_secs(3), || served_cfg(&p) == "edited");
    assert!(applied.is_some(), "{}", p.log_text());
    assert!(p
        .log_text()
        .contains("replace the config pushed through the API"));
}

#[test]
fn conf_limits_and_switches() {
    let b = Backend::start("b");
    // config_api_enabled: false -> 403, even with the key
    let p = start(
        &route(&b, "one"),
        &format!("{}config_api_enabled: false\n", keyed()),
    );
    let r = push(&p, "", &route(&b, "two"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(served_cfg(&p), "one");
    drop(p);

    // body limit: 1 MiB
    let p = start(&route(&b, "one"), &keyed());
    let mut big = route(&b, "big");
    big.push_str(&format!("# {}\n", "x".repeat(1024 * 1024)));
    let r = push(&p, "", &big);
    assert_eq!(r.status, 413);
    assert_eq!(served_cfg(&p), "one");
    // just under the limit compiles
    let mut fits = route(&b, "fits");
    fits.push_str(&format!("# {}\n", "x".repeat(1024 * 1024 - fits.len() - 3)));
    assert_eq!(fits.len(), 1024 * 1024);
    let r = push(&p, "", &fits);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_cfg(&p), "fits");
    drop(p);

    // no master key: mutating endpoints 403, read-only ones open
    let p = start(&route(&b, "one"), "");
    let r = request(
        p.admin,
        "POST",
        "a",
        "/conf",
        &[],
        route(&b, "two").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    let r = request(
        p.admin,
        "POST",
        "a",
        "/jwt",
        &[],
        br#"{"master_key":"","owner":"o","valid":5}"#,
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(get(p.admin, "a", "/status", &[]).unwrap().status, 200);
    assert_eq!(get(p.admin, "a", "/metrics", &[]).unwrap().status, 200);
    assert_eq!(served_cfg(&p), "one");
    drop(p);

    // admin_public_readonly: read-only endpoints open, /conf still needs the key
    let p = start(
        &route(&b, "one"),
        &format!("{}admin_public_readonly: true\n", keyed()),
    );
    for path in ["/status", "/metrics", "/config/status"] {
        assert_eq!(get(p.admin, "a", path, &[]).unwrap().status, 200, "{path}");
    }
    let r = request(
        p.admin,
        "POST",
        "a",
        "/conf",
        &[],
        route(&b, "two").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(push(&p, "", &route(&b, "two")).status, 200);
}

#[test]
fn jwt_issue_and_status_and_metrics() {
    let b = Backend::start("b");
    let p = start(
        &format!(
            "provider: file\nauthorization: {{type: jwt}}\n{HOST}:\n  paths:\n    \"/\":\n      servers: [\"{}\", \"unresolvable.invalid:80\"]\n",
            b.addr
        ),
        &keyed(),
    );
    let issue = |body: &str| request(p.admin, "POST", "a", "/jwt", &[], body.as_bytes()).unwrap();
    let r = issue(&format!(
        r#"{{"master_key":"{KEY}","owner":"valod","valid":10}}"#
    ));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let token = json(&r)["token"].as_str().unwrap().to_string();
    let claims =
        aralez::auth::jwt::verify_with_secret(token.as_bytes(), KEY.as_bytes(), now()).unwrap();
    assert_eq!(claims.all["owner"], "valod");
    assert_eq!(claims.exp - claims.iat.unwrap(), 600);
    // `exp` is an alias of `valid`
    assert_eq!(
        issue(&format!(r#"{{"master_key":"{KEY}","owner":"v","exp":1}}"#)).status,
        201
    );
    for bad in [
        "not json".to_string(),
        format!(r#"{{"master_key":"{KEY}","owner":"v","valid":0}}"#),
        format!(r#"{{"master_key":"{KEY}","owner":"v","valid":525601}}"#),
        format!(r#"{{"master_key":"{KEY}","owner":"v","valid":"10"}}"#),
    ] {
        assert_eq!(issue(&bad).status, 400, "{bad}");
    }
    // the token opens the proxy
    let ok = get(
        p.http,
        HOST,
        "/",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(get(p.http, HOST, "/", &[]).unwrap().status, 401);

    // /status: routes and backends with their health and detected protocol (the backend has
    // served requests and been probed, so both are known)
    let s = json(&admin_get(&p, "/status"));
    let routes = s["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0]["id"], format!("{HOST}/"));
    assert_eq!(routes[0]["auth"], "jwt");
    let backends = routes[0]["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2);
    assert_eq!(backends[0]["id"], b.addr.to_string());
    assert_eq!(backends[0]["resolved"], true);
    assert_eq!(backends[0]["healthy"], true);
    assert_eq!(backends[0]["protocol"], "http1");
    assert_eq!(backends[1]["resolved"], false);
    assert!(backends[1]["healthy"].is_null());
    assert_eq!(backends[1]["protocol"], "unknown");
    assert_eq!(s["hash"].as_str().unwrap().len(), 64);

    // metrics move with traffic (counters move when the exchange is logged, after the response)
    let route = format!("{HOST}/");
    let want =
        format!("aralez_http_requests_total{{code=\"200\",method=\"GET\",route=\"{route}\"}} 1");
    let logged = p.wait_for(std::time::Duration::from_secs(2), || {
        admin_get(&p, "/metrics").text().contains(&want)
    });
    assert!(logged.is_some(), "{}", admin_get(&p, "/metrics").text());
    let m = admin_get(&p, "/metrics").text();
    assert!(m.contains("aralez_build_info{version="), "{m}");
    assert!(
        m.contains(&format!(
            "aralez_http_requests_total{{code=\"200\",method=\"GET\",route=\"{route}\"}} 1"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "aralez_auth_rejected_total{{route=\"{route}\",scheme=\"jwt\"}} 1"
        )),
        "{m}"
    );
    for _ in 0..3 {
        get(
            p.http,
            HOST,
            "/",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .unwrap();
    }
    get(p.http, HOST, "/", &[("Authorization", "Bearer x")]).unwrap();
    // request counters move when the exchange is logged, just after the response is sent
    let want = format!("aralez_http_request_duration_seconds_count{{route=\"{route}\"}} 6");
    let logged = p.wait_for(std::time::Duration::from_secs(2), || {
        admin_get(&p, "/metrics").text().contains(&want)
    });
    assert!(logged.is_some(), "{}", admin_get(&p, "/metrics").text());
    let m = admin_get(&p, "/metrics").text();
    assert!(m.contains(&format!(
        "aralez_http_requests_total{{code=\"200\",method=\"GET\",route=\"{route}\"}} 4"
    )));
    assert!(m.contains(&format!(
        "aralez_auth_rejected_total{{route=\"{route}\",scheme=\"jwt\"}} 2"
    )));
    assert!(
        m.contains(&format!(
            "aralez_http_request_duration_seconds_count{{route=\"{route}\"}} 6"
        )),
        "{m}"
    );
    // a whole line: the HELP text itself reads "aralez_config_last_reload_successful 1 when ..."
    assert!(m
        .lines()
        .any(|l| l == "aralez_config_last_reload_successful 1"));
    // a pushed config is counted by trigger and result
    let r = push(&p, "", "provider: file\nbroken: [");
    assert_eq!(r.status, 400);
    let m = admin_get(&p, "/metrics").text();
    assert!(
        m.contains("aralez_config_reloads_total{result=\"rejected\",trigger=\"api\"} 1"),
        "{m}"
    );
    assert!(m
        .lines()
        .any(|l| l == "aralez_config_last_reload_successful 0"));
    // labels never carry the token or the raw path
    assert!(!m.contains(&token));
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
