//! Hot reload of upstreams.yaml and `conf.d/`: directory watch with a trailing-edge debounce, and
//! SIGHUP. One thread applies changes, so reloads never overlap.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::config::{conf_d_dir, UpstreamSources};
use crate::plan_store::{Outcome, PlanStore};

/// Quiet time after the last file event before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    File,
    Sighup,
}

/// Starts the watcher and the SIGHUP listener; returns once both are armed.
pub fn spawn(store: Arc<PlanStore>, upstreams: PathBuf) -> std::io::Result<()> {
    let (tx, rx) = channel::<Trigger>();
    let dir = upstreams
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let conf_d = conf_d_dir(&upstreams);

    let file_tx = tx.clone();
    let watched_file = upstreams.clone();
    let watched_conf_d = conf_d.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = event.paths.iter().any(|p| {
            p.file_name() == watched_file.file_name() && p.parent() == watched_file.parent()
                || p.starts_with(&watched_conf_d)
        });
        if relevant {
            let _ = file_tx.send(Trigger::File);
        }
    })
    .map_err(std::io::Error::other)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(std::io::Error::other)?;
    let mut conf_d_watched =
        conf_d.is_dir() && watcher.watch(&conf_d, RecursiveMode::NonRecursive).is_ok();

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
            if !conf_d_watched && conf_d.is_dir() {
                conf_d_watched = watcher.watch(&conf_d, RecursiveMode::NonRecursive).is_ok();
            }
            reload(&store, &upstreams, trigger);
        })?;
    Ok(())
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
