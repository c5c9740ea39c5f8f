//! Fuzz target: the HTTP Basic `Authorization` header. Parsing never panics, and strict standard
//! base64 round-trips (one encoding per byte string).
#![no_main]

include!("auth_sources.rs");

use auth::{base64, basic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = basic::verify(data, b"user:password-0123456789");
    if let Ok(creds) = basic::parse(data) {
        assert!(creds.contains(&b':'));
    }
    if let Ok(bytes) = base64::decode_std_padded(data) {
        assert_eq!(base64::encode_std(&bytes).as_bytes(), data);
    }
});
