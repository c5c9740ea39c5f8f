//! The reload thread: every watched input (upstreams.yaml, `conf.d/`, the certificate folder, the
//! secret files) and SIGHUP feed one channel; after a trailing-edge debounce, every source reads
//! its part of the inputs and the store builds one generation from them. One thread, so reloads
//! never overlap; one SIGHUP handler for everything.
//!
//! A source is a [`Source`]: a name (the `source` label in metrics and `/config/status`), a
//! watch, and a read. A watch is a folder watch that the reload thread re-arms, or threads of the
//! source's own (Consul's blocking queries, see [`super::consul`]) that call the [`Notifier`] when
//! their part changed. Providers and ACME add a source, not a pipeline.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::watch::{absolute, DirWatch, WatchError};
use crate::config::{conf_d_dir, UpstreamSources};
use crate::generation::{GenerationStore, Inputs, Outcome};
use crate::tls::certset::CertInput;

/// Quiet time after the last change before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// What woke the reload thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A watched input changed.
    File,
    /// SIGHUP: rebuild even if nothing changed (names are resolved again).
    Sighup,
    /// A discovery provider (its name) saw new endpoints.
    Provider(&'static str),
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Sighup => "sighup",
            Self::Provider(name) => name,
        }
    }
}

/// Tells the reload thread that a source may have new input (cheap to clone, any thread).
#[derive(Clone)]
pub struct Notifier(Arc<Mutex<Sender<Trigger>>>);

impl Notifier {
    /// Wakes the reload thread.
    pub fn changed(&self) {
        if let Ok(tx) = self.0.lock() {
            let _ = tx.send(Trigger::File);
        }
    }

    /// Wakes the reload thread for new endpoints of the discovery provider `name` (the trigger
    /// label of the reload).
    pub fn provider_changed(&self, name: &'static str) {
        if let Ok(tx) = self.0.lock() {
            let _ = tx.send(Trigger::Provider(name));
        }
    }
}

/// What a source's watch left running.
pub enum Watch {
    /// A folder watch, re-armed by the reload thread around every reload.
    Dir(DirWatch),
    /// The source runs threads of its own that call the [`Notifier`]; nothing to re-arm.
    Own,
}

/// Why a source's input could not be read (the previous generation keeps serving).
#[derive(Debug)]
pub struct ReadError(pub String);

/// One source of generation input.
pub trait Source: Send {
    /// The `source` label in metrics and on `/config/status`.
    fn name(&self) -> &'static str;
    /// Starts watching; `notify` is called whenever the source may have changed.
    fn watch(&self, notify: Notifier) -> Result<Watch, WatchError>;
    /// Called before each read and after each reload: watches folders that (re)appeared.
    fn rearm(&self, watch: &mut Watch) -> Result<(), WatchError> {
        match watch {
            Watch::Dir(w) => w.rearm(),
            Watch::Own => Ok(()),
        }
    }
    /// Reads this source's part into `inputs` (which holds the serving generation's inputs).
    /// `Err`: nothing is applied this time.
    fn read(&self, inputs: &mut Inputs) -> Result<(), ReadError>;
}

/// upstreams.yaml and its `conf.d/`.
pub struct UpstreamFiles(pub PathBuf);

impl Source for UpstreamFiles {
    fn name(&self) -> &'static str {
        "upstreams"
    }

    fn watch(&self, notify: Notifier) -> Result<Watch, WatchError> {
        let file = absolute(&self.0)?;
        let dir = file
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let conf_d = conf_d_dir(&file);
        let watched_conf_d = conf_d.clone();
        // a Kubernetes ConfigMap volume swaps its files through the `..data` symlink
        let swapped = dir.join("..data");
        DirWatch::new(
            &dir,
            vec![conf_d],
            move |p| p == file || p == swapped || p.starts_with(&watched_conf_d),
            move || notify.changed(),
        )
        .map(Watch::Dir)
    }

    fn read(&self, inputs: &mut Inputs) -> Result<(), ReadError> {
        inputs.upstreams = UpstreamSources::read(&self.0)
            .map_err(|e| ReadError(format!("cannot read {}: {e}", self.0.display())))?;
        Ok(())
    }
}

/// The certificate folder of the TLS listener (watched with its parent, so a folder deleted and
/// created again is watched again).
pub struct CertFolder(pub PathBuf);

impl Source for CertFolder {
    fn name(&self) -> &'static str {
        "certificates"
    }

    fn watch(&self, notify: Notifier) -> Result<Watch, WatchError> {
        let folder = absolute(&self.0)?;
        let parent = folder
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let watched = folder.clone();
        DirWatch::new(
            &parent,
            vec![folder],
            move |p| p.starts_with(&watched),
            move || notify.changed(),
        )
        .map(Watch::Dir)
    }

    /// An unreadable folder keeps the certificates as they are (logged).
    fn read(&self, inputs: &mut Inputs) -> Result<(), ReadError> {
        match CertInput::read(&self.0, crate::tls::certs::now_unix()) {
            Ok(input) => inputs.certs = Some(input),
            Err(e) => log::error!(
                "TLS certificates: cannot read {}: {e}; previous certificates keep serving",
                self.0.display()
            ),
        }
        Ok(())
    }
}

/// The secret files (`creds_file`) of the serving generation: a change to one reloads. Their
/// folders are watched as generations come (re-armed after every reload).
pub struct SecretFiles {
    store: Arc<GenerationStore>,
    /// upstreams.yaml's folder (relative `creds_file` paths resolve against it).
    base: PathBuf,
}

impl SecretFiles {
    /// The secret files of whatever `store` serves; `base` is upstreams.yaml's folder.
    pub fn new(store: Arc<GenerationStore>, base: PathBuf) -> Self {
        // the folder of a bare `upstreams.yaml` is the working directory
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Self { store, base }
    }

    fn folders(&self) -> Vec<PathBuf> {
        let generation = self.store.load();
        let mut folders: Vec<PathBuf> = generation
            .secret_files()
            .filter_map(|p| absolute(p).ok())
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        folders.sort();
        folders.dedup();
        folders
    }
}

impl Source for SecretFiles {
    fn name(&self) -> &'static str {
        "secrets"
    }

    fn watch(&self, notify: Notifier) -> Result<Watch, WatchError> {
        let store = self.store.clone();
        let base = absolute(&self.base)?;
        DirWatch::new(
            &base,
            self.folders(),
            move |p| {
                store
                    .load()
                    .secret_files()
                    .any(|f| absolute(f).is_ok_and(|f| f == p))
            },
            move || notify.changed(),
        )
        .map(Watch::Dir)
    }

    fn rearm(&self, watch: &mut Watch) -> Result<(), WatchError> {
        match watch {
            Watch::Dir(w) => {
                w.set_folders(self.folders());
                w.rearm()
            }
            Watch::Own => Ok(()),
        }
    }

    /// Nothing to read here: the build reads the secret files itself.
    fn read(&self, _inputs: &mut Inputs) -> Result<(), ReadError> {
        Ok(())
    }
}

/// Starts the reload thread with its sources and the SIGHUP handler. A watch that cannot be set
/// up is logged, counted (`aralez_config_watch_errors_total`, `aralez_config_watch_active` 0) and
/// shown on `/config/status`; SIGHUP still reloads. `Err` only when the SIGHUP listener or the
/// reload thread cannot start.
pub fn spawn(store: Arc<GenerationStore>, sources: Vec<Box<dyn Source>>) -> std::io::Result<()> {
    let (tx, rx) = channel::<Trigger>();
    let notifier = Notifier(Arc::new(Mutex::new(tx.clone())));
    let mut watches: Vec<Option<Watch>> = sources
        .iter()
        .map(|s| arm(&store, s.as_ref(), notifier.clone()))
        .collect();
    spawn_sighup(tx)?;
    std::thread::Builder::new()
        .name("aralez-reload".into())
        .spawn(move || loop {
            let Ok(mut trigger) = rx.recv() else { return };
            // trailing edge: wait until the events stop for DEBOUNCE
            loop {
                match rx.recv_timeout(DEBOUNCE) {
                    Ok(Trigger::Sighup) => trigger = Trigger::Sighup,
                    Ok(Trigger::File | Trigger::Provider(_)) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            // folders may have appeared, or been deleted and created again: watch them (again)
            // before reading them
            rearm(&store, &sources, &mut watches);
            reload(&store, &sources, trigger);
            // the new generation may read secret files in other folders
            rearm(&store, &sources, &mut watches);
        })?;
    Ok(())
}

fn arm(store: &GenerationStore, source: &dyn Source, notify: Notifier) -> Option<Watch> {
    match source.watch(notify) {
        Ok(Watch::Own) => Some(Watch::Own),
        Ok(w) => {
            store.metrics().watch_armed(source.name());
            Some(w)
        }
        Err(e) => {
            watch_failed(store, source.name(), &e);
            None
        }
    }
}

fn rearm(store: &GenerationStore, sources: &[Box<dyn Source>], watches: &mut [Option<Watch>]) {
    for (source, watch) in sources.iter().zip(watches.iter_mut()) {
        if let Some(w) = watch.as_mut().filter(|w| matches!(w, Watch::Dir(_))) {
            match source.rearm(w) {
                Ok(()) => store.metrics().watch_armed(source.name()),
                Err(e) => watch_failed(store, source.name(), &e),
            }
        }
    }
}

fn watch_failed(store: &GenerationStore, name: &str, e: &WatchError) {
    log::error!("file watch of {name}: {e}; changes are NOT applied, only SIGHUP reloads");
    store.metrics().watch_failed(name, &e.to_string());
}

fn reload(store: &GenerationStore, sources: &[Box<dyn Source>], trigger: Trigger) {
    if trigger == Trigger::Sighup {
        // systemd's `ExecReload=kill -HUP`: tell it when the reload starts and ends
        crate::notify::reloading();
        read_and_apply(store, sources, trigger);
        crate::notify::notify("READY=1");
    } else {
        read_and_apply(store, sources, trigger);
    }
}

fn read_and_apply(store: &GenerationStore, sources: &[Box<dyn Source>], trigger: Trigger) {
    let name = trigger.as_str();
    let Some(mut inputs) = store.inputs() else {
        return;
    };
    for source in sources {
        if let Err(ReadError(why)) = source.read(&mut inputs) {
            log::error!("config reload ({name}): {why}; previous generation keeps serving");
            return;
        }
    }
    if let Outcome::Unchanged = store.apply_disk(inputs, name) {
        log::debug!("config unchanged ({name})");
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
