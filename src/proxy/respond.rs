//! The proxy's own short answers (redirects, 4xx/5xx refusals), written through pingora.

use bytes::Bytes;
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// Writes a short response of our own (no `Server` header, no caching).
pub(super) async fn respond(
    session: &mut Session,
    code: u16,
    location: Option<&str>,
) -> Result<()> {
    match location {
        Some(loc) => respond_with(session, code, &[(header::LOCATION, loc)]).await,
        None => respond_with(session, code, &[]).await,
    }
}

/// [`respond`] with extra response headers.
pub(super) async fn respond_with(
    session: &mut Session,
    code: u16,
    extra: &[(header::HeaderName, &str)],
) -> Result<()> {
    let body = Bytes::from_static(crate::edge::answer::status_text(code).as_bytes());
    let mut resp = ResponseHeader::build(code, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if let Some(id) = session.req_header().headers.get(crate::trace::X_REQUEST_ID) {
        // set by `request_filter` before any answer of ours (see `crate::trace`)
        resp.insert_header(crate::trace::X_REQUEST_ID, id.clone())?;
    }
    for (name, value) in extra {
        resp.insert_header(name.clone(), *value)?;
    }
    if code == 429 {
        resp.insert_header(header::RETRY_AFTER, "1")?;
    }
    if code >= 400 {
        session.set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
