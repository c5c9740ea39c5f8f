//! The JSON endpoints of the admin API: `POST /conf`, `POST /jwt` and `GET /status`, and the
//! bounded request body reader they share. Access control lives in [`crate::admin`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::auth::jwt;
use crate::generation::{backend_id, GenerationStore};
use crate::secret::ct_eq;

/// Largest `POST /conf` body.
pub const MAX_CONF_BYTES: usize = 1024 * 1024;

/// Largest `POST /jwt` body.
pub const MAX_JWT_REQUEST_BYTES: usize = 16 * 1024;

/// Longest `owner` claim accepted by `POST /jwt`.
pub const MAX_OWNER_BYTES: usize = 256;

/// Longest validity of an issued token, in minutes (one year).
pub const MAX_VALID_MINUTES: i64 = 525_600;

/// Time allowed to receive a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// Larger than the limit (by `Content-Length` or while reading).
    TooLarge,
    /// The client broke off or was too slow.
    Read,
}

/// Reads the whole request body, refusing more than `limit` bytes (early when `Content-Length`
/// says so) and bodies that take longer than 30 s.
pub async fn read_body(session: &mut ServerSession, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(_) => return Err(BodyError::Read),
            }
        }
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyError::Read))
}

/// `POST /conf` after access control: compiles and applies `body` (blocking work on a blocking
/// thread). Returns the status and JSON body.
pub async fn push_conf(
    store: Arc<GenerationStore>,
    upstreams: PathBuf,
    body: Vec<u8>,
    save: bool,
) -> (u16, Value) {
    let Ok(text) = String::from_utf8(body) else {
        return (400, json!({"error": "the body is not UTF-8 text"}));
    };
    let job = tokio::task::spawn_blocking(move || {
        crate::sources::push::push(&store, &upstreams, text, save)
    });
    match job.await {
        Ok(reply) => (reply.status, reply.body),
        Err(e) => (
            500,
            json!({"error": format!("the config push failed: {e}")}),
        ),
    }
}

/// `POST /jwt`: `{"master_key", "owner", "valid"}` (`exp` is an alias of `valid`, in minutes).
/// 201 with `{"token"}` signed HS256 with the master key; 403 when no master key is configured or
/// the given one is wrong (constant time); 400 on bad JSON or fields.
///
/// `global` is the active plan's [`aralez_compiler::Plan::global_jwt`]: when the global
/// `authorization` is jwt with an `issuer` and/or `audience`, the token carries them as `iss` and
/// `aud` (every configured audience), so it passes the routes that inherit that authorization.
/// Per-path claim settings are never used: a path with its own `issuer`/`audience` accepts
/// tokens from `POST /jwt` only when those match the global ones.
pub fn issue_jwt(
    master_key: Option<&str>,
    global: Option<&aralez_compiler::JwtClaims>,
    body: &[u8],
    now: i64,
) -> (u16, Value) {
    let Some(master) = master_key.filter(|k| !k.is_empty()) else {
        return (
            403,
            json!({"error": "no master key is configured, so no token can be issued"}),
        );
    };
    let req = match jwt::parse_object(body) {
        Ok(m) => m,
        Err(e) => {
            return (
                400,
                json!({"error": format!("the body must be one JSON object ({e})")}),
            )
        }
    };
    let given = req.get("master_key").and_then(Value::as_str).unwrap_or("");
    if !ct_eq(given.as_bytes(), master.as_bytes()) {
        return (403, json!({"error": "wrong master key"}));
    }
    let Some(owner) = req.get("owner").and_then(Value::as_str) else {
        return (400, json!({"error": "`owner` (a string) is required"}));
    };
    if owner.len() > MAX_OWNER_BYTES {
        return (
            400,
            json!({"error": format!("`owner` is longer than {MAX_OWNER_BYTES} bytes")}),
        );
    }
    let valid = match (req.get("valid"), req.get("exp")) {
        (Some(v), None) | (None, Some(v)) => v,
        (Some(_), Some(_)) => {
            return (
                400,
                json!({"error": "give `valid` or its alias `exp`, not both"}),
            )
        }
        (None, None) => {
            return (
                400,
                json!({"error": "`valid` (minutes, 1..=525600) is required"}),
            )
        }
    };
    let minutes = match valid.as_i64() {
        Some(m) if (1..=MAX_VALID_MINUTES).contains(&m) => m,
        _ => {
            return (
                400,
                json!({"error": "`valid` must be a whole number of minutes in 1..=525600"}),
            )
        }
    };
    let Some(key) = jwt::key(master.as_bytes()) else {
        return (403, json!({"error": "no master key is configured"}));
    };
    let rules = global.map(crate::auth::claim_rules).unwrap_or_default();
    let token = jwt::issue_with(&key, owner, now, minutes * 60, &rules);
    (201, json!({ "token": token }))
}

/// `GET /status`: the serving generation's routes and their backends.
///
/// Per backend: `healthy` (its health-check state; `null` when it did not resolve) and
/// `protocol` as last detected (`"unknown"` before first use or after a connection failure).
pub fn status(store: &GenerationStore) -> Value {
    let generation = store.load();
    let routes: Vec<Value> = generation
        .routes()
        .iter()
        .map(|runtime| {
            let r = &runtime.policy;
            let peers = &runtime.peers;
            let backends: Vec<Value> = r
                .backends
                .iter()
                .map(|b| {
                    let id = backend_id(b);
                    let peer = peers.peers.iter().find(|p| p.id == id);
                    let addr = peer.map(|p| p.addr.to_string());
                    let healthy = peer.map(|p| p.health.is_healthy());
                    let protocol = peer
                        .and_then(|p| p.protocol.get())
                        .map_or("unknown", |p| p.as_str());
                    json!({
                        "id": id,
                        "address": addr,
                        "resolved": addr.is_some(),
                        "healthy": healthy,
                        "protocol": protocol,
                    })
                })
                .collect();
            json!({
                "id": r.id,
                "host": r.host,
                "path": r.path,
                "auth": r.auth.as_ref().map(|a| a.kind()),
                "to_https": r.to_https,
                "redirect_to": r.redirect_to,
                "discovery": r.discovery.as_ref().map(|d| json!({
                    "provider": d.provider.as_str(),
                    "service": d.service,
                })),
                "backends": backends,
            })
        })
        .collect();
    json!({
        "hash": generation.hash(),
        "since": generation.since,
        "provider": generation.plan().provider().as_str(),
        "routes": routes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn jwt_issue_rules() {
        let ok = br#"{"master_key":"0123456789abcdef0123456789abcdef","owner":"valod","valid":10}"#;
        let (code, body) = issue_jwt(Some(KEY), None, ok, 1_000);
        assert_eq!(code, 201);
        let token = body["token"].as_str().unwrap();
        let claims = jwt::verify_with_secret(token.as_bytes(), KEY.as_bytes(), 1_000).unwrap();
        assert_eq!(claims.exp, 1_000 + 600);
        assert_eq!(claims.iat, Some(1_000));
        assert_eq!(claims.all["owner"], "valod");
        let alias = br#"{"master_key":"0123456789abcdef0123456789abcdef","owner":"o","exp":1}"#;
        assert_eq!(issue_jwt(Some(KEY), None, alias, 0).0, 201);
        assert_eq!(issue_jwt(None, None, ok, 0).0, 403);
        let wrong = br#"{"master_key":"0123456789abcdef0123456789abcdeF","owner":"o","valid":1}"#;
        assert_eq!(issue_jwt(Some(KEY), None, wrong, 0).0, 403);
        assert_eq!(
            issue_jwt(Some(KEY), None, br#"{"owner":"o","valid":1}"#, 0).0,
            403
        );
        assert_eq!(issue_jwt(Some(KEY), None, b"not json", 0).0, 400);
        assert_eq!(issue_jwt(Some(KEY), None, b"[1]", 0).0, 400);
        for bad in ["0", "525601", "-1", "1.5", "\"10\"", "null"] {
            let b = format!(r#"{{"master_key":"{KEY}","owner":"o","valid":{bad}}}"#);
            assert_eq!(
                issue_jwt(Some(KEY), None, b.as_bytes(), 0).0,
                400,
                "valid {bad}"
            );
        }
        let max = format!(r#"{{"master_key":"{KEY}","owner":"o","valid":525600}}"#);
        assert_eq!(issue_jwt(Some(KEY), None, max.as_bytes(), 0).0, 201);
        let both = format!(r#"{{"master_key":"{KEY}","owner":"o","valid":1,"exp":1}}"#);
        assert_eq!(issue_jwt(Some(KEY), None, both.as_bytes(), 0).0, 400);
        let dup = format!(r#"{{"master_key":"x","master_key":"{KEY}","owner":"o","valid":1}}"#);
        assert_eq!(issue_jwt(Some(KEY), None, dup.as_bytes(), 0).0, 400);
        let no_owner = format!(r#"{{"master_key":"{KEY}","valid":1}}"#);
        assert_eq!(issue_jwt(Some(KEY), None, no_owner.as_bytes(), 0).0, 400);
    }

    #[test]
    fn jwt_issue_carries_the_global_claims() {
        let body = format!(r#"{{"master_key":"{KEY}","owner":"o","valid":1}}"#);
        let key = jwt::key(KEY.as_bytes()).unwrap();
        let token = |global: Option<&aralez_compiler::JwtClaims>| {
            let (code, v) = issue_jwt(Some(KEY), global, body.as_bytes(), 1_000);
            assert_eq!(code, 201);
            v["token"].as_str().unwrap().to_string()
        };
        // none configured: no iss/aud
        let plain = jwt::verify(token(None).as_bytes(), &key, 1_000).unwrap();
        assert!(plain.all.get("iss").is_none() && plain.all.get("aud").is_none());
        // one audience: a string; several: an array of all of them
        let one = aralez_compiler::JwtClaims {
            issuer: Some("https://issuer.example".into()),
            audience: vec!["api".into()],
            leeway_seconds: 0,
        };
        let c = jwt::verify(token(Some(&one)).as_bytes(), &key, 1_000).unwrap();
        assert_eq!(c.all["iss"], "https://issuer.example");
        assert_eq!(c.all["aud"], "api");
        let rules = crate::auth::claim_rules(&one);
        assert!(jwt::verify_with(token(Some(&one)).as_bytes(), &key, &rules, 1_000).is_ok());
        let two = aralez_compiler::JwtClaims {
            issuer: None,
            audience: vec!["a".into(), "b".into()],
            leeway_seconds: 30,
        };
        let c = jwt::verify(token(Some(&two)).as_bytes(), &key, 1_000).unwrap();
        assert_eq!(c.all["aud"], serde_json::json!(["a", "b"]));
        assert!(c.all.get("iss").is_none());
        // the plain token does not pass a route that wants an issuer
        assert_eq!(
            jwt::verify_with(token(None).as_bytes(), &key, &rules, 1_000).map(|_| ()),
            Err(jwt::JwtError::MissingIssuer)
        );
    }
}
