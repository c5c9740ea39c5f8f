//! The gate's timeouts, on pingora's shared timer wheel rather than tokio's.
//!
//! A tokio timer registered while the runtime's driver has no earlier timer wakes the driver
//! through its eventfd (a `write` system call and one more `epoll_wait` round), and the gate arms
//! one for every keep-alive wait between requests. pingora's timer is armed only when the future
//! is not ready at its first poll, costs no system call, rounds deadlines to 10 ms and is fired
//! by pingora's clock thread, which its own read timeouts already run.

use std::future::Future;
use std::time::Duration;

use pingora::prelude::{fast_timeout::FastOrTokioTimeout, timeout, Timeout};
use tokio::time::Instant;

/// `fut`, or `Err(Elapsed)` once `limit` has passed.
pub(super) fn within<F: Future>(limit: Duration, fut: F) -> Timeout<F, FastOrTokioTimeout> {
    timeout(limit, fut)
}

/// `fut`, or `Err(Elapsed)` at `deadline` (at once when it has passed).
pub(super) fn until<F: Future>(deadline: Instant, fut: F) -> Timeout<F, FastOrTokioTimeout> {
    timeout(deadline.saturating_duration_since(Instant::now()), fut)
}
