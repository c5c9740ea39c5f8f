//! The Aralez config compiler: YAML text in, sorted diagnostics or a frozen [`Plan`] out.
//!
//! Pure: no I/O, no async, no globals. The caller hands in source text (and reads any referenced
//! file itself).
#![forbid(unsafe_code)]

pub mod diag;
pub mod matcher;
pub mod plan;

pub use diag::{Diagnostic, Severity};
pub use plan::{Auth, Backend, HostTable, PathTable, Plan, Provider, Route, RouteIdx, Sticky};
