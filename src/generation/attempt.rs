//! What one apply came to: the typed result `/config/status` and the metrics show.

use aralez_compiler::Diagnostic;
use serde::Serialize;

/// The result of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptResult {
    /// A new generation is serving.
    Applied,
    /// The inputs were what is already serving.
    Unchanged,
    /// The inputs did not compile; the previous generation keeps serving.
    Rejected,
}

impl AttemptResult {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Rejected => "rejected",
        }
    }
}

/// What happened to one reload attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// What triggered it (`start`, `file`, `sighup`, `api`).
    pub trigger: String,
    /// Unix time of the attempt.
    pub at: u64,
    /// What came of it.
    pub result: AttemptResult,
    /// Hash of the generation the inputs built (when they did).
    pub hash: Option<String>,
    /// Errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// Runtime warnings (e.g. backends that do not resolve).
    pub warnings: Vec<String>,
}

/// The outcome of an apply.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new generation is serving.
    Applied {
        /// Its hash.
        hash: String,
    },
    /// The inputs were what is already serving.
    Unchanged,
    /// The inputs did not compile; the old generation keeps serving.
    Rejected(Vec<Diagnostic>),
}
