//! Hot reload of upstreams.yaml and `conf.d/`: directory watch with a trailing-edge debounce, and
//! SIGHUP. One thread applies changes, so reloads never overlap.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use super::watch::{absolute, DirWatch, WatchError};
use crate::config::{conf_d_dir, UpstreamSources};
use crate::plan_store::{Outcome, PlanStore};

/// Quiet time after the last file event before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    File,
    Sighup,
}

/// The `source` label of the upstreams watch in metrics and `/config/status`.
pub const WATCH_SOURCE: &str = "upstreams";

/// Starts the watcher and the SIGHUP listener. A watch that cannot be set up is logged, counted
/// (`aralez_config_watch_errors_total`, `aralez_config_watch_active` 0) and shown on
/// `/config/status`; SIGHUP still reloads. `Err` only when the SIGHUP listener or the reload
/// thread cannot start.
pub fn spawn(store: Arc<PlanStore>, upstreams: PathBuf) -> std::io::Result<()> {
    let (tx, rx) = channel::<Trigger>();
    let mut watch = arm(&store, &upstreams, tx.clone());

    spawn_sighup(tx)?;

    std::thread::Builder::new()
        .name("aralez-reload".into())
        .spawn(move || loop {
            let Ok(first) = rx.recv() else { return };
            let mut trigger = first;
            // trailing edge: wait until the events stop for DEBOUNCE
            loop {
                match rx.recv_timeout(DEBOUNCE) {
                    Ok(t) => {
                        if t == Trigger::Sighup {
                            trigger = t;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            // conf.d may have appeared, or been deleted and created again: watch it (again)
            // before reading it
            if let Some(w) = watch.as_mut() {
                match w.rearm() {
                    Ok(()) => store.metrics().watch_armed(WATCH_SOURCE),
                    Err(e) => watch_failed(&store, &e),
                }
            }
            reload(&store, &upstreams, trigger);
        })?;
    Ok(())
}

/// Watches the canonical folder of `upstreams` (its file and `conf.d/`).
fn arm(store: &PlanStore, upstreams: &Path, tx: Sender<Trigger>) -> Option<DirWatch> {
    let armed = absolute(upstreams).and_then(|file| {
        let dir = file
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let conf_d = conf_d_dir(&file);
        let tx = std::sync::Mutex::new(tx);
        let watched_conf_d = conf_d.clone();
        DirWatch::new(
            &dir,
            vec![conf_d],
            move |p| p == file || p.starts_with(&watched_conf_d),
            move || {
                if let Ok(tx) = tx.lock() {
                    let _ = tx.send(Trigger::File);
                }
            },
        )
    });
    match armed {
        Ok(w) => {
            store.metrics().watch_armed(WATCH_SOURCE);
            Some(w)
        }
        Err(e) => {
            watch_failed(store, &e);
            None
        }
    }
}

fn watch_failed(store: &PlanStore, e: &WatchError) {
    log::error!(
        "file watch of the upstreams config: {e}; file changes are NOT applied, only SIGHUP reloads"
    );
    store.metrics().watch_failed(WATCH_SOURCE, &e.to_string());
}

fn reload(store: &PlanStore, upstreams: &Path, trigger: Trigger) {
    let name = match trigger {
        Trigger::File => "file",
        Trigger::Sighup => "sighup",
    };
    match UpstreamSources::read(upstreams) {
        Ok(sources) => match store.apply_disk(&sources, name) {
            Outcome::Applied { .. } | Outcome::Rejected(_) => {}
            Outcome::Unchanged => log::debug!("config unchanged ({name})"),
        },
        Err(e) => log::error!(
            "config reload ({name}): cannot read {}: {e}; previous plan keeps serving",
            upstreams.display()
        ),
    }
}

fn spawn_sighup(tx: Sender<Trigger>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("aralez-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                log::info!("SIGHUP: reloading configuration");
                if tx.send(Trigger::Sighup).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
