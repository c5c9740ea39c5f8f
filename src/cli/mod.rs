//! Subcommands of the `aralez` binary other than `run` (see [`crate::server`]).

pub mod args;
pub mod check;
pub mod compile;
pub mod completions;
pub mod diff;
pub mod healthcheck;
pub mod route;

/// How a command ends: its process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; the input is valid.
    Success = 0,
    /// 1: the input is invalid (diagnostics printed), or a negative answer (`healthcheck`,
    /// `route` without a route).
    Invalid = 1,
    /// 2: a usage, I/O or setup error.
    Usage = 2,
    /// 3: warnings under `--deny-warnings`.
    Warnings = 3,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit as u8)
    }
}

/// `aralez version`.
pub fn version() -> Exit {
    println!("aralez {}", env!("CARGO_PKG_VERSION"));
    Exit::Success
}

/// Compiles one upstreams file for the offline commands, printing diagnostics on failure.
pub(crate) fn compile_file(path: &std::path::Path) -> Result<aralez_compiler::Plan, Exit> {
    let sources = match crate::config::UpstreamSources::read(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aralez: cannot read {}: {e}", path.display());
            return Err(Exit::Usage);
        }
    };
    let ctx = aralez_compiler::Context {
        tls_listener: true,
        unsupported: crate::UNSUPPORTED_UPSTREAM_KEYS,
    };
    match aralez_compiler::compile_upstreams(&sources.as_sources(), &ctx) {
        Ok(c) => Ok(c.value),
        Err(diags) => {
            eprint!(
                "{}",
                aralez_compiler::render::render(
                    &diags,
                    aralez_compiler::render::Format::Human,
                    &sources.as_sources()
                )
            );
            Err(Exit::Invalid)
        }
    }
}
