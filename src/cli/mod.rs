//! Subcommands of the `aralez` binary other than `run` (see [`crate::server`]).

pub mod check;
pub mod compile;
pub mod diff;
pub mod healthcheck;
pub mod route;

/// `aralez version`.
pub fn version() -> i32 {
    println!("aralez {}", env!("CARGO_PKG_VERSION"));
    0
}

/// Compiles one upstreams file for the offline commands, printing diagnostics on failure.
pub(crate) fn compile_file(path: &std::path::Path) -> Result<aralez_compiler::Plan, i32> {
    let sources = match crate::config::UpstreamSources::read(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aralez: cannot read {}: {e}", path.display());
            return Err(2);
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
            Err(1)
        }
    }
}
