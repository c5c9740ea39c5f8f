//! Forward authentication (`authorization: {type: forward}`): each request is first asked of an
//! auth service, as Traefik's ForwardAuth does. A GET with `X-Forwarded-Method`, `-Proto`,
//! `-Host`, `-Uri`, `-For` and the listed client headers; a 2xx lets the request through with the
//! listed answer headers, anything else is returned to the client as the service sent it.
//!
//! The exchange runs on the request's own task through a pingora connector (pooled keep-alive
//! connections), bounded as a whole by `timeout_ms`; no runtime thread ever blocks on it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aralez_compiler::ForwardAuth;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

/// The largest denial body relayed to the client; the rest is cut (and the connection closed).
pub const MAX_DENIAL_BODY: usize = 64 * 1024;

/// Most cached positive answers per route; a full cache stops caching until entries expire.
pub const MAX_CACHE_ENTRIES: usize = 10_000;

/// How long an idle pooled connection to the auth service is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers of a denial relayed to the client.
const DENIAL_HEADERS: [HeaderName; 5] = [
    http::header::LOCATION,
    http::header::WWW_AUTHENTICATE,
    http::header::SET_COOKIE,
    http::header::CONTENT_TYPE,
    http::header::CACHE_CONTROL,
];

/// One route's forward authentication, ready to ask.
pub struct ForwardAuthRuntime {
    /// The auth service.
    addr: SocketAddr,
    /// `Host` of the auth request.
    host: HeaderValue,
    /// Path and query of the auth request.
    target: String,
    /// Whole-exchange bound.
    timeout: Duration,
    request_headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
    trust_forward_header: bool,
    /// Positive answers by the listed request headers' values (`None`: caching off).
    cache: Option<(Duration, AnswerCache)>,
}

/// A cached positive answer: when it expires and the headers it copies.
type Cached = (Instant, Vec<(HeaderName, HeaderValue)>);

/// Positive answers by the listed request headers' values.
type AnswerCache = Mutex<HashMap<Vec<u8>, Cached>>;

impl std::fmt::Debug for ForwardAuthRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardAuthRuntime")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// What the auth service decided.
#[derive(Debug)]
pub enum Verdict {
    /// 2xx: proxy the request, with these headers set on the upstream request.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Anything else: this is the client's answer.
    Deny(Denial),
}

/// An auth service's refusal, as relayed to the client.
#[derive(Debug)]
pub struct Denial {
    /// The status the service sent (300..=599).
    pub status: u16,
    /// `Location`, `WWW-Authenticate`, `Set-Cookie`, `Content-Type`, `Cache-Control`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body, up to [`MAX_DENIAL_BODY`] bytes.
    pub body: Bytes,
}

/// Why no verdict could be had (the client gets 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// `timeout_ms` passed.
    Timeout,
    /// The connection or the exchange failed.
    Io(String),
    /// The service answered something that is not a verdict (a 1xx, a broken head).
    Protocol(String),
}

impl ForwardError {
    /// The `reason` label of `aralez_forward_auth_errors_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ForwardError::Timeout => "timeout",
            ForwardError::Io(_) => "io",
            ForwardError::Protocol(_) => "protocol",
        }
    }
}

/// The request facts the auth request carries.
pub struct Asking<'a> {
    /// The client's request head.
    pub req: &'a RequestHeader,
    /// The address the request is attributed to (`X-Forwarded-For`).
    pub client: Option<IpAddr>,
    /// The TCP peer is in `trusted_proxies`.
    pub trusted_peer: bool,
    /// The client connection is TLS.
    pub tls: bool,
}

impl ForwardAuthRuntime {
    /// Prepares a plan's forward authorization; a host name is resolved now (as backends are).
    pub fn new(f: &ForwardAuth) -> Result<Self, String> {
        let addr = (f.host.as_str(), f.port)
            .to_socket_addrs()
            .map_err(|e| format!("forward auth url {}: {e}", f.url))?
            .next()
            .ok_or_else(|| format!("forward auth url {}: the name has no address", f.url))?;
        let authority = if f.host.contains(':') {
            format!("[{}]:{}", f.host, f.port)
        } else {
            format!("{}:{}", f.host, f.port)
        };
        let host = HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
        let names = |list: &[String]| -> Result<Vec<HeaderName>, String> {
            list.iter()
                .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|e| e.to_string()))
                .collect()
        };
        Ok(Self {
            addr,
            host,
            target: f.target.clone(),
            timeout: Duration::from_millis(f.timeout_ms),
            request_headers: names(&f.request_headers)?,
            response_headers: names(&f.response_headers)?,
            trust_forward_header: f.trust_forward_header,
            cache: (f.cache_seconds > 0).then(|| {
                (
                    Duration::from_secs(u64::from(f.cache_seconds)),
                    Mutex::new(HashMap::new()),
                )
            }),
        })
    }

    /// The answer headers copied onto the upstream request (any the client sent are removed).
    pub fn response_headers(&self) -> &[HeaderName] {
        &self.response_headers
    }

    /// Asks the auth service about one request (or answers from the cache).
    pub async fn ask(
        &self,
        connector: &Connector,
        asking: &Asking<'_>,
    ) -> Result<Verdict, ForwardError> {
        let key = self.cache.as_ref().map(|_| self.cache_key(asking.req));
        if let (Some(key), Some((_, cache))) = (&key, &self.cache) {
            if let Some(hit) = cache.lock().ok().and_then(|c| {
                c.get(key)
                    .filter(|(until, _)| *until > Instant::now())
                    .map(|(_, h)| h.clone())
            }) {
                return Ok(Verdict::Allow(hit));
            }
        }
        let head = self.auth_request(asking)?;
        let verdict = match tokio::time::timeout(self.timeout, self.exchange(connector, head)).await
        {
            Ok(result) => result?,
            Err(_) => return Err(ForwardError::Timeout),
        };
        if let (Verdict::Allow(headers), Some(key), Some((ttl, cache))) =
            (&verdict, key, &self.cache)
        {
            if let Ok(mut c) = cache.lock() {
                let now = Instant::now();
                if c.len() >= MAX_CACHE_ENTRIES {
                    c.retain(|_, (until, _)| *until > now);
                }
                if c.len() < MAX_CACHE_ENTRIES {
                    c.insert(key, (now + *ttl, headers.clone()));
                }
            }
        }
        Ok(verdict)
    }

    /// The listed request headers' names and values, framed so that no two differ only in
    /// where one value ends.
    fn cache_key(&self, req: &RequestHeader) -> Vec<u8> {
        let mut key = Vec::new();
        for name in &self.request_headers {
            key.extend_from_slice(name.as_str().as_bytes());
            for v in req.headers.get_all(name) {
                key.extend_from_slice(&(v.len() as u64).to_le_bytes());
                key.extend_from_slice(v.as_bytes());
            }
            key.push(0);
        }
        key
    }

    /// The GET sent to the auth service.
    fn auth_request(&self, a: &Asking<'_>) -> Result<RequestHeader, ForwardError> {
        let bad = |e: pingora::BError| ForwardError::Protocol(e.to_string());
        let mut head = RequestHeader::build("GET", self.target.as_bytes(), Some(8)).map_err(bad)?;
        head.insert_header(http::header::HOST, self.host.clone())
            .map_err(bad)?;
        let req = a.req;
        let trusted = self.trust_forward_header && a.trusted_peer;
        let proto = if a.tls { "https" } else { "http" };
        let host = crate::proxy::request_host(req).unwrap_or("");
        let client = a.client.map(|ip| ip.to_string()).unwrap_or_default();
        let ours: [(&str, &[u8]); 5] = [
            ("x-forwarded-method", req.method.as_str().as_bytes()),
            ("x-forwarded-proto", proto.as_bytes()),
            ("x-forwarded-host", host.as_bytes()),
            ("x-forwarded-uri", req.raw_path()),
            ("x-forwarded-for", client.as_bytes()),
        ];
        for (name, value) in ours {
            let kept = req.headers.get(name).filter(|_| trusted).cloned();
            let value = match kept {
                Some(v) => v,
                None => match HeaderValue::from_bytes(value) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            head.insert_header(name, value).map_err(bad)?;
        }
        for name in &self.request_headers {
            for v in req.headers.get_all(name) {
                head.append_header(name.clone(), v.clone()).map_err(bad)?;
            }
        }
        Ok(head)
    }

    /// One exchange, on a pooled connection; a reused connection that fails before any answer
    /// (the service closed it while idle) is retried once on a new one.
    async fn exchange(
        &self,
        connector: &Connector,
        head: RequestHeader,
    ) -> Result<Verdict, ForwardError> {
        let mut peer = HttpPeer::new(self.addr, false, String::new());
        peer.options.connection_timeout = Some(self.timeout);
        peer.options.total_connection_timeout = Some(self.timeout);
        peer.options.read_timeout = Some(self.timeout);
        peer.options.write_timeout = Some(self.timeout);
        peer.options.idle_timeout = Some(IDLE_TIMEOUT);
        for attempt in 0..2 {
            let (mut session, reused) = connector
                .get_http_session(&peer)
                .await
                .map_err(|e| ForwardError::Io(e.to_string()))?;
            match self.send(&mut session, head.clone()).await {
                Ok((verdict, reusable)) => {
                    if reusable {
                        connector
                            .release_http_session(session, &peer, Some(IDLE_TIMEOUT))
                            .await;
                    }
                    return Ok(verdict);
                }
                Err(Sent::BeforeAnswer(_)) if reused && attempt == 0 => continue,
                Err(Sent::BeforeAnswer(e) | Sent::During(e)) => return Err(e),
            }
        }
        Err(ForwardError::Io("no connection".into()))
    }

    /// Writes the request and reads the verdict; `true` when the connection may be reused.
    async fn send(
        &self,
        session: &mut HttpSession,
        head: RequestHeader,
    ) -> Result<(Verdict, bool), Sent> {
        let io = |e: pingora::BError| ForwardError::Io(e.to_string());
        session
            .write_request_header(Box::new(head))
            .await
            .map_err(|e| Sent::BeforeAnswer(io(e)))?;
        session
            .finish_request_body()
            .await
            .map_err(|e| Sent::BeforeAnswer(io(e)))?;
        // informational answers come before the real one (at most a few)
        let mut status = 0;
        for _ in 0..4 {
            session
                .read_response_header()
                .await
                .map_err(|e| Sent::BeforeAnswer(io(e)))?;
            status = session.response_header().map_or(0, |h| h.status.as_u16());
            if status >= 200 {
                break;
            }
        }
        let Some(resp) = session.response_header() else {
            return Err(Sent::During(ForwardError::Protocol("no answer".into())));
        };
        if !(200..=599).contains(&status) {
            return Err(Sent::During(ForwardError::Protocol(format!(
                "status {status}"
            ))));
        }
        if (200..300).contains(&status) {
            let copied = self
                .response_headers
                .iter()
                .flat_map(|n| {
                    resp.headers
                        .get_all(n)
                        .iter()
                        .map(move |v| (n.clone(), v.clone()))
                })
                .collect();
            // the body of an allow is not used: drained (bounded) to keep the connection
            let (_, complete) = read_body(session).await.map_err(Sent::During)?;
            return Ok((Verdict::Allow(copied), complete));
        }
        let headers: Vec<(HeaderName, HeaderValue)> = DENIAL_HEADERS
            .iter()
            .flat_map(|n| {
                resp.headers
                    .get_all(n)
                    .iter()
                    .map(move |v| (n.clone(), v.clone()))
            })
            .collect();
        let (body, complete) = read_body(session).await.map_err(Sent::During)?;
        Ok((
            Verdict::Deny(Denial {
                status,
                headers,
                body,
            }),
            complete,
        ))
    }
}

/// A failed exchange: before any answer byte (a stale pooled connection may be retried) or
/// during the answer.
enum Sent {
    BeforeAnswer(ForwardError),
    During(ForwardError),
}

/// The answer body up to [`MAX_DENIAL_BODY`] bytes, and whether it was read whole.
async fn read_body(session: &mut HttpSession) -> Result<(Bytes, bool), ForwardError> {
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| ForwardError::Io(e.to_string()))?
    {
        let room = MAX_DENIAL_BODY.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Ok((body.into(), false));
        }
        body.extend_from_slice(&chunk);
    }
    let complete = session.response_done();
    Ok((body.into(), complete))
}
