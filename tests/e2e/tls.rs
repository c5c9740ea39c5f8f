//! End to end: downstream TLS with the real binary: SNI selection, hot reload of the certificate
//! folder, broken pairs, cipher grades, HTTP/2 by ALPN, `to_https` and the admin API over TLS.
//! Certificates are generated at test time; clients are rustls, curl and `openssl s_client`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{free_port, get, run_cli, Backend, TempDir};
use crate::tls_common::*;

fn upstreams(backend: &Backend) -> String {
    format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        backend.addr
    )
}

fn metrics(p: &crate::common::Proxy) -> String {
    get(p.admin, "admin", "/metrics", &[]).unwrap().text()
}

#[test]
fn sni_picks_exact_then_wildcard_then_default() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::Rsa));
    write_pair(certs.path(), "b", &pki.leaf(&["b.example.com"], Alg::P384));
    write_pair(
        certs.path(),
        "wild",
        &pki.leaf(&["*.wild.test"], Alg::Ed25519),
    );
    write_pair(
        certs.path(),
        "default",
        &pki.leaf(&["fallback.test"], Alg::P256),
    );
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");

    let cn = |sni: Option<&str>| tls_get(p.tls, sni, &[], None).unwrap().cn;
    assert_eq!(cn(Some("a.example.com")), "a.example.com");
    assert_eq!(
        cn(Some("A.Example.COM")),
        "a.example.com",
        "case-insensitive"
    );
    assert_eq!(cn(Some("b.example.com")), "b.example.com");
    assert_eq!(cn(Some("x.wild.test")), "*.wild.test");
    assert_eq!(
        cn(Some("x.y.wild.test")),
        "fallback.test",
        "single label only"
    );
    assert_eq!(cn(Some("unknown.test")), "fallback.test");
    assert_eq!(cn(None), "fallback.test", "no SNI gets the default");

    // requests are served over TLS, and the upstream learns the scheme
    let seen = tls_get(
        p.tls,
        Some("a.example.com"),
        &[b"http/1.1"],
        Some("a.example.com"),
    )
    .unwrap();
    let resp = seen.response.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.echo()["headers"]["x-forwarded-proto"], "https");
    assert_eq!(resp.echo()["backend"], "b1");

    let m = metrics(&p.proxy);
    for name in ["a", "b", "wild", "default"] {
        assert!(
            m.contains(&format!(
                "aralez_tls_certificate_not_after_timestamp_seconds{{name=\"{name}\"}}"
            )),
            "{m}"
        );
    }
}

#[test]
fn lexicographically_first_pair_is_default_without_default_crt() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "zeta", &pki.leaf(&["zeta.test"], Alg::P256));
    write_pair(certs.path(), "alpha", &pki.leaf(&["alpha.test"], Alg::P256));
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");
    assert_eq!(tls_get(p.tls, None, &[], None).unwrap().cn, "alpha.test");
    assert_eq!(
        tls_get(p.tls, Some("zeta.test"), &[], None).unwrap().cn,
        "zeta.test"
    );
}

#[test]
fn dropped_in_pair_is_served_over_h2_without_restart() {
    let pki = Pki::new();
    let dir = TempDir::new("h2");
    let ca = write_root(&dir, &pki);
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "other", &pki.leaf(&["other.test"], Alg::P256));
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");
    let resolve = format!("example.com:{}:127.0.0.1", p.tls.port());
    let url = format!("https://example.com:{}/hello", p.tls.port());
    let ca = ca.display().to_string();
    let args = [
        "--http2",
        "--cacert",
        ca.as_str(),
        "--resolve",
        resolve.as_str(),
        "-w",
        "\n%{http_version}",
        url.as_str(),
    ];
    // before: the name is not in the folder, curl refuses the default certificate
    let (code, _, err) = curl(&args);
    assert_ne!(code, 0, "{err}");

    // the operator drops example.com.crt/.key into the folder (crt first, key a moment later)
    let leaf = pki.leaf(&["example.com", "www.example.com"], Alg::P256);
    std::fs::write(certs.path().join("example.com.crt"), &leaf.chain_pem).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(certs.path().join("example.com.key"), &leaf.key_pem).unwrap();
    let took = p
        .proxy
        .wait_for(Duration::from_secs(3), || curl(&args).0 == 0);
    assert!(
        took.is_some(),
        "new pair not served:\n{}",
        p.proxy.log_text()
    );
    let (code, out, err) = curl(&args);
    assert_eq!(code, 0, "{err}");
    let (body, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "2", "HTTP/2 by ALPN");
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["path"], "/hello");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    assert!(
        p.proxy.log_text().contains("example.com"),
        "the reload is logged"
    );
}

#[test]
fn replaced_certificate_is_used_within_2s_and_no_request_fails() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");
    let first = tls_get(p.tls, Some("a.example.com"), &[], None)
        .unwrap()
        .serial;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let served = Arc::new(AtomicUsize::new(0));
    let last_serial = Arc::new(Mutex::new(first.clone()));
    let client = {
        let (stop, failures, served, last_serial, addr) = (
            stop.clone(),
            failures.clone(),
            served.clone(),
            last_serial.clone(),
            p.tls,
        );
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(20) {
                match tls_get(addr, Some("a.example.com"), &[], Some("a.example.com")) {
                    Ok(seen) if seen.response.as_ref().is_some_and(|r| r.status == 200) => {
                        served.fetch_add(1, Ordering::SeqCst);
                        *last_serial.lock().unwrap() = seen.serial;
                    }
                    Ok(seen) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{:?}", seen.response)),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let renewed = pki.leaf(&["a.example.com"], Alg::P256);
    std::fs::write(certs.path().join("a.crt"), &renewed.chain_pem).unwrap();
    std::fs::write(certs.path().join("a.key"), &renewed.key_pem).unwrap();
    let replaced_at = Instant::now();
    let took = p.proxy.wait_for(Duration::from_secs(2), || {
        *last_serial.lock().unwrap() != first
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert!(
        took.is_some(),
        "new certificate not used {:?} after the replacement",
        replaced_at.elapsed()
    );
    assert!(served.load(Ordering::SeqCst) > 5);
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
}

fn broken_folder(pki: &Pki, certs: &TempDir) {
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    // b: the key of another certificate
    let b1 = pki.leaf(&["b.example.com"], Alg::P256);
    let b2 = pki.leaf(&["b.example.com"], Alg::P256);
    std::fs::write(certs.path().join("b.crt"), &b1.chain_pem).unwrap();
    std::fs::write(certs.path().join("b.key"), &b2.key_pem).unwrap();
    // c: not PEM at all
    certs.write("c.crt", "this is not a certificate\n");
    certs.write("c.key", "nor a key\n");
    // d: expired
    write_pair(
        certs.path(),
        "d",
        &pki.leaf_with(&["d.example.com"], Alg::P256, -2),
    );
    // e: a certificate without its key
    certs.write("e.crt", &pki.leaf(&["e.example.com"], Alg::P256).chain_pem);
}

#[test]
fn broken_pairs_are_skipped_logged_counted_and_reported_by_check() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    broken_folder(&pki, &certs);
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");

    assert_eq!(
        tls_get(p.tls, Some("a.example.com"), &[], None).unwrap().cn,
        "a.example.com"
    );
    // b was skipped: its name gets the default (a)
    assert_eq!(
        tls_get(p.tls, Some("b.example.com"), &[], None).unwrap().cn,
        "a.example.com"
    );
    let log = p.proxy.log_text();
    for needle in [
        "b.key",
        "does not belong",
        "c.crt",
        "d.crt",
        "expired",
        "e.crt",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    let m = metrics(&p.proxy);
    for name in ["b", "c", "d", "e"] {
        assert!(
            m.contains(&format!(
                "aralez_tls_certificate_load_errors_total{{name=\"{name}\"}} 1"
            )),
            "{m}"
        );
    }
    assert!(!m.contains("aralez_tls_certificate_not_after_timestamp_seconds{name=\"b\"}"));

    // `aralez check --main` says the same, naming each file
    let (code, out, err) = run_cli(&["check", "--main", "main.yaml"], p.proxy.dir.path());
    assert_eq!(code, 1, "{out}{err}");
    for needle in ["E0804", "b.key", "c.crt", "d.crt", "e.crt"] {
        assert!(err.contains(needle), "check lacks {needle:?}:\n{err}");
    }
    assert!(err.contains("main.yaml:"), "{err}");

    // breaking the only good pair at runtime keeps the previous certificates serving
    certs.write("a.crt", "garbage\n");
    certs.write("a.key", "garbage\n");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        tls_get(p.tls, Some("a.example.com"), &[], None).unwrap().cn,
        "a.example.com"
    );
    assert!(p
        .proxy
        .log_text()
        .contains("previous certificates keep serving"));
    let r = get(p.proxy.http, "x", "/", &[]).unwrap();
    assert_eq!(r.status, 200, "the proxy is still up");
}

#[test]
fn empty_or_broken_folder_at_start_does_not_stop_the_proxy() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    certs.write(
        "x.crt",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    certs.write("x.key", "junk");
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");
    assert_eq!(get(p.proxy.http, "x", "/", &[]).unwrap().status, 200);
    assert!(tls_get(p.tls, Some("a.example.com"), &[], None).is_err());
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let took = p.proxy.wait_for(Duration::from_secs(2), || {
        tls_get(p.tls, Some("a.example.com"), &[], None).is_ok()
    });
    assert!(took.is_some(), "{}", p.proxy.log_text());
}

#[test]
fn sighup_reloads_certificates() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let backend = Backend::start("b1");
    let mut p = start_tls(&upstreams(&backend), certs.path(), "");
    let before = metrics(&p.proxy);
    assert!(!before.contains("trigger=\"sighup\""));
    p.proxy.sighup();
    let mut status = serde_json::Value::Null;
    let took = p.proxy.wait_for(Duration::from_secs(3), || {
        status = p.proxy.config_status();
        status["active"]["trigger"] == "sighup"
    });
    assert!(took.is_some(), "{status}\n{}", p.proxy.log_text());
    assert_eq!(status["active"]["certificates"][0]["name"], "a", "{status}");
    assert!(tls_get(p.tls, Some("a.example.com"), &[], None).is_ok());
    assert!(p.proxy.terminate().is_some());
}

#[test]
fn a_certificate_change_is_a_new_generation_on_config_status() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    let a = pki.leaf(&["a.example.com"], Alg::P256);
    write_pair(certs.path(), "a", &a);
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");
    let first = p.proxy.config_status();
    let active = &first["active"];
    assert_eq!(active["trigger"], "start");
    assert_eq!(active["hash"].as_str().unwrap().len(), 64);
    assert_ne!(
        active["hash"], active["plan_hash"],
        "certificates are in the hash"
    );
    assert_eq!(active["certificates"][0]["name"], "a", "{first}");
    assert_eq!(active["certificates"][0]["default"], true, "{first}");
    assert_eq!(active["certificates"][0]["hosts"][0], "a.example.com");
    assert!(active["certificates"][0]["not_after"].as_i64().unwrap() > 0);

    write_pair(certs.path(), "b", &pki.leaf(&["b.example.com"], Alg::P256));
    let mut next = serde_json::Value::Null;
    let took = p.proxy.wait_for(Duration::from_secs(3), || {
        next = p.proxy.config_status();
        next["active"]["hash"] != first["active"]["hash"]
    });
    assert!(took.is_some(), "{next}\n{}", p.proxy.log_text());
    let active = &next["active"];
    assert_eq!(active["trigger"], "file", "{next}");
    assert_eq!(
        active["plan_hash"], first["active"]["plan_hash"],
        "same plan"
    );
    assert_eq!(
        active["certificates"].as_array().unwrap().len(),
        2,
        "{next}"
    );
    assert_eq!(next["last_attempt"]["result"], "applied");
    assert_eq!(next["last_attempt"]["hash"], active["hash"]);
    assert!(tls_get(p.tls, Some("b.example.com"), &[], None).is_ok());
}

#[test]
fn weak_tls12_suite_refused_under_high_accepted_under_medium() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::Rsa));
    let backend = Backend::start("b1");
    let high = start_tls(
        &upstreams(&backend),
        certs.path(),
        "proxy_tls_grade: high\n",
    );
    let medium = start_tls(
        &upstreams(&backend),
        certs.path(),
        "proxy_tls_grade: medium\n",
    );

    let weak = "ECDHE-RSA-AES128-GCM-SHA256";
    assert!(!openssl_tls12_with(high.tls, weak), "high refuses {weak}");
    assert!(
        openssl_tls12_with(medium.tls, weak),
        "medium accepts {weak}"
    );
    for ok in ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"] {
        assert!(openssl_tls12_with(high.tls, ok), "high accepts {ok}");
    }
    // no grade accepts RSA key exchange or CBC
    for bad in [
        "AES128-GCM-SHA256",
        "AES256-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA384",
    ] {
        assert!(!openssl_tls12_with(high.tls, bad), "high refuses {bad}");
        assert!(!openssl_tls12_with(medium.tls, bad), "medium refuses {bad}");
    }
    // TLS 1.3 works under both
    assert!(tls_get(high.tls, Some("a.example.com"), &[], None).is_ok());
}

#[test]
fn to_https_redirects_to_the_tls_port() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let backend = Backend::start("b1");
    let up = format!(
        "provider: file\na.example.com:\n  paths:\n    \"/\":\n      to_https: true\n      servers: [\"{}\"]\n",
        backend.addr
    );
    let p = start_tls(&up, certs.path(), "");
    let r = get(p.proxy.http, "a.example.com", "/x?y=1", &[]).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://a.example.com:{}/x?y=1", p.tls.port()).as_str())
    );
    let seen = tls_get(p.tls, Some("a.example.com"), &[], Some("a.example.com")).unwrap();
    assert_eq!(seen.response.unwrap().status, 200, "no redirect over TLS");
}

#[test]
fn admin_api_over_tls() {
    let pki = Pki::new();
    let dir = TempDir::new("admin");
    let ca = write_root(&dir, &pki);
    let leaf = pki.leaf(&["admin.test"], Alg::P256);
    let crt = dir.write("admin.crt", &leaf.chain_pem);
    let key = dir.write("admin.key", &leaf.key_pem);
    let admin_tls = free_port();
    let backend = Backend::start("b1");
    let extra = format!(
        "config_tls_address: \"127.0.0.1:{admin_tls}\"\nconfig_tls_certificate: \"{}\"\nconfig_tls_key_file: \"{}\"\n",
        crt.display(),
        key.display()
    );
    let p = crate::common::Proxy::start_opts(
        &upstreams(&backend),
        crate::common::ProxyOpts {
            main_extra: &extra,
            ..Default::default()
        },
    );
    let resolve = format!("admin.test:{admin_tls}:127.0.0.1");
    let url = format!("https://admin.test:{admin_tls}/livez");
    let ca = ca.display().to_string();
    let mut last = (0, String::new(), String::new());
    let ok = p.wait_for(Duration::from_secs(5), || {
        last = curl(&["--cacert", &ca, "--resolve", &resolve, &url]);
        last.0 == 0
    });
    assert!(ok.is_some(), "{last:?}\n{}", p.log_text());
    assert_eq!(last.1, "ok\n");

    // a bad admin key is refused at start, and by check
    dir.write("admin.key", &pki.leaf(&["admin.test"], Alg::P256).key_pem);
    let (code, _, err) = run_cli(&["check", "--main", "main.yaml"], p.dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0804") && err.contains("admin.key"), "{err}");
}

#[test]
fn check_warns_on_empty_folder_and_expiring_certificates() {
    let pki = Pki::new();
    let d = TempDir::new("check");
    d.write(
        "up.yaml",
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:1\"]\n",
    );
    std::fs::create_dir_all(d.path().join("certs")).unwrap();
    d.write(
        "main.yaml",
        "proxy_address_http: \"127.0.0.1:6193\"\nproxy_address_tls: \"127.0.0.1:6443\"\nproxy_certificates: certs\nupstreams_conf: up.yaml\n",
    );
    let (code, _, err) = run_cli(&["check", "--main", "main.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("W0802") && err.contains("main.yaml:3:"),
        "{err}"
    );
    let (code, _, _) = run_cli(
        &["check", "--deny-warnings", "--main", "main.yaml"],
        d.path(),
    );
    assert_eq!(code, 3);

    write_pair(
        &d.path().join("certs"),
        "soon",
        &pki.leaf_with(&["soon.test"], Alg::P256, 5),
    );
    let (code, _, err) = run_cli(&["check", "--main", "main.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("W0801") && err.contains("soon.crt"), "{err}");
    assert!(!err.contains("W0802"), "{err}");

    write_pair(
        &d.path().join("certs"),
        "soon",
        &pki.leaf_with(&["soon.test"], Alg::P256, 90),
    );
    let (code, out, err) = run_cli(&["check", "--main", "main.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("W08"), "{err}");
    assert!(out.contains("main.yaml: OK"), "{out}");
}

#[test]
fn certificate_folder_deleted_and_recreated_is_still_watched() {
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");
    let cn = |sni: &str| tls_get(p.tls, Some(sni), &[], None).map(|s| s.cn);
    assert_eq!(cn("a.example.com").unwrap(), "a.example.com");

    // the folder goes away (the previous certificates keep serving) and comes back
    std::fs::remove_dir_all(certs.path()).unwrap();
    let noticed = p.proxy.wait_for(Duration::from_secs(3), || {
        p.proxy.log_text().contains("cannot read")
    });
    assert!(noticed.is_some(), "{}", p.proxy.log_text());
    assert_eq!(cn("a.example.com").unwrap(), "a.example.com");
    std::fs::create_dir(certs.path()).unwrap();
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    std::thread::sleep(Duration::from_millis(800));

    // a later change in the new folder is applied without SIGHUP
    write_pair(certs.path(), "b", &pki.leaf(&["b.example.com"], Alg::P256));
    let took = p.proxy.wait_for(Duration::from_secs(3), || {
        cn("b.example.com").is_ok_and(|c| c == "b.example.com")
    });
    assert!(
        took.is_some(),
        "change in the recreated folder ignored:\n{}",
        p.proxy.log_text()
    );
    let status: serde_json::Value = serde_json::from_slice(
        &get(p.proxy.admin, "admin", "/config/status", &[])
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(status["watch"]["certificates"]["active"], true, "{status}");
}

#[test]
fn a_pair_file_with_a_non_utf8_name_is_logged_and_counted() {
    use std::os::unix::ffi::OsStrExt;
    let pki = Pki::new();
    let certs = TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let leaf = pki.leaf(&["b.example.com"], Alg::P256);
    let bad = |ext: &str| {
        let mut name = b"b\xff".to_vec();
        name.extend_from_slice(ext.as_bytes());
        certs.path().join(std::ffi::OsStr::from_bytes(&name))
    };
    std::fs::write(bad(".crt"), &leaf.chain_pem).unwrap();
    std::fs::write(bad(".key"), &leaf.key_pem).unwrap();
    let backend = Backend::start("b1");
    let p = start_tls(&upstreams(&backend), certs.path(), "");
    let log = p.proxy.log_text();
    assert!(log.contains("not valid UTF-8"), "{log}");
    let m = metrics(&p.proxy);
    assert!(
        m.lines()
            .any(|l| l.starts_with("aralez_tls_certificate_load_errors_total{name=\"b\u{fffd}\"}")),
        "{m}"
    );
    // the good pair still serves
    assert_eq!(
        tls_get(p.tls, Some("a.example.com"), &[], None).unwrap().cn,
        "a.example.com"
    );
}
