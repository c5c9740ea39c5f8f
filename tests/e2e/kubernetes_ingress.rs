//! End to end: the Ingress controller mode (`kubernetes.ingress_class`) against the API double:
//! Ingresses of the class routed to their Services' EndpointSlices in their namespace, with the
//! `aralez.rs/*` header annotations; one this build cannot serve skipped and reported while the
//! others serve; another class ignored; change and delete reaching clients within 2 s; the
//! configured address written to the served Ingresses' status; TLS Secrets served by SNI.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{get, Backend, Proxy};
use crate::consul::{hit, start};
use crate::kubernetes::{Cluster, NS};

const VISIBLE: Duration = Duration::from_secs(2);

fn rule(host: &str, paths: &[(&str, &str, &str, serde_json::Value)]) -> serde_json::Value {
    let paths: Vec<serde_json::Value> = paths
        .iter()
        .map(|(path, kind, service, port)| {
            json!({"path": path, "pathType": kind,
                   "backend": {"service": {"name": service, "port": port}}})
        })
        .collect();
    json!({"host": host, "http": {"paths": paths}})
}

fn controller(p: &Proxy) -> serde_json::Value {
    p.config_status()["providers"]["kubernetes"]["ingress_controller"].clone()
}

#[test]
fn ingresses_of_the_class_are_served_changed_and_deleted_and_a_bad_one_is_skipped() {
    let (a, b, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("static"),
    );
    let k = Cluster::start();
    k.api.set_slice(
        NS,
        "web",
        "web-1",
        &[("127.0.0.1", true)],
        &[("http", a.addr.port())],
    );
    k.api.set_slice(
        NS,
        "api",
        "api-1",
        &[("127.0.0.1", true)],
        &[("", b.addr.port())],
    );
    let b_port = json!({"number": b.addr.port()});
    k.api.set_ingress(
        NS,
        "store",
        json!({"ingressClassName": "aralez", "rules": [rule("store.test", &[
            ("/", "Prefix", "web", json!({"name": "http"})),
            ("/api", "ImplementationSpecific", "api", b_port.clone()),
        ])]}),
        json!({"aralez.rs/request-headers": "X-Ingress:store",
               "aralez.rs/response-headers": "X-Served-By:aralez"}),
    );
    // Exact paths are not served by this build: skipped whole, reported
    k.api.set_ingress(
        NS,
        "bad",
        json!({"ingressClassName": "aralez", "rules": [rule("bad.test", &[
            ("/", "Exact", "web", json!({"name": "http"})),
        ])]}),
        json!({}),
    );
    // translated, but its header does not compile: the compiler leaves its routes out (W0014)
    k.api.set_ingress(
        NS,
        "badheader",
        json!({"ingressClassName": "aralez", "rules": [rule("badheader.test", &[
            ("/", "Prefix", "web", json!({"name": "http"})),
        ])]}),
        json!({"aralez.rs/response-headers": "no colon here"}),
    );
    // another controller's Ingress
    k.api.set_ingress(
        NS,
        "theirs",
        json!({"ingressClassName": "nginx", "rules": [rule("theirs.test", &[
            ("/", "Prefix", "web", json!({"name": "http"})),
        ])]}),
        json!({}),
    );
    let extra = "  ingress_class: aralez\n  ingress_status_address: 192.0.2.7\n";
    let text = k.upstreams(extra, &s).replace(
        "    - hostname: sticky.test\n      upstream: \"web:http\"\n      sticky_sessions: 60\n",
        "",
    );
    let p = start(&text);
    let served = p.wait_for(Duration::from_secs(10), || {
        hit(&p, "store.test").as_deref() == Ok("a")
    });
    assert!(served.is_some(), "{}\n{}", p.config_status(), p.log_text());
    let r = get(p.http, "store.test", "/api/items", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", p.log_text());
    assert_eq!(r.echo()["backend"], "b");
    assert_eq!(r.echo()["headers"]["x-ingress"], "store");
    assert_eq!(r.header("x-served-by"), Some("aralez"));
    assert_eq!(
        hit(&p, "web.test").as_deref(),
        Ok("a"),
        "service mode beside"
    );
    assert_eq!(hit(&p, "static.test").as_deref(), Ok("static"));
    assert_eq!(get(p.http, "bad.test", "/", &[]).unwrap().status, 404);
    assert_eq!(get(p.http, "theirs.test", "/", &[]).unwrap().status, 404);
    let c = controller(&p);
    assert_eq!(c["state"], "up", "{c}");
    assert_eq!(c["ingresses"]["shop/store"]["state"], "served", "{c}");
    assert_eq!(c["ingresses"]["shop/store"]["routes"], 2, "{c}");
    assert_eq!(c["ingresses"]["shop/bad"]["state"], "skipped", "{c}");
    assert!(
        c["ingresses"]["shop/bad"]["error"]
            .as_str()
            .unwrap()
            .contains("Exact"),
        "{c}"
    );
    assert!(c["ingresses"].get("shop/theirs").is_none(), "{c}");
    assert!(p.log_text().contains("Ingress shop/bad skipped"));
    // the served Ingress gets the configured address in its status; the skipped one does not
    let lb =
        |name: &str| k.api.ingress(NS, name).unwrap()["status"]["loadBalancer"]["ingress"].clone();
    let written = p.wait_for(Duration::from_secs(5), || {
        lb("store") == json!([{"ip": "192.0.2.7"}])
    });
    assert!(written.is_some(), "{}\n{}", lb("store"), p.log_text());
    assert_eq!(lb("bad"), json!(null));
    assert_eq!(get(p.http, "badheader.test", "/", &[]).unwrap().status, 404);
    let attempt = p.config_status()["last_attempt"].to_string();
    assert!(
        attempt.contains("W0014") && attempt.contains("kubernetes-ingress:shop/badheader"),
        "{attempt}"
    );

    // change: `/` now goes to api
    let t = Instant::now();
    k.api.set_ingress(
        NS,
        "store",
        json!({"ingressClassName": "aralez", "rules": [rule("store.test", &[
            ("/", "Prefix", "api", b_port),
        ])]}),
        json!({}),
    );
    let changed = p.wait_for(Duration::from_secs(5), || {
        hit(&p, "store.test").as_deref() == Ok("b")
    });
    assert!(changed.is_some(), "{}", p.log_text());
    let change_latency = t.elapsed();

    // delete: store.test is gone
    let t = Instant::now();
    k.api.delete_ingress(NS, "store");
    let deleted = p.wait_for(Duration::from_secs(5), || {
        get(p.http, "store.test", "/", &[]).is_ok_and(|r| r.status == 404)
    });
    assert!(deleted.is_some(), "{}", p.log_text());
    let delete_latency = t.elapsed();
    eprintln!("kubernetes ingress: change served after {change_latency:?}, deletion after {delete_latency:?}");
    assert!(change_latency < VISIBLE, "{change_latency:?}");
    assert!(delete_latency < VISIBLE, "{delete_latency:?}");
    assert_eq!(hit(&p, "static.test").as_deref(), Ok("static"));
    assert!(controller(&p)["ingresses"].get("shop/store").is_none());
}

#[test]
fn a_tls_secret_named_by_an_ingress_is_served_by_sni_and_so_is_its_rotation() {
    use crate::tls_common::{start_tls, tls_get, write_pair, Alg, Pki};
    let (a, s) = (Backend::start("a"), Backend::start("static"));
    let k = Cluster::start();
    k.api.set_slice(
        NS,
        "web",
        "web-1",
        &[("127.0.0.1", true)],
        &[("http", a.addr.port())],
    );
    let pki = Pki::new();
    let first = pki.leaf(&["secure.test"], Alg::P256);
    k.api
        .set_tls_secret(NS, "secure-tls", &first.chain_pem, &first.key_pem);
    // a TLS Secret no Ingress names is never served
    let other = pki.leaf(&["other.test"], Alg::P256);
    k.api
        .set_tls_secret(NS, "other-tls", &other.chain_pem, &other.key_pem);
    k.api.set_ingress(
        NS,
        "secure",
        json!({"ingressClassName": "aralez",
               "tls": [{"hosts": ["secure.test"], "secretName": "secure-tls"}],
               "rules": [rule("secure.test", &[("/", "Prefix", "web", json!({"name": "http"}))])]}),
        json!({}),
    );
    let certs = crate::common::TempDir::new("k8s-certs");
    write_pair(
        certs.path(),
        "default",
        &pki.leaf(&["default.test"], Alg::P256),
    );
    let text = k.upstreams("  ingress_class: aralez\n", &s);
    let t = start_tls(&text, certs.path(), "");
    let p = &t.proxy;
    let sni = |name: &str| tls_get(t.tls, Some(name), &[], Some(name));
    let served = p.wait_for(Duration::from_secs(10), || {
        sni("secure.test").is_ok_and(|seen| {
            seen.cn == "secure.test"
                && seen
                    .response
                    .as_ref()
                    .is_some_and(|r| r.status == 200 && r.echo()["backend"] == "a")
        })
    });
    assert!(served.is_some(), "{}\n{}", p.config_status(), p.log_text());
    let serial = sni("secure.test").unwrap().serial;
    assert_ne!(sni("other.test").unwrap().cn, "other.test");
    let status = p.config_status();
    assert!(
        status.to_string().contains("kubernetes:shop/secure-tls"),
        "{status}"
    );

    // the Secret is rotated: the new certificate is served by the next swap
    let t0 = Instant::now();
    let second = pki.leaf(&["secure.test"], Alg::P256);
    k.api
        .set_tls_secret(NS, "secure-tls", &second.chain_pem, &second.key_pem);
    let rotated = p.wait_for(Duration::from_secs(5), || {
        sni("secure.test").is_ok_and(|seen| seen.cn == "secure.test" && seen.serial != serial)
    });
    assert!(rotated.is_some(), "{}", p.log_text());
    let took = t0.elapsed();
    eprintln!("kubernetes ingress: rotated TLS Secret served after {took:?}");
    assert!(took < VISIBLE, "{took:?}");
}
