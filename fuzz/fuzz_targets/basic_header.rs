//! Fuzz target: the HTTP Basic `Authorization` header (body in `fuzz/bodies/basic_header.rs`).
#![no_main]

include!("auth_sources.rs");

#[path = "../bodies/basic_header.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = body::run(data);
});
