//! Fuzz target: a small fixed plan, then arbitrary host/path pairs through `Plan::route`.
//! Input layout: host bytes, a 0xFF separator, path bytes (both lossily decoded).
#![no_main]

use aralez_compiler::{compile_upstreams, Context, Source};
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|data: &[u8]| {
    let src = Source { name: "upstreams.yaml", text: PLAN };
    let Ok(plan) = compile_upstreams(&[src], &Context::default()) else {
        return;
    };
    let (host, path) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"/"[..]),
    };
    let host = String::from_utf8_lossy(host);
    let path = String::from_utf8_lossy(path);
    if let Ok(idx) = plan.value.route(&host, &path) {
        assert!(idx < plan.value.routes.len());
    }
});
