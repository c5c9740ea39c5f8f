//! The data plane: pingora's `ProxyHttp` over the running plan.
//!
//! Each request loads the plan once (one atomic load) and keeps that `Arc` until it ends, so a
//! reload never changes the rules in the middle of a request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};

use aralez_compiler::matcher::RouteMiss;

use crate::metrics::Metrics;
use crate::plan_store::{Active, PlanStore};
use crate::tls::upstream::{Detector, Protocol};
use aralez_compiler::Cidr;

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
    /// Port of the TLS listener, for `to_https` redirects (`None`: 443 implied).
    pub https_port: Option<u16>,
    /// The `Via` token of this process; seeing it on an incoming request means a loop.
    pub via_token: String,
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
    store: Arc<PlanStore>,
    settings: ProxySettings,
    metrics: Arc<Metrics>,
    detector: Option<Arc<Detector>>,
}

impl Proxy {
    /// A proxy serving whatever `store` holds.
    pub fn new(store: Arc<PlanStore>, settings: ProxySettings, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            settings,
            metrics,
            detector: None,
        }
    }

    /// Detects each backend's protocol (TLS, h2) on first use; without it every backend is plain
    /// HTTP/1.1.
    pub fn with_detector(mut self, detector: Arc<Detector>) -> Self {
        self.detector = Some(detector);
        self
    }
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    active: Option<Arc<Active>>,
    route: Option<usize>,
    first_peer: usize,
    tries: usize,
    peer_id: Option<String>,
    client_ip: Option<IpAddr>,
    counted_in_flight: bool,
}

/// Most retries on connection failures, across distinct backends.
const MAX_CONNECT_TRIES: usize = 3;

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            active: None,
            route: None,
            first_peer: 0,
            tries: 0,
            peer_id: None,
            client_ip: None,
            counted_in_flight: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let active = self.store.load();
        self.metrics.in_flight.inc();
        ctx.counted_in_flight = true;
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let decision = decide(
            &active,
            session.req_header(),
            &self.settings,
            is_tls(session),
        );
        match decision {
            Decision::Proxy(idx) => {
                ctx.route = Some(idx);
                ctx.active = Some(active);
                Ok(false)
            }
            Decision::Respond(status, location) => {
                ctx.active = Some(active);
                respond(session, status, location.as_deref()).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (Some(active), Some(idx)) = (ctx.active.as_ref(), ctx.route) else {
            return Err(Error::explain(ErrorType::HTTPStatus(503), "no route"));
        };
        let Some(route) = active.routes.get(idx) else {
            return Err(Error::explain(ErrorType::HTTPStatus(503), "no route"));
        };
        let n = route.peers.len();
        if n == 0 {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no usable backend",
            ));
        }
        if ctx.tries == 0 {
            ctx.first_peer = route.next_index().unwrap_or(0);
        }
        let Some(peer) = route.peers.get((ctx.first_peer + ctx.tries) % n) else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no usable backend",
            ));
        };
        ctx.tries += 1;
        ctx.peer_id = Some(peer.id.clone());
        let protocol = match &self.detector {
            Some(d) => d.protocol(&peer.id, peer.addr, &peer.sni).await,
            None => Protocol::Http1,
        };
        let mut http_peer = HttpPeer::new(peer.addr, protocol.is_tls(), peer.sni.clone());
        if let Some(d) = &self.detector {
            let verify = active
                .plan
                .routes
                .get(idx)
                .is_some_and(|r| r.verify_upstream_tls);
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
        let backends = ctx
            .active
            .as_ref()
            .zip(ctx.route)
            .and_then(|(a, i)| a.routes.get(i))
            .map_or(0, |r| r.peers.len());
        log::warn!("connect to {peer} failed: {e}");
        if let (Some(d), Some(id)) = (&self.detector, ctx.peer_id.as_deref()) {
            // the backend may have changed protocol: detect again on next use
            d.forget(id);
        }
        if let Some(route) = route_of(ctx) {
            let backend = ctx.peer_id.as_deref().unwrap_or("-");
            self.metrics
                .upstream_requests
                .with_label_values(&[route.id.as_str(), backend, "connect_error"])
                .inc();
        }
        if ctx.tries < backends.min(MAX_CONNECT_TRIES) {
            e.set_retry(true);
            if let Some(route) = route_of(ctx) {
                self.metrics
                    .retries
                    .with_label_values(&[route.id.as_str()])
                    .inc();
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let tls = is_tls(session);
        let client = ctx.client_ip;
        let trusted =
            client.is_some_and(|ip| self.settings.trusted_proxies.iter().any(|c| c.contains(ip)));
        let xff = match (client, trusted, req.headers.get("x-forwarded-for")) {
            (Some(ip), true, Some(prev)) => {
                format!("{}, {ip}", String::from_utf8_lossy(prev.as_bytes()))
            }
            (Some(ip), _, _) => ip.to_string(),
            (None, _, _) => String::new(),
        };
        if xff.is_empty() {
            req.remove_header("x-forwarded-for");
        } else {
            req.insert_header("x-forwarded-for", xff)?;
        }
        req.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
        if let Some(host) = request_host(session.req_header()) {
            let host = host.to_string();
            req.insert_header("x-forwarded-host", host)?;
        }
        let via = match req.headers.get(header::VIA) {
            Some(prev) => format!(
                "{}, {}",
                String::from_utf8_lossy(prev.as_bytes()),
                self.settings.via_token
            ),
            None => self.settings.via_token.clone(),
        };
        req.insert_header(header::VIA, via)?;
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
        if let Some(route) = route_of(ctx) {
            for (name, value) in &route.response_headers {
                resp.append_header(name.clone(), value.clone())?;
            }
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
        let log_it = match self.settings.access_log {
            AccessLog::Off => false,
            AccessLog::All => true,
            AccessLog::Errors => status >= 400 || status == 0,
        };
        if !log_it {
            return;
        }
        let req = session.req_header();
        let route = route_of(ctx).map_or("-", |r| r.id.as_str());
        log::info!(
            target: "access",
            "{} {} {} {} {} {}ms upstream={} route={}{}",
            ctx.client_ip.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            req.method,
            request_host(req).unwrap_or("-"),
            req.uri.path(),
            status,
            ctx.started.elapsed().as_millis(),
            ctx.peer_id.as_deref().unwrap_or("-"),
            route,
            e.map(|e| format!(" error={:?}", e.etype())).unwrap_or_default(),
        );
    }
}

impl Proxy {
    fn record_metrics(
        &self,
        session: &Session,
        e: Option<&Error>,
        ctx: &mut RequestCtx,
        status: u16,
    ) {
        if ctx.counted_in_flight {
            self.metrics.in_flight.dec();
            ctx.counted_in_flight = false;
        }
        let route = route_of(ctx).map_or("none", |r| r.id.as_str());
        let code_buf = itoa_status(status);
        let code = code_buf.as_str();
        self.metrics
            .requests
            .with_label_values(&[
                route,
                crate::metrics::method_label(&session.req_header().method),
                code,
            ])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[route])
            .observe(ctx.started.elapsed().as_secs_f64());
        if let Some(backend) = ctx.peer_id.as_deref() {
            let outcome = if e.is_some() { "error" } else { "ok" };
            self.metrics
                .upstream_requests
                .with_label_values(&[route, backend, outcome])
                .inc();
        }
    }
}

/// Status code as text without a heap allocation for the common codes.
fn itoa_status(status: u16) -> StatusText {
    let mut buf = [b'0'; 3];
    let s = status.min(999);
    buf[0] = b'0' + (s / 100) as u8;
    buf[1] = b'0' + (s / 10 % 10) as u8;
    buf[2] = b'0' + (s % 10) as u8;
    StatusText(buf)
}

/// Three ASCII digits.
struct StatusText([u8; 3]);

impl StatusText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

fn route_of(ctx: &RequestCtx) -> Option<&aralez_compiler::Route> {
    ctx.active.as_ref()?.plan.routes.get(ctx.route?)
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// The host a request is for: `Host`, else the URI authority (HTTP/2 `:authority`).
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    match req.headers.get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => req.uri.authority().map(|a| a.as_str()),
    }
}

/// What the proxy does with a request before any upstream is involved.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward along this route.
    Proxy(usize),
    /// Answer directly with this status (and `Location` for redirects).
    Respond(u16, Option<String>),
}

/// Routing and pre-upstream policy for one request head (pure, so it can be tested and benched).
pub fn decide(
    active: &Active,
    req: &RequestHeader,
    settings: &ProxySettings,
    tls: bool,
) -> Decision {
    if head_size(req) > settings.max_request_header_bytes {
        return Decision::Respond(431, None);
    }
    if req
        .headers
        .get_all(header::VIA)
        .iter()
        .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(settings.via_token.as_str()))
    {
        return Decision::Respond(508, None);
    }
    let Some(host) = request_host(req) else {
        return Decision::Respond(400, None);
    };
    let idx = match active.plan.route(host, req.uri.path()) {
        Ok(idx) => idx,
        Err(RouteMiss::UnknownHost | RouteMiss::NoRoute) => return Decision::Respond(404, None),
        Err(RouteMiss::BadPath) => return Decision::Respond(400, None),
    };
    let Some(route) = active.plan.routes.get(idx) else {
        return Decision::Respond(404, None);
    };
    let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    if route.to_https && !tls {
        let mut buf = [0u8; 253];
        let name = aralez_compiler::matcher::host_key(host, &mut buf).unwrap_or("");
        let name = if name.contains(':') {
            format!("[{name}]")
        } else {
            name.to_string()
        };
        let port = match settings.https_port {
            Some(443) | None => String::new(),
            Some(p) => format!(":{p}"),
        };
        return Decision::Respond(301, Some(format!("https://{name}{port}{target}")));
    }
    if let Some(base) = &route.redirect_to {
        let base = base.trim_end_matches('/');
        return Decision::Respond(301, Some(format!("{base}{target}")));
    }
    Decision::Proxy(idx)
}

fn head_size(req: &RequestHeader) -> usize {
    let line = req.method.as_str().len() + req.uri.to_string().len() + 12;
    req.headers
        .iter()
        .fold(line, |acc, (k, v)| acc + k.as_str().len() + v.len() + 4)
}

fn status_text(code: u16) -> &'static str {
    match code {
        301 => "moved permanently\n",
        400 => "bad request\n",
        404 => "no route for this host and path\n",
        431 => "request header fields too large\n",
        502 => "bad gateway: the upstream failed\n",
        503 => "service unavailable: no usable backend\n",
        504 => "gateway timeout\n",
        508 => "loop detected: this request already passed through this proxy\n",
        _ => "error\n",
    }
}

/// Writes a short response of our own (no `Server` header, no caching).
async fn respond(session: &mut Session, code: u16, location: Option<&str>) -> Result<()> {
    let body = Bytes::from_static(status_text(code).as_bytes());
    let mut resp = ResponseHeader::build(code, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if let Some(loc) = location {
        resp.insert_header(header::LOCATION, loc)?;
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
