//! The client connection as pingora sees it: the bytes of one validated request, then nothing
//! until the gate has validated the next one.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::chunked::Chunked;
use super::deadline::within;

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
pub(super) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Longest wait for a client to take an answer the gate writes itself.
const OWN_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes read ahead past the current request (a pipelined next request) before the gate
/// stops reading until pingora has finished the current one.
const READ_AHEAD: usize = 64 * 1024;

/// What of the current message is still to come from the socket.
#[derive(Debug)]
pub(super) enum Rest {
    /// Nothing: the message is complete.
    Done,
    /// This many more body bytes.
    Length(u64),
    /// The rest of a chunked body, validated as it passes.
    Chunked(Chunked),
    /// Everything, unchanged: HTTP/2, or a connection that may become a tunnel.
    Tunnel,
}

/// A client connection behind the gate.
#[derive(Debug)]
pub(super) struct GatedStream {
    inner: Stream,
    /// Bytes read from the socket that pingora has not taken yet.
    pub(super) buf: BytesMut,
    /// How many of `buf`'s first bytes pingora may take now (the current message).
    deliverable: usize,
    /// What of the current message is still on the socket.
    rest: Rest,
    /// `try_peek` shows pingora the HTTP/2 preface (h2c prior knowledge was detected).
    h2_preface: bool,
    /// Watches the HTTP/2 frames going to pingora for the first stream.
    frames: Option<FrameWatch>,
}

/// Follows HTTP/2 frame boundaries in the bytes handed to pingora until a HEADERS frame (a new
/// stream) passes, then sets its flag and stops looking.
#[derive(Debug)]
pub(super) struct FrameWatch {
    preface_left: usize,
    header: [u8; 9],
    have: usize,
    skip: usize,
    seen: Arc<std::sync::atomic::AtomicBool>,
}

impl FrameWatch {
    /// A watch that sets `seen` when the client opens its first stream.
    pub(super) fn new(seen: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self {
            preface_left: H2_PREFACE.len(),
            header: [0; 9],
            have: 0,
            skip: 0,
            seen,
        }
    }

    /// Follows `bytes`; true once a HEADERS frame was seen (the watch is done).
    fn follow(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let n = if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                n
            } else if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                n
            } else {
                let n = (9 - self.have).min(bytes.len());
                if let (Some(dst), Some(src)) = (
                    self.header.get_mut(self.have..self.have + n),
                    bytes.get(..n),
                ) {
                    dst.copy_from_slice(src);
                }
                self.have += n;
                if self.have == 9 {
                    self.have = 0;
                    if self.header[3] == 0x1 {
                        self.seen.store(true, std::sync::atomic::Ordering::Release);
                        return true;
                    }
                    self.skip = self
                        .header
                        .iter()
                        .take(3)
                        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                }
                n
            };
            bytes = bytes.get(n..).unwrap_or_default();
        }
        false
    }
}

impl GatedStream {
    /// A new connection; nothing is deliverable yet.
    pub(super) fn new(inner: Stream) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            deliverable: 0,
            rest: Rest::Done,
            h2_preface: false,
            frames: None,
        }
    }

    /// The protocol negotiated by TLS ALPN.
    pub(super) fn alpn(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }

    /// Reads more from the socket into `buf`; `Ok(0)` at the end of the stream.
    ///
    /// Reads into a buffer on the stack and copies what came: a connection waiting for its
    /// next request holds no buffer (reserving 4 KiB before the read was a quarter of an idle
    /// connection's memory).
    pub(super) async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            let mut chunk = [MaybeUninit::<u8>::uninit(); 4096];
            let mut rb = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    self.buf.extend_from_slice(rb.filled());
                    Poll::Ready(Ok(rb.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Hands the first `len` bytes of `buf` to pingora, then `rest` from the socket.
    pub(super) fn arm(&mut self, len: usize, rest: Rest) {
        self.deliverable = len.min(self.buf.len());
        self.rest = rest;
    }

    /// Hands everything to pingora from now on; `h2` also makes `try_peek` show the preface.
    pub(super) fn arm_tunnel(&mut self, h2: bool) {
        self.deliverable = self.buf.len();
        self.rest = Rest::Tunnel;
        self.h2_preface = h2;
    }

    /// Watches the HTTP/2 frames handed to pingora (see [`FrameWatch`]).
    pub(super) fn watch_frames(&mut self, watch: FrameWatch) {
        self.frames = Some(watch);
    }

    /// True when pingora has taken the whole current message.
    pub(super) fn message_taken(&self) -> bool {
        self.deliverable == 0 && matches!(self.rest, Rest::Done | Rest::Length(0))
    }

    /// Writes bytes of the gate's own (pingora is not writing at that moment), within
    /// [`OWN_WRITE_TIMEOUT`]: a client that does not read cannot hold the connection open.
    pub(super) async fn write_own(&mut self, bytes: &[u8]) -> io::Result<()> {
        let write = async {
            self.inner.write_all(bytes).await?;
            self.inner.flush().await
        };
        match within(OWN_WRITE_TIMEOUT, write).await {
            Ok(done) => done,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client not reading",
            )),
        }
    }

    /// Ends the connection after an answer of our own: shuts the write side, then reads and
    /// discards what the client is still sending for a moment, so that its unread bytes do not
    /// turn the close into a reset that destroys the answer before the client reads it.
    pub(super) async fn linger_close(mut self) {
        let linger = async {
            let _ = AsyncWriteExt::shutdown(&mut self.inner).await;
            // on the heap: a buffer here would be part of every connection's future, idle or not
            let mut sink = vec![0u8; 4096];
            let mut drained = 0usize;
            while drained < 256 * 1024 {
                match self.inner.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        };
        let _ = within(Duration::from_secs(2), linger).await;
    }

    /// Forgets bytes already handed over: frees the buffer when it is empty.
    fn consumed(&mut self, n: usize) {
        self.buf.advance(n);
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// After the message: reads ahead into `buf` (a pipelined request waits there), reporting
    /// only the end of the stream to pingora.
    fn poll_read_ahead(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let _ = out;
        // uninitialised: zeroing 4 KiB on every poll (one or two per request, most of them
        // `Pending`) was the largest single cost the gate added per request
        let mut chunk = [MaybeUninit::<u8>::uninit(); 4096];
        while self.buf.len() < READ_AHEAD {
            let mut rb = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => self.buf.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // full: wait for pingora to finish this request (it is woken by its own writes)
        Poll::Pending
    }
}

impl AsyncRead for GatedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = out.filled().len();
        let polled = this.poll_message(cx, out);
        if let Some(watch) = &mut this.frames {
            if watch.follow(out.filled().get(before..).unwrap_or_default()) {
                this.frames = None;
            }
        }
        polled
    }
}

impl GatedStream {
    /// Reads what pingora may have of the current message.
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self;
        if this.deliverable > 0 {
            let n = this.deliverable.min(out.remaining());
            out.put_slice(this.buf.get(..n).unwrap_or_default());
            this.deliverable -= n;
            this.consumed(n);
            return Poll::Ready(Ok(()));
        }
        match &mut this.rest {
            Rest::Tunnel => Pin::new(&mut this.inner).poll_read(cx, out),
            Rest::Done | Rest::Length(0) => this.poll_read_ahead(cx, out),
            Rest::Length(left) => {
                let want = usize::try_from(*left).unwrap_or(usize::MAX);
                if out.remaining() <= want {
                    let before = out.filled().len();
                    let polled = Pin::new(&mut this.inner).poll_read(cx, out);
                    *left -= (out.filled().len() - before) as u64;
                    return polled;
                }
                let slice = out.initialize_unfilled_to(want);
                let mut limited = ReadBuf::new(slice);
                let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
                let n = limited.filled().len();
                out.advance(n);
                *left -= n as u64;
                polled
            }
            Rest::Chunked(chunked) => {
                let before = out.filled().len();
                match Pin::new(&mut this.inner).poll_read(cx, out) {
                    Poll::Ready(Ok(())) => {}
                    other => return other,
                }
                let fresh = out.filled().get(before..).unwrap_or_default();
                if fresh.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                match chunked.feed(fresh) {
                    Ok(None) => {}
                    Ok(Some(end)) => {
                        // what follows the body is the next request: keep it for the gate
                        this.buf
                            .extend_from_slice(fresh.get(end..).unwrap_or_default());
                        out.set_filled(before + end);
                        this.rest = Rest::Done;
                    }
                    Err(refusal) => {
                        log::debug!("request body refused: {}", refusal.reason);
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            refusal.reason,
                        )));
                    }
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for GatedStream {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await;
    }
}

impl UniqueID for GatedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GatedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GatedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GatedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for GatedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for GatedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if !self.h2_preface {
            return Ok(false);
        }
        let n = buf.len().min(H2_PREFACE.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), H2_PREFACE.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(true)
    }
}

/// The peer's IP address, for the connection limits.
pub(super) fn peer_ip(stream: &Stream) -> Option<std::net::IpAddr> {
    let digest = stream.get_socket_digest()?;
    match digest.peer_addr()? {
        SocketAddr::Inet(a) => Some(a.ip()),
        _ => None,
    }
}
