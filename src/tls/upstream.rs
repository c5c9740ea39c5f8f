//! Upstream protocol detection and upstream TLS settings.
//!
//! Each backend's protocol (plain HTTP/1.1, h2c, TLS with HTTP/1.1, TLS with h2) is detected off
//! the request path: when a generation is built (its new backends, before it serves) and in every
//! health round (backends never detected or marked stale, and every health-checked backend). The
//! result lives on the peer in a [`ProtocolCell`] shared across generations while the backend and
//! its address are unchanged. A request never waits on a probe: it uses the last detected
//! protocol, or plain HTTP/1.1 before any detection; a connection failure marks the cell stale,
//! and the next health round (run at once after a swap, else every `hc_interval`) detects again.
//!
//! Detection runs two probes at once: a TLS handshake offering ALPN h2 + http/1.1 (certificate not
//! verified), and a plain `HEAD / HTTP/1.1`. A completed handshake means TLS (h2 when the server
//! picked it). Otherwise a plain answer that starts with `HTTP/1.` means HTTP/1.1; a plain answer
//! with any status but 400 decides at once (a TLS port answers plain requests with an alert or a
//! 400). With neither, an HTTP/2 connection preface is sent: a SETTINGS frame back means h2c, and
//! a backend that accepts connections but answers none of the probes in time is taken as HTTP/1.1.
//! Only a backend that refuses connections stays undetected (and is probed again on next use).
//!
//! Upstream certificates are not verified (Aralez behaviour: self-signed backends just work)
//! unless the route sets `verify_upstream_tls: true`, which requires a valid chain and name (for an
//! IP-literal backend, an IP SAN). Verification uses the system CA store, or Mozilla's roots when
//! the system store is empty (distroless), and the unverified mode never depends on a CA file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::TransportConnector;
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Plain HTTP/1.1.
    Http1,
    /// Plain HTTP/2 with prior knowledge.
    H2c,
    /// TLS, HTTP/1.1 (no h2 by ALPN).
    TlsHttp1,
    /// TLS, h2 selected by ALPN.
    TlsH2,
}

impl Protocol {
    /// Over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::TlsHttp1 | Protocol::TlsH2)
    }

    /// Short name for logs and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::H2c => "h2c",
            Protocol::TlsHttp1 => "tls_http1",
            Protocol::TlsH2 => "tls_h2",
        }
    }
}

/// A backend's protocol as last detected, shared by every route and generation that uses the
/// backend at the same address (see [`crate::balance::Registry::protocol`]). Read on every
/// request without a lock; written by detection (generation build, health rounds).
#[derive(Debug, Default)]
pub struct ProtocolCell {
    /// Low three bits: 0 unknown, else `Protocol as u8 + 1`; [`STALE`]: detect again.
    state: std::sync::atomic::AtomicU8,
}

/// Set after a connection failure: the protocol is still used, and detected again.
const STALE: u8 = 0b1000;

impl ProtocolCell {
    /// The protocol as last detected (`None`: never detected).
    pub fn get(&self) -> Option<Protocol> {
        match self.state.load(std::sync::atomic::Ordering::Relaxed) & !STALE {
            1 => Some(Protocol::Http1),
            2 => Some(Protocol::H2c),
            3 => Some(Protocol::TlsHttp1),
            4 => Some(Protocol::TlsH2),
            _ => None,
        }
    }

    /// Records a detection; true when it differs from what was known.
    pub fn set(&self, protocol: Protocol) -> bool {
        let code = match protocol {
            Protocol::Http1 => 1,
            Protocol::H2c => 2,
            Protocol::TlsHttp1 => 3,
            Protocol::TlsH2 => 4,
        };
        let before = self.state.swap(code, std::sync::atomic::Ordering::Relaxed);
        before & !STALE != code
    }

    /// After a connection failure: keep using the protocol, but detect it again.
    pub fn mark_stale(&self) {
        self.state
            .fetch_or(STALE, std::sync::atomic::Ordering::Relaxed);
    }

    /// Never detected, or marked stale.
    pub fn needs_detection(&self) -> bool {
        let s = self.state.load(std::sync::atomic::Ordering::Relaxed);
        s == 0 || s & STALE != 0
    }
}

/// Protocol detection (the probes) and what upstream connections need to use a protocol.
pub struct Detector {
    connector: TransportConnector,
    ca: UpstreamCa,
    timeout: Duration,
}

/// One backend to detect: its address, SNI, and the cell that receives the result.
#[derive(Debug, Clone)]
pub struct Target {
    /// The backend id (for logs).
    pub id: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// SNI for the TLS probe (empty: none).
    pub sni: String,
    /// Where the result goes.
    pub cell: Arc<ProtocolCell>,
}

/// Most detections in flight at once.
const MAX_CONCURRENT_DETECTIONS: usize = 64;

/// Per-peer CA lists handed to pingora.
#[derive(Default)]
struct UpstreamCa {
    /// For unverified TLS: never empty, so pingora can build its (skipping) verifier.
    unverified: Option<Arc<CaType>>,
    /// For verified TLS: Mozilla's roots when the system store is empty; `None` = system store.
    verified: Option<Arc<CaType>>,
}

impl Detector {
    /// A detector whose probes time out after `timeout` each. Call after the process TLS provider
    /// is installed (it builds a TLS connector).
    pub fn new(timeout: Duration) -> Self {
        Self {
            connector: TransportConnector::new(None),
            ca: UpstreamCa::new(),
            timeout,
        }
    }

    /// Detects every target (at most [`MAX_CONCURRENT_DETECTIONS`] at once) and records the
    /// results in their cells; a target that answers nothing keeps its cell as it was.
    pub async fn detect_all(self: &Arc<Self>, targets: Vec<Target>) {
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DETECTIONS));
        let mut running = tokio::task::JoinSet::new();
        for t in targets {
            let (this, limit) = (self.clone(), limit.clone());
            running.spawn(async move {
                let _permit = limit.acquire_owned().await;
                if let Some(p) = this.detect(t.addr, &t.sni).await {
                    record(&t.id, &t.cell, p);
                }
            });
        }
        while running.join_next().await.is_some() {}
    }

    /// [`Self::detect_all`] from blocking code (a generation build): runs on a thread of its own
    /// with its own small runtime, so it works from any thread, a reactor's included. Returns
    /// when every target is detected or has failed (each probe is bounded by the timeout).
    pub fn detect_all_blocking(self: &Arc<Self>, targets: Vec<Target>) {
        if targets.is_empty() {
            return;
        }
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("aralez-detect".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(this.detect_all(targets)),
                    Err(e) => log::error!("upstream protocol detection: no runtime: {e}"),
                }
            });
        match spawned {
            Ok(handle) => {
                if handle.join().is_err() {
                    log::error!("upstream protocol detection stopped unexpectedly");
                }
            }
            Err(e) => log::error!("upstream protocol detection: no thread: {e}"),
        }
    }

    /// Probes `addr` (SNI `sni` when not empty); `None` when nothing answered.
    pub async fn detect(&self, addr: SocketAddr, sni: &str) -> Option<Protocol> {
        let tls = self.tls_probe(addr, sni);
        let plain = plain_probe(addr, sni, self.timeout);
        tokio::pin!(tls, plain);
        let mut plain_done: Option<Plain> = None;
        let tls_result = tokio::select! {
            t = &mut tls => t,
            p = &mut plain => {
                if let Plain::Http1(status) = p {
                    if status != 400 {
                        return Some(Protocol::Http1);
                    }
                }
                plain_done = Some(p);
                tls.await
            }
        };
        if tls_result.is_some() {
            return tls_result;
        }
        let plain = match plain_done {
            Some(p) => p,
            None => plain.await,
        };
        match plain {
            Plain::Http1(_) => Some(Protocol::Http1),
            // it accepted a connection but did not answer like HTTP/1.x in time: h2c if it
            // answers a preface, else assume a slow HTTP/1.1 server
            Plain::Other => Some(if h2c_probe(addr, self.timeout).await {
                Protocol::H2c
            } else {
                Protocol::Http1
            }),
            Plain::Nothing => None,
        }
    }

    /// A TLS connection offering only HTTP/1.1 by ALPN, unverified (health probes of TLS backends).
    pub async fn connect_tls_http1(
        &self,
        addr: SocketAddr,
        sni: &str,
    ) -> pingora::Result<pingora::protocols::Stream> {
        let mut peer = HttpPeer::new(addr, true, sni.to_string());
        fill_ip_server_name(&mut peer, false);
        peer.options.alpn = ALPN::H1;
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
        peer.options.ca = self.ca.unverified.clone();
        peer.options.connection_timeout = Some(self.timeout);
        peer.options.total_connection_timeout = Some(self.timeout);
        self.connector.new_stream(&peer).await
    }

    async fn tls_probe(&self, addr: SocketAddr, sni: &str) -> Option<Protocol> {
        let mut peer = HttpPeer::new(addr, true, sni.to_string());
        fill_ip_server_name(&mut peer, false);
        peer.options.alpn = ALPN::H2H1;
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
        peer.options.ca = self.ca.unverified.clone();
        peer.options.connection_timeout = Some(self.timeout);
        peer.options.total_connection_timeout = Some(self.timeout);
        let stream = self.connector.new_stream(&peer).await.ok()?;
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        Some(if h2 {
            Protocol::TlsH2
        } else {
            Protocol::TlsHttp1
        })
    }

    /// Sets up `peer` for `protocol`: TLS or not, ALPN (HTTP/1.1 only for WebSocket upgrades),
    /// verification, and the CA list that keeps TLS working on an empty system store.
    pub fn configure_peer(
        &self,
        peer: &mut HttpPeer,
        protocol: Protocol,
        verify: bool,
        websocket: bool,
    ) {
        let h2 = matches!(protocol, Protocol::TlsH2 | Protocol::H2c) && !websocket;
        peer.scheme = if protocol.is_tls() {
            pingora::upstreams::peer::Scheme::HTTPS
        } else {
            pingora::upstreams::peer::Scheme::HTTP
        };
        peer.options.alpn = match (protocol, h2) {
            (Protocol::TlsH2, true) => ALPN::H2H1,
            (Protocol::H2c, true) => ALPN::H2,
            _ => ALPN::H1,
        };
        if protocol.is_tls() {
            peer.options.verify_cert = verify;
            peer.options.verify_hostname = verify;
            fill_ip_server_name(peer, verify);
            if verify {
                peer.options.ca = self.ca.verified.clone();
            } else {
                peer.options.ca = self.ca.unverified.clone();
            }
        }
    }
}

/// Records a detection in `cell`, logging a change.
pub fn record(id: &str, cell: &ProtocolCell, protocol: Protocol) {
    if cell.set(protocol) {
        log::info!("upstream {id}: detected {}", protocol.as_str());
    }
}

/// An IP-literal backend has no SNI. pingora's rustls client cannot connect with an empty name
/// (and would skip verification without one), so the IP itself is the server name there: rustls
/// sends no SNI for it and verifies against the certificate's IP SANs. OpenSSL connects without a
/// name; it gets the IP only when verification asks for it.
fn fill_ip_server_name(peer: &mut HttpPeer, verify: bool) {
    if !peer.sni.is_empty() || !(cfg!(feature = "rustls") || verify) {
        return;
    }
    if let Some(inet) = peer._address.as_inet() {
        peer.sni = inet.ip().to_string();
    }
}

enum Plain {
    /// Answered `HTTP/1.x <status>`.
    Http1(u16),
    /// Answered something else (or closed after reading).
    Other,
    /// No connection.
    Nothing,
}

async fn plain_probe(addr: SocketAddr, sni: &str, timeout: Duration) -> Plain {
    let run = async {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            return Plain::Nothing;
        };
        let _ = s.set_nodelay(true);
        let host = if sni.is_empty() {
            addr.to_string()
        } else {
            format!("{sni}:{}", addr.port())
        };
        let req = format!(
            "HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: aralez-detect\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).await.is_err() {
            return Plain::Other;
        }
        let mut buf = [0u8; 16];
        let mut n = 0;
        while n < 12 {
            match s.read(buf.get_mut(n..).unwrap_or_default()).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        let head = buf.get(..n).unwrap_or_default();
        if head.starts_with(b"HTTP/1.") && n >= 12 {
            let status = std::str::from_utf8(head.get(9..12).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Plain::Http1(status)
        } else {
            Plain::Other
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Plain::Other)
}

/// HTTP/2 connection preface + an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

async fn h2c_probe(addr: SocketAddr, timeout: Duration) -> bool {
    let run = async {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            return false;
        };
        if s.write_all(H2_PREFACE).await.is_err() {
            return false;
        }
        let mut frame = [0u8; 9];
        if s.read_exact(&mut frame).await.is_err() {
            return false;
        }
        // type 0x4 = SETTINGS, not an ACK (flags 0), stream 0
        frame[3] == 0x4 && frame[4] & 0x1 == 0
    };
    tokio::time::timeout(timeout, run).await.unwrap_or(false)
}

/// Checks what pingora's upstream TLS connector will load at startup (it panics on a system CA
/// store that cannot be read, e.g. `SSL_CERT_FILE` naming a missing file). Call before building
/// any proxy service.
pub fn preflight() -> Result<(), String> {
    #[cfg(feature = "rustls")]
    if let Err(e) = pingora::tls::load_native_certs() {
        return Err(format!(
            "the system CA store cannot be read ({e}); check SSL_CERT_FILE / SSL_CERT_DIR"
        ));
    }
    Ok(())
}

impl UpstreamCa {
    fn new() -> Self {
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        Self {
            unverified: ca_list(roots.iter().take(1)),
            verified: if system_store_empty() {
                log::info!("system CA store is empty: verifying upstream TLS with Mozilla's roots");
                ca_list(roots.iter())
            } else {
                None
            },
        }
    }
}

#[cfg(feature = "rustls")]
fn ca_list<'a>(
    certs: impl Iterator<Item = &'a rustls_pki_types::CertificateDer<'static>>,
) -> Option<Arc<CaType>> {
    use pingora::utils::tls::WrappedX509;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let list: Vec<WrappedX509> = certs
        .filter_map(|c| {
            WrappedX509::try_new(c.as_ref().to_vec(), |raw| {
                X509Certificate::from_der(raw).map(|(_, cert)| cert)
            })
            .ok()
        })
        .collect();
    (!list.is_empty()).then(|| Arc::from(list))
}

#[cfg(feature = "rustls")]
fn system_store_empty() -> bool {
    pingora::tls::load_native_certs().map_or(true, |c| c.is_empty())
}

#[cfg(feature = "openssl")]
fn ca_list<'a>(
    certs: impl Iterator<Item = &'a rustls_pki_types::CertificateDer<'static>>,
) -> Option<Arc<CaType>> {
    use pingora::tls::x509::X509;
    let list: Vec<X509> = certs
        .filter_map(|c| X509::from_der(c.as_ref()).ok())
        .collect();
    (!list.is_empty()).then(|| Arc::new(list.into_boxed_slice()))
}

#[cfg(feature = "openssl")]
fn system_store_empty() -> bool {
    // OpenSSL verifies with its own default paths; an unverified peer needs no CA at all there.
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> HttpPeer {
        HttpPeer::new(
            "127.0.0.1:8443"
                .parse::<SocketAddr>()
                .unwrap_or_else(|_| unreachable!()),
            false,
            String::new(),
        )
    }

    #[test]
    fn peers_follow_the_detected_protocol() {
        let d = Detector::new(Duration::from_secs(1));
        let mut p = peer();
        d.configure_peer(&mut p, Protocol::TlsH2, false, false);
        assert!(p.is_tls());
        assert_eq!(p.options.alpn, ALPN::H2H1);
        assert!(!p.options.verify_cert);
        assert!(p.options.ca.is_some(), "never an empty CA store");
        assert_eq!(p.sni, "127.0.0.1", "IP backends get the IP as server name");

        // WebSocket upgrades go over HTTP/1.1 even to an h2-capable backend
        let mut p = peer();
        d.configure_peer(&mut p, Protocol::TlsH2, false, true);
        assert_eq!(p.options.alpn, ALPN::H1);
        let mut p = peer();
        d.configure_peer(&mut p, Protocol::H2c, false, true);
        assert_eq!(p.options.alpn, ALPN::H1);
        assert!(!p.is_tls());

        let mut p = peer();
        d.configure_peer(&mut p, Protocol::H2c, false, false);
        assert_eq!(p.options.alpn, ALPN::H2);
        let mut p = peer();
        d.configure_peer(&mut p, Protocol::TlsHttp1, true, false);
        assert!(p.options.verify_cert && p.options.verify_hostname);
        assert_eq!(p.options.alpn, ALPN::H1);
    }

    #[test]
    fn a_cell_keeps_its_protocol_when_stale() {
        let cell = ProtocolCell::default();
        assert_eq!(cell.get(), None);
        assert!(cell.needs_detection());
        assert!(cell.set(Protocol::TlsH2));
        assert!(
            !cell.set(Protocol::TlsH2),
            "the same detection is no change"
        );
        assert!(!cell.needs_detection());
        cell.mark_stale();
        assert_eq!(cell.get(), Some(Protocol::TlsH2), "still used while stale");
        assert!(cell.needs_detection());
        assert!(
            !cell.set(Protocol::TlsH2),
            "detected again: the same, not stale"
        );
        assert!(!cell.needs_detection());
        assert!(cell.set(Protocol::Http1));
        assert_eq!(cell.get(), Some(Protocol::Http1));
    }
}
