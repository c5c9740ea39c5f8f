//! Replays the committed fuzz seeds (`../fuzz/seeds/<target>/*`) through the same entry points as
//! the fuzz targets, as an ordinary test (no nightly needed).

use std::fs;
use std::path::Path;

use aralez_compiler::{compile_main, compile_upstreams, plan_json, Context, Source};

/// The body of `fuzz/fuzz_targets/compile.rs`.
fn compile_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let src = Source {
        name: "upstreams.yaml",
        text: &text,
    };
    let confd = Source {
        name: "conf.d/a.yaml",
        text: &text,
    };
    let unsupported = ["rate_limit", "provider:consul"];
    let ctx = Context {
        tls_listener: data.first().is_some_and(|b| b & 1 == 1),
        unsupported: &unsupported,
    };
    if let Ok(plan) = compile_upstreams(&[src, confd], &ctx) {
        let _ = plan_json(&plan.value);
        let _ = plan.value.route("example.com", "/");
    }
    let _ = compile_main(&src, &unsupported);
}

/// The plan of `fuzz/fuzz_targets/route_matcher.rs`.
const PLAN: &str = r#"
provider: file
DEFAULT:
  paths:
    "/": {servers: ["127.0.0.1:1"]}
"*.example.com":
  paths:
    "/": {servers: ["127.0.0.1:2"]}
    "/api": {servers: ["127.0.0.1:3"]}
example.com:
  paths:
    "/a/b": {servers: ["127.0.0.1:4"]}
    "/a%2Fb": {servers: ["127.0.0.1:5"]}
"[::1]":
  paths:
    "/": {servers: ["127.0.0.1:6"]}
"#;

/// The body of `fuzz/fuzz_targets/route_matcher.rs`; returns the matched route id.
fn route_target(data: &[u8]) -> Option<String> {
    let src = Source {
        name: "upstreams.yaml",
        text: PLAN,
    };
    let plan = compile_upstreams(&[src], &Context::default()).ok()?.value;
    let (host, path) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (data.get(..i)?, data.get(i + 1..)?),
        None => (data, &b"/"[..]),
    };
    let host = String::from_utf8_lossy(host);
    let path = String::from_utf8_lossy(path);
    let idx = plan.route(&host, &path).ok()?;
    plan.routes.get(idx).map(|r| r.id.clone())
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, fs::read(e.path()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn compile_seeds_replay() {
    let s = seeds("compile");
    assert!(s.len() >= 3, "compile seeds missing");
    for (_, data) in s {
        compile_target(&data);
    }
}

#[test]
fn route_matcher_seeds_replay() {
    let s = seeds("route_matcher");
    assert!(s.len() >= 3, "route_matcher seeds missing");
    let got: Vec<(String, Option<String>)> = s
        .iter()
        .map(|(n, d)| (n.clone(), route_target(d)))
        .collect();
    let want = |n: &str| {
        got.iter()
            .find(|(x, _)| x == n)
            .and_then(|(_, r)| r.clone())
    };
    assert_eq!(want("wildcard").as_deref(), Some("*.example.com/api"));
    assert_eq!(want("percent").as_deref(), Some("example.com/a/b"));
    assert_eq!(want("ipv6").as_deref(), Some("::1/"));
    assert_eq!(want("escape"), None);
}
