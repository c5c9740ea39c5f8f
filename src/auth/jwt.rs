//! JSON Web Tokens, HS256 only (RFC 7519 / RFC 7515), verified with `ring::hmac`.
//!
//! Verification order: size, shape (exactly three non-empty base64url segments), the HMAC-SHA256
//! signature over the first two segments (`ring::hmac::verify`, constant time), then the header
//! (`alg` must be exactly `HS256`, `typ` absent or `JWT`, no `crit`) and the claims (`exp`
//! required, `nbf` honoured, both as JSON numbers, with the route's leeway; then `iss` and `aud`
//! when the route configures an issuer or audiences, see [`ClaimRules`]). No JSON from a token is
//! parsed before its signature checked out. JSON parts must be objects without duplicate keys, at
//! any depth.

use ring::hmac;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::base64::{decode_url_nopad, encode_url_nopad};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Clock skew tolerated on `exp` and `nbf` by default (no `leeway_seconds`), in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// What a route asks of a token's claims besides a valid signature and `exp` (its `issuer`,
/// `audience` and `leeway_seconds` settings). Claims are not secrets: plain comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// When set, `iss` must be present, a string, and equal to this (case-sensitive).
    pub issuer: Option<String>,
    /// When not empty, `aud` must be present and be a string equal to one of these, or an array
    /// of strings (only strings) of which at least one is one of these (RFC 7519 4.1.3).
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: i64,
}

impl Default for ClaimRules {
    /// No `iss`/`aud` checks, [`LEEWAY_SECS`] of leeway.
    fn default() -> Self {
        Self {
            issuer: None,
            audience: Vec::new(),
            leeway_secs: LEEWAY_SECS,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// The configured secret is empty (nothing can be verified against it).
    EmptySecret,
    /// Longer than [`MAX_TOKEN_BYTES`].
    TooLong,
    /// Not three non-empty segments separated by `.`.
    Malformed,
    /// A segment is not strict unpadded base64url.
    BadBase64,
    /// The signature does not verify (or is not 32 bytes).
    BadSignature,
    /// The header or the claims are not valid JSON.
    BadJson,
    /// The header or the claims are JSON, but not an object.
    NotObject,
    /// A JSON object with the same key twice.
    DuplicateKey,
    /// `alg` is not exactly `HS256` (this refuses `none`, RS256, ES256 and all others).
    AlgNotAllowed,
    /// `typ` is present and not `JWT`.
    BadType,
    /// The header has `crit` extensions, none of which this verifier implements.
    CritUnsupported,
    /// No `exp` claim.
    MissingExp,
    /// `exp`, `nbf` or `iat` is not a JSON number.
    BadClaim,
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) is still in the future.
    NotYetValid,
    /// An issuer is configured and the token has no `iss`.
    MissingIssuer,
    /// `iss` is not a JSON string.
    BadIssuer,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// Audiences are configured and the token has no `aud`.
    MissingAudience,
    /// `aud` is neither a string nor an array of strings (an array with any non-string element
    /// included).
    BadAudience,
    /// `aud` names none of the configured audiences.
    WrongAudience,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for JwtError {}

/// The registered claims of a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Not before (Unix seconds), when present.
    pub nbf: Option<i64>,
    /// Issued at (Unix seconds), when present.
    pub iat: Option<i64>,
    /// All claims as sent.
    pub all: Map<String, Value>,
}

/// The HMAC key for a secret; `None` for an empty secret.
pub fn key(secret: &[u8]) -> Option<hmac::Key> {
    (!secret.is_empty()).then(|| hmac::Key::new(hmac::HMAC_SHA256, secret))
}

/// Verifies `token` with `secret` at Unix time `now`.
pub fn verify_with_secret(token: &[u8], secret: &[u8], now: i64) -> Result<Claims, JwtError> {
    let key = key(secret).ok_or(JwtError::EmptySecret)?;
    verify(token, &key, now)
}

/// Verifies `token` with a prepared key at Unix time `now`, with the default [`ClaimRules`]
/// (no `iss`/`aud` checks, [`LEEWAY_SECS`]).
pub fn verify(token: &[u8], key: &hmac::Key, now: i64) -> Result<Claims, JwtError> {
    verify_with(token, key, &ClaimRules::default(), now)
}

/// Verifies `token` with a prepared key and a route's claim rules at Unix time `now`.
pub fn verify_with(
    token: &[u8],
    key: &hmac::Key,
    rules: &ClaimRules,
    now: i64,
) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split(|&c| c == b'.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    if h64.is_empty() || p64.is_empty() || s64.is_empty() {
        return Err(JwtError::Malformed);
    }
    let header = decode_url_nopad(h64).map_err(|_| JwtError::BadBase64)?;
    let payload = decode_url_nopad(p64).map_err(|_| JwtError::BadBase64)?;
    let signature = decode_url_nopad(s64).map_err(|_| JwtError::BadBase64)?;
    let signed_len = h64.len() + 1 + p64.len();
    let signed = token.get(..signed_len).ok_or(JwtError::Malformed)?;
    if signature.len() != 32 {
        return Err(JwtError::BadSignature);
    }
    hmac::verify(key, signed, &signature).map_err(|_| JwtError::BadSignature)?;

    let header = parse_object(&header)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwtError::AlgNotAllowed);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(JwtError::BadType),
    }
    if header.contains_key("crit") {
        return Err(JwtError::CritUnsupported);
    }

    let all = parse_object(&payload)?;
    let exp = match all.get("exp") {
        None => return Err(JwtError::MissingExp),
        Some(v) => numeric_date(v)?,
    };
    let nbf = all.get("nbf").map(numeric_date).transpose()?;
    let iat = all.get("iat").map(numeric_date).transpose()?;
    if now >= exp.saturating_add(rules.leeway_secs) {
        return Err(JwtError::Expired);
    }
    if nbf.is_some_and(|nbf| now.saturating_add(rules.leeway_secs) < nbf) {
        return Err(JwtError::NotYetValid);
    }
    if let Some(want) = &rules.issuer {
        match all.get("iss") {
            None => return Err(JwtError::MissingIssuer),
            Some(Value::String(iss)) if iss == want => {}
            Some(Value::String(_)) => return Err(JwtError::WrongIssuer),
            Some(_) => return Err(JwtError::BadIssuer),
        }
    }
    if !rules.audience.is_empty() {
        audience_matches(all.get("aud"), &rules.audience)?;
    }
    Ok(Claims { exp, nbf, iat, all })
}

/// `aud` against the configured audiences: a string equal to one of them, or an array of
/// strings containing one of them. Every array element must be a string.
fn audience_matches(aud: Option<&Value>, wanted: &[String]) -> Result<(), JwtError> {
    let is_wanted = |s: &str| wanted.iter().any(|w| w == s);
    match aud {
        None => Err(JwtError::MissingAudience),
        Some(Value::String(s)) if is_wanted(s) => Ok(()),
        Some(Value::String(_)) => Err(JwtError::WrongAudience),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                let Value::String(s) = item else {
                    return Err(JwtError::BadAudience);
                };
                found |= is_wanted(s);
            }
            if found {
                Ok(())
            } else {
                Err(JwtError::WrongAudience)
            }
        }
        Some(_) => Err(JwtError::BadAudience),
    }
}

/// A NumericDate claim: a JSON number (integer or fraction, floored), never a string.
fn numeric_date(v: &Value) -> Result<i64, JwtError> {
    let Value::Number(n) = v else {
        return Err(JwtError::BadClaim);
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // `as` saturates at the i64 range, which is what a date this far out means anyway.
        Some(f) if f.is_finite() => Ok(f.floor() as i64),
        _ => Err(JwtError::BadClaim),
    }
}

/// Parses a JSON object, refusing duplicate keys at any depth (serde_json alone keeps the last
/// of two equal keys, which would let a token say two things at once).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JwtError> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(m))) => Ok(m),
        Ok(_) => Err(JwtError::NotObject),
        Err(e) if e.is_data() => Err(JwtError::DuplicateKey),
        Err(_) => Err(JwtError::BadJson),
    }
}

/// A JSON value whose objects have unique keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(A::Error::custom("duplicate key"));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

/// Signs `header` and `payload` (JSON texts) with HS256 into a compact token.
pub fn sign(header: &[u8], payload: &[u8], key: &hmac::Key) -> String {
    let mut token = encode_url_nopad(header);
    token.push('.');
    token.push_str(&encode_url_nopad(payload));
    let tag = hmac::sign(key, token.as_bytes());
    token.push('.');
    token.push_str(&encode_url_nopad(tag.as_ref()));
    token
}

/// Issues a token for `owner`, valid for `valid_secs` from `now`: claims `owner`, `iat`, `exp`.
pub fn issue(key: &hmac::Key, owner: &str, now: i64, valid_secs: i64) -> String {
    issue_with(key, owner, now, valid_secs, &ClaimRules::default())
}

/// Like [`issue`], plus the claims that `rules` checks: `iss` when an issuer is set, `aud` when
/// audiences are (a string for one, an array of all of them for several), so the token passes
/// routes with those rules. The leeway is not a claim.
pub fn issue_with(
    key: &hmac::Key,
    owner: &str,
    now: i64,
    valid_secs: i64,
    rules: &ClaimRules,
) -> String {
    let mut payload = Map::new();
    payload.insert("owner".into(), Value::from(owner));
    payload.insert("iat".into(), Value::from(now));
    payload.insert("exp".into(), Value::from(now.saturating_add(valid_secs)));
    if let Some(iss) = &rules.issuer {
        payload.insert("iss".into(), Value::from(iss.as_str()));
    }
    match rules.audience.as_slice() {
        [] => {}
        [one] => {
            payload.insert("aud".into(), Value::from(one.as_str()));
        }
        all => {
            payload.insert("aud".into(), Value::from(all.to_vec()));
        }
    }
    let payload = Value::Object(payload);
    sign(
        br#"{"alg":"HS256","typ":"JWT"}"#,
        payload.to_string().as_bytes(),
        key,
    )
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
