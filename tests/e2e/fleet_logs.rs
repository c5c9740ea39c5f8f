//! End to end: request ids, W3C `traceparent` and the JSON access log (written by its own
//! thread to `access_log_file`, reopened on SIGUSR1).

use std::time::Duration;

use crate::common::{get, Backend, Proxy, ProxyOpts};

const HOST: &str = "app.example.com";
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn upstreams(backend: &Backend) -> String {
    format!(
        "provider: file\n{HOST}:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        backend.addr
    )
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The JSON line of request `id` in `path`, waiting for the writer thread (bounded).
fn line_of(proxy: &Proxy, path: &std::path::Path, id: &str) -> serde_json::Value {
    let mut found = None;
    proxy.wait_for(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        found = json_lines(&text)
            .into_iter()
            .find(|v| v["request_id"] == id);
        found.is_some()
    });
    found.unwrap_or_else(|| {
        panic!(
            "no access line for {id} in {}:\n{}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        )
    })
}

#[test]
fn every_response_has_a_request_id_that_its_json_access_line_carries() {
    let backend = Backend::start("b1");
    let mut proxy = Proxy::start_opts(
        &upstreams(&backend),
        ProxyOpts {
            main_extra: "access_log_format: json\naccess_log_file: access.log\n",
            ..Default::default()
        },
    );
    let log = proxy.dir.path().join("access.log");

    // a proxied request: a generated id, sent upstream and returned; a new trace started
    let r = get(
        proxy.http,
        HOST,
        "/items?secret=1",
        &[("X-Request-Id", "spoofed")],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_ne!(id, "spoofed", "an untrusted client's id is replaced");
    let echo = r.echo();
    assert_eq!(echo["headers"]["x-request-id"], id.as_str());
    let tp = echo["headers"]["traceparent"].as_str().unwrap().to_string();
    assert_eq!(tp.len(), 55, "{tp}");
    assert!(tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
    let line = line_of(&proxy, &log, &id);
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "GET");
    assert_eq!(line["host"], HOST);
    assert_eq!(line["path"], "/items", "no query in the log");
    assert_eq!(line["trace_id"], &tp[3..35]);
    assert_eq!(line["route"], "app.example.com/");
    assert_eq!(line["upstream"], backend.addr.to_string());
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["generation"], proxy.active_hash().as_str());
    assert_eq!(line["auth"], "none");
    assert_eq!(line["limit"], "pass");
    assert!(line["bytes_out"].as_u64().unwrap() > 0);
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);

    // a caller's trace is continued: same trace id and flags, a new span id
    let r = get(proxy.http, HOST, "/", &[("traceparent", TP)]).unwrap();
    let sent = r.echo()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(&sent[..36], &TP[..36]);
    assert_ne!(&sent[36..52], &TP[36..52]);
    assert!(sent.ends_with("-01"));
    let line = line_of(&proxy, &log, r.header("x-request-id").unwrap());
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // our own answers carry an id too, and get a line
    let r = get(proxy.http, "unknown.example.com", "/", &[]).unwrap();
    assert_eq!(r.status, 404);
    let id = r.header("x-request-id").unwrap().to_string();
    let line = line_of(&proxy, &log, &id);
    assert_eq!(line["status"], 404);
    assert!(line["route"].is_null());

    // logrotate: rename, SIGUSR1, and the next lines go to a new file at the old path
    let rotated = proxy.dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    proxy.signal("USR1");
    let mut reopened = false;
    let mut sent = Vec::new();
    proxy.wait_for(Duration::from_secs(5), || {
        // requests until one of them lands in the new file (reopen and writes are asynchronous)
        let r = get(proxy.http, HOST, "/", &[]).unwrap();
        sent.push(r.header("x-request-id").unwrap_or("-").to_string());
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        reopened = sent.iter().any(|id| text.contains(id.as_str()));
        reopened
    });
    assert!(reopened, "no line in the reopened file");
    assert!(
        json_lines(&std::fs::read_to_string(&rotated).unwrap()).len() >= 3,
        "the rotated file keeps its lines"
    );
    assert!(proxy
        .metrics()
        .contains("aralez_access_log_dropped_total 0"));
    proxy.terminate();
}

#[test]
fn a_trusted_proxy_keeps_its_request_id() {
    let backend = Backend::start("b1");
    let proxy = Proxy::start_opts(
        &upstreams(&backend),
        ProxyOpts {
            main_extra: "trusted_proxies: [\"127.0.0.1/32\"]\n",
            ..Default::default()
        },
    );
    let r = get(proxy.http, HOST, "/", &[("X-Request-Id", "lb-42.abc")]).unwrap();
    assert_eq!(r.header("x-request-id"), Some("lb-42.abc"));
    assert_eq!(r.echo()["headers"]["x-request-id"], "lb-42.abc");
    // not a sane token: replaced even from a trusted peer
    let r = get(proxy.http, HOST, "/", &[("X-Request-Id", "a b\"c")]).unwrap();
    assert_ne!(r.header("x-request-id"), Some("a b\"c"));
    // SIGUSR1 without an access_log_file is harmless (logrotate may send it anyway)
    proxy.signal("USR1");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(proxy.http, HOST, "/", &[]).unwrap().status, 200);
    // the text access line (stderr here) names the id
    let id = r.header("x-request-id").unwrap().to_string();
    assert!(
        proxy
            .wait_for(Duration::from_secs(5), || proxy
                .log_text()
                .contains(&format!("id={id}")))
            .is_some(),
        "{}",
        proxy.log_text()
    );
}
