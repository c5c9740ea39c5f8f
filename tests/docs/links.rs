//! The manual stays inside the repository: no Markdown document links to another site (URLs are
//! allowed only as example values, in code), and every relative link points at a file that exists.

use std::path::{Path, PathBuf};

use regex::Regex;

/// Link targets (from the repository root) written on another branch at the same time (the
/// deployment guide); allowed to be missing until it lands. Empty it once they exist.
const PENDING: &[&str] = &[];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.md` file of the repository (build output and hidden folders skipped).
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn lexical(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().to_string()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The text outside fenced code blocks and inline code spans.
fn prose(text: &str) -> String {
    let span = Regex::new(r"`[^`\n]*`").unwrap();
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(&span.replace_all(line, ""));
            out.push('\n');
        }
    }
    out
}

#[test]
fn documents_link_only_inside_the_repository() {
    let mut files = Vec::new();
    markdown_files(&repo(), &mut files);
    assert!(files.len() >= 5, "found only {files:?}");
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(repo()).unwrap().display().to_string();
        let prose = prose(&text);
        if prose.contains("http://") || prose.contains("https://") {
            problems.push(format!(
                "{shown}: a URL outside code (link inside the repository)"
            ));
        }
        if text.contains("../shared/") {
            problems.push(format!(
                "{shown}: a path outside the repository (../shared/)"
            ));
        }
        for cap in link.captures_iter(&prose) {
            let target = cap[1].split('#').next().unwrap_or_default();
            if target.is_empty() {
                continue; // an anchor in the same document
            }
            let resolved = file.parent().unwrap().join(target);
            let from_root = lexical(resolved.strip_prefix(repo()).unwrap());
            if !resolved.exists() && !PENDING.contains(&from_root.as_str()) {
                problems.push(format!("{shown}: broken link to {target}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
