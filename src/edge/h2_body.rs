//! Request buffering and body limits for HTTP/2 requests (HTTP/1.x bodies are read by the gate
//! before pingora sees the request, see [`super::EdgeApp`]).
//!
//! The body is read in `request_filter`, before any upstream is chosen, into pingora's retry
//! buffer, which pingora then sends upstream first. That buffer holds 64 KiB, so at most 48 KiB
//! (64 KiB less one default-size DATA frame) are read ahead; a body with a mismatching
//! `content-length` or a stream reset is refused before anything is forwarded.

use std::time::Duration;

use pingora::prelude::Session;

use super::head::content_length;
use super::Refusal;

/// Most body bytes read ahead for an HTTP/2 request (pingora's retry buffer, less one frame).
const H2_READ_AHEAD: u64 = 48 * 1024;

/// The body settings of the proxy (main.yaml).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `request_buffering`.
    pub request_buffering: bool,
    /// `client_body_buffer_size`.
    pub body_buffer: usize,
    /// `client_max_body_size` (0: unlimited).
    pub max_body: u64,
    /// `client_body_timeout`.
    pub body_timeout: Duration,
}

/// Checks the declared size of an HTTP/2 request body and, with request buffering, reads (up to
/// the read-ahead limit) and validates it before the upstream is contacted. Returns the body
/// bytes read ahead.
pub async fn buffer_h2_body(session: &mut Session, limits: &BodyLimits) -> Result<u64, Refusal> {
    if !session.as_downstream().is_http2() {
        return Ok(0);
    }
    let declared = match session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
    {
        Some(v) => Some(content_length(v.as_bytes())?),
        None => None,
    };
    if let Some(n) = declared {
        if limits.max_body > 0 && n > limits.max_body {
            return Err(Refusal::new(413, "request body too large"));
        }
    }
    let cap = H2_READ_AHEAD.min(limits.body_buffer as u64);
    if !limits.request_buffering || declared.is_some_and(|n| n > cap) {
        return Ok(0);
    }
    let mut total = 0u64;
    while total <= cap {
        let read = tokio::time::timeout(limits.body_timeout, session.read_request_body()).await;
        match read {
            Err(_) => return Err(Refusal::new(408, "request body timed out")),
            Ok(Err(_)) => return Err(Refusal::new(400, "request body stream failed")),
            Ok(Ok(None)) => {
                if declared.is_some_and(|n| n != total) {
                    return Err(Refusal::new(400, "body shorter than its content-length"));
                }
                return Ok(total);
            }
            Ok(Ok(Some(chunk))) => {
                total += chunk.len() as u64;
                if declared.is_some_and(|n| total > n) {
                    return Err(Refusal::new(400, "body longer than its content-length"));
                }
                if limits.max_body > 0 && total > limits.max_body {
                    return Err(Refusal::new(413, "request body too large"));
                }
            }
        }
    }
    Ok(total)
}

/// Counts streamed HTTP/2 body bytes against `client_max_body_size`.
pub fn over_limit(total: &mut u64, chunk: Option<&bytes::Bytes>, limits: &BodyLimits) -> bool {
    *total += chunk.map_or(0, |c| c.len() as u64);
    limits.max_body > 0 && *total > limits.max_body
}
