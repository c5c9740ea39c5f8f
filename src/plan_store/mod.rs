//! The running plan: one `ArcSwap` store per change, and the reload pipeline in front of it.
//!
//! Every source of change (file watch, SIGHUP, the push API; providers next) calls
//! [`PlanStore::apply`], [`PlanStore::apply_disk`] or [`PlanStore::apply_push`]. Applies are
//! single-flight; an input that is already serving is skipped (SIGHUP always rebuilds); a config
//! that does not compile leaves the previous plan serving and is recorded as the last
//! [`Attempt`], which `/config/status` reads without waiting for a reload in progress.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use aralez_compiler::{Diagnostic, Plan};
use arc_swap::ArcSwap;
use serde::Serialize;

use crate::balance::Registry;
use crate::config::UpstreamSources;
use crate::metrics::Metrics;

mod active;

use active::prune;
pub use active::{backend_id, Active, Peer, RoutePeers};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What happened to one reload attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// What triggered it (`start`, `file`, `sighup`, `api`).
    pub trigger: String,
    /// Unix time of the attempt.
    pub at: u64,
    /// `applied`, `unchanged` or `rejected`.
    pub result: &'static str,
    /// Hash of the plan the input compiled to (when it compiled).
    pub hash: Option<String>,
    /// Errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// Runtime warnings (e.g. backends that do not resolve).
    pub warnings: Vec<String>,
}

/// The outcome of [`PlanStore::apply`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new plan is serving.
    Applied {
        /// Its hash.
        hash: String,
    },
    /// The input was byte-for-byte what is already serving.
    Unchanged,
    /// The input did not compile; the old plan keeps serving.
    Rejected(Vec<Diagnostic>),
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
    last_input: Option<UpstreamSources>,
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

/// The atomic home of the running plan.
pub struct PlanStore {
    current: ArcSwap<Active>,
    pipeline: Mutex<Pipeline>,
    board: Mutex<Board>,
    compile_ctx: CompileSettings,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    changed: Arc<tokio::sync::Notify>,
}

/// Settings from main.yaml that the upstreams compiler needs on every reload.
#[derive(Debug, Clone, Default)]
pub struct CompileSettings {
    /// A TLS listener is configured.
    pub tls_listener: bool,
    /// The master key and the folder of secret files, to resolve route auth.
    pub auth: crate::auth::AuthSettings,
}

impl PlanStore {
    /// Compiles the first plan; on failure returns the diagnostics and nothing starts. Runtime
    /// state of the plans (cursors, health, sticky tokens) lives in `registry`.
    pub fn start(
        sources: &UpstreamSources,
        settings: CompileSettings,
        metrics: Arc<Metrics>,
        registry: Arc<Registry>,
    ) -> Result<Self, Vec<Diagnostic>> {
        let (compiled, auth, auth_warnings) = compile(sources, &settings)?;
        let (mut active, mut warnings) = Active::build(compiled.value, &registry);
        active.auth = auth;
        warnings.extend(auth_warnings);
        prune(&registry, &active);
        for w in &warnings {
            log::warn!("{w}");
        }
        let attempt = Attempt {
            trigger: "start".into(),
            at: unix_now(),
            result: "applied",
            hash: Some(active.plan.hash.clone()),
            diagnostics: compiled.warnings,
            warnings,
        };
        metrics.set_active_hash(&active.plan.hash);
        metrics
            .config_reloads
            .with_label_values(&["applied", "start"])
            .inc();
        metrics.config_last_reload_successful.set(1);
        metrics
            .config_last_reload_success_ts
            .set(i64::try_from(active.since).unwrap_or(i64::MAX));
        Ok(Self {
            metrics,
            registry,
            changed: Arc::new(tokio::sync::Notify::new()),
            current: ArcSwap::from_pointee(active),
            pipeline: Mutex::new(Pipeline {
                last_input: Some(sources.clone()),
                unsaved_push: None,
                last_rejection: None,
            }),
            board: Mutex::new(Board {
                last_attempt: Some(attempt),
                unsaved_push_at: None,
            }),
            compile_ctx: settings,
        })
    }

    /// The plan serving right now (one atomic load).
    pub fn load(&self) -> Arc<Active> {
        self.current.load_full()
    }

    /// The metrics this store reports to (the reload sources record their watch state there).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Notified after every plan swap (the health checker probes new plans at once).
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Compiles `sources` and, when it compiles, swaps it in whole. Single-flight: concurrent
    /// callers wait for each other. Blocking (may resolve DNS): call from a thread, not a reactor.
    pub fn apply(&self, sources: &UpstreamSources, trigger: &str) -> Outcome {
        let mut pipeline = self.lock();
        self.apply_locked(&mut pipeline, sources, trigger)
    }

    /// Applies the upstreams files as read from disk (`file` watch or `sighup`).
    ///
    /// While a config pushed through the API without `?save` is serving, a `file` event is
    /// ignored when the files still hold what they held at the push (an editor touching the file,
    /// an unrelated event in the folder), so the push is not silently reverted. A real change of
    /// the files, or SIGHUP, applies the files and logs that they replace the unsaved push.
    pub fn apply_disk(&self, disk: &UpstreamSources, trigger: &str) -> Outcome {
        let mut pipeline = self.lock();
        if let Some(push) = &pipeline.unsaved_push {
            if trigger != "sighup" && push.disk.as_ref() == Some(disk) {
                log::info!(
                    "config reload ({trigger}): the files are unchanged since the API push at {}; the pushed config keeps serving",
                    push.at
                );
                return Outcome::Unchanged;
            }
            log::warn!(
                "config reload ({trigger}): the files on disk replace the config pushed through the API at {} (it was not saved with ?save)",
                push.at
            );
        }
        let outcome = self.apply_locked(&mut pipeline, disk, trigger);
        if !matches!(outcome, Outcome::Rejected(_)) {
            pipeline.unsaved_push = None;
            self.board().unsaved_push_at = None;
        }
        outcome
    }

    /// Applies a config pushed through the API (`POST /conf`). `disk` is what the upstreams
    /// files hold now; `save`, when given, writes the pushed text to disk and runs only after the
    /// plan applied (under the reload lock, so no file event interleaves). Returns the outcome and
    /// the result of the save.
    pub fn apply_push(
        &self,
        pushed: &UpstreamSources,
        disk: Option<UpstreamSources>,
        save: Option<&dyn Fn() -> std::io::Result<()>>,
    ) -> (Outcome, Option<std::io::Result<()>>) {
        let mut pipeline = self.lock();
        let outcome = self.apply_locked(&mut pipeline, pushed, "api");
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

    fn apply_locked(
        &self,
        pipeline: &mut Pipeline,
        sources: &UpstreamSources,
        trigger: &str,
    ) -> Outcome {
        // SIGHUP always rebuilds (it is also how backend names are resolved again)
        if trigger != "sighup"
            && pipeline.last_input.as_ref() == Some(sources)
            && self.load().auth.files_unchanged()
        {
            self.metrics
                .config_reloads
                .with_label_values(&["unchanged", trigger])
                .inc();
            if pipeline.last_rejection.take().is_some() {
                // back to what is serving after a rejected input: that rejection is over
                let hash = self.load().plan.hash.clone();
                log::info!("config ({trigger}): the input is the serving plan {hash} again");
                self.metrics.config_last_reload_successful.set(1);
                self.board().last_attempt = Some(Attempt {
                    trigger: trigger.into(),
                    at: unix_now(),
                    result: "unchanged",
                    hash: Some(hash),
                    diagnostics: Vec::new(),
                    warnings: Vec::new(),
                });
            }
            return Outcome::Unchanged;
        }
        let (outcome, attempt) = match compile(sources, &self.compile_ctx) {
            Ok((compiled, auth, auth_warnings)) => {
                let (mut active, mut warnings) = Active::build(compiled.value, &self.registry);
                active.auth = auth;
                warnings.extend(auth_warnings);
                let hash = active.plan.hash.clone();
                for w in &warnings {
                    log::warn!("{w}");
                }
                let since = i64::try_from(active.since).unwrap_or(i64::MAX);
                let active = Arc::new(active);
                self.current.store(active.clone());
                prune(&self.registry, &active);
                self.changed.notify_one();
                self.metrics.set_active_hash(&hash);
                self.metrics.config_last_reload_successful.set(1);
                self.metrics.config_last_reload_success_ts.set(since);
                pipeline.last_input = Some(sources.clone());
                pipeline.last_rejection = None;
                log::info!("config applied ({trigger}): plan {hash}");
                let attempt = Attempt {
                    trigger: trigger.into(),
                    at: unix_now(),
                    result: "applied",
                    hash: Some(hash.clone()),
                    diagnostics: compiled.warnings,
                    warnings,
                };
                (Outcome::Applied { hash }, attempt)
            }
            Err(diags) => {
                let rendered = aralez_compiler::render::render(
                    &diags,
                    aralez_compiler::render::Format::Short,
                    &sources.as_sources(),
                );
                let digest = rejection_digest(sources, &rendered);
                if pipeline.last_rejection == Some(digest) {
                    // the same input with the same diagnostics: already logged in full
                    let level = if trigger == "file" {
                        log::Level::Debug
                    } else {
                        log::Level::Warn
                    };
                    log::log!(
                        level,
                        "config still rejected ({trigger}): same input and diagnostics as logged before; previous plan keeps serving (see /config/status)"
                    );
                } else {
                    log::error!(
                        "config rejected ({trigger}), previous plan keeps serving:\n{rendered}"
                    );
                    pipeline.last_rejection = Some(digest);
                }
                let attempt = Attempt {
                    trigger: trigger.into(),
                    at: unix_now(),
                    result: "rejected",
                    hash: None,
                    diagnostics: diags.clone(),
                    warnings: Vec::new(),
                };
                (Outcome::Rejected(diags), attempt)
            }
        };
        self.metrics
            .config_reloads
            .with_label_values(&[attempt.result, trigger])
            .inc();
        if attempt.result == "rejected" {
            self.metrics.config_last_reload_successful.set(0);
        }
        self.board().last_attempt = Some(attempt);
        outcome
    }

    /// The last reload attempt (what `/config/status` shows).
    pub fn last_attempt(&self) -> Option<Attempt> {
        self.board().last_attempt.clone()
    }

    /// `/config/status` as JSON.
    pub fn status_json(&self) -> String {
        let active = self.load();
        let board = self.board();
        serde_json::json!({
            "active": { "hash": active.plan.hash, "since": active.since },
            "last_attempt": board.last_attempt,
            "unsaved_push": board.unsaved_push_at.map(|at| serde_json::json!({ "at": at })),
            "watch": self.metrics.watch_states(),
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

/// A compiled plan with its auth resolved, plus runtime warnings.
/// A validated input: the compiled plan, its resolved route secrets, and the warnings of the
/// secret resolution.
pub type Loaded = (
    aralez_compiler::Compiled<Plan>,
    crate::auth::AuthTable,
    Vec<String>,
);

/// The one validator of an upstreams input: compiles it and resolves its route secrets. The
/// running proxy (start, reload, push) and `aralez check --main` both call it, so they accept and
/// refuse the same inputs.
pub fn compile(
    sources: &UpstreamSources,
    settings: &CompileSettings,
) -> Result<Loaded, Vec<Diagnostic>> {
    let ctx = aralez_compiler::Context {
        tls_listener: settings.tls_listener,
        unsupported: crate::UNSUPPORTED_UPSTREAM_KEYS,
    };
    let compiled = aralez_compiler::compile_upstreams(&sources.as_sources(), &ctx)?;
    match crate::auth::resolve(&compiled.value, &settings.auth) {
        Ok((auth, warnings)) => Ok((compiled, auth, warnings)),
        Err(errors) => {
            let file = sources
                .files
                .first()
                .map_or("upstreams.yaml", |(n, _)| n.as_str());
            Err(crate::auth::secret_diagnostics(errors, file))
        }
    }
}
