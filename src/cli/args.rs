//! The `aralez` command line as clap definitions. They live in the library so that `main.rs`
//! (which parses them) and `aralez completions` / `aralez man` (which generate from them) share
//! one definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The whole command line.
#[derive(Parser, Debug)]
#[command(
    name = "aralez",
    about = "A hardened reverse proxy with a compiled configuration",
    disable_version_flag = true
)]
pub struct Args {
    /// main.yaml to run with (compatibility form of `aralez run -c`).
    #[arg(short = 'c', long = "conf", global = false)]
    pub conf: Option<PathBuf>,
    /// Fork to the background.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Take over the listeners of a running instance (graceful upgrade).
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// The subcommand; none runs the proxy with `-c`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy.
    Run {
        /// main.yaml.
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        /// Fork to the background.
        #[arg(short = 'd', long = "daemon")]
        daemon: bool,
        /// Take over the listeners of a running instance (graceful upgrade).
        #[arg(short = 'u', long = "upgrade")]
        upgrade: bool,
    },
    /// Validate config files; exit 0 valid, 1 invalid, 2 usage or I/O error, 3 warnings under --deny-warnings.
    Check(super::check::CheckArgs),
    /// Compile an upstreams file into its canonical plan (JSON).
    Compile(super::compile::CompileArgs),
    /// Show which route, upstreams and policy would serve a request.
    Route(super::route::RouteArgs),
    /// Plan-level difference between two configs; flags restart-required changes.
    Diff(super::diff::DiffArgs),
    /// Probe a readiness URL (for containers without a shell); exit 0 when it answers 200.
    Healthcheck(super::healthcheck::HealthcheckArgs),
    /// Print a shell completion script to stdout (e.g. `aralez completions bash > /etc/bash_completion.d/aralez`).
    Completions(super::completions::CompletionsArgs),
    /// Print the manual page (roff) to stdout (e.g. `aralez man > aralez.1`).
    Man,
    /// Print the version.
    Version,
}
