//! Fuzz target: host/path pairs through `Plan::route` (body in `fuzz/bodies/route_matcher.rs`).
#![no_main]

#[path = "../bodies/route_matcher.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = body::run(data);
});
