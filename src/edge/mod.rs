//! The connection gate: everything between an accepted client connection and pingora.
//!
//! Every proxy (and admin) connection passes through [`EdgeApp`] first. It bounds connections per
//! listener and per client, decides HTTP/2 versus HTTP/1.x on the first bytes, enforces the
//! header and body timeouts, and reads each HTTP/1.x request head (and, with request buffering,
//! its body) itself with a strict parser, so that a malformed, incomplete or ambiguous request is
//! answered here with a 4xx of our own and never reaches pingora or an upstream. Pingora then sees
//! exactly one validated request at a time, which also answers pipelined requests in order.

pub mod answer;
mod app;
pub mod authority;
pub mod chunked;
mod conn_limit;
mod deadline;
pub mod h2_body;
pub mod head;
pub mod path;
mod refusal;
mod stream;

use std::time::Duration;

pub use app::EdgeApp;
pub use conn_limit::ConnLimits;
pub use refusal::Refusal;

/// Settings of the gate of one listener service (main.yaml; a change needs a restart).
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// The whole request head must arrive within this time (from its first byte, or from the
    /// connection's start for the first request); also the limit for a new connection's first byte.
    pub header_timeout: Duration,
    /// Longest wait between two reads of a request body.
    pub body_timeout: Duration,
    /// Longest wait for the next request on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Read request bodies up to `body_buffer` before pingora (and the upstream) sees the request.
    pub request_buffering: bool,
    /// Largest body read ahead.
    pub body_buffer: usize,
    /// Largest body accepted (0: unlimited).
    pub max_body: u64,
    /// Head limits.
    pub head: head::HeadLimits,
    /// HTTP/2 prior knowledge is accepted on this (plain) listener.
    pub h2c: bool,
}

/// Longest accepted request target (nginx's default `large_client_header_buffers` line size).
pub const MAX_TARGET: usize = 8 * 1024;
/// Most header field lines in one request head.
pub const MAX_FIELDS: usize = 100;

/// A TCP listener whose socket reads are not buffered by pingora: the gate reads request heads
/// and buffered bodies into its own buffer (freed between requests) and HTTP/2 and TLS keep
/// their own, so pingora's default 64 KiB read buffer per connection would only hold memory (it
/// was most of the ~90 KiB an idle or slow connection cost).
pub fn listener(addr: &str) -> pingora::listeners::ListenerConfig {
    pingora::listeners::ListenerConfig::tcp(addr)
        .l4_buffer(pingora::listeners::L4BufferSettings::default().read(0))
}
