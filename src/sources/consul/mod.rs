//! The Consul provider: a [`Source`] whose watch is one thread per discovered service running
//! blocking queries against `GET /v1/health/service/<name>?passing=true` ([`watch`]).
//!
//! The provider follows the serving plan: after every swap (file reload or `POST /conf`) it
//! starts, restarts (settings changed) or stops its watches to match the plan's `consul:`
//! section and its services. A watch that sees a new endpoint set stores it and wakes the reload
//! thread, whose read copies every known set into the generation inputs, so each change builds
//! a whole new generation through the one build (backend ids stay `host:port`: health, sticky
//! tokens and detected protocols carry over). An error never empties a set: the last good one
//! keeps serving, the state change is logged once, counted, and shown on `/config/status`.

pub mod client;
pub mod tags;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aralez_compiler::{ConsulConfig, Plan, Provider};
use serde_json::json;

use super::reload::{Notifier, ReadError, Source, Watch};
use super::watch::WatchError;
use crate::generation::{unix_now, Discovered, Generation, GenerationStore, Inputs};
use crate::metrics::Metrics;
use client::{Answer, Client, ClientError};

/// The provider label in metrics, logs and `/config/status`, and the reload trigger.
pub const PROVIDER: &str = "consul";

/// The Consul source of the reload thread.
pub struct ConsulSource {
    store: Arc<GenerationStore>,
    shared: Arc<Shared>,
}

impl ConsulSource {
    /// A source that follows what `store` serves; relative `token_file` and `tls.ca_file` are read
    /// from `base` (the folder of upstreams.yaml).
    pub fn new(store: Arc<GenerationStore>, base: PathBuf) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            metrics: store.metrics().clone(),
            base,
        });
        Self { store, shared }
    }
}

impl Source for ConsulSource {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// Starts the watches of the serving plan, and follows every later plan.
    fn watch(&self, notify: Notifier) -> Result<Watch, WatchError> {
        self.shared.lock().notifier = Some(notify);
        let shared = self.shared.clone();
        self.store
            .on_swap(Box::new(move |g: &Generation| shared.follow(g.plan())));
        self.shared.follow(self.store.load().plan());
        Ok(Watch::Own)
    }

    /// Copies the last good endpoint set of every watched service into `inputs`, and in tag
    /// mode the service entries of the last good catalog.
    fn read(&self, inputs: &mut Inputs) -> Result<(), ReadError> {
        let state = self.shared.lock();
        inputs.discovered = state.endpoints.clone();
        inputs.generated.retain(|(name, _)| name != tags::SOURCE);
        if let Some(text) = &state.generated {
            inputs
                .generated
                .push((tags::SOURCE.to_string(), text.clone()));
        }
        Ok(())
    }
}

/// What the watches share with the source.
pub(crate) struct Shared {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    /// The folder of upstreams.yaml.
    base: PathBuf,
}

#[derive(Default)]
struct State {
    notifier: Option<Notifier>,
    /// The settings the running watches use.
    config: Option<ConsulConfig>,
    /// Bumped whenever the settings change: threads of an older epoch exit.
    epoch: u64,
    /// The watched services.
    services: BTreeMap<String, ServiceState>,
    /// The last good endpoints of each watched service that synced at least once.
    endpoints: Discovered,
    /// Tag mode: the catalog watch.
    catalog: Option<ServiceState>,
    /// Tag mode: the service entries of the last good catalog answer (JSON), `None` before it.
    generated: Option<String>,
    /// The provider state last logged (`None`: starting).
    up: Option<bool>,
    last_sync: Option<u64>,
    last_error: Option<String>,
}

struct ServiceState {
    stop: Arc<AtomicBool>,
    /// `None` until the first answer or error.
    ok: Option<bool>,
    index: u64,
    server: Option<String>,
    error: Option<String>,
}

/// The services of `plan` that Consul discovers.
fn services(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .routes()
        .iter()
        .filter_map(|r| r.discovery.as_ref())
        .filter(|d| d.provider == Provider::Consul)
        .map(|d| d.service.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts, restarts or stops watches so that they match `plan`.
    fn follow(self: &Arc<Self>, plan: &Plan) {
        let wanted = match plan.consul() {
            Some(c) if plan.provider() == Provider::Consul => Some((c.clone(), services(plan))),
            _ => None,
        };
        let mut state = self.lock();
        let Some((config, names)) = wanted else {
            if state.config.take().is_some() {
                log::info!("consul: provider stopped");
            }
            for (_, s) in std::mem::take(&mut state.services) {
                s.stop.store(true, Ordering::SeqCst);
            }
            if let Some(c) = state.catalog.take() {
                c.stop.store(true, Ordering::SeqCst);
            }
            state.generated = None;
            state.endpoints.clear();
            state.epoch += 1;
            state.up = None;
            self.metrics.set_provider_state(PROVIDER, None);
            let _ = self.metrics.provider_up.remove_label_values(&[PROVIDER]);
            return;
        };
        if state.notifier.is_none() {
            return;
        }
        if state.config.as_ref() != Some(&config) {
            // new settings: every watch restarts; the last good sets serve until they sync
            for s in state.services.values() {
                s.stop.store(true, Ordering::SeqCst);
            }
            state.services.clear();
            if let Some(c) = state.catalog.take() {
                c.stop.store(true, Ordering::SeqCst);
            }
            if !config.tag_mode {
                state.generated = None;
            }
            state.epoch += 1;
            log::info!(
                "consul: watching {} service(s) through {}",
                names.len(),
                config.servers.join(", ")
            );
            state.config = Some(config.clone());
        }
        let removed: Vec<String> = state
            .services
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect();
        for name in removed {
            if let Some(s) = state.services.remove(&name) {
                s.stop.store(true, Ordering::SeqCst);
            }
        }
        state.endpoints.retain(|k, _| names.contains(k));
        let new: Vec<String> = names
            .into_iter()
            .filter(|n| !state.services.contains_key(n))
            .collect();
        let catalog_wanted = config.tag_mode && state.catalog.is_none();
        if new.is_empty() && !catalog_wanted {
            self.publish(&mut state);
            return;
        }
        let ctx = Arc::new(watch::Ctx {
            client: Client::new(&config, &self.base),
            servers: config.servers.clone(),
            shared: self.clone(),
            epoch: state.epoch,
        });
        if catalog_wanted {
            state.catalog = Some(spawn_watch(&ctx, "catalog", watch::CatalogTags));
        }
        for name in new {
            let watch = spawn_watch(&ctx, &name, watch::Health(name.clone()));
            state.services.insert(name, watch);
        }
        self.publish(&mut state);
    }

    /// Records a catalog answer (tag mode); false when the watch is retired.
    pub(crate) fn catalog_synced(
        &self,
        epoch: u64,
        server: &str,
        index: u64,
        services: &BTreeMap<String, Vec<String>>,
    ) -> bool {
        let mut state = self.lock();
        let current = state.epoch == epoch;
        let Some(c) = state.catalog.as_mut().filter(|_| current) else {
            return false;
        };
        c.ok = Some(true);
        c.index = index;
        c.server = Some(server.to_string());
        c.error = None;
        let text = tags::entries(services);
        let changed = state.generated.as_ref() != Some(&text);
        if changed {
            log::info!("consul: catalog tags: {text}");
            state.generated = Some(text);
        }
        self.metrics
            .provider_updates
            .with_label_values(&[PROVIDER, if changed { "changed" } else { "unchanged" }])
            .inc();
        self.publish(&mut state);
        if changed {
            if let Some(n) = &state.notifier {
                n.provider_changed(PROVIDER);
            }
        }
        true
    }

    /// Records a failed catalog query (the last good entries stay); false when retired.
    pub(crate) fn catalog_failed(&self, epoch: u64, server: &str, e: &ClientError) -> bool {
        let mut state = self.lock();
        let current = state.epoch == epoch;
        let Some(c) = state.catalog.as_mut().filter(|_| current) else {
            return false;
        };
        let message = e.to_string();
        if c.ok != Some(false) {
            log::warn!(
                "consul: catalog: {message}; the last good tagged services keep serving (server {server} failed, retrying)"
            );
        }
        c.ok = Some(false);
        c.error = Some(message.clone());
        c.index = 0;
        state.last_error = Some(message);
        self.metrics
            .provider_updates
            .with_label_values(&[PROVIDER, "error"])
            .inc();
        self.publish(&mut state);
        true
    }

    /// Records an answer; false when the watch is retired.
    pub(crate) fn synced(&self, epoch: u64, service: &str, server: &str, answer: Answer) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch {
            return false;
        }
        let Some(s) = state.services.get_mut(service) else {
            return false;
        };
        if s.ok != Some(true) && s.ok.is_some() {
            log::info!("consul: service {service}: synced again from {server}");
        }
        s.ok = Some(true);
        s.index = answer.index;
        s.server = Some(server.to_string());
        s.error = None;
        let changed = state.endpoints.get(service) != Some(&answer.endpoints);
        if changed {
            let ids: Vec<String> = answer.endpoints.iter().map(ToString::to_string).collect();
            log::info!(
                "consul: service {service}: {} passing endpoint(s){}{}",
                ids.len(),
                if ids.is_empty() { "" } else { ": " },
                ids.join(", ")
            );
            if answer.skipped > 0 {
                log::warn!(
                    "consul: service {service}: {} instance(s) left out (no usable address or port)",
                    answer.skipped
                );
            }
            state
                .endpoints
                .insert(service.to_string(), answer.endpoints);
        }
        let now = unix_now();
        state.last_sync = Some(now);
        self.metrics
            .provider_updates
            .with_label_values(&[PROVIDER, if changed { "changed" } else { "unchanged" }])
            .inc();
        self.metrics
            .provider_last_sync
            .with_label_values(&[PROVIDER])
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        self.publish(&mut state);
        if changed {
            if let Some(n) = &state.notifier {
                n.provider_changed(PROVIDER);
            }
        }
        true
    }

    /// Records a failed query (the last good endpoints stay); false when the watch is retired.
    pub(crate) fn failed(&self, epoch: u64, service: &str, server: &str, e: &ClientError) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch {
            return false;
        }
        let Some(s) = state.services.get_mut(service) else {
            return false;
        };
        let message = e.to_string();
        if s.ok != Some(false) {
            log::warn!(
                "consul: service {service}: {message}; its last good endpoints keep serving (server {server} failed, retrying)"
            );
        } else {
            log::debug!("consul: service {service}: {message}");
        }
        s.ok = Some(false);
        s.error = Some(message.clone());
        s.index = 0;
        state.last_error = Some(message);
        self.metrics
            .provider_updates
            .with_label_values(&[PROVIDER, "error"])
            .inc();
        self.publish(&mut state);
        true
    }

    /// Sets the gauge and the `/config/status` entry; logs a change of the provider state.
    fn publish(&self, state: &mut State) {
        let watches = || state.services.values().chain(state.catalog.as_ref());
        let up = if watches().any(|s| s.ok == Some(false)) {
            Some(false)
        } else if watches().all(|s| s.ok == Some(true)) {
            Some(true)
        } else {
            None
        };
        if up.is_some() && up != state.up {
            match up {
                Some(true) => log::info!("consul: provider up"),
                _ => log::error!(
                    "consul: provider down: {}; the last good endpoints keep serving",
                    state.last_error.as_deref().unwrap_or("error")
                ),
            }
            state.up = up;
        }
        self.metrics
            .provider_up
            .with_label_values(&[PROVIDER])
            .set(i64::from(up == Some(true)));
        let services: serde_json::Map<String, serde_json::Value> = state
            .services
            .iter()
            .map(|(name, s)| {
                let endpoints = state
                    .endpoints
                    .get(name)
                    .map(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>());
                let value = json!({
                    "state": watch_state(s.ok),
                    "endpoints": endpoints,
                    "index": s.index,
                    "server": s.server,
                    "error": s.error,
                });
                (name.clone(), value)
            })
            .collect();
        let catalog = state.catalog.as_ref().map(|c| {
            json!({
                "state": watch_state(c.ok),
                "index": c.index,
                "server": c.server,
                "error": c.error,
                "entries": state.generated.as_deref().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()),
            })
        });
        let value = json!({
            "state": watch_state(up),
            "last_sync": state.last_sync,
            "last_error": state.last_error,
            "services": services,
            "catalog": catalog,
        });
        self.metrics.set_provider_state(PROVIDER, Some(value));
    }
}

/// A watch's state as `/config/status` shows it.
fn watch_state(ok: Option<bool>) -> &'static str {
    match ok {
        None => "starting",
        Some(true) => "up",
        Some(false) => "down",
    }
}

/// Starts the thread of one watch (`name` for the thread and the log).
fn spawn_watch<Q: watch::Query + Send + 'static>(
    ctx: &Arc<watch::Ctx>,
    name: &str,
    query: Q,
) -> ServiceState {
    let stop = Arc::new(AtomicBool::new(false));
    let (thread_ctx, thread_stop) = (ctx.clone(), stop.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("aralez-consul-{name}"))
        .spawn(move || watch::run(&thread_ctx, &query, &thread_stop));
    let error = spawned
        .err()
        .map(|e| format!("cannot start the watch thread: {e}"));
    if let Some(e) = &error {
        log::error!("consul: {name}: {e}");
    }
    ServiceState {
        stop,
        ok: error.as_ref().map(|_| false),
        index: 0,
        server: None,
        error,
    }
}
