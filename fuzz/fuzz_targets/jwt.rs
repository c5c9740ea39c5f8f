//! Fuzz target: JWT parsing and verification. The input is verified as a token as is, and is
//! also split at the first 0xFF into header and payload JSON that are signed correctly first, so
//! the JSON checks behind the signature are reached too. Strict base64url must round-trip.
#![no_main]

include!("auth_sources.rs");

use auth::{base64, jwt};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = jwt::verify_with_secret(data, SECRET, NOW);
    if let Ok(bytes) = base64::decode_url_nopad(data) {
        assert_eq!(base64::encode_url_nopad(&bytes).as_bytes(), data);
    }
    let (header, payload) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&br#"{"alg":"HS256"}"#[..], data),
    };
    if let Some(key) = jwt::key(SECRET) {
        let token = jwt::sign(header, payload, &key);
        let _ = jwt::verify(token.as_bytes(), &key, NOW);
    }
});
