//! Body of the `basic_header` fuzz target: parsing never panics, and strict standard base64
//! round-trips (one encoding per byte string). Shared by `fuzz/fuzz_targets/basic_header.rs` and
//! `tests/fuzz_seeds.rs`; the includer provides `crate::auth` (the `aralez::auth` modules).

use crate::auth::{base64, basic};

/// Runs one input; returns the verification against a fixed `user:password`.
pub fn run(data: &[u8]) -> Result<(), basic::BasicError> {
    let result = basic::verify(data, b"user:password-0123456789");
    if let Ok(creds) = basic::parse(data) {
        assert!(creds.contains(&b':'));
    }
    if let Ok(bytes) = base64::decode_std_padded(data) {
        assert_eq!(base64::encode_std(&bytes).as_bytes(), data);
    }
    result
}
