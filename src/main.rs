//! The `aralez` command line. All logic lives in the library; this file only parses arguments
//! (defined in `aralez::cli::args`) and dispatches.
#![forbid(unsafe_code)]

use clap::Parser;

use aralez::cli::{self, args::Args, args::Command};

/// mimalloc instead of the libc allocator: measurably less CPU per proxied request (see
/// `benches/load.sh`), and musl's allocator would be far slower still.
/// The `system-allocator` feature keeps the libc allocator, for heap profilers (heaptrack and
/// massif see only `malloc`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Some(Command::Completions(a)) => cli::completions::completions(&a),
        Some(Command::Man) => cli::completions::man(),
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
