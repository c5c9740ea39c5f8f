//! `aralez check`: validate config files the way CI does. Never binds, resolves or connects.

use super::Exit;

use std::path::{Path, PathBuf};

use aralez_compiler::render::{render, Format};
use aralez_compiler::{codes, Diagnostic, Located, Severity, Source};

use crate::config::{LoadedMain, MainError, UpstreamSources};
use crate::generation::CompileSettings;

/// Output formats of `aralez check`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// For people: message, location and the source line.
    Human,
    /// One grep-style line per diagnostic.
    Short,
    /// A JSON array (stdout).
    Json,
    /// GitHub Actions workflow commands.
    Github,
    /// SARIF 2.1.0 (stdout).
    Sarif,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Human => Format::Human,
            FormatArg::Short => Format::Short,
            FormatArg::Json => Format::Json,
            FormatArg::Github => Format::Github,
            FormatArg::Sarif => Format::Sarif,
        }
    }
}

/// Arguments of `aralez check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// upstreams.yaml files (each with its conf.d/); default: the one main.yaml names.
    pub files: Vec<PathBuf>,
    /// Validate this main.yaml too, and the upstreams file it names.
    #[arg(long)]
    pub main: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: FormatArg,
    /// Exit 3 when there are warnings (and no errors).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Only the files named: do not look at referenced certificates, folders and key files.
    #[arg(long)]
    pub syntax_only: bool,
}

/// Runs `aralez check`; returns the exit code (0 valid, 1 invalid, 2 usage/I-O, 3 denied warnings).
pub fn run(args: &CheckArgs) -> Exit {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut checked: Vec<String> = Vec::new();
    let mut files = args.files.clone();
    let mut tls_listener = true;
    // With `--main` (and not `--syntax-only`): what resolves route secrets at run time.
    let mut auth_settings: Option<Option<String>> = None;

    if let Some(main_path) = &args.main {
        match LoadedMain::read(main_path) {
            Err(MainError::Io(p, e)) => {
                eprintln!("aralez: cannot read {}: {e}", p.display());
                return Exit::Usage;
            }
            Err(MainError::Invalid {
                name,
                text,
                diagnostics,
            }) => {
                checked.push(name.clone());
                diags.extend(diagnostics);
                texts.push((name, text));
            }
            Ok(main) => {
                let name = main.path.display().to_string();
                checked.push(name.clone());
                diags.extend(main.warnings.iter().cloned());
                tls_listener = main.config.proxy_address_tls.is_some();
                if !args.syntax_only {
                    diags.extend(referenced_files(&main, &name));
                    auth_settings = Some(crate::server::master_key(&main).ok().flatten());
                    diags.extend(crate::tls::check_main(&main, &name));
                }
                if files.is_empty() {
                    let up = main.upstreams_path();
                    if up.is_file() {
                        files.push(up);
                    }
                }
                texts.push((name, main.text));
            }
        }
    }
    if files.is_empty() && args.main.is_none() {
        eprintln!("aralez check: name an upstreams file or --main main.yaml");
        return Exit::Usage;
    }
    let ctx = aralez_compiler::Context {
        tls_listener,
        unsupported: crate::UNSUPPORTED_UPSTREAM_KEYS,
    };
    for file in &files {
        let sources = match UpstreamSources::read(file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("aralez: cannot read {}: {e}", file.display());
                return Exit::Usage;
            }
        };
        checked.extend(sources.files.iter().map(|(n, _)| n.clone()));
        let name = sources.files.first().map_or("", |(n, _)| n.as_str());
        let result = match &auth_settings {
            // with main.yaml: exactly what the running proxy does with this input
            Some(key) => {
                let settings = CompileSettings {
                    tls_listener,
                    auth: crate::auth::AuthSettings {
                        master_key: key.as_deref().map(Into::into),
                        base_dir: file
                            .parent()
                            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
                    },
                };
                crate::generation::compile(&sources, &[], &settings).map(
                    |(c, _, secret_warnings)| {
                        let secrets = secret_warnings
                            .into_iter()
                            .map(|w| Diagnostic::new(codes::SHORT_SECRET, name, (0, 0), "", w));
                        secrets.chain(c.warnings).collect::<Vec<_>>()
                    },
                )
            }
            // without it, secrets cannot be resolved: the language alone
            None => {
                aralez_compiler::compile_upstreams(&sources.as_sources(), &ctx).map(|c| c.warnings)
            }
        };
        match result {
            Ok(warnings) => diags.extend(warnings),
            Err(d) => diags.extend(d),
        }
        texts.extend(sources.files);
    }

    let sources: Vec<Source<'_>> = texts
        .iter()
        .map(|(name, text)| Source { name, text })
        .collect();
    let format = Format::from(args.format);
    let errors = diags.iter().any(|d| d.severity == Severity::Error);
    let warnings = diags.iter().any(|d| d.severity == Severity::Warning);
    let output = render(&diags, format, &sources);
    match args.format {
        FormatArg::Json | FormatArg::Sarif => print!("{output}"),
        _ => {
            eprint!("{output}");
            for name in &checked {
                if !diags
                    .iter()
                    .any(|d| &d.file == name && d.severity == Severity::Error)
                {
                    println!("{name}: OK");
                }
            }
        }
    }
    if errors {
        Exit::Invalid
    } else if warnings && args.deny_warnings {
        Exit::Warnings
    } else {
        Exit::Success
    }
}

/// Files and folders main.yaml refers to must exist (E0801 file, E0802 folder).
fn referenced_files(main: &LoadedMain, name: &str) -> Vec<Diagnostic> {
    let cfg = &main.config;
    let mut out = Vec::new();
    let mut file = |key: &str, loc: &Located<String>| {
        if !main.resolve(&loc.value).is_file() {
            out.push(missing(
                name,
                key,
                loc,
                codes::REFERENCED_FILE_MISSING,
                "file",
                crate::config::not_a_file(&main.resolve(&loc.value)),
            ));
        }
    };
    file("upstreams_conf", &cfg.upstreams_conf);
    for (key, loc) in [
        ("config_tls_certificate", &cfg.config_tls_certificate),
        ("config_tls_key_file", &cfg.config_tls_key_file),
        ("master_key_file", &cfg.master_key_file),
        (
            "acme.ca_file",
            &cfg.acme.as_ref().and_then(|a| a.ca_file.clone()),
        ),
    ] {
        if let Some(loc) = loc {
            file(key, loc);
        }
    }
    for (key, loc) in [
        ("proxy_certificates", &cfg.proxy_certificates),
        ("file_server_folder", &cfg.file_server_folder),
    ] {
        if let Some(loc) = loc {
            if !main.resolve(&loc.value).is_dir() {
                out.push(missing(
                    name,
                    key,
                    loc,
                    codes::REFERENCED_FOLDER_MISSING,
                    "folder",
                    crate::config::not_a_folder(&main.resolve(&loc.value)),
                ));
            }
        }
    }
    for (key, loc) in [
        ("pid_file", &cfg.pid_file),
        ("error_log", &cfg.error_log),
        ("access_log_file", &cfg.access_log_file),
        (
            "limits_store.password_file",
            &cfg.limits_store
                .as_ref()
                .and_then(|s| s.password_file.clone()),
        ),
    ] {
        if let Some(loc) = loc {
            let path = main.resolve(&loc.value);
            let parent = path.parent().unwrap_or_else(|| Path::new("."));
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                out.push(missing(
                    name,
                    key,
                    loc,
                    codes::REFERENCED_FOLDER_MISSING,
                    "folder for the",
                    crate::config::not_a_folder(parent),
                ));
            }
        }
    }
    out
}

fn missing(
    file: &str,
    key: &str,
    loc: &Located<String>,
    code: &'static str,
    what: &str,
    problem: &str,
) -> Diagnostic {
    Diagnostic {
        code,
        severity: Severity::Error,
        file: file.to_string(),
        line: loc.line,
        col: loc.col,
        path: key.to_string(),
        message: format!(
            "`{key}`: the {what} `{}` {problem} (relative paths are resolved against main.yaml's folder); create it or fix the path",
            loc.value
        ),
    }
}
