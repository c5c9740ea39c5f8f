//! Aralez: a hardened reverse proxy on pingora whose configuration is compiled before it serves.
//!
//! The runtime: command line, pingora services, the generation store and its reload pipeline, the admin
//! API and the static file server. The config language lives in the `aralez-compiler` crate.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod acme;
pub mod admin;
pub mod admin_api;
pub mod auth;
pub mod balance;
pub mod calendar;
pub mod cli;
pub mod client;
pub mod config;
pub mod edge;
pub mod files;
pub mod generation;
pub mod health;
pub mod limits;
pub mod limits_store;
pub mod listen_check;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod privilege;
pub mod process;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod sources;
pub mod tls;
pub mod trace;

/// upstreams.yaml keys this build parses but does not enforce yet: `check` and the runtime refuse
/// them (E0900) instead of silently ignoring them.
pub const UNSUPPORTED_UPSTREAM_KEYS: &[&str] = &[];

/// main.yaml keys this build parses but does not enforce yet (refused with E0900).
pub const UNSUPPORTED_MAIN_KEYS: &[&str] = &[];
