//! Fuzz target: arbitrary bytes through both compilers (body in `fuzz/bodies/compile.rs`).
#![no_main]

#[path = "../bodies/compile.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
