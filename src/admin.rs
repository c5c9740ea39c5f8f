//! The admin listener (`config_address`): probes, status, metrics and the config API.
//!
//! Endpoints: `GET /livez` and `GET /readyz` (always open); the read-only `GET /config/status`,
//! `GET /status` and `GET /metrics`; the mutating `POST /conf` and `POST /jwt`.
//!
//! Access: read-only endpoints need the master key (`Authorization: Bearer <key>` or
//! `?key=<key>`, constant time) unless `admin_public_readonly: true` or no master key is
//! configured. `POST /conf` needs the master key the same way, and answers 403 when none is
//! configured or `config_api_enabled: false`. `POST /jwt` carries the master key in its JSON body
//! (Aralez 0.92's API) and answers 403 when it is wrong or none is configured.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::generation::GenerationStore;
use crate::metrics::Metrics;
use crate::secret::ct_eq;

/// The admin API application.
pub struct Admin {
    store: Arc<GenerationStore>,
    metrics: Arc<Metrics>,
    master_key: Option<String>,
    public_readonly: bool,
    ready: Arc<AtomicBool>,
    /// upstreams.yaml, for `POST /conf`; `None`: the config API is off.
    config_api: Option<PathBuf>,
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Read-only: the master key, unless `admin_public_readonly` or no key is configured.
    ReadOnly,
    /// Changes state: the master key, and one must be configured.
    Mutating,
}

impl Admin {
    /// An admin API over `store`; `ready` flips to true once the listeners are bound.
    pub fn new(
        store: Arc<GenerationStore>,
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
            config_api: None,
        }
    }

    /// Enables `POST /conf` (when `enabled`, i.e. `config_api_enabled`), writing `?save` to
    /// `upstreams`.
    pub fn with_config_api(mut self, upstreams: PathBuf, enabled: bool) -> Self {
        self.config_api = enabled.then_some(upstreams);
        self
    }

    /// `None` when the request may go on, else the refusal.
    fn refuse(&self, session: &ServerSession, access: Access) -> Option<Response<Vec<u8>>> {
        match (access, self.master_key.is_some()) {
            (Access::ReadOnly, _) if self.public_readonly => None,
            (Access::ReadOnly, false) => None,
            (Access::Mutating, false) => Some(reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                "no master key is configured, so the mutating admin endpoints are disabled\n",
            )),
            (_, true) => (!self.authorized(session)).then(unauthorized),
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
        let read = method == http::Method::GET || method == http::Method::HEAD;
        let post = method == http::Method::POST;
        match path.as_str() {
            "/livez" | "/readyz" | "/config/status" | "/status" | "/metrics" if !read => {
                method_not_allowed("GET, HEAD")
            }
            "/conf" | "/jwt" if !post => method_not_allowed("POST"),
            "/livez" => reply(StatusCode::OK, "text/plain", "ok\n"),
            "/readyz" => {
                if self.ready.load(Ordering::Acquire) {
                    reply(StatusCode::OK, "text/plain", "ready\n")
                } else {
                    reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n")
                }
            }
            "/config/status" => self.refuse(session, Access::ReadOnly).unwrap_or_else(|| {
                reply(StatusCode::OK, "application/json", self.store.status_json())
            }),
            "/status" => self
                .refuse(session, Access::ReadOnly)
                .unwrap_or_else(|| json_reply(200, &crate::admin_api::status(&self.store))),
            "/metrics" => self.refuse(session, Access::ReadOnly).unwrap_or_else(|| {
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.render(),
                )
            }),
            "/conf" => self.post_conf(session).await,
            "/jwt" => self.post_jwt(session).await,
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }
}

impl Admin {
    async fn post_conf(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if let Some(refused) = self.refuse(session, Access::Mutating) {
            session.set_keepalive(None);
            return refused;
        }
        let Some(upstreams) = self.config_api.clone() else {
            session.set_keepalive(None);
            return reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                "the config API is disabled (config_api_enabled: false)\n",
            );
        };
        let save = session.req_header().uri.query().is_some_and(|q| {
            q.split('&')
                .any(|p| p == "save" || p == "save=1" || p == "save=true")
        });
        let body =
            match crate::admin_api::read_body(session, crate::admin_api::MAX_CONF_BYTES).await {
                Ok(b) => b,
                Err(e) => return body_error(session, e),
            };
        let (code, json) =
            crate::admin_api::push_conf(self.store.clone(), upstreams, body, save).await;
        json_reply(code, &json)
    }

    async fn post_jwt(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let body =
            match crate::admin_api::read_body(session, crate::admin_api::MAX_JWT_REQUEST_BYTES)
                .await
            {
                Ok(b) => b,
                Err(e) => return body_error(session, e),
            };
        let now = i64::try_from(crate::generation::unix_now()).unwrap_or(i64::MAX);
        let generation = self.store.load();
        let (code, json) = crate::admin_api::issue_jwt(
            self.master_key.as_deref(),
            generation.plan().global_jwt(),
            &body,
            now,
        );
        json_reply(code, &json)
    }
}

fn body_error(session: &mut ServerSession, e: crate::admin_api::BodyError) -> Response<Vec<u8>> {
    session.set_keepalive(None);
    match e {
        crate::admin_api::BodyError::TooLarge => reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "request body too large\n",
        ),
        crate::admin_api::BodyError::Read => reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "could not read the request body\n",
        ),
    }
}

fn json_reply(code: u16, body: &serde_json::Value) -> Response<Vec<u8>> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut text = body.to_string();
    text.push('\n');
    reply(status, "application/json", text)
}

fn method_not_allowed(allow: &'static str) -> Response<Vec<u8>> {
    let mut r = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain",
        "method not allowed\n",
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
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
