//! Active health checks: every `hc_interval` seconds, each backend of each checked route is probed
//! concurrently with `hc_method` on the route's path; a status below 500 passes. A backend leaves
//! the rotation after `hc_fall` failed probes in a row and comes back after `hc_rise` passed ones.
//!
//! Health is runtime state ([`Health`], one per route and backend, held by the
//! [`crate::balance::Registry`]) that survives plan swaps for backends that did not change. New
//! backends start healthy; a plan swap triggers a probe round at once, so a dead backend that is
//! added by a reload leaves the rotation within one probe timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::IntGauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::generation::GenerationStore;
use crate::tls::upstream::{record, Detector, Protocol, ProtocolCell, Target};

/// The health of one backend of one route.
#[derive(Debug)]
pub struct Health {
    healthy: AtomicBool,
    passed: AtomicU32,
    failed: AtomicU32,
    /// The resolved address this state belongs to (a changed address starts afresh).
    pub addr: SocketAddr,
    gauge: Option<IntGauge>,
}

impl Health {
    /// A healthy backend at `addr`, exported through `gauge` (`aralez_upstream_healthy`).
    pub fn new(addr: SocketAddr, gauge: Option<IntGauge>) -> Self {
        if let Some(g) = &gauge {
            g.set(1);
        }
        Self {
            healthy: AtomicBool::new(true),
            passed: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            addr,
            gauge,
        }
    }

    /// Whether the backend is in rotation.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records one probe result; returns the new state when it changed. One writer (the checker).
    pub fn record(&self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        let (streak, other) = if ok {
            (&self.passed, &self.failed)
        } else {
            (&self.failed, &self.passed)
        };
        other.store(0, Ordering::Relaxed);
        let n = streak.load(Ordering::Relaxed).saturating_add(1);
        streak.store(n, Ordering::Relaxed);
        let was = self.is_healthy();
        let now = if ok {
            was || n >= rise
        } else {
            was && n < fall
        };
        if now == was {
            return None;
        }
        self.healthy.store(now, Ordering::Relaxed);
        if let Some(g) = &self.gauge {
            g.set(i64::from(now));
        }
        Some(now)
    }
}

/// Health-check settings (main.yaml).
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// `hc_method`.
    pub method: &'static str,
    /// `hc_interval`.
    pub interval: Duration,
    /// `hc_rise`.
    pub rise: u32,
    /// `hc_fall`.
    pub fall: u32,
}

impl HealthSettings {
    /// The per-probe timeout: three quarters of the interval, at most 5 s.
    pub fn timeout(&self) -> Duration {
        (self.interval * 3 / 4).min(Duration::from_secs(5))
    }
}

/// The background service that probes the backends of the serving plan.
pub struct HealthChecker {
    store: Arc<GenerationStore>,
    settings: HealthSettings,
    detector: Option<Arc<Detector>>,
}

impl HealthChecker {
    /// A checker of whatever `store` serves.
    pub fn new(store: Arc<GenerationStore>, settings: HealthSettings) -> Self {
        Self {
            store,
            settings,
            detector: None,
        }
    }

    /// Detect each backend's protocol again on every round and probe it in that protocol
    /// (see [`probe_detected`]); without a detector every backend is probed as plain HTTP/1.1.
    pub fn with_detector(mut self, detector: Arc<Detector>) -> Self {
        self.detector = Some(detector);
        self
    }

    /// Probes every checked backend of the current plan once, concurrently (at most
    /// [`MAX_CONCURRENT_PROBES`] sockets at a time). Identical probes (same address, path and
    /// `Host`, e.g. one backend shared by several routes of a wildcard or `DEFAULT` host) are sent
    /// once and their result applies to every route.
    pub async fn round(&self) {
        let generation = self.store.load();
        type ProbeKey = (SocketAddr, String, String, String);
        let mut wanted: std::collections::HashMap<ProbeKey, Vec<Subscriber>> =
            std::collections::HashMap::new();
        // backends of routes without health checks: detected when never detected or stale
        let mut undetected: std::collections::HashMap<&str, Target> =
            std::collections::HashMap::new();
        for runtime in generation.routes() {
            let route = &runtime.policy;
            for peer in &runtime.peers.peers {
                if !route.healthcheck {
                    if peer.protocol.needs_detection() {
                        undetected
                            .entry(peer.id.as_str())
                            .or_insert_with(|| peer.detection_target());
                    }
                    continue;
                }
                let host = probe_host(&route.host, &peer.id);
                wanted
                    .entry((peer.addr, route.path.clone(), host, peer.sni.clone()))
                    .or_default()
                    .push(Subscriber {
                        route: route.id.clone(),
                        backend: peer.id.clone(),
                        health: peer.health.clone(),
                        protocol: peer.protocol.clone(),
                    });
            }
        }
        let undetected: Vec<Target> = undetected.into_values().collect();
        drop(generation);
        if let Some(d) = &self.detector {
            d.detect_all(undetected).await;
        }
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PROBES));
        let mut probes = tokio::task::JoinSet::new();
        for ((addr, path, host, sni), subscribers) in wanted {
            let request = probe_request(self.settings.method, &path, &host);
            let timeout = self.settings.timeout();
            let limit = limit.clone();
            let detector = self.detector.clone();
            probes.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let outcome = match detector {
                    None => probe(addr, request, timeout).await,
                    Some(d) => probe_detected(&d, &subscribers, addr, &sni, request, timeout).await,
                };
                (subscribers, outcome)
            });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((subscribers, outcome)) = done else {
                continue;
            };
            let ok = matches!(outcome, Ok(status) if status < 500);
            for Subscriber {
                route,
                backend,
                health,
                ..
            } in subscribers
            {
                match health.record(ok, self.settings.rise, self.settings.fall) {
                    Some(false) => log::warn!(
                        "health: backend {backend} of route {route} is down ({}); out of rotation",
                        describe(&outcome)
                    ),
                    Some(true) => log::info!(
                        "health: backend {backend} of route {route} is up ({}); back in rotation",
                        describe(&outcome)
                    ),
                    None => {}
                }
            }
        }
    }
}

/// One route's interest in a probe: where its result goes.
pub struct Subscriber {
    /// The route id.
    pub route: String,
    /// The backend id.
    pub backend: String,
    /// The backend's health on this route.
    pub health: Arc<Health>,
    /// The backend's protocol cell.
    pub protocol: Arc<ProtocolCell>,
}

/// Detects the backend's protocol again (a TLS handshake first), records it for every
/// subscriber, then probes in that protocol: plain or TLS HTTP/1.1 requests get their status
/// checked; h2-only backends (TLS with h2 by ALPN, h2c) pass when their handshake succeeds, since
/// an HTTP/1.1 probe request cannot be sent to them.
pub async fn probe_detected(
    detector: &Detector,
    subscribers: &[Subscriber],
    addr: SocketAddr,
    sni: &str,
    request: Vec<u8>,
    timeout: Duration,
) -> Result<u16, String> {
    let Some(protocol) = detector.detect(addr, sni).await else {
        return Err("no answer to TLS, HTTP/1.1 or h2c".to_string());
    };
    for s in subscribers {
        record(&s.backend, &s.protocol, protocol);
    }
    match protocol {
        Protocol::Http1 => probe(addr, request, timeout).await,
        Protocol::TlsHttp1 => {
            let attempt = async {
                let stream = detector
                    .connect_tls_http1(addr, sni)
                    .await
                    .map_err(|e| format!("TLS connect: {e}"))?;
                exchange(stream, &request).await
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            }
        }
        Protocol::TlsH2 | Protocol::H2c => Ok(H2_HANDSHAKE_OK),
    }
}

/// The "status" of an h2-only backend whose handshake succeeded (below 500: healthy).
pub const H2_HANDSHAKE_OK: u16 = 0;

/// Most probes in flight at once.
pub const MAX_CONCURRENT_PROBES: usize = 256;

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let changed = self.store.changed();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.round() => {}
            }
            let wait = tokio::time::sleep(self.settings.interval);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = wait => {}
                _ = changed.notified() => {}
            }
        }
    }
}

fn describe(outcome: &Result<u16, String>) -> String {
    match outcome {
        Ok(H2_HANDSHAKE_OK) => "h2 handshake".to_string(),
        Ok(status) => format!("status {status}"),
        Err(e) => e.clone(),
    }
}

/// The `Host` of a probe: the route's host when it is a plain name, else the backend itself.
fn probe_host(route_host: &str, backend: &str) -> String {
    if route_host == "DEFAULT" || route_host.starts_with("*.") {
        backend.to_string()
    } else {
        route_host.to_string()
    }
}

/// The probe request: `METHOD path HTTP/1.1`, closed after the answer.
pub fn probe_request(method: &str, path: &str, host: &str) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: aralez-health/1\r\nAccept: */*\r\nConnection: close\r\n"
    );
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Sends one probe and returns the status code of the answer.
pub async fn probe(addr: SocketAddr, request: Vec<u8>, timeout: Duration) -> Result<u16, String> {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        exchange(stream, &request).await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Sends a probe request on an open stream and reads the status code of the answer.
async fn exchange<S>(mut stream: S, request: &[u8]) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    {
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 64];
        let mut len = 0;
        // "HTTP/1.1 200" is 12 bytes; read until the status code is there or the peer closes
        while len < 12 {
            let Some(rest) = buf.get_mut(len..) else {
                break;
            };
            let n = stream.read(rest).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            len += n;
        }
        parse_status(buf.get(..len).unwrap_or_default())
            .ok_or_else(|| "no HTTP status line".to_string())
    }
}

/// The status code of an HTTP/1.x status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn health() -> Health {
        let g = IntGauge::new("t", "t").unwrap();
        Health::new("127.0.0.1:1".parse().unwrap(), Some(g))
    }

    #[test]
    fn rise_and_fall_counts() {
        let h = health();
        assert!(h.is_healthy());
        // fall 2: one failure is not enough, a pass resets the streak
        assert_eq!(h.record(false, 3, 2), None);
        assert_eq!(h.record(true, 3, 2), None);
        assert_eq!(h.record(false, 3, 2), None);
        assert_eq!(h.record(false, 3, 2), Some(false));
        assert!(!h.is_healthy());
        assert_eq!(h.gauge.as_ref().unwrap().get(), 0);
        // rise 3
        assert_eq!(h.record(true, 3, 2), None);
        assert_eq!(h.record(true, 3, 2), None);
        assert_eq!(h.record(true, 3, 2), Some(true));
        assert_eq!(h.gauge.as_ref().unwrap().get(), 1);
        // defaults 1/1 flip at once
        assert_eq!(h.record(false, 1, 1), Some(false));
        assert_eq!(h.record(true, 1, 1), Some(true));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 X"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn probe_requests() {
        let r = String::from_utf8(probe_request("HEAD", "/api", "api.example.com")).unwrap();
        assert!(
            r.starts_with("HEAD /api HTTP/1.1\r\nHost: api.example.com\r\n"),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\n") && !r.contains("Content-Length"));
        let r = String::from_utf8(probe_request("POST", "/", "x")).unwrap();
        assert!(r.contains("Content-Length: 0\r\n"));
        assert_eq!(probe_host("DEFAULT", "10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(probe_host("*.example.com", "b:80"), "b:80");
        assert_eq!(probe_host("a.example.com", "b:80"), "a.example.com");
    }

    #[test]
    fn timeout_is_below_the_interval() {
        for secs in [1, 2, 5, 60] {
            let s = HealthSettings {
                method: "HEAD",
                interval: Duration::from_secs(secs),
                rise: 1,
                fall: 1,
            };
            assert!(s.timeout() < s.interval);
        }
    }

    #[tokio::test]
    async fn probes_real_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let t = Duration::from_millis(500);
        let req = probe_request("HEAD", "/", "x");
        assert_eq!(probe(addr, req.clone(), t).await, Ok(500));
        // nothing listens there any more
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        assert!(probe(dead, req.clone(), t).await.is_err());
        // a peer that accepts but never answers times out
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let started = std::time::Instant::now();
        let r = probe(silent_addr, req, Duration::from_millis(200)).await;
        assert!(
            r.is_err() && started.elapsed() < Duration::from_secs(2),
            "{r:?}"
        );
        drop(silent);
    }
}
