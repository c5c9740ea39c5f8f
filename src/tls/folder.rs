//! `proxy_certificates`: load the folder into the listener's resolver, and reload it on change
//! (directory watch, trailing-edge debounce) and on SIGHUP.
//!
//! A reload builds a whole new SNI table and swaps it in one store. Pairs that do not load are
//! skipped with an error log and `aralez_tls_certificate_load_errors_total{name}`; a folder with no
//! usable pair (empty, unreadable, all broken) keeps the previous table. Nothing here panics.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};

use super::certs::{load_folder, now_unix};
use super::listener::CertResolver;
use crate::metrics::Metrics;
use crate::sources::watch::{absolute, DirWatch, WatchError};

/// The `source` label of the certificate folder's watch in metrics and `/config/status`.
pub const WATCH_SOURCE: &str = "certificates";

/// Quiet time after the last file event before a reload (same as the upstreams watcher).
pub const DEBOUNCE: std::time::Duration = crate::sources::file_watch::DEBOUNCE;

/// The certificate folder of a TLS listener.
pub struct CertFolder {
    dir: PathBuf,
    resolver: Arc<CertResolver>,
    metrics: Arc<Metrics>,
}

impl CertFolder {
    /// A folder feeding `resolver`.
    pub fn new(dir: PathBuf, resolver: Arc<CertResolver>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            dir,
            resolver,
            metrics,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the folder and, when at least one pair is usable, swaps it in. Returns the number of
    /// pairs now serving from this load (0: the previous set, if any, stays).
    pub fn reload(&self, trigger: &str) -> usize {
        let load = match load_folder(&self.dir, now_unix()) {
            Ok(l) => l,
            Err(e) => {
                log::error!(
                    "TLS certificates ({trigger}): cannot read {}: {e}; previous certificates keep serving",
                    self.dir.display()
                );
                return 0;
            }
        };
        for e in &load.errors {
            log::error!("TLS certificate skipped ({trigger}): {e}");
            self.metrics
                .tls_load_errors
                .with_label_values(&[e.name.as_str()])
                .inc();
        }
        let (n, refused) = self.resolver.install(&load.pairs);
        for e in &refused {
            log::error!("TLS certificate skipped ({trigger}): {e}");
            self.metrics
                .tls_load_errors
                .with_label_values(&[e.name.as_str()])
                .inc();
        }
        if n == 0 {
            log::error!(
                "TLS certificates ({trigger}): no usable NAME.crt + NAME.key pair in {}; {}",
                self.dir.display(),
                if self.resolver.has_certs() {
                    "previous certificates keep serving"
                } else {
                    "TLS handshakes fail until one is added"
                }
            );
            return 0;
        }
        self.metrics.tls_not_after.reset();
        for p in &load.pairs {
            if !refused.iter().any(|e| e.name == p.name) {
                self.metrics
                    .tls_not_after
                    .with_label_values(&[p.name.as_str()])
                    .set(p.not_after);
            }
        }
        let names: Vec<&str> = load.pairs.iter().map(|p| p.name.as_str()).collect();
        log::info!(
            "TLS certificates loaded ({trigger}): {n} pair(s) from {}: {}",
            self.dir.display(),
            names.join(", ")
        );
        n
    }

    /// Watches the folder (and SIGHUP) on a thread of its own; returns once armed.
    ///
    /// The folder's parent is watched too, so a folder that is deleted (or renamed away) and
    /// created again is watched again before it is read. A watch that cannot be set up is
    /// logged, counted and shown on `/config/status` (source `certificates`); SIGHUP still
    /// reloads. `Err` only when the SIGHUP listener or the reload thread cannot start.
    pub fn spawn_watch(self: &Arc<Self>) -> std::io::Result<()> {
        let (tx, rx) = channel::<&'static str>();
        let mut watch = self.arm(tx.clone());

        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        std::thread::Builder::new()
            .name("aralez-tls-sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if tx.send("sighup").is_err() {
                        return;
                    }
                }
            })?;

        let this = self.clone();
        std::thread::Builder::new()
            .name("aralez-tls-reload".into())
            .spawn(move || loop {
                let Ok(mut trigger) = rx.recv() else { return };
                loop {
                    match rx.recv_timeout(DEBOUNCE) {
                        Ok(t) => {
                            if t == "sighup" {
                                trigger = t;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                if let Some(w) = watch.as_mut() {
                    match w.rearm() {
                        Ok(()) => this.metrics.watch_armed(WATCH_SOURCE),
                        Err(e) => this.watch_failed(&e),
                    }
                }
                this.reload(trigger);
            })?;
        Ok(())
    }

    /// Watches the folder and its parent (events for the folder's own path or below count).
    fn arm(&self, tx: Sender<&'static str>) -> Option<DirWatch> {
        let armed = absolute(&self.dir).and_then(|folder| {
            let parent = folder
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            let tx = Mutex::new(tx);
            let watched = folder.clone();
            DirWatch::new(
                &parent,
                vec![folder],
                move |p| p.starts_with(&watched),
                move || {
                    if let Ok(tx) = tx.lock() {
                        let _ = tx.send("file");
                    }
                },
            )
        });
        match armed {
            Ok(w) => {
                self.metrics.watch_armed(WATCH_SOURCE);
                Some(w)
            }
            Err(e) => {
                self.watch_failed(&e);
                None
            }
        }
    }

    fn watch_failed(&self, e: &WatchError) {
        log::error!(
            "file watch of the certificate folder {}: {e}; certificate changes are NOT applied, only SIGHUP reloads",
            self.dir.display()
        );
        self.metrics.watch_failed(WATCH_SOURCE, &e.to_string());
    }
}
