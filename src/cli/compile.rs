//! `aralez compile FILE [--emit plan.json] [--print-hash]`.

use super::Exit;

use std::path::PathBuf;

/// Arguments of `aralez compile`.
#[derive(clap::Args, Debug)]
pub struct CompileArgs {
    /// upstreams.yaml (its conf.d/ is merged).
    pub file: PathBuf,
    /// Write the plan JSON to this file instead of stdout.
    #[arg(long)]
    pub emit: Option<PathBuf>,
    /// Print the plan's content hash (alone, unless the JSON goes to stdout too).
    #[arg(long)]
    pub print_hash: bool,
}

/// Runs `aralez compile`; returns the exit code.
pub fn run(args: &CompileArgs) -> Exit {
    let plan = match super::compile_file(&args.file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let json = aralez_compiler::plan_json(&plan);
    if let Some(out) = &args.emit {
        if let Err(e) = std::fs::write(out, format!("{json}\n")) {
            eprintln!("aralez: cannot write {}: {e}", out.display());
            return Exit::Usage;
        }
    } else if !args.print_hash {
        println!("{json}");
    }
    if args.print_hash {
        println!("{}", plan.hash());
    }
    Exit::Success
}
