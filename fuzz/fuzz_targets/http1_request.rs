//! Fuzz target: the gate's HTTP/1.x request-head parser, chunked-body validator, Host and path
//! checks (body in `fuzz/bodies/http1_request.rs`). The `edge` parser sources are compiled by
//! path, so the fuzz build does not build pingora.
#![no_main]

#[allow(dead_code)]
#[path = "edge_mod.rs"]
mod edge;

#[path = "../bodies/http1_request.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
