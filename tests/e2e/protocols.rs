//! End to end: protocols through the real binary with real clients and servers: h2c prior
//! knowledge, WebSocket (plain and TLS), gRPC (TLS downstream to h2c and TLS upstreams, trailers,
//! bidirectional streaming, error status), and upstream TLS / protocol auto-detection.
//! Needs python3 with `websockets` and `grpcio` (scripts/test.sh installs them), curl and openssl.

use std::time::Duration;

use crate::common::{get, Backend, Proxy, ProxyOpts, TempDir};
use crate::tls_common::*;

fn route(host: &str, addr: impl std::fmt::Display) -> String {
    format!("{host}:\n  paths:\n    \"/\":\n      servers: [\"{addr}\"]\n")
}

/// A self-signed certificate for 127.0.0.1 / localhost, as a backend would have: (cert, key) paths.
fn self_signed(dir: &TempDir) -> (String, String) {
    let key = keypair(Alg::P256);
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = p.self_signed(&key).unwrap();
    let c = dir.write("backend.crt", &cert.pem());
    let k = dir.write("backend.key", &key.serialize_pem());
    (c.display().to_string(), k.display().to_string())
}

#[test]
fn h2c_prior_knowledge_and_http1_on_the_plain_listener() {
    let backend = Backend::start("b1");
    let p = Proxy::start(&format!(
        "provider: file\n{}",
        route("DEFAULT", backend.addr)
    ));
    let url = format!("http://{}/h2c?x=1", p.http);
    for (flag, version) in [("--http2-prior-knowledge", "2"), ("--http1.1", "1.1")] {
        let (code, out, err) = curl(&[flag, "-w", "\n%{http_version}", &url]);
        assert_eq!(code, 0, "{err}");
        let (body, v) = out.rsplit_once('\n').unwrap();
        assert_eq!(v, version, "{flag}");
        let echo: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(echo["path"], "/h2c?x=1");
        assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    }
}

#[test]
fn websocket_echo_through_plain_and_tls_listeners() {
    let ws = PyServer::start("ws_echo.py", &["server"]);
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let dir = TempDir::new("ws");
    let ca = write_root(&dir, &pki).display().to_string();
    let p = start_tls(
        &format!("provider: file\n{}", route("DEFAULT", ws.addr)),
        certs.path(),
        "",
    );
    let cases = [
        (
            format!("ws://a.example.com:{}/chat", p.proxy.http.port()),
            p.proxy.http,
        ),
        (format!("wss://a.example.com:{}/chat", p.tls.port()), p.tls),
    ];
    for (url, connect) in cases {
        let (code, out, err) = python(
            "ws_echo.py",
            &[
                "client",
                &url,
                "--ca",
                &ca,
                "--connect",
                &connect.to_string(),
            ],
        );
        assert_eq!(code, 0, "{url}: {err}\n{}", p.proxy.log_text());
        let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(r["greeting"], "welcome", "server to client: {r}");
        assert_eq!(r["text"], "hello", "{r}");
        assert_eq!(
            r["binary"],
            serde_json::json!([0, 1, 98, 105, 110, 97, 114, 121, 255]),
            "{r}"
        );
        assert_eq!(r["big_ok"], true, "{r}");
        assert_eq!(r["closed"], serde_json::json!([4001, "server-bye"]), "{r}");
        assert_eq!(
            r["client_close"],
            serde_json::json!([1000, "client-bye"]),
            "{r}"
        );
    }
}

fn assert_grpc(report: &str, what: &str) {
    let r: serde_json::Value =
        serde_json::from_str(report.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {report}"));
    assert_eq!(r["unary"], "echo:ping", "{what}: {r}");
    assert_eq!(r["unary_code"], "StatusCode.OK", "{what}: {r}");
    assert_eq!(
        r["trailers"]["x-trailer"], "unary",
        "{what}: trailers kept: {r}"
    );
    assert_eq!(
        r["chat"],
        serde_json::json!(["0:a", "1:b", "2:c", "3:dddddddd"]),
        "{what}: {r}"
    );
    assert_eq!(
        r["fail"],
        serde_json::json!(["StatusCode.PERMISSION_DENIED", "denied: no ticket"]),
        "{what}: status and message from the trailers: {r}"
    );
}

#[test]
fn grpc_over_tls_to_h2c_and_tls_upstreams() {
    let dir = TempDir::new("grpc");
    let (bcert, bkey) = self_signed(&dir);
    let h2c = PyServer::start("grpc_echo.py", &["server"]);
    let tls = PyServer::start("grpc_echo.py", &["server", "--tls", &bcert, &bkey]);
    let pki = Pki::new();
    let ca = write_root(&dir, &pki).display().to_string();
    let certs = TempDir::new("certs");
    write_pair(
        certs.path(),
        "grpc",
        &pki.leaf(&["h2c.example.com", "tls.example.com"], Alg::P256),
    );
    let p = start_tls(
        &format!(
            "provider: file\n{}{}",
            route("h2c.example.com", h2c.addr),
            route("tls.example.com", tls.addr)
        ),
        certs.path(),
        "",
    );
    for name in ["h2c.example.com", "tls.example.com"] {
        let target = format!("127.0.0.1:{}", p.tls.port());
        let (code, out, err) = python(
            "grpc_echo.py",
            &["client", &target, "--ca", &ca, "--name", name],
        );
        assert_eq!(code, 0, "{name}: {err}\n{}", p.proxy.log_text());
        assert_grpc(&out, name);
    }
    let log = p.proxy.log_text();
    assert!(
        log.contains(&format!("{}: detected h2c", h2c.addr)),
        "{log}"
    );
    assert!(
        log.contains(&format!("{}: detected tls_h2", tls.addr)),
        "{log}"
    );
}

#[test]
fn grpc_h2c_downstream() {
    let h2c = PyServer::start("grpc_echo.py", &["server"]);
    let p = Proxy::start(&format!("provider: file\n{}", route("DEFAULT", h2c.addr)));
    let (code, out, err) = python(
        "grpc_echo.py",
        &["client", &format!("127.0.0.1:{}", p.http.port())],
    );
    assert_eq!(code, 0, "{err}\n{}", p.log_text());
    assert_grpc(&out, "h2c downstream");
}

#[test]
fn self_signed_tls_upstream_is_detected_and_verification_is_opt_in() {
    let dir = TempDir::new("up");
    let (bcert, bkey) = self_signed(&dir);
    let https = PyServer::start("https_echo.py", &["secure", &bcert, &bkey]);
    let plain = Backend::start("plain");
    let up = format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n    \"/verified\":\n      verify_upstream_tls: true\n      servers: [\"{}\"]\n    \"/plain\":\n      servers: [\"{}\"]\n",
        https.addr, https.addr, plain.addr
    );
    let p = Proxy::start(&up);
    let r = get(p.http, "app.test", "/hello", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", p.log_text());
    assert_eq!(r.echo()["tls"], true);
    assert_eq!(r.echo()["backend"], "secure");
    assert_eq!(r.echo()["path"], "/hello");
    let r = get(p.http, "app.test", "/plain", &[]).unwrap();
    assert_eq!(r.echo()["backend"], "plain");
    let log = p.log_text();
    assert!(
        log.contains(&format!("{}: detected tls_http1", https.addr)),
        "{log}"
    );
    assert!(
        log.contains(&format!("{}: detected http1", plain.addr)),
        "{log}"
    );
    // verification on: a self-signed certificate is refused
    let r = get(p.http, "app.test", "/verified", &[]).unwrap();
    assert_eq!(r.status, 502, "{}", p.log_text());
}

#[test]
fn a_tls_backend_added_by_reload_is_detected_before_it_serves() {
    let dir = TempDir::new("up");
    let (bcert, bkey) = self_signed(&dir);
    let https = PyServer::start("https_echo.py", &["secure", &bcert, &bkey]);
    let plain = Backend::start("plain");
    let p = Proxy::start(&format!("provider: file\n{}", route("DEFAULT", plain.addr)));
    let before = p.active_hash();
    p.write_upstreams(&format!("provider: file\n{}", route("DEFAULT", https.addr)));
    let swapped = p.wait_for(Duration::from_secs(5), || p.active_hash() != before);
    assert!(swapped.is_some(), "{}", p.log_text());
    // the very first request after the swap already speaks TLS: detection ran at build time,
    // not on this request
    let r = get(p.http, "app.test", "/first", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", p.log_text());
    assert_eq!(r.echo()["backend"], "secure");
    assert_eq!(r.echo()["tls"], true);
    let log = p.log_text();
    let detected = log.find(&format!("{}: detected tls_http1", https.addr));
    let applied = log.find("config applied (file)");
    assert!(
        detected.is_some() && detected < applied,
        "detected before the generation serves: {log}"
    );
    let status = crate::common::get(p.admin, "admin", "/status", &[]).unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(
        status["routes"][0]["backends"][0]["protocol"], "tls_http1",
        "{status}"
    );
}

#[test]
fn verified_upstream_tls_accepts_a_trusted_chain() {
    // the proxy's system store holds our test root (SSL_CERT_FILE), the backend a leaf for 127.0.0.1
    let dir = TempDir::new("trusted");
    let pki = Pki::new();
    let ca = write_root(&dir, &pki).display().to_string();
    let ca_dir = dir.path().join("certs.d");
    std::fs::create_dir_all(&ca_dir).unwrap();
    let ca_dir = ca_dir.display().to_string();
    // a leaf with an IP SAN for the IP-literal backend
    let ip_leaf = pki.leaf(&["127.0.0.1"], Alg::P256);
    let c = dir.write("b.crt", &ip_leaf.chain_pem);
    let k = dir.write("b.key", &ip_leaf.key_pem);
    let https = PyServer::start(
        "https_echo.py",
        &[
            "trusted",
            &c.display().to_string(),
            &k.display().to_string(),
        ],
    );
    let up = format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      verify_upstream_tls: true\n      servers: [\"{}\"]\n",
        https.addr
    );
    let p = Proxy::start_opts(
        &up,
        ProxyOpts {
            env: &[("SSL_CERT_FILE", &ca), ("SSL_CERT_DIR", &ca_dir)],
            ..Default::default()
        },
    );
    let r = get(p.http, "app.test", "/v", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", p.log_text());
    assert_eq!(r.echo()["backend"], "trusted");
}

#[test]
fn tls_upstream_works_with_an_empty_system_ca_store() {
    let dir = TempDir::new("empty-ca");
    let empty = dir.write("empty.pem", "");
    let empty_dir = dir.path().join("certs.d");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let (bcert, bkey) = self_signed(&dir);
    let https = PyServer::start("https_echo.py", &["secure", &bcert, &bkey]);
    let p = Proxy::start_opts(
        &format!("provider: file\n{}", route("DEFAULT", https.addr)),
        ProxyOpts {
            env: &[
                ("SSL_CERT_FILE", &empty.display().to_string()),
                ("SSL_CERT_DIR", &empty_dir.display().to_string()),
            ],
            ..Default::default()
        },
    );
    let r = get(p.http, "app.test", "/", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", p.log_text());
    assert_eq!(r.echo()["tls"], true);
    // rustls only: OpenSSL verifies with its own default paths and needs no CA when unverified
    #[cfg(feature = "rustls")]
    assert!(
        p.log_text().contains("system CA store is empty"),
        "{}",
        p.log_text()
    );
}

#[cfg(feature = "rustls")]
#[test]
fn unreadable_system_ca_store_is_refused_cleanly() {
    // pingora's connector would panic on it; aralez refuses to start with a clear message
    let backend = Backend::start("b1");
    let d = TempDir::new("bad-ca");
    d.write(
        "up.yaml",
        &format!("provider: file\n{}", route("DEFAULT", backend.addr)),
    );
    d.write(
        "main.yaml",
        &format!(
            "proxy_address_http: \"127.0.0.1:{}\"\nconfig_address: \"127.0.0.1:{}\"\nupstreams_conf: up.yaml\nupgrade_sock: \"{}\"\n",
            crate::common::free_port(),
            crate::common::free_port(),
            d.path().join("u.sock").display()
        ),
    );
    let mut child = std::process::Command::new(crate::common::aralez_bin())
        .args(["-c", "main.yaml"])
        .current_dir(d.path())
        .env("SSL_CERT_DIR", d.path().join("missing"))
        .env_remove("SSL_CERT_FILE")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    assert!(err.contains("system CA store cannot be read"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn tls_and_plain_upstreams_stay_healthy_under_health_checks() {
    let dir = TempDir::new("up");
    let (bcert, bkey) = self_signed(&dir);
    let https = PyServer::start("https_echo.py", &["secure", &bcert, &bkey]);
    let plain = Backend::start("plain");
    let up = format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\", \"{}\"]\n",
        https.addr, plain.addr
    );
    let p = Proxy::start_opts(
        &up,
        ProxyOpts {
            main_extra: "hc_interval: 1\n",
            ..Default::default()
        },
    );
    // several probe rounds: the TLS backend is probed over TLS, not taken out as broken HTTP
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = get(p.http, "app.test", "/", &[]).unwrap();
        assert_eq!(r.status, 200, "{}", p.log_text());
        seen.insert(r.echo()["backend"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen.len(),
        2,
        "both backends in rotation: {seen:?}\n{}",
        p.log_text()
    );
    assert!(plain.probes() >= 2, "the plain backend is probed");
    let status = get(p.admin, "admin", "/status", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    let backends = v["routes"][0]["backends"].as_array().unwrap();
    let by_id = |id: String| {
        backends
            .iter()
            .find(|b| b["id"] == id.as_str())
            .unwrap()
            .clone()
    };
    let tls = by_id(https.addr.to_string());
    assert_eq!(tls["healthy"], true, "{v}");
    assert_eq!(tls["protocol"], "tls_http1", "{v}");
    let plain_status = by_id(plain.addr.to_string());
    assert_eq!(plain_status["healthy"], true, "{v}");
    assert_eq!(plain_status["protocol"], "http1", "{v}");
    assert!(!p.log_text().contains("is down"), "{}", p.log_text());
}
