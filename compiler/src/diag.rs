//! Diagnostics: every problem the compiler finds, with a stable code and a location.

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config is refused.
    Error,
    /// The config is accepted; `check --deny-warnings` refuses it.
    Warning,
}

/// One finding of the compiler, pointing at a place in a source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code: `E0xxx` for errors, `W0xxx` for warnings.
    pub code: &'static str,
    /// Error or warning (derived from the code's first letter).
    pub severity: Severity,
    /// The source name as given by the caller (usually a file path).
    pub file: String,
    /// 1-based line; 0 when the finding concerns the file as a whole.
    pub line: u32,
    /// 1-based column (in characters); 0 when the finding concerns the file as a whole.
    pub col: u32,
    /// YAML path of the node, e.g. `upstreams."api.example.com".paths."/v1".servers[2]`.
    pub path: String,
    /// What is wrong, and how to fix it.
    pub message: String,
}
