//! Body of the `route_matcher` fuzz target: a small fixed plan, then arbitrary host/path pairs
//! through `Plan::route`. Input layout: host bytes, a 0xFF separator, path bytes (both lossily
//! decoded). Shared by `fuzz/fuzz_targets/route_matcher.rs` and `compiler/tests/fuzz_seeds.rs`.

use aralez_compiler::{compile_upstreams, Context, Source};

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

/// Runs one input; returns the id of the matched route.
pub fn run(data: &[u8]) -> Option<String> {
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
    let route = plan.routes().get(idx);
    assert!(
        route.is_some(),
        "Plan::route returned an index outside the plan"
    );
    route.map(|r| r.id.clone())
}
