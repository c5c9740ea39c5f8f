//! [`Refusal`]: why the gate or a request check refuses a request.

/// Why the gate (or a request check) refuses a request: the status it answers and a short reason
/// for the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status to answer.
    pub status: u16,
    /// What was wrong (logged at debug level, never sent).
    pub reason: &'static str,
}

impl Refusal {
    /// A refusal with this status and reason.
    pub const fn new(status: u16, reason: &'static str) -> Self {
        Self { status, reason }
    }
}
