//! Body of the `compile` fuzz target: arbitrary bytes through both compilers (upstreams with a
//! conf.d copy, and main). Shared by `fuzz/fuzz_targets/compile.rs` and the seed replay test in
//! `compiler/tests/fuzz_seeds.rs`, so both always run the same code.

use aralez_compiler::{compile_main, compile_upstreams, plan_json, Context, Source};

/// Runs one input.
pub fn run(data: &[u8]) {
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
