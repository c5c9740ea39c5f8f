//! The Aralez config compiler: YAML text in, sorted diagnostics or a frozen [`Plan`] out.
//!
//! Pure: no I/O, no async, no globals. The caller hands in source text (and reads any referenced
//! file itself). Entry points: [`compile_upstreams`], [`compile_main`], [`plan_json`],
//! [`diff_plans`], [`diff_main`] and [`render::render`].
#![forbid(unsafe_code)]

mod canon;
pub mod codes;
pub mod diag;
mod diff;
mod document;
mod input;
pub mod keys;
pub mod mainconf;
pub mod matcher;
pub mod plan;
pub mod render;
mod suggest;
mod upstreams;
mod values;
mod walk;
mod yaml;
mod ypath;

pub use canon::plan_json;
pub use diag::{Diagnostic, Severity};
pub use diff::diff_plans;
pub use input::{Compiled, Context, Source};
pub use mainconf::{
    compile_main, diff_main, AccessLogFormat, AccessLogMode, AcmeChallenge, AcmeConfig, Cidr,
    EscapedSlashes, HcMethod, LimitsStore, Located, LogLevel, MainChange, MainConfig, StoreOnError,
    TlsGrade,
};
pub use plan::{
    Auth, Backend, ConsulConfig, ConsulTls, Creds, Discovery, ForwardAuth, HeaderList, HostTable,
    JwtClaims, KubernetesConfig, PathTable, Plan, Provider, Route, RouteIdx, Sticky,
    DEFAULT_FORWARD_AUTH_TIMEOUT_MS, DEFAULT_JWT_LEEWAY_SECONDS, MAX_JWT_LEEWAY_SECONDS,
};
pub use upstreams::{compile_upstreams, compile_upstreams_with};
