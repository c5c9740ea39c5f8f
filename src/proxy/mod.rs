//! The data plane: pingora's `ProxyHttp` over the serving generation.
//!
//! Each request loads the generation once (one atomic load) and keeps that `Arc` until it ends, so
//! a reload never changes the rules in the middle of a request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};

use crate::balance::{self, Pick};
use crate::client::Client;
use crate::generation::{Generation, GenerationStore, RouteIdx, RouteRuntime};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::tls::upstream::{Detector, Protocol};
use aralez_compiler::Cidr;

mod access;
mod acme_challenge;
mod admit;
mod decide;
mod forward;
mod forward_auth;
mod observe;
mod respond;
mod retry;

use decide::wants_keepalive;
pub use decide::{decide, request_host, Decision, Denied};
use respond::respond;
use retry::{Next, RetryState};

/// Process-wide settings of the proxy (from main.yaml; a change needs a restart).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// TCP connect timeout towards upstreams.
    pub connect_timeout: Duration,
    /// Read timeout towards upstreams.
    pub read_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Which requests get an access log line.
    pub access_log: AccessLog,
    /// Largest accepted request head (request line + headers), in bytes.
    pub max_request_header_bytes: usize,
    /// Seconds a client connection may sit idle between requests.
    pub downstream_idle_timeout: u64,
    /// Port of the TLS listener, for `to_https` redirects (`None`: 443 implied).
    pub https_port: Option<u16>,
    /// The `Via` token of this process; seeing it on an incoming request means a loop.
    pub via_token: String,
    /// `escaped_slashes`.
    pub escaped_slashes: aralez_compiler::EscapedSlashes,
    /// Request buffering and body limits (HTTP/2; the gate applies them to HTTP/1.x).
    pub body: crate::edge::h2_body::BodyLimits,
}

/// Access logging policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// No access log.
    Off,
    /// Every request.
    All,
    /// Only responses with status >= 400.
    Errors,
}

/// The proxy service logic.
pub struct Proxy {
    store: Arc<GenerationStore>,
    settings: ProxySettings,
    metrics: Arc<Metrics>,
    limits: Limits,
    detector: Option<Arc<Detector>>,
    /// `settings.via_token` as a ready header value (most requests carry no `Via` to chain).
    via_value: http::HeaderValue,
    /// ACME's HTTP-01 answers (with `acme:` configured).
    acme: Option<Arc<crate::acme::Challenges>>,
    /// The access log writer thread (JSON lines, or text lines to `access_log_file`).
    access_writer: Option<Arc<crate::access_log::AccessLogWriter>>,
    /// Pooled connections to forward-auth services (made on first use).
    auth_connector: std::sync::OnceLock<pingora::connectors::http::Connector>,
}

impl Proxy {
    /// A proxy serving whatever `store` holds.
    pub fn new(
        store: Arc<GenerationStore>,
        settings: ProxySettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let via_value = http::HeaderValue::from_str(&settings.via_token)
            .unwrap_or_else(|_| http::HeaderValue::from_static("1.1 aralez"));
        Self {
            store,
            settings,
            metrics,
            limits: Limits::new(),
            detector: None,
            via_value,
            acme: None,
            access_writer: None,
            auth_connector: std::sync::OnceLock::new(),
        }
    }

    /// Answers ACME HTTP-01 challenges from `challenges` (when given) on the plain listener.
    pub fn with_acme(mut self, challenges: Option<Arc<crate::acme::Challenges>>) -> Self {
        self.acme = challenges;
        self
    }

    /// Connects to each backend in its detected protocol (TLS, h2); without it every backend is
    /// plain HTTP/1.1.
    pub fn with_detector(mut self, detector: Arc<Detector>) -> Self {
        self.detector = Some(detector);
        self
    }

    /// Counts the limits fleet-wide through `shared` (`limits_store`).
    pub fn with_limits_store(mut self, shared: Arc<crate::limits_store::SharedCounts>) -> Self {
        self.limits = Limits::new().with_shared(shared);
        self
    }

    /// Hands access lines to `writer` (off the request path) instead of the process logger.
    pub fn with_access_writer(mut self, writer: Arc<crate::access_log::AccessLogWriter>) -> Self {
        self.access_writer = Some(writer);
        self
    }
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    /// The route the request took, once routed.
    routed: Option<Routed>,
    /// The attempts so far and the retry rules.
    retry: RetryState,
    /// The sticky cookie to append to the response.
    set_cookie: Option<String>,
    peer_id: Option<String>,
    /// The TCP peer, and the address the limits count (see [`crate::client`]).
    client: Option<Client>,
    /// The response is a 429 from our own limiter (not counted as a 4xx of the client).
    limited: bool,
    counted_in_flight: bool,
    /// HTTP/2 request body bytes seen (for `client_max_body_size`).
    body_bytes: u64,
    /// `X-Request-Id` and `traceparent` of the request.
    ids: Option<crate::trace::RequestIds>,
    /// The route's auth scheme and its verdict (`ok`, `denied`), for the access log.
    auth: Option<(&'static str, &'static str)>,
    /// The limits' verdict (`pass`, `rate`, `x4xx`), once routed, for the access log.
    limit: Option<&'static str>,
    /// Headers a forward-auth service answered, for the upstream request.
    forward_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            routed: None,
            retry: RetryState::default(),
            set_cookie: None,
            peer_id: None,
            client: None,
            limited: false,
            counted_in_flight: false,
            body_bytes: 0,
            ids: None,
            auth: None,
            limit: None,
            forward_headers: Vec::new(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // before routing, auth, limits and `to_https`: the CA asks over plain HTTP
        if acme_challenge::answered(self.acme.as_deref(), session).await? {
            return Ok(true);
        }
        let generation = self.store.load();
        let keepalive = wants_keepalive(session.req_header());
        session.set_keepalive(keepalive.then_some(self.settings.downstream_idle_timeout));
        self.metrics.in_flight.inc();
        ctx.counted_in_flight = true;
        ctx.client = session.client_addr().and_then(|a| a.as_inet()).map(|a| {
            let headers = &session.req_header().headers;
            Client::of(a.ip(), headers, &self.settings.trusted_proxies)
        });
        let limits = ctx.client.map(|c| (&self.limits, c.real));
        let decision = decide(
            &generation,
            session.req_header(),
            &self.settings,
            is_tls(session),
            limits,
        );
        let trusted = ctx.client.is_some_and(|c| c.trusted_peer);
        let ids = crate::trace::RequestIds::of(&session.req_header().headers, trusted);
        // on the client request: the upstream request is built from it, our own answers read it
        session
            .req_header_mut()
            .insert_header(crate::trace::X_REQUEST_ID, ids.request_id.clone())?;
        ctx.ids = Some(ids);
        let decision = match decision {
            Decision::AskAuthService(idx) => {
                // boxed: the exchange's future is ~11 KB, and held inline it would make every
                // request's `request_filter` future (boxed by pingora on each call) that large
                let asking = Box::pin(self.ask_auth_service(session, ctx, &generation, idx));
                match asking.await? {
                    Some(decision) => decision,
                    None => return Ok(true),
                }
            }
            decision => decision,
        };
        self.carry_out(session, ctx, generation, decision).await
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(routed) = ctx.routed.as_ref() else {
            return Err(Error::explain(ErrorType::HTTPStatus(503), "no route"));
        };
        let runtime = routed.route();
        let (route, policy) = (&runtime.peers, &runtime.policy);
        let next = ctx.retry.next();
        let pick = match next {
            Next::Same(previous) => previous.map(Pick::RoundRobin),
            Next::First => {
                let cookie = policy
                    .sticky
                    .and_then(|_| balance::request_cookie(&session.req_header().headers));
                balance::pick(route, policy.healthcheck, cookie, None)
            }
            Next::Other(previous) => balance::pick(route, policy.healthcheck, None, previous),
        };
        let Some(pick) = pick else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no healthy backend",
            ));
        };
        let Some(peer) = route.peers.get(pick.index()) else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no usable backend",
            ));
        };
        if !matches!(next, Next::Same(_)) {
            // a client that was not (or could not stay) pinned gets a cookie for this backend
            ctx.set_cookie = match (policy.sticky, pick) {
                (Some(sticky), Pick::RoundRobin(_)) => Some(balance::set_cookie(
                    &peer.sticky_token,
                    sticky.max_age,
                    is_tls(session),
                )),
                _ => None,
            };
        }
        ctx.retry.attempt(pick.index());
        ctx.peer_id = Some(peer.id.clone());
        // never waits on a probe: the protocol detected when the generation was built or in a
        // health round, else plain HTTP/1.1
        let protocol = match &self.detector {
            Some(_) => peer.protocol.get().unwrap_or(Protocol::Http1),
            None => Protocol::Http1,
        };
        let mut http_peer = HttpPeer::new(peer.addr, protocol.is_tls(), peer.sni.clone());
        if let Some(d) = &self.detector {
            let verify = policy.verify_upstream_tls;
            let upgrade = session.req_header().headers.contains_key(header::UPGRADE);
            d.configure_peer(&mut http_peer, protocol, verify, upgrade);
        }
        http_peer.options.connection_timeout = Some(self.settings.connect_timeout);
        http_peer.options.total_connection_timeout = Some(self.settings.connect_timeout);
        http_peer.options.read_timeout = Some(self.settings.read_timeout);
        http_peer.options.write_timeout = Some(self.settings.read_timeout);
        http_peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(http_peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        log::warn!("connect to {peer} failed: {e}");
        if let Some(peer) = ctx
            .routed
            .as_ref()
            .and_then(|r| r.peer(ctx.retry.peer_idx()))
        {
            // the backend may have changed protocol: the next health round detects it again
            peer.protocol.mark_stale();
        }
        if let Some(route) = route_of(ctx) {
            let backend = ctx.peer_id.as_deref().unwrap_or("-");
            self.metrics
                .upstream_requests
                .with_label_values(&[route.id.as_str(), backend, "connect_error"])
                .inc();
        }
        // Nothing reached the upstream and the body was not read yet: the request is replayable.
        let other_backend = self.has_other_backend(ctx);
        let retry = ctx.retry.after_connect_failure(other_backend);
        e.set_retry(retry);
        if retry {
            self.count_retry(ctx);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // pingora's policy (idempotent method, body still in the retry buffer, and only errors
        // that mean a stale pooled connection), plus: nothing received from the upstream yet, and
        // at most one such retry, on the same backend (it is not the backend that failed).
        let replayable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        if ctx.retry.may_retry_reused(replayable) {
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        if e.retry() {
            ctx.retry.retrying_same();
            self.count_retry(ctx);
        }
        e
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let limits = &self.settings.body;
        if session.as_downstream().is_http2()
            && crate::edge::h2_body::over_limit(&mut ctx.body_bytes, body.as_ref(), limits)
        {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body too large",
            ));
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.retry.response_started();
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(runtime) = ctx.routed.as_ref().map(Routed::route) {
            if let Some(auth) = &runtime.auth {
                crate::auth::strip_credentials(auth, runtime.policy.forward_auth_header, req);
            }
            forward_auth::set_answer_headers(runtime.auth.as_ref(), ctx, req)?;
        }
        let hop = forward::Hop {
            client: ctx.client.map(|c| c.peer),
            trusted: ctx.client.is_some_and(|c| c.trusted_peer),
            tls: is_tls(session),
            via_token: &self.settings.via_token,
            via_value: &self.via_value,
        };
        forward::edit_upstream_request(req, session.req_header(), &hop)?;
        if let Some(ids) = &ctx.ids {
            req.insert_header(crate::trace::TRACEPARENT, ids.traceparent.clone())?;
        }
        if let Some(route) = route_of(ctx) {
            for (name, value) in &route.request_headers {
                req.insert_header(name.clone(), value.clone())?;
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(route) = ctx.routed.as_ref().map(Routed::route) {
            for (name, value) in &route.response_headers {
                resp.append_header(name.clone(), value.clone())?;
            }
        }
        if let Some(ids) = &ctx.ids {
            resp.insert_header(crate::trace::X_REQUEST_ID, ids.request_id.clone())?;
        }
        if let Some(cookie) = ctx.set_cookie.take() {
            // appended: the upstream's own cookies stay as they are
            resp.append_header(header::SET_COOKIE, cookie)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if code > 0 {
            if let Err(err) = respond(session, code, None).await {
                log::debug!("could not send {code}: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.record_metrics(session, e, ctx, status);
        if (400..500).contains(&status) && !ctx.limited {
            if let (Some(route), Some(client)) = (route_of(ctx), ctx.client) {
                self.limits.count_4xx(route, client.real);
            }
        }
        self.access_line(session, e, ctx, status);
    }
}

impl Proxy {
    fn has_other_backend(&self, ctx: &RequestCtx) -> bool {
        ctx.routed.as_ref().map(Routed::route).is_some_and(|r| {
            balance::has_other(&r.peers, r.policy.healthcheck, ctx.retry.peer_idx())
        })
    }
}

/// The route a request took, in the generation it was routed in (kept until the request ends).
pub struct Routed {
    generation: Arc<Generation>,
    idx: RouteIdx,
}

impl Routed {
    /// The route's runtime: policy, peers, auth.
    fn route(&self) -> &RouteRuntime {
        self.generation.route(self.idx)
    }

    /// Peer `idx` of the route.
    fn peer(&self, idx: Option<usize>) -> Option<&crate::generation::Peer> {
        self.route().peers.peers.get(idx?)
    }
}

fn route_of(ctx: &RequestCtx) -> Option<&aralez_compiler::Route> {
    ctx.routed.as_ref().map(|r| &*r.route().policy)
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
