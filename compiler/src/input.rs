//! What the caller hands to the compiler, and what it gets back.

use crate::diag::Diagnostic;

/// One source text.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The name shown in diagnostics (usually the file path as the operator wrote it).
    pub name: &'a str,
    /// The file's text.
    pub text: &'a str,
}

/// A successful compilation: the value and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Compiled<T> {
    /// The compiled value.
    pub value: T,
    /// Warnings (sorted by file, line, column, code).
    pub warnings: Vec<Diagnostic>,
}

/// What the runtime around the compiler can do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// `proxy_address_tls` is configured (otherwise `to_https` draws a warning).
    pub tls_listener: bool,
    /// Canonical upstreams.yaml key names this build does not support (e.g. `rate_limit`,
    /// `sticky_sessions`, and `provider:consul` / `provider:kubernetes` for provider values):
    /// they are refused with E0900 wherever they appear.
    pub unsupported: &'a [&'a str],
}

/// Turns a list of diagnostics into the compiler's result: errors fail, warnings ride along.
pub(crate) fn conclude<T>(
    value: Option<T>,
    diags: Vec<Diagnostic>,
) -> Result<Compiled<T>, Vec<Diagnostic>> {
    match value {
        Some(value) if !diags.iter().any(Diagnostic::is_error) => Ok(Compiled {
            value,
            warnings: diags,
        }),
        _ => Err(diags),
    }
}
