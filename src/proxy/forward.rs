//! The request as it goes upstream: origin-form target, `X-Forwarded-For/-Proto/-Host` and the
//! `Via` hop marker.

use std::net::IpAddr;

use http::header;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

/// What the upstream request needs to know about this hop.
pub(super) struct Hop<'a> {
    /// The TCP peer.
    pub client: Option<IpAddr>,
    /// The peer is in `trusted_proxies` (its `X-Forwarded-For` is extended, not replaced).
    pub trusted: bool,
    /// The client connection is TLS.
    pub tls: bool,
    /// This process's `Via` token.
    pub via_token: &'a str,
    /// The same as a ready header value.
    pub via_value: &'a http::HeaderValue,
}

/// Edits `req` (the upstream request built from `client_req`) for this hop.
pub(super) fn edit_upstream_request(
    req: &mut RequestHeader,
    client_req: &RequestHeader,
    hop: &Hop<'_>,
) -> Result<()> {
    if !req.raw_path().starts_with(b"/") && req.uri.path_and_query().is_some() {
        // an absolute-form target goes to the origin in origin-form (RFC 9112 section 3.2.1)
        let origin_form = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = http::Uri::try_from(origin_form)
            .map_err(|_| Error::explain(ErrorType::HTTPStatus(400), "bad target"))?;
        req.set_uri(uri);
    }
    let xff = match (hop.client, hop.trusted, req.headers.get(&X_FORWARDED_FOR)) {
        (Some(ip), true, Some(prev)) => {
            format!("{}, {ip}", String::from_utf8_lossy(prev.as_bytes()))
        }
        (Some(ip), _, _) => ip.to_string(),
        (None, _, _) => String::new(),
    };
    if xff.is_empty() {
        req.remove_header(&X_FORWARDED_FOR);
    } else {
        req.insert_header(X_FORWARDED_FOR_NAME, xff)?;
    }
    req.insert_header(
        X_FORWARDED_PROTO_NAME,
        http::HeaderValue::from_static(if hop.tls { "https" } else { "http" }),
    )?;
    // the client's Host value as is (a cheap shared copy), or the HTTP/2 :authority
    let host = client_req.headers.get(header::HOST).cloned();
    match host {
        Some(value) => {
            req.insert_header(X_FORWARDED_HOST_NAME, value)?;
        }
        None => {
            if let Some(authority) = client_req.uri.authority() {
                req.insert_header(X_FORWARDED_HOST_NAME, authority.as_str())?;
            }
        }
    }
    match req.headers.get(header::VIA) {
        Some(prev) => {
            let chained = format!(
                "{}, {}",
                String::from_utf8_lossy(prev.as_bytes()),
                hop.via_token
            );
            req.insert_header(header::VIA, chained)?;
        }
        None => {
            req.insert_header(header::VIA, hop.via_value.clone())?;
        }
    }
    Ok(())
}

/// `X-Forwarded-For` as a ready header name (lookups and removal).
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
// The names as `&'static str` for `insert_header`: pingora keeps the wire spelling of every
// header next to the header itself, and from a static string that spelling is a shared static
// `Bytes`, where from a non-standard `HeaderName` it is a fresh heap copy on every request.
// Lower case, exactly as the `HeaderName`s above were written.
/// `X-Forwarded-For`, as written on the upstream request.
const X_FORWARDED_FOR_NAME: &str = "x-forwarded-for";
/// `X-Forwarded-Proto`, as written on the upstream request.
const X_FORWARDED_PROTO_NAME: &str = "x-forwarded-proto";
/// `X-Forwarded-Host`, as written on the upstream request.
const X_FORWARDED_HOST_NAME: &str = "x-forwarded-host";
