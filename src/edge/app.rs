//! [`EdgeApp`]: the pingora `ServerApp` that every client connection enters first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::time::Instant;

use super::answer::{self, closing_response, h2_goaway, H2_NO_ERROR, H2_PROTOCOL_ERROR};
use super::chunked::Chunked;
use super::conn_limit::ConnLimits;
use super::deadline::{until, within};
use super::head::{self, Framing, Head};
use super::stream::{peer_ip, FrameWatch, GatedStream, Rest, H2_PREFACE};
use super::{EdgeSettings, Refusal};
use crate::metrics::Metrics;

/// The gate in front of a pingora HTTP application (the proxy or the admin API).
pub struct EdgeApp<A> {
    inner: Arc<A>,
    settings: EdgeSettings,
    limits: Option<Arc<ConnLimits>>,
    metrics: Option<Arc<Metrics>>,
}

impl<A> EdgeApp<A> {
    /// `inner` behind the gate, with optional connection limits and metrics.
    pub fn new(
        inner: A,
        settings: EdgeSettings,
        limits: Option<Arc<ConnLimits>>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            inner: Arc::new(inner),
            settings,
            limits,
            metrics,
        }
    }

    fn count(&self, what: &str) {
        if let Some(m) = &self.metrics {
            m.downstream_refused.with_label_values(&[what]).inc();
        }
    }
}

/// What the first bytes of a plain connection are.
enum Opening {
    Http1,
    H2,
    BadPreface,
    Closed,
}

/// The next request on an HTTP/1.x connection.
enum Next {
    Request(Head),
    Refuse(Refusal),
    /// Closed by the client, or idle too long between requests: close without an answer.
    Gone,
}

#[async_trait]
impl<A> ServerApp for EdgeApp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _permit = match &self.limits {
            Some(limits) => match limits.admit(peer_ip(&stream)) {
                Ok(p) => Some(p),
                Err(full) => {
                    self.count(full.as_str());
                    let mut gate = GatedStream::new(stream);
                    if gate.alpn() != Some(ALPN::H2) {
                        let _ = gate.write_own(&closing_response(503)).await;
                    }
                    return None;
                }
            },
            None => None,
        };
        let mut gate = GatedStream::new(stream);
        let deadline = Instant::now() + self.settings.header_timeout;
        if gate.alpn() == Some(ALPN::H2) {
            return self.serve_h2(gate, deadline, shutdown).await;
        }
        match until(deadline, opening(&mut gate, self.settings.h2c)).await {
            Ok(Opening::Http1) => self.serve_h1(gate, deadline, shutdown).await,
            Ok(Opening::H2) => self.serve_h2(gate, deadline, shutdown).await,
            Ok(Opening::BadPreface) => {
                self.count("bad_h2_preface");
                let _ = gate.write_own(&h2_goaway(H2_PROTOCOL_ERROR)).await;
                None
            }
            Ok(Opening::Closed) => None,
            Err(_) => {
                self.count("header_timeout");
                None
            }
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.inner.as_ref()).await;
    }
}

impl<A> EdgeApp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    /// HTTP/2: the client preface within the header timeout, then pingora. A connection that
    /// has opened no stream when the header timeout ends gets a graceful GOAWAY (pingora's own,
    /// through a per-connection shutdown signal) and is closed.
    async fn serve_h2(
        self: &Arc<Self>,
        mut gate: GatedStream,
        deadline: Instant,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        match until(deadline, h2_preface(&mut gate)).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                self.count(reason);
                let _ = gate.write_own(&h2_goaway(H2_PROTOCOL_ERROR)).await;
                return None;
            }
            Err(_) => {
                self.count("header_timeout");
                let _ = gate.write_own(&h2_goaway(H2_NO_ERROR)).await;
                return None;
            }
        }
        let seen = Arc::new(AtomicBool::new(false));
        gate.watch_frames(FrameWatch::new(seen.clone()));
        gate.arm_tunnel(true);
        let (stop, conn_shutdown) = tokio::sync::watch::channel(*shutdown.borrow());
        let mut global = shutdown.clone();
        let serve = ServerApp::process_new(&self.inner, Box::new(gate), &conn_shutdown);
        tokio::pin!(serve);
        let mut check = Some(deadline);
        let mut force_close: Option<Instant> = None;
        loop {
            tokio::select! {
                out = &mut serve => return out,
                _ = sleep_until_some(check) => {
                    check = None;
                    if !seen.load(Ordering::Acquire) {
                        self.count("h2_no_stream");
                        let _ = stop.send(true);
                        force_close = Some(Instant::now() + GOAWAY_GRACE);
                    }
                }
                changed = global.changed() => {
                    if changed.is_err() || *global.borrow() {
                        let _ = stop.send(true);
                    }
                }
                _ = sleep_until_some(force_close) => return None,
            }
        }
    }

    /// HTTP/1.x: one validated request at a time, handed to pingora, until the connection ends.
    async fn serve_h1(
        self: &Arc<Self>,
        mut gate: GatedStream,
        first_deadline: Instant,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut deadline = Some(first_deadline);
        let mut persistent: Option<HttpPersistentSettings> = None;
        loop {
            let head = match self.next_head(&mut gate, deadline).await {
                Next::Request(head) => head,
                Next::Gone => return None,
                Next::Refuse(refusal) => return self.refuse(gate, refusal).await,
            };
            if let Err(refusal) = self.take_body(&mut gate, &head).await {
                return self.refuse(gate, refusal).await;
            }
            let mut session = ServerSession::new_http1(Box::new(gate));
            if let Some(p) = persistent.take() {
                p.apply_to_session(&mut session);
            }
            let keepalive = self.settings.idle_timeout.as_secs().max(1);
            session.set_keepalive((!*shutdown.borrow()).then_some(keepalive));
            session.set_read_timeout(Some(self.settings.body_timeout));
            let reused = self.inner.process_new_http(session, shutdown).await?;
            let (stream, settings) = reused.consume();
            persistent = settings;
            if head.upgrade || *shutdown.borrow() {
                return None;
            }
            gate = *stream.into_any().downcast::<GatedStream>().ok()?;
            if !gate.message_taken() {
                return None;
            }
            deadline = None;
        }
    }

    /// Reads the next request head: the first byte within the idle timeout (keep-alive) or the
    /// first deadline, then the whole head within the header timeout.
    async fn next_head(&self, gate: &mut GatedStream, deadline: Option<Instant>) -> Next {
        let limits = &self.settings.head;
        let mut scanned = 0usize;
        let mut head_deadline = deadline;
        loop {
            skip_empty_lines(gate);
            if !gate.buf.is_empty() {
                let end = head_end(&gate.buf, scanned);
                if end.is_some() || gate.buf.len() > limits.max_head {
                    match head::parse(&gate.buf, limits) {
                        Ok(Some(h)) => return Next::Request(h),
                        Err(r) => return Next::Refuse(r),
                        Ok(None) if gate.buf.len() > limits.max_head => {
                            return Next::Refuse(Refusal::new(431, "request head too large"))
                        }
                        Ok(None) => {}
                    }
                }
                scanned = gate.buf.len();
                // the head's clock starts with its first bytes; a head that came whole in one
                // read (nearly all) never reads it
                let head_deadline = *head_deadline
                    .get_or_insert_with(|| Instant::now() + self.settings.header_timeout);
                match until(head_deadline, gate.fill()).await {
                    Ok(Ok(n)) if n > 0 => continue,
                    Ok(_) => return Next::Gone,
                    Err(_) => {
                        self.count("header_timeout");
                        return Next::Refuse(Refusal::new(408, "request head timed out"));
                    }
                }
            }
            let read = match deadline {
                Some(deadline) => until(deadline, gate.fill()).await,
                None => within(self.settings.idle_timeout, gate.fill()).await,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Next::Gone,
                Err(_) => {
                    if deadline.is_some() {
                        self.count("header_timeout");
                    }
                    return Next::Gone;
                }
            }
        }
    }

    /// Reads (request buffering) or arms (streaming) the body of `head`.
    async fn take_body(&self, gate: &mut GatedStream, head: &Head) -> Result<(), Refusal> {
        let s = &self.settings;
        if head.upgrade {
            gate.arm_tunnel(false);
            return Ok(());
        }
        let mut head_len = head.len;
        match head.framing {
            Framing::None => gate.arm(head_len, Rest::Done),
            Framing::Length(n) => {
                if s.max_body > 0 && n > s.max_body {
                    return Err(Refusal::new(413, "request body too large"));
                }
                let buffered = s.request_buffering && n <= s.body_buffer as u64;
                let total = head_len as u64 + n;
                if buffered && (gate.buf.len() as u64) < total {
                    head_len = self.continue_100(gate, head).await?;
                    let total = head_len as u64 + n;
                    while (gate.buf.len() as u64) < total {
                        self.fill_body(gate).await?;
                    }
                }
                let total = head_len as u64 + n;
                let have = (gate.buf.len() as u64).min(total);
                gate.arm(have as usize, Rest::Length(total - have));
            }
            Framing::Chunked => {
                let mut chunked = Chunked::new(s.max_body, s.head.max_head);
                let mut fed = head_len;
                if s.request_buffering && !body_complete(gate, &mut chunked, &mut fed)? {
                    head_len = self.continue_100(gate, head).await?;
                    fed = fed - head.len + head_len;
                    while !body_complete(gate, &mut chunked, &mut fed)?
                        && fed - head_len < s.body_buffer
                    {
                        self.fill_body(gate).await?;
                    }
                }
                if chunked.is_done() {
                    gate.arm(fed, Rest::Done);
                } else {
                    // streamed from here: the bytes not fed yet are validated as they pass
                    let unfed = gate.buf.split_off(fed);
                    if let Some(end) = chunked.feed(&unfed)? {
                        gate.buf
                            .extend_from_slice(unfed.get(..end).unwrap_or_default());
                        let len = gate.buf.len();
                        gate.buf
                            .extend_from_slice(unfed.get(end..).unwrap_or_default());
                        gate.arm(len, Rest::Done);
                    } else {
                        gate.buf.extend_from_slice(&unfed);
                        let len = gate.buf.len();
                        gate.arm(len, Rest::Chunked(chunked));
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends `100 Continue` for a client that waits for it (and drops its `Expect` line, which
    /// is answered); returns the new head length.
    async fn continue_100(&self, gate: &mut GatedStream, head: &Head) -> Result<usize, Refusal> {
        let Some(line) = head.expect_continue.clone() else {
            return Ok(head.len);
        };
        let after = gate.buf.split_off(line.end);
        gate.buf.truncate(line.start);
        gate.buf.extend_from_slice(&after);
        gate.write_own(answer::CONTINUE)
            .await
            .map_err(|_| Refusal::new(400, "client gone"))?;
        Ok(head.len - (line.end - line.start))
    }

    /// One read of a request body within the body timeout.
    async fn fill_body(&self, gate: &mut GatedStream) -> Result<(), Refusal> {
        match within(self.settings.body_timeout, gate.fill()).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(_) => Err(Refusal::new(400, "request body incomplete")),
            Err(_) => {
                self.count("body_timeout");
                Err(Refusal::new(408, "request body timed out"))
            }
        }
    }

    /// Answers a refused request with our own response and closes the connection.
    async fn refuse(&self, mut gate: GatedStream, refusal: Refusal) -> Option<Stream> {
        log::debug!("request refused ({}): {}", refusal.status, refusal.reason);
        if refusal.status != 408 {
            self.count(status_label(refusal.status));
        }
        if gate
            .write_own(&closing_response(refusal.status))
            .await
            .is_ok()
        {
            gate.linger_close().await;
        }
        None
    }
}

/// Feeds the unfed bytes of `buf` to the chunked validator; true once the body is complete.
fn body_complete(
    gate: &GatedStream,
    chunked: &mut Chunked,
    fed: &mut usize,
) -> Result<bool, Refusal> {
    let fresh = gate.buf.get(*fed..).unwrap_or_default();
    match chunked.feed(fresh)? {
        Some(end) => {
            *fed += end;
            Ok(true)
        }
        None => {
            *fed += fresh.len();
            Ok(false)
        }
    }
}

/// Decides HTTP/2 prior knowledge on the first bytes that differ from (or complete) its preface.
async fn opening(gate: &mut GatedStream, h2c: bool) -> Opening {
    loop {
        let n = gate.buf.len().min(H2_PREFACE.len());
        let seen = gate.buf.get(..n).unwrap_or_default();
        if seen != H2_PREFACE.get(..n).unwrap_or_default() {
            // `PRI ` is reserved for the HTTP/2 preface: a broken preface is not HTTP/1.x
            return if n >= 4 && seen.starts_with(b"PRI ") {
                Opening::BadPreface
            } else {
                Opening::Http1
            };
        }
        if n == H2_PREFACE.len() {
            return if h2c {
                Opening::H2
            } else {
                Opening::BadPreface
            };
        }
        match gate.fill().await {
            Ok(0) | Err(_) => return Opening::Closed,
            Ok(_) => {}
        }
    }
}

/// Waits for the client connection preface.
async fn h2_preface(gate: &mut GatedStream) -> Result<(), &'static str> {
    while gate.buf.len() < H2_PREFACE.len() {
        let n = gate.buf.len();
        if gate.buf.get(..n) != H2_PREFACE.get(..n) {
            return Err("bad_h2_preface");
        }
        match gate.fill().await {
            Ok(0) | Err(_) => return Err("h2_closed"),
            Ok(_) => {}
        }
    }
    match gate.buf.get(..H2_PREFACE.len()) == Some(&H2_PREFACE[..]) {
        true => Ok(()),
        false => Err("bad_h2_preface"),
    }
}

/// Sleeps until `at`, or forever when it is `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long a client that opened no stream has to take its GOAWAY before the close.
const GOAWAY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Drops the empty lines a client may send before a request line (RFC 9112 section 2.2).
fn skip_empty_lines(gate: &mut GatedStream) {
    let mut n = 0;
    while gate.buf.get(n..n + 2) == Some(b"\r\n") {
        n += 2;
    }
    if n > 0 {
        let _ = gate.buf.split_to(n);
    }
}

/// Where an empty line (CRLF CRLF, or a bare-LF variant the parser then refuses) ends the head,
/// searching from just before `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let tail = buf.get(start..)?;
    tail.windows(2)
        .position(|w| w == b"\n\n" || w == b"\n\r")
        .map(|p| start + p)
}

fn status_label(status: u16) -> &'static str {
    match status {
        400 => "400",
        405 => "405",
        408 => "408",
        413 => "413",
        414 => "414",
        417 => "417",
        431 => "431",
        501 => "501",
        505 => "505",
        _ => "other",
    }
}
