//! Authentication at the proxy (DESIGN section 5, step 5): Basic, API key and HS256 JWT.
//!
//! [`resolve`] turns a plan's `authorization` settings into an [`AuthTable`] when the plan is
//! loaded: inline secrets, `creds_file` contents and the master key, so nothing is read or merged
//! per request. [`check`] is the per-request decision (pure over the request head) and
//! [`strip_credentials`] removes what the proxy consumed before the request goes upstream.

pub mod apikey;
pub mod base64;
pub mod basic;
pub mod forward;
pub mod jwt;
mod resolve;

pub use resolve::{
    claim_rules, resolve, secret_diagnostics, AuthSettings, AuthTable, SecretError, SecretFiles,
};

use http::header::AUTHORIZATION;
use http::HeaderMap;
use pingora::http::RequestHeader;

/// The query parameter that may carry a JWT instead of `Authorization: Bearer`.
pub const TOKEN_PARAM: &str = "araleztoken";

/// A route's authentication with its secret resolved.
#[derive(Clone)]
pub enum RouteAuth {
    /// `user:password`, compared whole.
    Basic {
        /// The expected decoded credentials.
        creds: Vec<u8>,
    },
    /// The expected `x-api-key`.
    Apikey {
        /// The key.
        key: Vec<u8>,
    },
    /// HS256 with this key (the route's secret or the master key).
    Jwt {
        /// The prepared HMAC key.
        key: ring::hmac::Key,
        /// The route's `issuer`, `audience` and `leeway_seconds` (boxed to keep the enum small).
        rules: Box<jwt::ClaimRules>,
    },
    /// Ask an auth service (asynchronously, in the proxy; never through [`check`]).
    Forward(std::sync::Arc<forward::ForwardAuthRuntime>),
}

impl std::fmt::Debug for RouteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RouteAuth::{}(<redacted>)", self.scheme())
    }
}

impl RouteAuth {
    /// `basic`, `apikey` or `jwt` (the `scheme` label of `aralez_auth_rejected_total`).
    pub fn scheme(&self) -> &'static str {
        match self {
            RouteAuth::Basic { .. } => "basic",
            RouteAuth::Apikey { .. } => "apikey",
            RouteAuth::Jwt { .. } => "jwt",
            RouteAuth::Forward(_) => "forward",
        }
    }

    /// The `WWW-Authenticate` value of a 401. API keys have no registered scheme; RFC 9110 still
    /// asks for a challenge on every 401, so they get `ApiKey realm="aralez"`, which browsers
    /// ignore (no login dialog).
    pub fn challenge(&self) -> &'static str {
        match self {
            RouteAuth::Basic { .. } => "Basic realm=\"aralez\"",
            RouteAuth::Apikey { .. } => "ApiKey realm=\"aralez\"",
            RouteAuth::Jwt { .. } => "Bearer",
            // never used: a forward denial carries the auth service's own headers
            RouteAuth::Forward(_) => "",
        }
    }
}

/// Why a request was refused (logged at debug level; the client only sees 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No credentials.
    Missing,
    /// The credential header (or `araleztoken`) appears more than once.
    Ambiguous,
    /// A Basic header that is wrong or malformed.
    Basic(basic::BasicError),
    /// An API key that does not match.
    WrongKey,
    /// A JWT that does not verify, with the reason: bad signature or shape, expired, or a claim
    /// the route requires that is missing, of the wrong JSON type or not the configured value
    /// ([`jwt::JwtError::WrongIssuer`], [`jwt::JwtError::WrongAudience`], ...).
    Jwt(jwt::JwtError),
    /// A forward-auth route reached the synchronous check, which cannot ask the auth service:
    /// refused (fail closed).
    NeedsAuthService,
}

/// Checks one request head against a route's auth. `target` is the raw request target (path and
/// query, as received); `now` the Unix time in seconds.
pub fn check(
    auth: &RouteAuth,
    headers: &HeaderMap,
    target: &[u8],
    now: i64,
) -> Result<(), Rejection> {
    match auth {
        RouteAuth::Basic { creds } => {
            let value = single(headers, AUTHORIZATION.as_str())?.ok_or(Rejection::Missing)?;
            basic::verify(value, creds).map_err(Rejection::Basic)
        }
        RouteAuth::Apikey { key } => {
            let value = single(headers, apikey::HEADER)?.ok_or(Rejection::Missing)?;
            if apikey::verify(value, key) {
                Ok(())
            } else {
                Err(Rejection::WrongKey)
            }
        }
        RouteAuth::Jwt { key, rules } => {
            let header = single(headers, AUTHORIZATION.as_str())?
                .and_then(|v| basic::strip_scheme(v, "bearer"));
            let token = match header {
                Some(t) => t,
                None => {
                    let mut values = query_values(target, TOKEN_PARAM);
                    let first = values.next().ok_or(Rejection::Missing)?;
                    if values.next().is_some() {
                        return Err(Rejection::Ambiguous);
                    }
                    first
                }
            };
            jwt::verify_with(token, key, rules, now)
                .map(|_| ())
                .map_err(Rejection::Jwt)
        }
        RouteAuth::Forward(_) => Err(Rejection::NeedsAuthService),
    }
}

/// The only value of header `name`; more than one is ambiguous and refused.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>, Rejection> {
    let mut all = headers.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(Rejection::Ambiguous);
    }
    Ok(first.map(http::HeaderValue::as_bytes))
}

/// The query of a raw request target (after the first `?`).
fn query(target: &[u8]) -> Option<&[u8]> {
    let q = target.iter().position(|&c| c == b'?')?;
    target.get(q + 1..)
}

/// Raw (not percent-decoded) values of every `name` parameter in the query of `target`.
pub fn query_values<'a>(target: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    query(target)
        .unwrap_or_default()
        .split(|&c| c == b'&')
        .filter_map(move |pair| {
            let (k, v) = match pair.iter().position(|&c| c == b'=') {
                Some(eq) => (pair.get(..eq)?, pair.get(eq + 1..)?),
                None => (pair, &b""[..]),
            };
            (k == name.as_bytes()).then_some(v)
        })
}

/// The request target without any `name` parameter; the other parameters are kept byte for byte
/// and in order (`?` goes when nothing is left). `None` when there was nothing to remove.
pub fn strip_query_param(target: &[u8], name: &str) -> Option<Vec<u8>> {
    let q = target.iter().position(|&c| c == b'?')?;
    let (path, rest) = target.split_at(q);
    let params = rest.get(1..)?;
    let is_name = |pair: &&[u8]| {
        let key = pair.split(|&c| c == b'=').next().unwrap_or_default();
        key == name.as_bytes()
    };
    if !params.split(|&c| c == b'&').any(|p| is_name(&p)) {
        return None;
    }
    let kept: Vec<&[u8]> = params
        .split(|&c| c == b'&')
        .filter(|p| !is_name(p))
        .collect();
    let mut out = path.to_vec();
    if !kept.is_empty() {
        out.push(b'?');
        out.extend_from_slice(&kept.join(&b'&'));
    }
    Some(out)
}

/// Removes the credentials a route authenticated with from the request going upstream:
/// `Authorization` (basic, jwt) or `x-api-key` (apikey) unless `forward` (`forward_auth_header`);
/// the `araleztoken` query parameter of a jwt route always.
pub fn strip_credentials(auth: &RouteAuth, forward: bool, req: &mut RequestHeader) {
    match auth {
        RouteAuth::Basic { .. } => {
            if !forward {
                req.remove_header(&AUTHORIZATION);
            }
        }
        RouteAuth::Apikey { .. } => {
            if !forward {
                req.remove_header(apikey::HEADER);
            }
        }
        RouteAuth::Jwt { .. } => {
            if !forward {
                req.remove_header(&AUTHORIZATION);
            }
            if let Some(target) = strip_query_param(req.raw_path(), TOKEN_PARAM) {
                if let Err(e) = req.set_raw_path(&target) {
                    log::warn!("could not remove {TOKEN_PARAM} from the request target: {e}");
                }
            }
        }
        // the client's headers go on as they are; the answer headers are set by the proxy
        RouteAuth::Forward(_) => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn query_values_and_strip() {
        let t = b"/p?a=1&araleztoken=x.y.z&b=%20&araleztoken";
        let v: Vec<&[u8]> = query_values(t, TOKEN_PARAM).collect();
        assert_eq!(v, vec![&b"x.y.z"[..], &b""[..]]);
        assert_eq!(
            strip_query_param(t, TOKEN_PARAM).unwrap(),
            b"/p?a=1&b=%20".to_vec()
        );
        assert_eq!(
            strip_query_param(b"/p?araleztoken=t", TOKEN_PARAM).unwrap(),
            b"/p".to_vec()
        );
        assert_eq!(strip_query_param(b"/p?a=1", TOKEN_PARAM), None);
        assert_eq!(strip_query_param(b"/p", TOKEN_PARAM), None);
        // a parameter that merely starts with the name stays
        assert_eq!(
            strip_query_param(b"/p?araleztokens=1&araleztoken=2", TOKEN_PARAM).unwrap(),
            b"/p?araleztokens=1".to_vec()
        );
        assert_eq!(query_values(b"/p?araleztokenx=1", TOKEN_PARAM).count(), 0);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn check_per_scheme() {
        let basic = RouteAuth::Basic {
            creds: b"u:p".to_vec(),
        };
        let ok = format!("Basic {}", base64::encode_std(b"u:p"));
        assert_eq!(
            check(&basic, &headers(&[("authorization", &ok)]), b"/", 0),
            Ok(())
        );
        assert_eq!(
            check(&basic, &headers(&[]), b"/", 0),
            Err(Rejection::Missing)
        );
        assert_eq!(
            check(
                &basic,
                &headers(&[("authorization", &ok), ("authorization", &ok)]),
                b"/",
                0
            ),
            Err(Rejection::Ambiguous)
        );
        let key = RouteAuth::Apikey { key: b"k".to_vec() };
        assert_eq!(
            check(&key, &headers(&[("x-api-key", "k")]), b"/", 0),
            Ok(())
        );
        assert_eq!(
            check(&key, &headers(&[("x-api-key", "K")]), b"/", 0),
            Err(Rejection::WrongKey)
        );
        let k = jwt::key(b"secret-secret-secret").unwrap();
        let token = jwt::issue(&k, "me", 1000, 60);
        let j = RouteAuth::Jwt {
            key: k,
            rules: Box::default(),
        };
        let bearer = format!("Bearer {token}");
        assert_eq!(
            check(&j, &headers(&[("authorization", &bearer)]), b"/", 1000),
            Ok(())
        );
        let target = format!("/x?a=1&araleztoken={token}");
        assert_eq!(check(&j, &headers(&[]), target.as_bytes(), 1000), Ok(()));
        let twice = format!("/x?araleztoken={token}&araleztoken={token}");
        assert_eq!(
            check(&j, &headers(&[]), twice.as_bytes(), 1000),
            Err(Rejection::Ambiguous)
        );
        assert_eq!(
            check(&j, &headers(&[]), target.as_bytes(), 2000),
            Err(Rejection::Jwt(jwt::JwtError::Expired))
        );
    }
}
