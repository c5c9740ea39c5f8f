//! End to end: the settings of the `kubernetes:` section: `aralez check` without contacting the
//! API, the in-cluster defaults serving an Aralez 0.92-style file unchanged, and `aralez route`
//! explaining a discovered route from a saved `/config/status`.

use std::time::Duration;

use crate::common::{get, run_cli, Backend, Proxy, TempDir};
use crate::consul::hit;
use crate::kubernetes::{Cluster, NS};

#[test]
fn check_validates_a_kubernetes_section_without_contacting_the_api() {
    let d = TempDir::new("k8s-check");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    d.write(
        "up.yaml",
        &format!("provider: kubernetes\nkubernetes:\n  servers: [\"{addr}\"]\n  namespace: shop\n  watch_idle_seconds: 30\n  services:\n    - hostname: web.test\n      upstream: \"web:8080\"\n"),
    );
    let (code, _, err) = run_cli(&["check", "up.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(listener.accept().is_err(), "check contacted the API server");
    d.write(
        "bad.yaml",
        "provider: kubernetes\nkubernetes:\n  watch_idle_seconds: 0\n  services:\n    - hostname: web.test\n      upstream: \"Web:x:y\"\n",
    );
    let (code, _, err) = run_cli(&["check", "bad.yaml"], d.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.yaml:3:23") && err.contains("bad.yaml:6:17"),
        "{err}"
    );
    // the status address without the controller would be a setting nothing enforces
    d.write(
        "status.yaml",
        "provider: kubernetes\nkubernetes:\n  ingress_status_address: 192.0.2.1\n  services: []\n",
    );
    let (code, _, err) = run_cli(&["check", "status.yaml"], d.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("E0007") && err.contains("add `ingress_class`"),
        "{err}"
    );
}

#[test]
fn in_cluster_defaults_serve_an_aralez_092_style_file_unchanged() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let k = Cluster::start();
    k.sa.write("namespace", "shop\n");
    // one unnamed port: no `:PORT` needed
    k.api.set_slice(
        NS,
        "api-service",
        "api-1",
        &[("127.0.0.1", true)],
        &[("", a.addr.port())],
    );
    k.api.set_slice(
        NS,
        "console-service",
        "console-1",
        &[("127.0.0.1", true)],
        &[("", b.addr.port())],
    );
    // the shape of an Aralez 0.92 file: no servers, no namespace, 0.92 spellings
    let text = format!(
        "provider: \"kubernetes\"\nsticky_sessions: 86000\nrate_limit: 100\nx4xx_limit: 100\nheaders:\n  - \"Access-Control-Allow-Origin:*\"\nkubernetes:\n  services:\n    - hostname: \"api-service\"\n      path: \"/\"\n      upstream: \"api-service\"\n    - hostname: \"api-service\"\n      upstream: \"console-service\"\n      path: \"/one\"\n      headers:\n        - \"X-Some-Thing:Yes\"\n      rate_limit: 50\n  tokenpath: \"{}\"\n",
        k.sa.path().join("token").display()
    );
    let port = k.api.addr.port().to_string();
    let p = Proxy::start_opts(
        &text,
        crate::common::ProxyOpts {
            env: &[
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", &port),
            ],
            ..Default::default()
        },
    );
    let served = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "api-service").as_deref() == Ok("a")
    });
    assert!(served.is_some(), "{}", p.log_text());
    let r = get(p.http, "api-service", "/one/x", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.echo()["backend"], "b");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(k
        .api
        .seen()
        .iter()
        .all(|r| r.target.contains("/namespaces/shop/")));

    // `aralez route` explains the discovered route from a saved /config/status
    let status = get(p.admin, "admin", "/config/status", &[]).unwrap();
    let snap = p.dir.write("snapshot.json", &status.text());
    let file = p.dir.path().join("upstreams.yaml");
    let (code, out, err) = run_cli(
        &[
            "route",
            file.to_str().unwrap(),
            "--host",
            "api-service",
            "--path",
            "/one/x",
            "--provider-snapshot",
            snap.to_str().unwrap(),
        ],
        p.dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("discovered from kubernetes service `console-service`")
            && out.contains("in the snapshot (up):")
            && out.contains(&format!("  - {}", b.addr)),
        "{out}"
    );
    let (code, out, _) = run_cli(
        &["route", file.to_str().unwrap(), "--host", "api-service"],
        p.dir.path(),
    );
    assert_eq!(code, 0);
    assert!(out.contains("pass --provider-snapshot"), "{out}");
}

#[test]
fn the_api_certificate_is_verified_and_a_dead_server_fails_over() {
    use crate::tls_common::{write_root, Pki};
    let (a, s) = (Backend::start("a"), Backend::start("static"));
    let k = Cluster::start();
    k.api.set_slice(
        NS,
        "web",
        "web-1",
        &[("127.0.0.1", true)],
        &[("http", a.addr.port())],
    );
    // ca.crt of another CA: the handshake fails, no request reaches the API server
    let other = TempDir::new("k8s-other-ca");
    let root = write_root(&other, &Pki::new());
    std::fs::rename(root, other.path().join("ca.crt")).unwrap();
    other.write("token", "token-one\n");
    let text = k.upstreams("", &s).replace(
        &k.sa.path().join("token").display().to_string(),
        &other.path().join("token").display().to_string(),
    );
    let p = crate::consul::start(&text);
    let refused = p.wait_for(Duration::from_secs(5), || {
        p.config_status()["providers"]["kubernetes"]["state"] == "down"
    });
    assert!(refused.is_some(), "{}", p.log_text());
    let status = p.config_status();
    let error = status["providers"]["kubernetes"]["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("certificate"), "{status}");
    assert!(
        k.api.seen().is_empty(),
        "a request crossed an unverified connection"
    );
    assert!(hit(&p, "web.test").is_err());

    // the right CA, and a dead server first: it fails over to the live one
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let text = k.upstreams("", &s).replace(
        &format!("servers: [\"{}\"]", k.api.addr),
        &format!("servers: [\"{dead_addr}\", \"{}\"]", k.api.addr),
    );
    p.write_upstreams(&text);
    let served = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "web.test").as_deref() == Ok("a")
    });
    assert!(served.is_some(), "{}", p.log_text());
    assert_eq!(
        p.config_status()["providers"]["kubernetes"]["services"]["web:http"]["server"],
        format!("https://{}", k.api.addr).as_str()
    );
}

#[test]
fn a_pushed_kubernetes_config_starts_the_provider_and_a_file_config_stops_it() {
    let (a, s) = (Backend::start("a"), Backend::start("static"));
    let k = Cluster::start();
    k.api.set_slice(
        NS,
        "web",
        "web-1",
        &[("127.0.0.1", true)],
        &[("http", a.addr.port())],
    );
    let key = "k8s-push-master-key-0123456789abcdef";
    let file_config = format!(
        "provider: file\nstatic.test:\n  paths:\n    \"/\": {{servers: [\"{}\"]}}\n",
        s.addr
    );
    let p = Proxy::start_opts(
        &file_config,
        crate::common::ProxyOpts {
            main_extra: &format!("master_key: \"{key}\"\n"),
            ..Default::default()
        },
    );
    let bearer = format!("Bearer {key}");
    let push = |body: &str| {
        crate::common::request(
            p.admin,
            "POST",
            "admin",
            "/conf",
            &[("Authorization", &bearer)],
            body.as_bytes(),
        )
        .unwrap()
    };
    let status = || -> serde_json::Value {
        let r = get(
            p.admin,
            "admin",
            "/config/status",
            &[("Authorization", &bearer)],
        )
        .unwrap();
        serde_json::from_slice(&r.body).unwrap()
    };
    let r = push(&k.upstreams("", &s));
    assert_eq!(r.status, 200, "{}", r.text());
    let served = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "web.test").as_deref() == Ok("a")
    });
    assert!(served.is_some(), "{}", p.log_text());
    assert_eq!(status()["providers"]["kubernetes"]["state"], "up");

    let r = push(&file_config);
    assert_eq!(r.status, 200, "{}", r.text());
    let after = status();
    assert!(
        after["providers"].as_object().unwrap().is_empty(),
        "{after}"
    );
    assert_eq!(hit(&p, "static.test").unwrap(), "static");
    assert!(p.log_text().contains("kubernetes: provider stopped"));
}
