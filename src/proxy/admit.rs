//! What the proxy does with a request's [`Decision`]: proxy it (with its body buffered for a
//! retry), or answer it here (redirect, 401, 429, 503) and count why.

use std::sync::Arc;

use http::header;
use pingora::prelude::Session;
use pingora::Result;

use super::respond::{respond, respond_with};
use super::{Decision, Proxy, RequestCtx, Routed};
use crate::generation::Generation;

impl Proxy {
    /// Carries out `decision` for the request in `session`; true when it has been answered here.
    pub(super) async fn carry_out(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        generation: Arc<Generation>,
        decision: Decision,
    ) -> Result<bool> {
        match decision {
            Decision::Proxy(idx) => {
                ctx.limit = Some("pass");
                ctx.auth = generation
                    .route(idx)
                    .auth
                    .as_ref()
                    .map(|a| (a.scheme(), "ok"));
                ctx.routed = Some(Routed { generation, idx });
                // keep (up to pingora's limit) the body for a retry after a stale connection
                session.as_mut().enable_retry_buffering();
                match crate::edge::h2_body::buffer_h2_body(session, &self.settings.body).await {
                    Ok(read) => ctx.body_bytes = read,
                    Err(refusal) => {
                        log::debug!("request body refused: {}", refusal.reason);
                        respond(session, refusal.status, None).await?;
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Decision::Respond(status, location) => {
                respond(session, status, location.as_deref()).await?;
                Ok(true)
            }
            Decision::Unauthorized(denied) => {
                let route = &generation.route(denied.route).policy;
                self.metrics
                    .auth_rejected
                    .with_label_values(&[route.id.as_str(), denied.scheme])
                    .inc();
                log::debug!("route {}: auth refused: {:?}", route.id, denied.why);
                (ctx.limit, ctx.auth) = (Some("pass"), Some((denied.scheme, "denied")));
                ctx.routed = Some(Routed {
                    generation,
                    idx: denied.route,
                });
                let challenge = [(header::WWW_AUTHENTICATE, denied.challenge)];
                respond_with(session, 401, &challenge).await?;
                Ok(true)
            }
            Decision::Limited(idx, kind) => {
                let route = &generation.route(idx).policy;
                self.metrics
                    .ratelimit_rejected
                    .with_label_values(&[route.id.as_str(), kind.as_str()])
                    .inc();
                ctx.routed = Some(Routed { generation, idx });
                ctx.limited = true;
                ctx.limit = Some(kind.as_str());
                respond(session, 429, None).await?;
                Ok(true)
            }
            Decision::AskAuthService(_) => {
                // asked above; never twice
                respond(session, 503, None).await?;
                Ok(true)
            }
        }
    }
}
