//! Reading configuration files from disk and handing their text to the compiler.

use std::path::{Path, PathBuf};

use aralez_compiler::{Diagnostic, MainConfig, Source};

/// The text of upstreams.yaml and its `conf.d/*.yaml` files (sorted), as one compiler input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSources {
    /// `(display name, text)`; the first is upstreams.yaml itself.
    pub files: Vec<(String, String)>,
}

impl UpstreamSources {
    /// Reads `path` and every `*.yaml` in the `conf.d` folder next to it (sorted by name).
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let mut files = vec![(path.display().to_string(), read_text(path)?)];
        for extra in conf_d_files(path)? {
            files.push((extra.display().to_string(), read_text(&extra)?));
        }
        Ok(Self { files })
    }

    /// One in-memory upstreams document (the push API, tests).
    pub fn from_text(name: &str, text: String) -> Self {
        Self {
            files: vec![(name.to_string(), text)],
        }
    }

    /// Borrowed compiler sources.
    pub fn as_sources(&self) -> Vec<Source<'_>> {
        self.files
            .iter()
            .map(|(name, text)| Source { name, text })
            .collect()
    }
}

/// The `conf.d` folder next to an upstreams file.
pub fn conf_d_dir(upstreams: &Path) -> PathBuf {
    upstreams
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("conf.d")
}

fn conf_d_files(upstreams: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = conf_d_dir(upstreams);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Why `path`, which should be a folder, is not one: "does not exist" or "is not a folder (…)".
pub fn not_a_folder(path: &Path) -> &'static str {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => "is a folder",
        Ok(_) => "is a file, not a folder",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(_) => "cannot be read",
    }
}

/// Why `path`, which should be a regular file, is not one: "does not exist" or "is a folder".
pub fn not_a_file(path: &Path) -> &'static str {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => "is a file",
        Ok(m) if m.is_dir() => "is a folder, not a file",
        Ok(_) => "is not a regular file",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(_) => "cannot be read",
    }
}

/// Largest config file we read (upstreams.yaml, a conf.d file or main.yaml).
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

fn read_text(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is larger than {} bytes",
                path.display(),
                MAX_CONFIG_BYTES
            ),
        ));
    }
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not UTF-8", path.display()),
        )
    })
}

/// Why main.yaml could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum MainError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// It did not compile; `text` is kept for rendering snippets.
    Invalid {
        /// File name as shown.
        name: String,
        /// Its text.
        text: String,
        /// Sorted diagnostics.
        diagnostics: Vec<Diagnostic>,
    },
}

/// main.yaml, compiled, with the folder its relative paths are resolved against.
#[derive(Debug, Clone)]
pub struct LoadedMain {
    /// The typed settings.
    pub config: MainConfig,
    /// Warnings from compiling it.
    pub warnings: Vec<Diagnostic>,
    /// Its path as given.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl LoadedMain {
    /// Reads and compiles main.yaml.
    pub fn read(path: &Path) -> Result<Self, MainError> {
        let text = read_text(path).map_err(|e| MainError::Io(path.to_path_buf(), e))?;
        let name = path.display().to_string();
        match aralez_compiler::compile_main(
            &Source {
                name: &name,
                text: &text,
            },
            crate::UNSUPPORTED_MAIN_KEYS,
        ) {
            Ok(c) => Ok(Self {
                config: c.value,
                warnings: c.warnings,
                path: path.to_path_buf(),
                text,
            }),
            Err(diagnostics) => Err(MainError::Invalid {
                name,
                text,
                diagnostics,
            }),
        }
    }

    /// A path from main.yaml, resolved against main.yaml's folder when relative.
    pub fn resolve(&self, written: &str) -> PathBuf {
        let p = Path::new(written);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or_else(|| Path::new(".")).join(p)
        }
    }

    /// The upstreams.yaml path.
    pub fn upstreams_path(&self) -> PathBuf {
        self.resolve(&self.config.upstreams_conf.value)
    }
}
