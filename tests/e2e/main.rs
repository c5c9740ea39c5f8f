//! The end-to-end tests: the real `aralez` binary, real backends, real clients, all on
//! 127.0.0.1. One test binary with a module per area, sharing one harness (`tests/common/`), so
//! that the harness and the crate are compiled and linked once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../recording/mod.rs"]
mod recording;
#[path = "../tls_common/mod.rs"]
mod tls_common;

mod acme;
mod admin;
mod auth;
mod cli;
mod consul;
mod consul_config;
mod consul_double;
mod consul_tags;
mod files;
mod fleet_logs;
mod forward_auth;
mod forward_auth_double;
mod http1_conformance;
mod k8s_double;
mod kubernetes;
mod kubernetes_config;
mod kubernetes_ingress;
mod limits_store;
mod pebble;
mod privilege;
mod process;
mod protocols;
mod proxy;
mod reload;
mod slow_clients;
mod systemd;
mod tls;
mod traffic;
mod upgrade;
mod wire;
