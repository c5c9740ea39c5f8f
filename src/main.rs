//! The `aralez` command line. All logic lives in the library; this file only parses arguments.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use aralez::cli;

/// mimalloc instead of the libc allocator: measurably less CPU per proxied request (see
/// `benches/load.sh`), and musl's allocator would be far slower still.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "aralez",
    about = "A hardened reverse proxy with a compiled configuration",
    disable_version_flag = true
)]
struct Args {
    /// main.yaml to run with (compatibility form of `aralez run -c`).
    #[arg(short = 'c', long = "conf", global = false)]
    conf: Option<PathBuf>,
    /// Fork to the background.
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Take over the listeners of a running instance (graceful upgrade).
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    Check(cli::check::CheckArgs),
    /// Compile an upstreams file into its canonical plan (JSON).
    Compile(cli::compile::CompileArgs),
    /// Show which route, upstreams and policy would serve a request.
    Route(cli::route::RouteArgs),
    /// Plan-level difference between two configs; flags restart-required changes.
    Diff(cli::diff::DiffArgs),
    /// Probe a readiness URL (for containers without a shell); exit 0 when it answers 200.
    Healthcheck(cli::healthcheck::HealthcheckArgs),
    /// Print the version.
    Version,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let code = match args.command {
        _ if args.version => cli::version(),
        Some(Command::Version) => cli::version(),
        Some(Command::Run {
            conf,
            daemon,
            upgrade,
        }) => aralez::server::run(&conf, &aralez::server::RunOptions { daemon, upgrade }),
        Some(Command::Check(a)) => cli::check::run(&a),
        Some(Command::Compile(a)) => cli::compile::run(&a),
        Some(Command::Route(a)) => cli::route::run(&a),
        Some(Command::Diff(a)) => cli::diff::run(&a),
        Some(Command::Healthcheck(a)) => cli::healthcheck::run(&a),
        None => match args.conf {
            Some(conf) => aralez::server::run(
                &conf,
                &aralez::server::RunOptions {
                    daemon: args.daemon,
                    upgrade: args.upgrade,
                },
            ),
            None => {
                eprintln!("aralez: nothing to do; try `aralez -c main.yaml` or `aralez --help`");
                cli::Exit::Usage
            }
        },
    };
    code.into()
}
