//! Replays the committed seeds of the parser fuzz targets (`fuzz/seeds/{jwt,basic_header,http1_request}/*`)
//! through the same bodies as the fuzz targets (`fuzz/bodies/`), as an ordinary test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fs;
use std::path::Path;

use aralez::auth::basic;
use aralez::auth::jwt::JwtError;

/// What the shared fuzz bodies call `crate::auth`.
mod auth {
    pub use aralez::auth::{base64, basic, jwt};
}

/// What the shared fuzz body calls `crate::edge`.
mod edge {
    pub use aralez::edge::{authority, chunked, head, path};
}

#[path = "../fuzz/bodies/basic_header.rs"]
mod basic_body;
#[path = "../fuzz/bodies/http1_request.rs"]
mod http1_body;
#[path = "../fuzz/bodies/jwt.rs"]
mod jwt_body;

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
        jwt_body::run(data)
    };
    // the RFC vector is signed with another key
    assert_eq!(got("rfc7515_a1").0, Err(JwtError::BadSignature));
    assert_eq!(got("alg_none").0, Err(JwtError::Malformed));
    assert_eq!(got("padded").0, Err(JwtError::BadBase64));
    assert_eq!(got("four_parts").0, Err(JwtError::Malformed));
    // behind a valid signature, the JSON checks still refuse
    assert_eq!(got("dup_exp_signed").1, Some(Err(JwtError::DuplicateKey)));
    assert_eq!(got("nested_signed").1, Some(Err(JwtError::CritUnsupported)));
    // iss/aud matching the strict rules of the body
    assert_eq!(got("claims_signed").1, Some(Ok(())));
    for (_, data) in &s {
        let _ = jwt_body::run(data);
    }
}

#[test]
fn basic_header_seeds_replay() {
    let s = seeds("basic_header");
    assert!(s.len() >= 5, "basic_header seeds missing");
    let got = |name: &str| basic_body::run(&s.iter().find(|(n, _)| n == name).unwrap().1);
    assert_eq!(got("valid"), Ok(()));
    assert_eq!(got("spaces"), Err(basic::BasicError::Mismatch));
    assert_eq!(got("no_colon"), Err(basic::BasicError::NoColon));
    assert_eq!(got("noncanonical"), Err(basic::BasicError::BadEncoding));
    assert_eq!(got("url_alphabet"), Err(basic::BasicError::BadEncoding));
    assert_eq!(got("bearer"), Err(basic::BasicError::WrongScheme));
}

#[test]
fn http1_request_seeds_replay() {
    use aralez::edge::head::Framing;
    let s = seeds("http1_request");
    assert!(s.len() >= 5, "http1_request seeds missing");
    let got = |name: &str| http1_body::run(&s.iter().find(|(n, _)| n == name).unwrap().1);
    assert_eq!(got("get"), Some(Framing::None));
    assert_eq!(got("chunked"), Some(Framing::Chunked));
    assert_eq!(got("chunked_bare_lf"), Some(Framing::Chunked));
    assert_eq!(got("two_cl"), None);
    assert_eq!(got("absolute"), Some(Framing::None));
    assert_eq!(got("http10"), Some(Framing::None));
    assert_eq!(got("ipv6_host"), Some(Framing::Length(3)));
}
