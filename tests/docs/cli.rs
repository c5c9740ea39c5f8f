//! `aralez completions` and `aralez man`, run from the built binary.

use std::process::Command;

/// Every subcommand an operator should find in completions and the man page.
const SUBCOMMANDS: &[&str] = &["check", "compile", "route", "diff", "healthcheck", "run"];

fn aralez(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aralez"))
        .args(args)
        .output()
        .expect("run aralez");
    assert!(
        out.status.success(),
        "aralez {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn names_every_subcommand(what: &str, text: &str) {
    assert!(!text.trim().is_empty(), "{what} is empty");
    for sub in SUBCOMMANDS {
        assert!(text.contains(sub), "{what} does not name `{sub}`");
    }
}

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = aralez(&["completions", shell]);
        names_every_subcommand(&format!("{shell} completion"), &script);
    }
}

#[test]
fn bash_completion_parses() {
    let script = aralez(&["completions", "bash"]);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs-completions");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("aralez.bash");
    std::fs::write(&file, script).unwrap();
    let status = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .expect("run bash -n");
    assert!(status.success(), "bash -n rejects the completion script");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn man_page_is_roff_and_names_every_subcommand() {
    let page = aralez(&["man"]);
    assert!(page.contains(".TH aralez 1"), "no .TH title line");
    names_every_subcommand("the man page", &page);
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!(".SS \"aralez {sub}\"")),
            "the man page has no section for `aralez {sub}`"
        );
    }
    for section in ["SYNOPSIS", "COMMANDS", "\"EXIT STATUS\"", "SIGNALS"] {
        assert!(page.contains(&format!(".SH {section}")), "no {section}");
    }
}
