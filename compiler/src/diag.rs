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
    /// Stable code: `E0xxx` for errors, `W0xxx` for warnings (see [`crate::codes`]).
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

impl Diagnostic {
    /// Builds a diagnostic; the severity follows the code's first letter.
    pub fn new(
        code: &'static str,
        file: &str,
        (line, col): (u32, u32),
        path: &str,
        message: impl Into<String>,
    ) -> Self {
        let severity = if code.starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        };
        Self {
            code,
            severity,
            file: file.to_string(),
            line,
            col,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by (file order, line, col, code) and removes exact duplicates.
/// `files` gives the file order (the order of the sources); unknown files sort last by name.
pub(crate) fn finish(mut diags: Vec<Diagnostic>, files: &[&str]) -> Vec<Diagnostic> {
    let rank = |f: &str| files.iter().position(|x| *x == f).unwrap_or(usize::MAX);
    diags.sort_by(|a, b| {
        (rank(&a.file), &a.file, a.line, a.col, a.code, &a.message).cmp(&(
            rank(&b.file),
            &b.file,
            b.line,
            b.col,
            b.code,
            &b.message,
        ))
    });
    diags.dedup();
    diags
}

/// Collects diagnostics for one source file.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    /// File name used in every diagnostic.
    pub file: &'a str,
    /// Everything reported so far.
    pub diags: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    /// An empty sink for `file`.
    pub fn new(file: &'a str) -> Self {
        Self {
            file,
            diags: Vec::new(),
        }
    }

    /// Reports `code` at `pos` (line, col) with YAML path `path`.
    pub fn report(
        &mut self,
        code: &'static str,
        pos: (u32, u32),
        path: &str,
        message: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::new(code, self.file, pos, path, message));
    }

    /// Number of errors so far.
    pub fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }
}
