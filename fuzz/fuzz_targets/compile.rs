//! Fuzz target: arbitrary bytes through both compilers (upstreams with a conf.d copy, and main).
#![no_main]

use aralez_compiler::{compile_main, compile_upstreams, plan_json, Context, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let src = Source { name: "upstreams.yaml", text: &text };
    let confd = Source { name: "conf.d/a.yaml", text: &text };
    let unsupported = ["rate_limit", "provider:consul"];
    let ctx = Context { tls_listener: data.first().is_some_and(|b| b & 1 == 1), unsupported: &unsupported };
    if let Ok(plan) = compile_upstreams(&[src, confd], &ctx) {
        let _ = plan_json(&plan.value);
        let _ = plan.value.route("example.com", "/");
    }
    let _ = compile_main(&src, &unsupported);
});
