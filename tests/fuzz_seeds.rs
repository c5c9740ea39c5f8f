//! Replays the committed seeds of the auth fuzz targets (`fuzz/seeds/{jwt,basic_header}/*`)
//! through the same bodies as `fuzz/fuzz_targets/{jwt,basic_header}.rs`, as an ordinary test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fs;
use std::path::Path;

use aralez::auth::jwt::JwtError;
use aralez::auth::{base64, basic, jwt};

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef";
const NOW: i64 = 1_700_000_000;

/// The body of `fuzz/fuzz_targets/jwt.rs`; returns the plain verification and the re-signed one.
fn jwt_target(data: &[u8]) -> (Result<(), JwtError>, Result<(), JwtError>) {
    let plain = jwt::verify_with_secret(data, SECRET, NOW).map(|_| ());
    if let Ok(bytes) = base64::decode_url_nopad(data) {
        assert_eq!(base64::encode_url_nopad(&bytes).as_bytes(), data);
    }
    let (header, payload) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&br#"{"alg":"HS256"}"#[..], data),
    };
    let key = jwt::key(SECRET).unwrap();
    let token = jwt::sign(header, payload, &key);
    let signed = jwt::verify(token.as_bytes(), &key, NOW).map(|_| ());
    (plain, signed)
}

/// The body of `fuzz/fuzz_targets/basic_header.rs`; returns the verification result.
fn basic_target(data: &[u8]) -> Result<(), basic::BasicError> {
    let result = basic::verify(data, b"user:password-0123456789");
    if let Ok(creds) = basic::parse(data) {
        assert!(creds.contains(&b':'));
    }
    if let Ok(bytes) = base64::decode_std_padded(data) {
        assert_eq!(base64::encode_std(&bytes).as_bytes(), data);
    }
    result
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn jwt_seeds_replay() {
    let s = seeds("jwt");
    assert!(s.len() >= 5, "jwt seeds missing");
    let got = |name: &str| {
        let data = &s.iter().find(|(n, _)| n == name).unwrap().1;
        jwt_target(data)
    };
    // the RFC vector is signed with another key
    assert_eq!(got("rfc7515_a1").0, Err(JwtError::BadSignature));
    assert_eq!(got("alg_none").0, Err(JwtError::Malformed));
    assert_eq!(got("padded").0, Err(JwtError::BadBase64));
    assert_eq!(got("four_parts").0, Err(JwtError::Malformed));
    // behind a valid signature, the JSON checks still refuse
    assert_eq!(got("dup_exp_signed").1, Err(JwtError::DuplicateKey));
    assert_eq!(got("nested_signed").1, Err(JwtError::CritUnsupported));
    for (_, data) in &s {
        let _ = jwt_target(data);
    }
}

#[test]
fn basic_header_seeds_replay() {
    let s = seeds("basic_header");
    assert!(s.len() >= 5, "basic_header seeds missing");
    let got = |name: &str| basic_target(&s.iter().find(|(n, _)| n == name).unwrap().1);
    assert_eq!(got("valid"), Ok(()));
    assert_eq!(got("spaces"), Err(basic::BasicError::Mismatch));
    assert_eq!(got("no_colon"), Err(basic::BasicError::NoColon));
    assert_eq!(got("noncanonical"), Err(basic::BasicError::BadEncoding));
    assert_eq!(got("url_alphabet"), Err(basic::BasicError::BadEncoding));
    assert_eq!(got("bearer"), Err(basic::BasicError::WrongScheme));
}
