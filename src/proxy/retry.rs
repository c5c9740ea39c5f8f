//! When a failed upstream attempt is tried again, and on which backend: the retry rules of one
//! request in one place.
//!
//! - A refused or failed connection: once, on another healthy backend of the route (nothing
//!   reached the upstream and the body was not read yet, so the request is replayable).
//! - A pooled connection that turns out closed before anything was received: once, on the same
//!   backend (it is the connection that was stale, not the backend), and only when pingora's own
//!   rule allows it (idempotent method, body still in its replay buffer).
//! - Never once the upstream has started answering.

/// Retries after a failed connection: once, on another healthy backend.
const MAX_CONNECT_RETRIES: usize = 1;

/// The attempts of one request so far.
#[derive(Debug, Default)]
pub struct RetryState {
    /// Index (among the route's peers) of the backend of the current attempt.
    peer_idx: Option<usize>,
    /// Attempts so far.
    tries: usize,
    /// Retries after connection failures.
    connect_retries: usize,
    /// Retries after a reused upstream connection turned out closed.
    reuse_retries: usize,
    /// The next attempt goes to the same backend.
    retry_same: bool,
    /// The upstream has started answering.
    response_started: bool,
}

/// Which backend the next attempt may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The first attempt: any healthy backend (a sticky cookie may choose).
    First,
    /// The backend of the previous attempt again (a stale pooled connection).
    Same(Option<usize>),
    /// Another backend than the previous attempt's.
    Other(Option<usize>),
}

impl RetryState {
    /// Where the next attempt goes (taking the "same backend" decision of the last failure).
    pub fn next(&mut self) -> Next {
        if std::mem::take(&mut self.retry_same) {
            Next::Same(self.peer_idx)
        } else if self.tries == 0 {
            Next::First
        } else {
            Next::Other(self.peer_idx)
        }
    }

    /// An attempt starts on the backend at `idx`.
    pub fn attempt(&mut self, idx: usize) {
        self.tries += 1;
        self.peer_idx = Some(idx);
    }

    /// The backend of the current attempt.
    pub fn peer_idx(&self) -> Option<usize> {
        self.peer_idx
    }

    /// The upstream started answering: no retry from here on.
    pub fn response_started(&mut self) {
        self.response_started = true;
    }

    /// After a failed connection: whether to retry (on another backend, when `other_backend`).
    pub fn after_connect_failure(&mut self, other_backend: bool) -> bool {
        let retry = self.connect_retries < MAX_CONNECT_RETRIES && other_backend;
        if retry {
            self.connect_retries += 1;
        }
        retry
    }

    /// After an error on an established connection: whether a retry may be considered at all
    /// (pingora then decides whether the error means a stale pooled connection).
    pub fn may_retry_reused(&self, replayable: bool) -> bool {
        replayable && !self.response_started && self.reuse_retries == 0
    }

    /// A retry on the same backend was decided.
    pub fn retrying_same(&mut self) {
        self.reuse_retries += 1;
        self.retry_same = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_retry_of_each_kind_and_none_after_the_answer_started() {
        let mut r = RetryState::default();
        assert_eq!(r.next(), Next::First);
        r.attempt(0);
        assert!(!r.after_connect_failure(false), "no other backend");
        assert!(r.after_connect_failure(true));
        assert_eq!(r.next(), Next::Other(Some(0)));
        r.attempt(1);
        assert!(!r.after_connect_failure(true), "only one connect retry");
        assert!(r.may_retry_reused(true));
        r.retrying_same();
        assert_eq!(r.next(), Next::Same(Some(1)));
        r.attempt(1);
        assert!(!r.may_retry_reused(true), "only one reuse retry");
        let mut s = RetryState::default();
        s.attempt(0);
        s.response_started();
        assert!(!s.may_retry_reused(true));
        assert!(!s.may_retry_reused(false) && !RetryState::default().may_retry_reused(false));
    }
}
