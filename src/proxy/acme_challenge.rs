//! The ACME HTTP-01 answer on the plain listener: `GET /.well-known/acme-challenge/<token>` for a
//! token being validated gets its key authorization, before routing, auth, limits and
//! `to_https` (see [`crate::acme`]).

use bytes::Bytes;
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

use crate::acme::Challenges;

/// Answers the request when it is an HTTP-01 challenge being validated; `true` when answered.
pub(super) async fn answered(
    challenges: Option<&Challenges>,
    session: &mut Session,
) -> Result<bool> {
    let Some(challenges) = challenges else {
        return Ok(false);
    };
    let req = session.req_header();
    if req.method != http::Method::GET || super::is_tls(session) {
        return Ok(false);
    }
    let Some(answer) = challenges.answer(req.uri.path()) else {
        return Ok(false);
    };
    let body = Bytes::from(answer);
    let mut resp = ResponseHeader::build(200, Some(3))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(true)
}
