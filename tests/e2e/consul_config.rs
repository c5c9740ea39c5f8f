//! End to end: the settings of the `consul:` section against the Consul double: `https://`
//! servers verified with `tls.ca_file` and `tls.server_name`, and a config pushed through
//! `POST /conf` that starts (and a file config that stops) the provider.

use std::time::Duration;

use crate::common::{get, Backend, Proxy, ProxyOpts, TempDir};
use crate::consul::{hit, provider_up, start, upstreams};
use crate::consul_double::{ConsulDouble, Instance};

#[test]
fn https_servers_are_verified_against_ca_file_and_server_name() {
    use crate::tls_common::{write_root, Alg, Pki};
    let a = Backend::start("a");
    let s = Backend::start("static");
    let pki = Pki::new();
    let leaf = pki.leaf(&["consul.test.internal"], Alg::P256);
    let consul = ConsulDouble::start_tls(&leaf.chain_pem, &leaf.key_pem);
    consul.set_service("web", vec![Instance::at("a", a.addr)]);
    let certs = TempDir::new("consul-ca");
    let ca = write_root(&certs, &pki);
    // the certificate does not name 127.0.0.1: verification (on by default) refuses it
    let wrong = upstreams(
        &[consul.url()],
        &format!("  tls: {{ca_file: \"{}\"}}\n", ca.display()),
        &s,
    );
    let p = start(&wrong);
    let refused = p.wait_for(Duration::from_secs(5), || provider_up(&p) == Some(0.0));
    assert!(refused.is_some(), "{}", p.log_text());
    let status = p.config_status();
    let error = status["providers"]["consul"]["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("certificate"), "{status}");
    assert!(
        hit(&p, "web.test").is_err(),
        "nothing discovered, nothing served"
    );
    assert!(
        consul.seen().is_empty(),
        "no request crossed an unverified connection"
    );

    // with the name the certificate carries, the same CA verifies it
    p.write_upstreams(&upstreams(
        &[consul.url()],
        &format!(
            "  tls: {{ca_file: \"{}\", server_name: consul.test.internal}}\n",
            ca.display()
        ),
        &s,
    ));
    let served = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "web.test").as_deref() == Ok("a")
    });
    assert!(served.is_some(), "{}", p.log_text());
    assert_eq!(provider_up(&p), Some(1.0));
    assert!(consul.seen().iter().any(|r| r.status == 200));
}

#[test]
fn a_pushed_consul_config_starts_the_provider_and_a_file_config_stops_it() {
    let a = Backend::start("a");
    let s = Backend::start("static");
    let consul = ConsulDouble::start();
    consul.set_service("web", vec![Instance::at("a", a.addr)]);
    let key = "consul-push-master-key-0123456789abcdef";
    let file_config = format!(
        "provider: file\nstatic.test:\n  paths:\n    \"/\": {{servers: [\"{}\"]}}\n",
        s.addr
    );
    let p = Proxy::start_opts(
        &file_config,
        ProxyOpts {
            main_extra: &format!("master_key: \"{key}\"\n"),
            ..Default::default()
        },
    );
    let bearer = format!("Bearer {key}");
    let admin = |path: &str| get(p.admin, "admin", path, &[("Authorization", &bearer)]).unwrap();
    let status =
        || -> serde_json::Value { serde_json::from_slice(&admin("/config/status").body).unwrap() };
    assert!(status()["providers"].as_object().unwrap().is_empty());
    let push = |body: &str| {
        crate::common::request(
            p.admin,
            "POST",
            "admin",
            "/conf",
            &[("Authorization", &format!("Bearer {key}"))],
            body.as_bytes(),
        )
        .unwrap()
    };
    let r = push(&upstreams(&[consul.url()], "", &s));
    assert_eq!(r.status, 200, "{}", r.text());
    let served = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "web.test").as_deref() == Ok("a")
    });
    assert!(served.is_some(), "{}", p.log_text());
    let up = p.wait_for(Duration::from_secs(5), || {
        status()["providers"]["consul"]["state"] == "up"
    });
    assert!(up.is_some(), "{}", status());

    let r = push(&file_config);
    assert_eq!(r.status, 200, "{}", r.text());
    let after = status();
    assert!(
        after["providers"].as_object().unwrap().is_empty(),
        "{after}"
    );
    assert!(!admin("/metrics").text().contains("aralez_provider_up{"));
    assert_eq!(hit(&p, "static.test").unwrap(), "static");
    assert!(p.log_text().contains("consul: provider stopped"));
}

#[test]
fn readiness_waits_for_the_first_sync_of_discovered_services() {
    let a = Backend::start("a");
    let s = Backend::start("static");
    let consul = ConsulDouble::start();
    consul.set_service("web", vec![Instance::at("a", a.addr)]);
    // a slow first answer: the listeners serve long before it arrives
    consul.set_delay(Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let p = start(&upstreams(&[consul.url()], "", &s));
    let ready_after = started.elapsed();
    // the first request after /readyz says 200 reaches a discovered backend, not a 503
    assert_eq!(hit(&p, "web.test").as_deref(), Ok("a"), "{}", p.log_text());
    assert!(
        ready_after >= Duration::from_millis(1400),
        "ready after {ready_after:?}, before the first sync"
    );
    eprintln!("readiness with a 1.5 s first Consul answer: ready after {ready_after:?}");
}

#[test]
fn an_unreachable_provider_delays_readiness_by_a_bounded_time() {
    let s = Backend::start("static");
    // a closed port: no Consul answers
    let closed = format!("http://127.0.0.1:{}", crate::common::free_port());
    let started = std::time::Instant::now();
    let p = start(&upstreams(&[closed], "", &s));
    let ready_after = started.elapsed();
    assert!(
        ready_after < Duration::from_secs(12),
        "ready after {ready_after:?}"
    );
    assert_eq!(hit(&p, "static.test").as_deref(), Ok("static"));
    assert_eq!(hit(&p, "web.test"), Err("status 503".into()));
    assert!(
        p.log_text()
            .contains("ready without discovered service(s) web"),
        "{}",
        p.log_text()
    );
}

#[test]
fn route_explains_a_discovered_route_from_a_status_snapshot() {
    let a = Backend::start("a");
    let s = Backend::start("static");
    let consul = ConsulDouble::start();
    consul.set_service("web", vec![Instance::at("a", a.addr)]);
    let text = upstreams(&[consul.url()], "", &s);
    let p = start(&text);
    let d = TempDir::new("route-snapshot");
    d.write("upstreams.yaml", &text);
    d.write("status.json", &p.config_status().to_string());

    let (code, out, err) = crate::common::run_cli(
        &[
            "route",
            "upstreams.yaml",
            "--host",
            "web.test",
            "--provider-snapshot",
            "status.json",
        ],
        d.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("discovered from consul service `web`"),
        "{out}"
    );
    assert!(out.contains(&format!("- {}", a.addr)), "{out}");

    // without a snapshot: where the backends come from; a bad snapshot: exit 2
    let (code, out, _) =
        crate::common::run_cli(&["route", "upstreams.yaml", "--host", "web.test"], d.path());
    assert_eq!(code, 0);
    assert!(out.contains("--provider-snapshot"), "{out}");
    d.write("bad.json", "[1, 2]");
    let (code, _, err) = crate::common::run_cli(
        &[
            "route",
            "upstreams.yaml",
            "--host",
            "web.test",
            "--provider-snapshot",
            "bad.json",
        ],
        d.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("provider snapshot"), "{err}");
}
