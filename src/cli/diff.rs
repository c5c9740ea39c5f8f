//! `aralez diff OLD NEW`: plan-level difference of two upstreams files, or the settings difference
//! of two main.yaml files with restart-required changes flagged.

use super::Exit;

use std::path::PathBuf;

use aralez_compiler::Source;

/// Arguments of `aralez diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The config serving now.
    pub old: PathBuf,
    /// The config about to replace it.
    pub new: PathBuf,
}

/// Runs `aralez diff`; exit 0 with the changes printed, 1 when a file does not compile, 2 on I/O.
pub fn run(args: &DiffArgs) -> Exit {
    let (Ok(old_text), Ok(new_text)) = (
        std::fs::read_to_string(&args.old),
        std::fs::read_to_string(&args.new),
    ) else {
        eprintln!(
            "aralez: cannot read {} or {}",
            args.old.display(),
            args.new.display()
        );
        return Exit::Usage;
    };
    if is_main(&old_text) && is_main(&new_text) {
        return diff_main(args, &old_text, &new_text);
    }
    let old = match super::compile_file(&args.old) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let new = match super::compile_file(&args.new) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let lines = aralez_compiler::diff_plans(&old, &new);
    if lines.is_empty() {
        println!("no changes (plan {})", new.hash());
    } else {
        for l in lines {
            println!("{l}");
        }
        println!(
            "applies without restart (hot reload): plan {} -> {}",
            old.hash(),
            new.hash()
        );
    }
    Exit::Success
}

/// main.yaml is recognised by its required listener key.
fn is_main(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("proxy_address_http"))
}

fn diff_main(args: &DiffArgs, old_text: &str, new_text: &str) -> Exit {
    let old_name = args.old.display().to_string();
    let new_name = args.new.display().to_string();
    let compile = |name: &str, text: &str| {
        aralez_compiler::compile_main(&Source { name, text }, crate::UNSUPPORTED_MAIN_KEYS)
    };
    let (old, new) = match (compile(&old_name, old_text), compile(&new_name, new_text)) {
        (Ok(o), Ok(n)) => (o.value, n.value),
        (o, n) => {
            let diags: Vec<_> = [o.err(), n.err()].into_iter().flatten().flatten().collect();
            let sources = [
                Source {
                    name: &old_name,
                    text: old_text,
                },
                Source {
                    name: &new_name,
                    text: new_text,
                },
            ];
            eprint!(
                "{}",
                aralez_compiler::render::render(
                    &diags,
                    aralez_compiler::render::Format::Human,
                    &sources
                )
            );
            return Exit::Invalid;
        }
    };
    let changes = aralez_compiler::diff_main(&old, &new);
    if changes.is_empty() {
        println!("no changes");
        return Exit::Success;
    }
    let mut restart = false;
    for c in &changes {
        restart |= c.restart_required;
        let flag = if c.restart_required {
            " (restart required)"
        } else {
            ""
        };
        println!("~ {}: {} -> {}{flag}", c.key, c.old, c.new);
    }
    if restart {
        println!(
            "restart required: some changes apply only after a restart or `aralez -u` upgrade"
        );
    }
    Exit::Success
}
