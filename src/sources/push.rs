//! `POST /conf`: a config pushed through the admin API.
//!
//! The body replaces upstreams.yaml (the `conf.d/` files on disk still merge in, exactly as they
//! would after a restart), is compiled synchronously through [`GenerationStore::apply_push`], and with
//! `?save` is written to upstreams.yaml atomically once the plan applied. A push that is not saved
//! serves until SIGHUP, a later push, or a real change of the files on disk (see
//! [`GenerationStore::apply_disk`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::config::UpstreamSources;
use crate::generation::{GenerationStore, Outcome};

/// The answer to a push: status code and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct PushReply {
    /// 200, 400 or 500.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
}

/// Compiles and applies `text` as the new upstreams.yaml; with `save`, writes it to `upstreams`.
/// Blocking (compiles, may resolve DNS, writes files): call from a blocking thread.
pub fn push(store: &GenerationStore, upstreams: &Path, text: String, save: bool) -> PushReply {
    let name = upstreams.display().to_string();
    let disk = UpstreamSources::read(upstreams).ok();
    let mut files = vec![(name, text)];
    if let Some(d) = &disk {
        files.extend(d.files.iter().skip(1).cloned());
    }
    let pushed = UpstreamSources { files };
    let text = pushed.files.first().map_or("", |(_, t)| t.as_str());
    let write = || write_atomic(upstreams, text.as_bytes());
    let saver: Option<&dyn Fn() -> std::io::Result<()>> = if save { Some(&write) } else { None };
    let (outcome, saved) = store.apply_push(&pushed, disk, saver);
    let hash = store.load().hash().to_string();
    let (applied, warnings) = match outcome {
        Outcome::Rejected(diagnostics) => {
            return PushReply {
                status: 400,
                body: json!({
                    "error": "the config does not compile; nothing was applied and the previous plan keeps serving",
                    "diagnostics": diagnostics,
                }),
            };
        }
        Outcome::Applied { .. } => (true, store_warnings(store)),
        Outcome::Unchanged => (false, Vec::new()),
    };
    match saved {
        Some(Err(e)) => PushReply {
            status: 500,
            body: json!({
                "hash": hash,
                "applied": applied,
                "saved": false,
                "error": format!("the plan is serving, but {} could not be written: {e}", upstreams.display()),
            }),
        },
        saved => PushReply {
            status: 200,
            body: json!({
                "hash": hash,
                "applied": applied,
                "saved": saved.is_some(),
                "warnings": warnings,
            }),
        },
    }
}

/// Compiler warnings and runtime warnings of the last attempt.
fn store_warnings(store: &GenerationStore) -> Vec<serde_json::Value> {
    let Some(attempt) = store.last_attempt() else {
        return Vec::new();
    };
    let mut out: Vec<serde_json::Value> = attempt
        .diagnostics
        .iter()
        .filter_map(|d| serde_json::to_value(d).ok())
        .collect();
    out.extend(attempt.warnings.into_iter().map(serde_json::Value::String));
    out
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder (same permissions as
/// the file it replaces), flushed to disk, then renamed over it. A symlink at `path` is followed,
/// so the file it points to is replaced and the link stays.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let target: PathBuf = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upstreams.yaml".into());
    let tmp = dir.join(format!(
        ".{file_name}.aralez-{}-{}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &target)?;
        // Make the rename itself durable (best effort: not every file system allows it).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::write_atomic;

    #[test]
    fn atomic_write_replaces_and_keeps_links() {
        let dir = std::env::temp_dir().join(format!("aralez-push-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let real = dir.join("real.yaml");
        std::fs::write(&real, "old").unwrap();
        let link = dir.join("link.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .count();
        assert_eq!(leftovers, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
