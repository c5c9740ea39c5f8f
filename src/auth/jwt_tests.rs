//! Unit tests of `jwt.rs`: the claim rules (`iss`, `aud`, leeway) and issuing. The attack vectors
//! (alg, base64, JSON shape) are in `tests/jwt_vectors.rs`.
#![allow(clippy::unwrap_used)]

use super::*;

const NOW: i64 = 1_700_000_000;

fn k() -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, b"unit-test-secret-0123456789abcdef")
}

/// A token whose payload is `exp` one hour out plus `extra` (JSON members, comma-led).
fn token(extra: &str) -> String {
    let payload = format!(r#"{{"exp":{}{extra}}}"#, NOW + 3600);
    sign(br#"{"alg":"HS256"}"#, payload.as_bytes(), &k())
}

fn rules(issuer: Option<&str>, audience: &[&str]) -> ClaimRules {
    ClaimRules {
        issuer: issuer.map(str::to_string),
        audience: audience.iter().map(|a| (*a).to_string()).collect(),
        leeway_secs: LEEWAY_SECS,
    }
}

fn check(extra: &str, r: &ClaimRules) -> Result<(), JwtError> {
    verify_with(token(extra).as_bytes(), &k(), r, NOW).map(|_| ())
}

#[test]
fn issuer() {
    let r = rules(Some("https://id.example"), &[]);
    assert_eq!(check(r#","iss":"https://id.example""#, &r), Ok(()));
    assert_eq!(
        check(r#","iss":"https://evil.example""#, &r),
        Err(JwtError::WrongIssuer)
    );
    // exact: no case folding, no trimming, no prefix match
    for near in [
        "HTTPS://ID.EXAMPLE",
        "https://id.example ",
        "https://id.example/",
    ] {
        let extra = format!(r#","iss":"{near}""#);
        assert_eq!(check(&extra, &r), Err(JwtError::WrongIssuer), "{near}");
    }
    assert_eq!(check("", &r), Err(JwtError::MissingIssuer));
    for bad in ["1", "null", "true", r#"["https://id.example"]"#, "{}"] {
        let extra = format!(r#","iss":{bad}"#);
        assert_eq!(check(&extra, &r), Err(JwtError::BadIssuer), "{bad}");
    }
    // not configured: not checked
    assert_eq!(check(r#","iss":5"#, &ClaimRules::default()), Ok(()));
}

#[test]
fn audience() {
    let r = rules(None, &["api", "admin"]);
    assert_eq!(check(r#","aud":"api""#, &r), Ok(()));
    assert_eq!(check(r#","aud":"admin""#, &r), Ok(()));
    assert_eq!(check(r#","aud":["other","admin"]"#, &r), Ok(()));
    assert_eq!(check(r#","aud":"API""#, &r), Err(JwtError::WrongAudience));
    assert_eq!(
        check(r#","aud":["other","x"]"#, &r),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(check(r#","aud":[]"#, &r), Err(JwtError::WrongAudience));
    assert_eq!(check("", &r), Err(JwtError::MissingAudience));
    for bad in [
        "1",
        "null",
        "{}",
        r#"["api",1]"#,
        r#"[["api"]]"#,
        r#"[null]"#,
    ] {
        let extra = format!(r#","aud":{bad}"#);
        assert_eq!(check(&extra, &r), Err(JwtError::BadAudience), "{bad}");
    }
    // both rules at once
    let both = rules(Some("me"), &["api"]);
    assert_eq!(check(r#","iss":"me","aud":"api""#, &both), Ok(()));
    assert_eq!(
        check(r#","iss":"me","aud":"web""#, &both),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        check(r#","iss":"you","aud":"api""#, &both),
        Err(JwtError::WrongIssuer)
    );
}

#[test]
fn claims_come_after_the_signature_and_the_time() {
    let r = rules(Some("me"), &["api"]);
    let forged = sign(
        br#"{"alg":"HS256"}"#,
        format!(r#"{{"exp":{},"iss":"x"}}"#, NOW + 60).as_bytes(),
        &hmac::Key::new(hmac::HMAC_SHA256, b"another-secret-entirely-000000"),
    );
    assert_eq!(
        verify_with(forged.as_bytes(), &k(), &r, NOW).map(|_| ()),
        Err(JwtError::BadSignature)
    );
    let expired = sign(
        br#"{"alg":"HS256"}"#,
        format!(r#"{{"exp":{},"iss":"x"}}"#, NOW - 3600).as_bytes(),
        &k(),
    );
    assert_eq!(
        verify_with(expired.as_bytes(), &k(), &r, NOW).map(|_| ()),
        Err(JwtError::Expired)
    );
}

#[test]
fn leeway_is_the_configured_one() {
    let at = |exp: i64, nbf: Option<i64>| {
        let nbf = nbf.map_or(String::new(), |n| format!(r#","nbf":{n}"#));
        let p = format!(r#"{{"exp":{exp}{nbf}}}"#);
        sign(br#"{"alg":"HS256"}"#, p.as_bytes(), &k())
    };
    let with = |secs: i64| ClaimRules {
        leeway_secs: secs,
        ..ClaimRules::default()
    };
    let run = |t: &str, secs: i64| verify_with(t.as_bytes(), &k(), &with(secs), NOW).map(|_| ());
    // exp: valid strictly before exp + leeway
    assert_eq!(run(&at(NOW + 1, None), 0), Ok(()));
    assert_eq!(run(&at(NOW, None), 0), Err(JwtError::Expired));
    assert_eq!(run(&at(NOW - 299, None), 300), Ok(()));
    assert_eq!(run(&at(NOW - 300, None), 300), Err(JwtError::Expired));
    // nbf: valid from nbf - leeway on
    assert_eq!(run(&at(NOW + 999, Some(NOW)), 0), Ok(()));
    assert_eq!(
        run(&at(NOW + 999, Some(NOW + 1)), 0),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(run(&at(NOW + 999, Some(NOW + 300)), 300), Ok(()));
    assert_eq!(
        run(&at(NOW + 999, Some(NOW + 301)), 300),
        Err(JwtError::NotYetValid)
    );
    // the default is LEEWAY_SECS
    assert_eq!(ClaimRules::default().leeway_secs, LEEWAY_SECS);
    assert_eq!(
        verify(at(NOW - LEEWAY_SECS, None).as_bytes(), &k(), NOW).map(|_| ()),
        Err(JwtError::Expired)
    );
}

#[test]
fn issued_tokens_carry_the_rules() {
    let r = rules(Some("aralez"), &["a", "b"]);
    let t = issue_with(&k(), "o", NOW, 60, &r);
    let c = verify_with(t.as_bytes(), &k(), &r, NOW).unwrap();
    assert_eq!(c.all["iss"], "aralez");
    assert_eq!(c.all["aud"], serde_json::json!(["a", "b"]));
    let one = rules(None, &["a"]);
    let c = verify(issue_with(&k(), "o", NOW, 60, &one).as_bytes(), &k(), NOW).unwrap();
    assert_eq!(c.all["aud"], "a");
    assert!(c.all.get("iss").is_none());
    // the plain issuer is unchanged: owner, iat, exp only
    let plain = verify(issue(&k(), "o", NOW, 60).as_bytes(), &k(), NOW).unwrap();
    assert_eq!(plain.all.len(), 3);
}
