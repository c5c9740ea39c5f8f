//! The proxy's side of forward authentication: ask the route's auth service (limits already
//! passed), answer its denials as it sent them, 503 when it cannot be asked, and put the answer
//! headers of an allow onto the upstream request.

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use pingora::Result;

use super::decide::after_auth;
use super::{is_tls, respond, Decision, Proxy, RequestCtx, Routed};
use crate::auth::forward::{Asking, Denial, Verdict};
use crate::auth::RouteAuth;
use crate::generation::{Generation, RouteIdx};

impl Proxy {
    /// Asks the auth service of route `idx`. `Some(decision)` after an allow; `None` when the
    /// request has been answered here (a denial, or 503).
    pub(super) async fn ask_auth_service(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        generation: &Arc<Generation>,
        idx: RouteIdx,
    ) -> Result<Option<Decision>> {
        ctx.limit = Some("pass");
        let route_id = generation.route(idx).policy.id.as_str();
        let Some(RouteAuth::Forward(auth)) = &generation.route(idx).auth else {
            // only routes with forward auth are asked
            respond(session, 503, None).await?;
            return Ok(None);
        };
        let asking = Asking {
            req: session.req_header(),
            client: ctx.client.map(|c| c.real),
            trusted_peer: ctx.client.is_some_and(|c| c.trusted_peer),
            tls: is_tls(session),
        };
        let connector = self
            .auth_connector
            .get_or_init(|| pingora::connectors::http::Connector::new(None));
        let verdict = auth.ask(connector, &asking).await;
        let routed = || Routed {
            generation: generation.clone(),
            idx,
        };
        match verdict {
            Ok(Verdict::Allow(headers)) => {
                ctx.forward_headers = headers;
                Ok(Some(after_auth(generation, session.req_header(), idx)))
            }
            Ok(Verdict::Deny(denial)) => {
                self.metrics
                    .auth_rejected
                    .with_label_values(&[route_id, "forward"])
                    .inc();
                ctx.auth = Some(("forward", "denied"));
                ctx.routed = Some(routed());
                relay_denial(session, denial).await?;
                Ok(None)
            }
            Err(e) => {
                log::warn!("route {route_id}: forward auth failed: {e:?}");
                self.metrics
                    .forward_auth_errors
                    .with_label_values(&[route_id, e.label()])
                    .inc();
                ctx.auth = Some(("forward", "error"));
                ctx.routed = Some(routed());
                respond(session, 503, None).await?;
                Ok(None)
            }
        }
    }
}

/// Removes every header the route copies from the auth answer (a client cannot send its own
/// `X-User`), then sets the ones the auth service answered.
pub(super) fn set_answer_headers(
    auth: Option<&RouteAuth>,
    ctx: &RequestCtx,
    req: &mut RequestHeader,
) -> Result<()> {
    if let Some(RouteAuth::Forward(auth)) = auth {
        for name in auth.response_headers() {
            req.remove_header(name);
        }
        for (name, value) in &ctx.forward_headers {
            req.append_header(name.clone(), value.clone())?;
        }
    }
    Ok(())
}

/// The auth service's denial as the client's answer: its status, its `Location`,
/// `WWW-Authenticate`, `Set-Cookie`, `Content-Type`, `Cache-Control`, and its (bounded) body.
async fn relay_denial(session: &mut Session, denial: Denial) -> Result<()> {
    let mut resp = ResponseHeader::build(denial.status, Some(denial.headers.len() + 4))?;
    for (name, value) in denial.headers {
        resp.append_header(name, value)?;
    }
    if !resp.headers.contains_key(header::CACHE_CONTROL) {
        resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    }
    resp.insert_header(header::CONTENT_LENGTH, denial.body.len().to_string())?;
    if let Some(id) = session.req_header().headers.get(crate::trace::X_REQUEST_ID) {
        resp.insert_header(crate::trace::X_REQUEST_ID, id.clone())?;
    }
    session.set_keepalive(None);
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only || denial.body.is_empty())
        .await?;
    if !head_only && !denial.body.is_empty() {
        let body: Bytes = denial.body;
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
