//! Body of the `jwt` fuzz target: the input is verified as a token as is, and is also split at
//! the first 0xFF into header and payload JSON that are signed correctly first, so the JSON
//! checks behind the signature are reached too, with and without `iss`/`aud` rules (a token the
//! strict rules accept is accepted without them too). Strict base64url must round-trip. Shared by
//! `fuzz/fuzz_targets/jwt.rs` and the seed replay test `tests/fuzz_seeds.rs`; the includer
//! provides `crate::auth` (the `aralez::auth` modules).

use crate::auth::{base64, jwt};

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef";
const NOW: i64 = 1_700_000_000;

/// Runs one input; returns the verification of the input itself and of the re-signed token.
pub fn run(data: &[u8]) -> (Result<(), jwt::JwtError>, Option<Result<(), jwt::JwtError>>) {
    let plain = jwt::verify_with_secret(data, SECRET, NOW).map(|_| ());
    if let Ok(bytes) = base64::decode_url_nopad(data) {
        assert_eq!(base64::encode_url_nopad(&bytes).as_bytes(), data);
    }
    let (header, payload) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (
            data.get(..i).unwrap_or_default(),
            data.get(i + 1..).unwrap_or_default(),
        ),
        None => (&br#"{"alg":"HS256"}"#[..], data),
    };
    let signed = jwt::key(SECRET).map(|key| {
        let token = jwt::sign(header, payload, &key);
        let plain = jwt::verify(token.as_bytes(), &key, NOW).map(|_| ());
        let strict = jwt::ClaimRules {
            issuer: Some("fuzz-issuer".into()),
            audience: vec!["a".into(), "fuzz-aud".into()],
            ..jwt::ClaimRules::default()
        };
        if jwt::verify_with(token.as_bytes(), &key, &strict, NOW).is_ok() {
            assert_eq!(plain, Ok(()));
        }
        plain
    });
    (plain, signed)
}
