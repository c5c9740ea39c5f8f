//! The serving generation: one `ArcSwap<Generation>`, and the pipeline in front of it.
//!
//! Every source of change (the file and certificate watch, SIGHUP, the push API; providers
//! next) ends in [`GenerationStore::apply_disk`] or [`GenerationStore::apply_push`], which build
//! through the one [`build()`] function. Applies are single-flight; inputs that are already
//! serving are skipped (SIGHUP always rebuilds); inputs that do not compile leave the previous
//! generation serving and are recorded as the last [`Attempt`], which `/config/status` reads
//! without waiting for a reload in progress.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use aralez_compiler::Diagnostic;
use arc_swap::ArcSwap;

use crate::balance::Registry;
use crate::config::UpstreamSources;
use crate::metrics::Metrics;
use crate::tls::certset::CertSet;
use crate::tls::upstream::Detector;

mod attempt;
mod build;
mod runtime;

pub use attempt::{Attempt, AttemptResult, Outcome};
pub use build::{
    build, compile, Built, CompileSettings, Discovered, Generation, Inputs, Loaded, ServiceKey,
};
pub use runtime::{backend_id, Peer, RouteIdx, RoutePeers, RouteRuntime};

/// Seconds since the Unix epoch (the one clock of generations, limits and token checks).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What `/config/status` shows, behind its own lock: reading it never waits for a reload (which
/// holds the pipeline lock while it compiles and resolves names).
#[derive(Default)]
struct Board {
    last_attempt: Option<Attempt>,
    /// Unix time of a pushed config that is serving unsaved.
    unsaved_push_at: Option<u64>,
}

#[derive(Default)]
struct Pipeline {
    /// The inputs of the serving generation.
    last_input: Option<Inputs>,
    /// Set while a config pushed through the API and not saved is serving.
    unsaved_push: Option<UnsavedPush>,
    /// Digest of the last rejected input and its diagnostics: the same rejection is logged once.
    last_rejection: Option<[u8; 32]>,
}

/// A pushed config that differs from the files on disk.
struct UnsavedPush {
    /// Unix time of the push.
    at: u64,
    /// The files on disk when it was pushed (`None`: they could not be read).
    disk: Option<UpstreamSources>,
}

/// The atomic home of the serving generation.
pub struct GenerationStore {
    current: ArcSwap<Generation>,
    pipeline: Mutex<Pipeline>,
    board: Mutex<Board>,
    settings: CompileSettings,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    detector: Option<Arc<Detector>>,
    changed: Arc<tokio::sync::Notify>,
    swap_hooks: Mutex<Vec<SwapHook>>,
}

/// Called with every generation that starts serving (see [`GenerationStore::on_swap`]).
pub type SwapHook = Box<dyn Fn(&Generation) + Send + Sync>;

impl GenerationStore {
    /// Builds the first generation; on failure returns the diagnostics and nothing starts.
    /// Runtime state of the generations (cursors, health, protocols) lives in `registry`; with a
    /// `detector`, the protocol of every new backend is detected before its generation serves.
    pub fn start(
        inputs: Inputs,
        settings: CompileSettings,
        metrics: Arc<Metrics>,
        registry: Arc<Registry>,
        detector: Option<Arc<Detector>>,
    ) -> Result<Self, Vec<Diagnostic>> {
        let built = build(&inputs, &settings, &registry, None, "start")?;
        runtime::detect_new(detector.as_ref(), &built.generation);
        let store = Self {
            current: ArcSwap::from_pointee(built.generation),
            pipeline: Mutex::new(Pipeline::default()),
            board: Mutex::new(Board::default()),
            settings,
            metrics,
            registry,
            detector,
            changed: Arc::new(tokio::sync::Notify::new()),
            swap_hooks: Mutex::new(Vec::new()),
        };
        let attempt = Attempt {
            trigger: "start".into(),
            at: unix_now(),
            result: AttemptResult::Applied,
            hash: Some(store.load().hash().to_string()),
            diagnostics: built.diagnostics,
            warnings: built.warnings,
        };
        store.serving(&store.load(), None, &inputs, &built.cert_errors);
        store.record(attempt);
        store.lock().last_input = Some(inputs);
        Ok(store)
    }

    /// The generation serving right now (one atomic load).
    pub fn load(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The metrics this store reports to (the reload sources record their watch state there).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Notified after every swap (the health checker probes new generations at once).
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Calls `hook` with every generation that starts serving from now on (a provider follows
    /// its settings in the plan this way, whether the plan came from the files or a push). The
    /// hook runs on the applying thread under the reload lock: it must be quick and must not
    /// apply anything itself.
    pub fn on_swap(&self, hook: SwapHook) {
        self.swap_hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// The inputs of the serving generation (a source reads its part into a copy of them).
    pub fn inputs(&self) -> Option<Inputs> {
        self.lock().last_input.clone()
    }

    /// Applies inputs as read from their sources (`file` watch or `sighup`).
    ///
    /// While a config pushed through the API without `?save` is serving and the upstreams files
    /// still hold what they held at the push (an editor touching the file, a certificate change),
    /// the pushed upstreams stay and only the other inputs apply, so the push is not silently
    /// reverted. A real change of the files, or SIGHUP, applies the files and logs that they
    /// replace the unsaved push. Blocking (may resolve DNS): call from a thread, not a reactor.
    pub fn apply_disk(&self, disk: Inputs, trigger: &str) -> Outcome {
        let mut pipeline = self.lock();
        let mut inputs = disk;
        let mut keeps_push = false;
        if let Some(push) = &pipeline.unsaved_push {
            if trigger != "sighup" && push.disk.as_ref() == Some(&inputs.upstreams) {
                if let Some(last) = &pipeline.last_input {
                    inputs.upstreams = last.upstreams.clone();
                    keeps_push = true;
                }
            } else {
                log::warn!(
                    "config reload ({trigger}): the files on disk replace the config pushed through the API at {} (it was not saved with ?save)",
                    push.at
                );
            }
        }
        let outcome = self.apply_locked(&mut pipeline, inputs, trigger);
        if !keeps_push && !matches!(outcome, Outcome::Rejected(_)) {
            pipeline.unsaved_push = None;
            self.board().unsaved_push_at = None;
        }
        outcome
    }

    /// Applies a config pushed through the API (`POST /conf`) with the other inputs as they
    /// serve. `disk` is what the upstreams files hold now; `save`, when given, writes the pushed
    /// text to disk and runs only after the generation applied (under the reload lock, so no
    /// file event interleaves). Returns the outcome and the result of the save.
    pub fn apply_push(
        &self,
        pushed: &UpstreamSources,
        disk: Option<UpstreamSources>,
        save: Option<&dyn Fn() -> std::io::Result<()>>,
    ) -> (Outcome, Option<std::io::Result<()>>) {
        let mut pipeline = self.lock();
        let last = pipeline.last_input.as_ref();
        let inputs = Inputs {
            upstreams: pushed.clone(),
            certs: last.and_then(|i| i.certs.clone()),
            discovered: last.map(|i| i.discovered.clone()).unwrap_or_default(),
            generated: last.map(|i| i.generated.clone()).unwrap_or_default(),
        };
        let outcome = self.apply_locked(&mut pipeline, inputs, "api");
        if matches!(outcome, Outcome::Rejected(_)) {
            return (outcome, None);
        }
        let saved = save.map(|f| f());
        let on_disk = disk.as_ref() == Some(pushed) || matches!(saved, Some(Ok(())));
        pipeline.unsaved_push = (!on_disk).then(|| UnsavedPush {
            at: unix_now(),
            disk,
        });
        self.board().unsaved_push_at = pipeline.unsaved_push.as_ref().map(|p| p.at);
        (outcome, saved)
    }

    fn apply_locked(&self, pipeline: &mut Pipeline, inputs: Inputs, trigger: &str) -> Outcome {
        let serving = self.load();
        // SIGHUP always rebuilds (it is also how backend names are resolved again)
        if trigger != "sighup"
            && pipeline.last_input.as_ref() == Some(&inputs)
            && serving.secrets_unchanged()
        {
            self.count(AttemptResult::Unchanged, trigger);
            if pipeline.last_rejection.take().is_some() {
                // back to what is serving after a rejected input: that rejection is over
                log::info!(
                    "config ({trigger}): the input is the serving generation {} again",
                    serving.hash()
                );
                self.metrics.config_last_reload_successful.set(1);
                self.record(Attempt {
                    trigger: trigger.into(),
                    at: unix_now(),
                    result: AttemptResult::Unchanged,
                    hash: Some(serving.hash().to_string()),
                    diagnostics: Vec::new(),
                    warnings: Vec::new(),
                });
            }
            return Outcome::Unchanged;
        }
        match build(
            &inputs,
            &self.settings,
            &self.registry,
            Some(&serving),
            trigger,
        ) {
            Ok(built) => {
                runtime::detect_new(self.detector.as_ref(), &built.generation);
                let generation = Arc::new(built.generation);
                let hash = generation.hash().to_string();
                self.current.store(generation.clone());
                let previous = pipeline.last_input.as_ref();
                self.serving(&generation, previous, &inputs, &built.cert_errors);
                self.changed.notify_one();
                for hook in self
                    .swap_hooks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                {
                    hook(&generation);
                }
                pipeline.last_input = Some(inputs);
                pipeline.last_rejection = None;
                log::info!("config applied ({trigger}): generation {hash}");
                self.count(AttemptResult::Applied, trigger);
                self.record(Attempt {
                    trigger: trigger.into(),
                    at: unix_now(),
                    result: AttemptResult::Applied,
                    hash: Some(hash.clone()),
                    diagnostics: built.diagnostics,
                    warnings: built.warnings,
                });
                Outcome::Applied { hash }
            }
            Err(diags) => {
                self.rejected(pipeline, &inputs.upstreams, &diags, trigger);
                self.count(AttemptResult::Rejected, trigger);
                self.metrics.config_last_reload_successful.set(0);
                self.record(Attempt {
                    trigger: trigger.into(),
                    at: unix_now(),
                    result: AttemptResult::Rejected,
                    hash: None,
                    diagnostics: diags.clone(),
                    warnings: Vec::new(),
                });
                Outcome::Rejected(diags)
            }
        }
    }

    /// Bookkeeping once `generation` serves: prunes runtime state, logs its warnings, sets the
    /// config and certificate metrics (certificate errors are counted when the folder changed).
    fn serving(
        &self,
        generation: &Generation,
        previous: Option<&Inputs>,
        inputs: &Inputs,
        cert_errors: &[crate::tls::certs::PairError],
    ) {
        runtime::prune(&self.registry, generation.routes());
        self.metrics.set_active_hash(generation.hash());
        self.metrics.config_last_reload_successful.set(1);
        self.metrics
            .config_last_reload_success_ts
            .set(i64::try_from(generation.since).unwrap_or(i64::MAX));
        if previous.map(|p| &p.certs) == Some(&inputs.certs) {
            return;
        }
        for e in cert_errors {
            log::error!(
                "TLS certificate skipped ({}): {e}",
                generation.trigger.as_str()
            );
            self.metrics
                .tls_load_errors
                .with_label_values(&[e.name.as_str()])
                .inc();
        }
        if let Some(set) = generation.certs() {
            self.metrics.tls_not_after.reset();
            for c in set.infos() {
                self.metrics
                    .tls_not_after
                    .with_label_values(&[c.name.as_str()])
                    .set(c.not_after);
            }
            let names: Vec<&str> = set.infos().iter().map(|c| c.name.as_str()).collect();
            log::info!(
                "TLS certificates serving ({}): {}",
                generation.trigger.as_str(),
                names.join(", ")
            );
        }
    }

    /// Logs a rejection in full once; the same input with the same diagnostics again is a
    /// one-line note.
    fn rejected(
        &self,
        pipeline: &mut Pipeline,
        sources: &UpstreamSources,
        diags: &[Diagnostic],
        trigger: &str,
    ) {
        let rendered = aralez_compiler::render::render(
            diags,
            aralez_compiler::render::Format::Short,
            &sources.as_sources(),
        );
        let digest = rejection_digest(sources, &rendered);
        if pipeline.last_rejection == Some(digest) {
            let level = if trigger == "file" {
                log::Level::Debug
            } else {
                log::Level::Warn
            };
            log::log!(
                level,
                "config still rejected ({trigger}): same input and diagnostics as logged before; previous generation keeps serving (see /config/status)"
            );
        } else {
            log::error!(
                "config rejected ({trigger}), previous generation keeps serving:\n{rendered}"
            );
            pipeline.last_rejection = Some(digest);
        }
    }

    fn count(&self, result: AttemptResult, trigger: &str) {
        self.metrics
            .config_reloads
            .with_label_values(&[result.as_str(), trigger])
            .inc();
    }

    fn record(&self, attempt: Attempt) {
        for w in &attempt.warnings {
            log::warn!("{w}");
        }
        self.board().last_attempt = Some(attempt);
    }

    /// The last reload attempt (what `/config/status` shows).
    pub fn last_attempt(&self) -> Option<Attempt> {
        self.board().last_attempt.clone()
    }

    /// `/config/status` as JSON: the serving generation (hash, plan hash, since, trigger, its
    /// certificates), the last attempt, an unsaved push, and the state of every watch.
    pub fn status_json(&self) -> String {
        let generation = self.load();
        let board = self.board();
        let certificates = generation.certs().map(|c: &Arc<CertSet>| c.infos());
        serde_json::json!({
            "active": {
                "hash": generation.hash(),
                "plan_hash": generation.plan().hash(),
                "since": generation.since,
                "trigger": generation.trigger,
                "certificates": certificates,
            },
            "last_attempt": board.last_attempt,
            "unsaved_push": board.unsaved_push_at.map(|at| serde_json::json!({ "at": at })),
            "watch": self.metrics.watch_states(),
            "providers": self.metrics.provider_states(),
            "limits_store": self.metrics.limits_store_state(),
        })
        .to_string()
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Pipeline> {
        // A poisoned lock only means a panic elsewhere mid-apply; the data is still consistent
        // because the swap is the last step.
        self.pipeline.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// SHA-256 over the input files (names and texts, length-prefixed) and the rendered diagnostics.
fn rejection_digest(sources: &UpstreamSources, rendered: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(bytes);
    };
    for (name, text) in &sources.files {
        field(name.as_bytes());
        field(text.as_bytes());
    }
    field(rendered.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl crate::tls::listener::CertSource for GenerationStore {
    fn current(&self) -> Option<Arc<CertSet>> {
        self.current.load().certs().cloned()
    }
}

impl std::fmt::Debug for GenerationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationStore")
            .field("hash", &self.load().hash())
            .finish()
    }
}
