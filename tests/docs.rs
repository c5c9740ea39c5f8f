//! The manual that lives in the repository, checked against the code so that it cannot drift:
//! completions and the man page come from the binary's own clap definitions, the JSON Schemas
//! name exactly the keys the compiler accepts, the configuration reference names every key, the
//! examples validate, and the Grafana dashboard uses only registered metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "docs/cli.rs"]
mod cli;
#[path = "docs/kubernetes.rs"]
mod kubernetes;
#[path = "docs/links.rs"]
mod links;
#[path = "docs/metrics.rs"]
mod metrics;
#[path = "docs/schema.rs"]
mod schema;
#[path = "docs/validator.rs"]
mod validator;
