//! Fuzz target: JWT parsing and verification (body in `fuzz/bodies/jwt.rs`).
#![no_main]

include!("auth_sources.rs");

#[path = "../bodies/jwt.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = body::run(data);
});
