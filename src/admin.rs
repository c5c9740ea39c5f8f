//! The admin listener (`config_address`): health probes and config status.
//!
//! Endpoints: `GET /livez`, `GET /readyz`, `GET /config/status` and `GET /metrics`. Read-only endpoints other than
//! the probes need the master key (`Authorization: Bearer <key>` or `?key=<key>`) unless
//! `admin_public_readonly: true` or no master key is configured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;
use crate::plan_store::PlanStore;
use crate::secret::ct_eq;

/// The admin API application.
pub struct Admin {
    store: Arc<PlanStore>,
    metrics: Arc<Metrics>,
    master_key: Option<String>,
    public_readonly: bool,
    ready: Arc<AtomicBool>,
}

impl Admin {
    /// An admin API over `store`; `ready` flips to true once the listeners are bound.
    pub fn new(
        store: Arc<PlanStore>,
        metrics: Arc<Metrics>,
        master_key: Option<String>,
        public_readonly: bool,
        ready: Arc<AtomicBool>,
    ) -> Self {
        Self {
            store,
            metrics,
            master_key,
            public_readonly,
            ready,
        }
    }

    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(key) = self.master_key.as_deref() else {
            return true;
        };
        let req = session.req_header();
        let bearer = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let query_key = req
            .uri
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("key=")));
        bearer
            .into_iter()
            .chain(query_key)
            .any(|given| ct_eq(given.as_bytes(), key.as_bytes()))
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    let mut resp = Response::new(Vec::new());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    *resp.body_mut() = body;
    resp
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        if method != http::Method::GET && method != http::Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n",
            );
        }
        match path.as_str() {
            "/livez" => reply(StatusCode::OK, "text/plain", "ok\n"),
            "/readyz" => {
                if self.ready.load(Ordering::Acquire) {
                    reply(StatusCode::OK, "text/plain", "ready\n")
                } else {
                    reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n")
                }
            }
            "/config/status" => {
                if !self.public_readonly && !self.authorized(session) {
                    return unauthorized();
                }
                reply(StatusCode::OK, "application/json", self.store.status_json())
            }
            "/metrics" => {
                if !self.public_readonly && !self.authorized(session) {
                    return unauthorized();
                }
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.render(),
                )
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }
}

fn unauthorized() -> Response<Vec<u8>> {
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        "text/plain",
        "master key required\n",
    );
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    r
}
