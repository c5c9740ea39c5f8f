//! Metric names in the dashboard and the documents against the names the code registers
//! (`src/metrics.rs`, where every metric is created), so neither can name a metric that does not
//! exist, and the operations manual lists every one that does.

use std::collections::BTreeSet;
use std::path::PathBuf;

use regex::Regex;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn names_in(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r"\baralez_[a-z0-9_]*[a-z0-9]").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

/// Every metric name registered in `src/metrics.rs` (string literals `"aralez_..."`).
fn registered() -> BTreeSet<String> {
    let re = Regex::new(r#""(aralez_[a-z0-9_]+)""#).unwrap();
    let src = read("src/metrics.rs");
    let names: BTreeSet<String> = re.captures_iter(&src).map(|c| c[1].to_string()).collect();
    assert!(names.len() >= 15, "found only {names:?} in src/metrics.rs");
    names
}

/// A series name is known when it is a registered name, or a histogram's `_bucket`, `_sum` or
/// `_count` series of one.
fn is_registered(name: &str, registered: &BTreeSet<String>) -> bool {
    registered.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| registered.contains(base))
        })
}

fn unknown(names: &BTreeSet<String>, registered: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| !is_registered(n, registered))
        .cloned()
        .collect()
}

/// Every `expr` of every panel (rows included) and template variable.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[test]
fn dashboard_uses_only_registered_metrics() {
    let dash: Value = serde_json::from_str(&read("deploy/grafana/aralez.json")).unwrap();
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(
        all.len() >= 10,
        "only {} queries in the dashboard",
        all.len()
    );
    let used: BTreeSet<String> = all.iter().flat_map(|e| names_in(e)).collect();
    let reg = registered();
    assert_eq!(
        unknown(&used, &reg),
        Vec::<String>::new(),
        "the dashboard queries metrics the code does not register"
    );
    // what the issue asks the dashboard to show
    for must in [
        "aralez_http_requests_total",
        "aralez_http_request_duration_seconds_bucket",
        "aralez_upstream_healthy",
        "aralez_config_last_reload_successful",
        "aralez_tls_certificate_not_after_timestamp_seconds",
        "aralez_downstream_refused_total",
    ] {
        assert!(used.contains(must), "the dashboard does not show {must}");
    }
}

#[test]
fn dashboard_panels_are_well_formed() {
    let dash: Value = serde_json::from_str(&read("deploy/grafana/aralez.json")).unwrap();
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("numeric id")),
            "duplicate id: {title}"
        );
        let grid = &p["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{title} is wider than the grid");
        if p["type"] != "row" {
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{title} has no query");
            for t in targets {
                assert!(t["refId"].is_string() && t["expr"].is_string(), "{title}");
            }
        }
    }
}

#[test]
fn documents_name_only_registered_metrics() {
    let reg = registered();
    for doc in [
        "docs/operations.md",
        "docs/configuration.md",
        "README.md",
        "SECURITY.md",
    ] {
        let named = names_in(&read(doc));
        assert_eq!(
            unknown(&named, &reg),
            Vec::<String>::new(),
            "{doc} names metrics the code does not register"
        );
    }
}

#[test]
fn operations_manual_lists_every_metric() {
    let listed = names_in(&read("docs/operations.md"));
    let missing: Vec<String> = registered()
        .into_iter()
        .filter(|n| !listed.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md does not list {missing:?}"
    );
}

/// The names found in the source are the ones the running registry exports.
#[test]
fn registered_names_are_exported() {
    let metrics = aralez::metrics::Metrics::new().expect("metrics");
    metrics.in_flight.inc();
    let text = metrics.render();
    for name in ["aralez_build_info", "aralez_http_requests_in_flight"] {
        assert!(
            registered().contains(name),
            "{name} not found in src/metrics.rs"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} not exported"
        );
    }
}
