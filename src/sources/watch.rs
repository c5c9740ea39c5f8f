//! The directory watch shared by the upstreams files and the certificate folder.
//!
//! - Paths are made absolute from the canonical folder first: notify reports absolute paths, so a
//!   relative `-c main.yaml` must not make every event look unrelated (a watch that silently never
//!   fires).
//! - Only changes count (create, modify, remove, rename, close after writing). Opening or reading a
//!   file is not a change: inotify reports our own reads of the files we reload, and counting them
//!   made every reload trigger the next one.
//! - A watched folder that is deleted (or renamed away) and created again is watched again: its
//!   parent is watched too, and [`DirWatch::rearm`] re-adds the folders that exist now.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Why a watch could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchError {
    /// The folder's absolute path could not be found.
    Resolve {
        /// The path as configured.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file-system notification could not be set up (e.g. the inotify watch limit).
    Watch {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: notify::Error,
    },
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { path, source } => {
                write!(f, "cannot resolve {}: {source}", path.display())
            }
            Self::Watch { path, source } => write!(f, "cannot watch {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for WatchError {}

/// True for event kinds that mean the content may have changed; false for opens and reads.
pub fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// The absolute form of `path` with its parent folder canonicalised and its last component kept
/// as written (so a symlinked folder or file is still watched by its own name). `.`/`..` as the
/// last component are resolved whole.
pub fn absolute(path: &Path) -> Result<PathBuf, WatchError> {
    let resolve_err = |source| WatchError::Resolve {
        path: path.to_path_buf(),
        source,
    };
    match path.components().next_back() {
        Some(Component::Normal(name)) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Ok(std::fs::canonicalize(parent)
                .map_err(resolve_err)?
                .join(name))
        }
        _ => std::fs::canonicalize(path).map_err(resolve_err),
    }
}

/// A non-recursive watch of one existing folder (`base`) plus folders that may come and go.
pub struct DirWatch {
    watcher: RecommendedWatcher,
    rearm: Vec<PathBuf>,
}

impl DirWatch {
    /// Watches `base` and each folder of `rearm` that exists. `on_change` runs (on notify's
    /// thread) for every change event with a path that `relevant` accepts. All paths must be
    /// absolute (see [`absolute`]).
    pub fn new(
        base: &Path,
        rearm: Vec<PathBuf>,
        relevant: impl Fn(&Path) -> bool + Send + 'static,
        on_change: impl Fn() + Send + 'static,
    ) -> Result<Self, WatchError> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if is_change(&event.kind) && event.paths.iter().any(|p| relevant(p)) {
                on_change();
            }
        })
        .map_err(|source| WatchError::Watch {
            path: base.to_path_buf(),
            source,
        })?;
        let mut this = Self { watcher, rearm };
        this.watch(base)?;
        this.rearm()?;
        Ok(this)
    }

    /// Replaces the folders that may come and go (the next [`Self::rearm`] watches them).
    pub fn set_folders(&mut self, folders: Vec<PathBuf>) {
        self.rearm = folders;
    }

    /// (Re-)adds the watch of every `rearm` folder that exists now; call it before reading them,
    /// so that nothing written after the read goes unnoticed.
    pub fn rearm(&mut self) -> Result<(), WatchError> {
        for dir in self.rearm.clone() {
            if dir.is_dir() {
                self.watch(&dir)?;
            }
        }
        Ok(())
    }

    fn watch(&mut self, dir: &Path) -> Result<(), WatchError> {
        self.watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: dir.to_path_buf(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    #[test]
    fn opens_and_reads_are_not_changes() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
    }

    #[test]
    fn relative_paths_become_absolute() {
        let abs = absolute(Path::new("Cargo.toml")).unwrap();
        assert!(abs.is_absolute());
        assert_eq!(abs.file_name().unwrap(), "Cargo.toml");
        assert!(absolute(Path::new(".")).unwrap().is_absolute());
    }
}
