//! JWT verification: the RFC 7515 appendix A.1 HS256 vector and attack cases. Each case asserts
//! the specific refusal, so a check that stopped working would show up as a different error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use aralez::auth::base64::{decode_url_nopad, encode_url_nopad};
use aralez::auth::jwt::{self, ClaimRules, JwtError, LEEWAY_SECS, MAX_TOKEN_BYTES};
use ring::hmac;

const SECRET: &[u8] = b"a-test-secret-of-32-bytes-length";
const NOW: i64 = 1_700_000_000;

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// Signs already-encoded segments (so tests can build malformed ones).
fn sign_segments(h64: &str, p64: &str, secret: &[u8]) -> String {
    let input = format!("{h64}.{p64}");
    let tag = hmac::sign(&key(secret), input.as_bytes());
    format!("{input}.{}", encode_url_nopad(tag.as_ref()))
}

/// A token from JSON texts, correctly signed with `SECRET`.
fn forge(header: &str, payload: &str) -> String {
    jwt::sign(header.as_bytes(), payload.as_bytes(), &key(SECRET))
}

const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn good_payload() -> String {
    format!(r#"{{"owner":"t","exp":{}}}"#, NOW + 3600)
}

fn verify(token: &str) -> Result<jwt::Claims, JwtError> {
    jwt::verify_with_secret(token.as_bytes(), SECRET, NOW)
}

fn refused(token: &str, want: JwtError) {
    assert_eq!(verify(token).map(|_| ()), Err(want), "token {token}");
}

#[test]
fn rfc7515_a1_vector() {
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let k = decode_url_nopad(
        b"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    )
    .unwrap();
    // The signature is valid: before its expiry the token verifies.
    let claims = jwt::verify_with_secret(token.as_bytes(), &k, 1_300_819_380 - 60).unwrap();
    assert_eq!(claims.exp, 1_300_819_380);
    assert_eq!(claims.all["iss"], "joe");
    assert_eq!(claims.all["http://example.com/is_root"], true);
    // Our signer produces the same bytes for the same header and payload.
    let header = b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    let payload =
        b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
    assert_eq!(jwt::sign(header, payload, &key(&k)), token);
    // It expired in 2011.
    assert_eq!(
        jwt::verify_with_secret(token.as_bytes(), &k, NOW).map(|_| ()),
        Err(JwtError::Expired)
    );
    // Within the leeway it is still accepted; just past it, not.
    assert!(jwt::verify_with_secret(token.as_bytes(), &k, 1_300_819_380 + LEEWAY_SECS - 1).is_ok());
    assert_eq!(
        jwt::verify_with_secret(token.as_bytes(), &k, 1_300_819_380 + LEEWAY_SECS).map(|_| ()),
        Err(JwtError::Expired)
    );
    const { assert!(LEEWAY_SECS <= 60) };
}

#[test]
fn a_good_token_verifies() {
    let claims = verify(&forge(HS256, &good_payload())).unwrap();
    assert_eq!(claims.exp, NOW + 3600);
    // typ is optional and case-insensitive; extra header fields such as kid are ignored
    assert!(verify(&forge(r#"{"alg":"HS256"}"#, &good_payload())).is_ok());
    assert!(verify(&forge(
        r#"{"alg":"HS256","typ":"jwt","kid":"1"}"#,
        &good_payload()
    ))
    .is_ok());
    // fractional NumericDate
    assert!(verify(&forge(HS256, &format!(r#"{{"exp":{}.5}}"#, NOW + 10))).is_ok());
    // nbf in the past, iat present
    let p = format!(
        r#"{{"exp":{},"nbf":{},"iat":{}}}"#,
        NOW + 10,
        NOW - 10,
        NOW - 10
    );
    assert!(verify(&forge(HS256, &p)).is_ok());
    // the issuer's tokens verify
    let t = jwt::issue(&key(SECRET), "me", NOW, 60);
    assert_eq!(verify(&t).unwrap().all["owner"], "me");
}

#[test]
fn alg_none_in_every_spelling() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        // even with a correct HMAC, the header decides
        refused(&forge(&h, &good_payload()), JwtError::AlgNotAllowed);
        // the classic unsigned form: empty signature segment
        let unsigned = format!(
            "{}.{}.",
            encode_url_nopad(h.as_bytes()),
            encode_url_nopad(good_payload().as_bytes())
        );
        refused(&unsigned, JwtError::Malformed);
    }
}

#[test]
fn other_algorithms_with_the_hmac_secret() {
    for alg in [
        "RS256", "ES256", "PS256", "HS384", "HS512", "hs256", "HS256 ", "",
    ] {
        let h = format!(r#"{{"alg":"{alg}"}}"#);
        refused(&forge(&h, &good_payload()), JwtError::AlgNotAllowed);
    }
    refused(
        &forge(r#"{"typ":"JWT"}"#, &good_payload()),
        JwtError::AlgNotAllowed,
    );
    refused(
        &forge(r#"{"alg":["HS256"]}"#, &good_payload()),
        JwtError::AlgNotAllowed,
    );
    refused(
        &forge(r#"{"alg":null}"#, &good_payload()),
        JwtError::AlgNotAllowed,
    );
}

#[test]
fn header_extensions_and_types() {
    refused(
        &forge(r#"{"alg":"HS256","crit":["exp"]}"#, &good_payload()),
        JwtError::CritUnsupported,
    );
    refused(
        &forge(r#"{"alg":"HS256","typ":"JWE"}"#, &good_payload()),
        JwtError::BadType,
    );
    refused(
        &forge(r#"{"alg":"HS256","typ":1}"#, &good_payload()),
        JwtError::BadType,
    );
}

#[test]
fn signature_tampering() {
    let good = forge(HS256, &good_payload());
    // missing signature
    let (signed, _) = good.rsplit_once('.').unwrap();
    refused(signed, JwtError::Malformed);
    // altered signature (one character)
    let mut altered = good.clone().into_bytes();
    let last = altered.len() - 5;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    refused(
        std::str::from_utf8(&altered).unwrap(),
        JwtError::BadSignature,
    );
    // signed with another secret
    let other = jwt::sign(
        HS256.as_bytes(),
        good_payload().as_bytes(),
        &key(b"another-secret-of-some-length!!"),
    );
    refused(&other, JwtError::BadSignature);
    // payload swapped under the old signature (exp pushed out)
    let (_, sig) = good.rsplit_once('.').unwrap();
    let evil = format!(
        "{}.{}.{sig}",
        encode_url_nopad(HS256.as_bytes()),
        encode_url_nopad(format!(r#"{{"owner":"admin","exp":{}}}"#, NOW + 99_999).as_bytes())
    );
    refused(&evil, JwtError::BadSignature);
    // truncated signature (31 bytes)
    let tag = decode_url_nopad(sig.as_bytes()).unwrap();
    let short = format!("{signed}.{}", encode_url_nopad(&tag[..31]));
    refused(&short, JwtError::BadSignature);
    // signature of 64 bytes (tag twice)
    let long = format!(
        "{signed}.{}",
        encode_url_nopad(&[tag.clone(), tag].concat())
    );
    refused(&long, JwtError::BadSignature);
}

#[test]
fn claims() {
    refused(&forge(HS256, r#"{"owner":"t"}"#), JwtError::MissingExp);
    refused(
        &forge(HS256, &format!(r#"{{"exp":"{}"}}"#, NOW + 3600)),
        JwtError::BadClaim,
    );
    refused(&forge(HS256, r#"{"exp":null}"#), JwtError::BadClaim);
    refused(&forge(HS256, r#"{"exp":true}"#), JwtError::BadClaim);
    refused(
        &forge(HS256, &format!(r#"{{"exp":{}}}"#, NOW - 3600)),
        JwtError::Expired,
    );
    refused(
        &forge(
            HS256,
            &format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 7200, NOW + 3600),
        ),
        JwtError::NotYetValid,
    );
    // nbf within the leeway is fine
    assert!(verify(&forge(
        HS256,
        &format!(
            r#"{{"exp":{},"nbf":{}}}"#,
            NOW + 7200,
            NOW + LEEWAY_SECS - 1
        )
    ))
    .is_ok());
    refused(
        &forge(HS256, &format!(r#"{{"exp":{},"nbf":"0"}}"#, NOW + 60)),
        JwtError::BadClaim,
    );
    refused(
        &forge(HS256, &format!(r#"{{"exp":{},"iat":"now"}}"#, NOW + 60)),
        JwtError::BadClaim,
    );
    // enormous numbers do not wrap around into the future or the past
    refused(&forge(HS256, r#"{"exp":-1e300}"#), JwtError::Expired);
}

#[test]
fn json_shape() {
    refused(&forge("not json", &good_payload()), JwtError::BadJson);
    refused(&forge(HS256, "{\"exp\":1"), JwtError::BadJson);
    refused(&forge(r#"["HS256"]"#, &good_payload()), JwtError::NotObject);
    refused(&forge(HS256, r#""exp""#), JwtError::NotObject);
    refused(&forge(HS256, "123"), JwtError::NotObject);
    refused(&forge(HS256, "null"), JwtError::NotObject);
    // a UTF-8 byte order mark is not JSON
    refused(
        &forge(&format!("\u{feff}{HS256}"), &good_payload()),
        JwtError::BadJson,
    );
    // trailing content after the object
    refused(
        &forge(HS256, &format!("{} {{}}", good_payload())),
        JwtError::BadJson,
    );
}

#[test]
fn duplicate_keys() {
    refused(
        &forge(r#"{"alg":"none","alg":"HS256"}"#, &good_payload()),
        JwtError::DuplicateKey,
    );
    refused(
        &forge(HS256, &format!(r#"{{"exp":1,"exp":{}}}"#, NOW + 3600)),
        JwtError::DuplicateKey,
    );
    refused(
        &forge(
            HS256,
            &format!(r#"{{"exp":{},"x":{{"a":1,"a":2}}}}"#, NOW + 3600),
        ),
        JwtError::DuplicateKey,
    );
    // escaped spelling of the same key is the same key
    refused(
        &forge(HS256, &format!(r#"{{"exp":1,"\u0065xp":{}}}"#, NOW + 3600)),
        JwtError::DuplicateKey,
    );
}

#[test]
fn base64_strictness() {
    let h64 = encode_url_nopad(HS256.as_bytes());
    let p64 = encode_url_nopad(good_payload().as_bytes());
    // sanity: the re-signing helper yields a valid token
    assert!(verify(&sign_segments(&h64, &p64, SECRET)).is_ok());
    // padding on a segment, correctly signed over the padded text
    let pad = match p64.len() % 4 {
        0 => "====",
        n => &"=="[..4 - n],
    };
    let padded = format!("{p64}{pad}");
    refused(&sign_segments(&h64, &padded, SECRET), JwtError::BadBase64);
    // '+' and '/' (the standard alphabet) instead of '-' and '_'
    let std_alpha = sign_segments(&h64, &p64, SECRET)
        .replace('-', "+")
        .replace('_', "/");
    if std_alpha != sign_segments(&h64, &p64, SECRET) {
        refused(&std_alpha, JwtError::BadBase64);
    }
    let plus = format!("{h64}.{p64}.{}", "+".repeat(43));
    refused(&plus, JwtError::BadBase64);
    let slash = format!("{h64}.{p64}.{}", "/".repeat(43));
    refused(&slash, JwtError::BadBase64);
    // non-canonical trailing bits: 32-byte signature = 43 chars, the last one carries 2 spare bits
    let good = sign_segments(&h64, &p64, SECRET);
    let mut bytes = good.into_bytes();
    let last = bytes.len() - 1;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = alphabet.iter().position(|&c| c == bytes[last]).unwrap();
    bytes[last] = alphabet[v | 1];
    refused(std::str::from_utf8(&bytes).unwrap(), JwtError::BadBase64);
    // impossible length (4n+1 characters)
    refused(
        &sign_segments(&format!("{h64}A"), &p64, SECRET),
        JwtError::BadBase64,
    );
    // whitespace inside
    refused(
        &sign_segments(&h64, &format!(" {p64}"), SECRET),
        JwtError::BadBase64,
    );
}

#[test]
fn structure() {
    let good = forge(HS256, &good_payload());
    refused(&format!("{good}."), JwtError::Malformed);
    refused(&format!("{good}.."), JwtError::Malformed);
    refused(&format!(".{good}"), JwtError::Malformed);
    let parts: Vec<&str> = good.split('.').collect();
    refused(&format!("{}..{}", parts[0], parts[2]), JwtError::Malformed);
    refused(
        &format!(
            "{}.{}.{}.{}.{}",
            parts[0], parts[1], parts[2], parts[2], parts[2]
        ),
        JwtError::Malformed,
    );
    refused("", JwtError::Malformed);
    refused("..", JwtError::Malformed);
    refused("abc", JwtError::Malformed);
}

#[test]
fn empty_secret_and_size_limit() {
    let good = forge(HS256, &good_payload());
    assert_eq!(
        jwt::verify_with_secret(good.as_bytes(), b"", NOW).map(|_| ()),
        Err(JwtError::EmptySecret)
    );
    // A token signed with the empty key is refused too (no key can be built from "").
    let empty_signed = jwt::sign(HS256.as_bytes(), good_payload().as_bytes(), &key(b""));
    assert_eq!(
        jwt::verify_with_secret(empty_signed.as_bytes(), b"", NOW).map(|_| ()),
        Err(JwtError::EmptySecret)
    );
    assert!(jwt::key(b"").is_none());
    // oversized but otherwise valid
    let padding = "x".repeat(MAX_TOKEN_BYTES);
    let big = forge(
        HS256,
        &format!(r#"{{"exp":{},"pad":"{padding}"}}"#, NOW + 60),
    );
    assert!(big.len() > MAX_TOKEN_BYTES);
    refused(&big, JwtError::TooLong);
    // just under the limit is fine
    let fit = "x".repeat(5000);
    let ok = forge(HS256, &format!(r#"{{"exp":{},"pad":"{fit}"}}"#, NOW + 60));
    assert!(ok.len() <= MAX_TOKEN_BYTES);
    assert!(verify(&ok).is_ok());
}

/// Verifies a token signed with `SECRET` whose payload is `payload` under `rules`.
fn with_rules(payload: &str, rules: &ClaimRules, now: i64) -> Result<(), JwtError> {
    jwt::verify_with(forge(HS256, payload).as_bytes(), &key(SECRET), rules, now).map(|_| ())
}

fn rules(issuer: Option<&str>, audience: &[&str], leeway: i64) -> ClaimRules {
    ClaimRules {
        issuer: issuer.map(str::to_string),
        audience: audience.iter().map(|a| (*a).to_string()).collect(),
        leeway_secs: leeway,
    }
}

#[test]
fn issuer_vectors() {
    let r = rules(Some("https://auth.example.com"), &[], LEEWAY_SECS);
    let exp = NOW + 3600;
    for (claims, want) in [
        (r#""iss":"https://auth.example.com""#, Ok(())),
        (
            r#""iss":"https://auth.example.com/""#,
            Err(JwtError::WrongIssuer),
        ),
        (
            r#""iss":"https://AUTH.example.com""#,
            Err(JwtError::WrongIssuer),
        ),
        (r#""iss":"""#, Err(JwtError::WrongIssuer)),
        (r#""owner":"no-iss""#, Err(JwtError::MissingIssuer)),
        (r#""iss":42"#, Err(JwtError::BadIssuer)),
        (r#""iss":null"#, Err(JwtError::BadIssuer)),
        (
            r#""iss":["https://auth.example.com"]"#,
            Err(JwtError::BadIssuer),
        ),
        (
            r#""iss":{"v":"https://auth.example.com"}"#,
            Err(JwtError::BadIssuer),
        ),
        // escaped spelling of the same string is the same string
        (r#""iss":"https:\/\/auth.example.com""#, Ok(())),
    ] {
        let p = format!(r#"{{"exp":{exp},{claims}}}"#);
        assert_eq!(with_rules(&p, &r, NOW), want, "{p}");
    }
    // a duplicated iss is refused before any claim check
    let dup = format!(r#"{{"exp":{exp},"iss":"x","iss":"https://auth.example.com"}}"#);
    assert_eq!(with_rules(&dup, &r, NOW), Err(JwtError::DuplicateKey));
}

#[test]
fn audience_vectors() {
    let r = rules(None, &["orders", "billing"], LEEWAY_SECS);
    let exp = NOW + 3600;
    for (claims, want) in [
        (r#""aud":"orders""#, Ok(())),
        (r#""aud":"billing""#, Ok(())),
        (r#""aud":["orders"]"#, Ok(())),
        (r#""aud":["web","billing","x"]"#, Ok(())),
        (r#""aud":"Orders""#, Err(JwtError::WrongAudience)),
        (r#""aud":"orders billing""#, Err(JwtError::WrongAudience)),
        (r#""aud":["web","mobile"]"#, Err(JwtError::WrongAudience)),
        (r#""aud":[]"#, Err(JwtError::WrongAudience)),
        (r#""owner":"no-aud""#, Err(JwtError::MissingAudience)),
        (r#""aud":7"#, Err(JwtError::BadAudience)),
        (r#""aud":null"#, Err(JwtError::BadAudience)),
        (r#""aud":true"#, Err(JwtError::BadAudience)),
        (r#""aud":{"0":"orders"}"#, Err(JwtError::BadAudience)),
        // non-string elements refuse the token even next to a matching one
        (r#""aud":["orders",1]"#, Err(JwtError::BadAudience)),
        (r#""aud":[null,"orders"]"#, Err(JwtError::BadAudience)),
        (r#""aud":[["orders"]]"#, Err(JwtError::BadAudience)),
    ] {
        let p = format!(r#"{{"exp":{exp},{claims}}}"#);
        assert_eq!(with_rules(&p, &r, NOW), want, "{p}");
    }
    // iss and aud together: both must hold
    let both = rules(Some("me"), &["orders"], LEEWAY_SECS);
    let p = |iss: &str, aud: &str| format!(r#"{{"exp":{exp},"iss":"{iss}","aud":"{aud}"}}"#);
    assert_eq!(with_rules(&p("me", "orders"), &both, NOW), Ok(()));
    assert_eq!(
        with_rules(&p("me", "web"), &both, NOW),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        with_rules(&p("you", "orders"), &both, NOW),
        Err(JwtError::WrongIssuer)
    );
    // unconfigured claims are not checked (the default rules)
    let p = format!(r#"{{"exp":{exp},"iss":5,"aud":{{}}}}"#);
    assert_eq!(with_rules(&p, &ClaimRules::default(), NOW), Ok(()));
}

#[test]
fn leeway_vectors() {
    let exp = |t: i64| format!(r#"{{"exp":{t}}}"#);
    let nbf = |t: i64| format!(r#"{{"exp":{},"nbf":{t}}}"#, NOW + 3600);
    for (leeway, payload, want) in [
        // leeway 0: exp is the first second the token is refused; nbf the first it is accepted
        (0, exp(NOW + 1), Ok(())),
        (0, exp(NOW), Err(JwtError::Expired)),
        (0, exp(NOW - 1), Err(JwtError::Expired)),
        (0, nbf(NOW), Ok(())),
        (0, nbf(NOW + 1), Err(JwtError::NotYetValid)),
        // leeway 300 (the maximum)
        (300, exp(NOW - 299), Ok(())),
        (300, exp(NOW - 300), Err(JwtError::Expired)),
        (300, nbf(NOW + 300), Ok(())),
        (300, nbf(NOW + 301), Err(JwtError::NotYetValid)),
        // what passes at 300 does not at 0
        (0, exp(NOW - 299), Err(JwtError::Expired)),
        (0, nbf(NOW + 300), Err(JwtError::NotYetValid)),
    ] {
        let r = rules(None, &[], leeway);
        assert_eq!(
            with_rules(&payload, &r, NOW),
            want,
            "leeway {leeway}: {payload}"
        );
    }
}
