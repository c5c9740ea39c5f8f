//! The Kubernetes provider (service mode): a [`Source`] whose watch is one thread per discovered
//! Service listing and then watching its EndpointSlices ([`watch`]).
//!
//! The provider follows the serving plan: after every swap (file reload or `POST /conf`) it
//! starts, restarts (settings changed) or stops its watches to match the plan's `kubernetes:`
//! section and its services. A watch that sees a new endpoint set stores it and wakes the reload
//! thread, whose read copies every known set into the generation inputs (keyed by provider,
//! namespace and Service, so they never collide with Consul's), so each change builds a whole new
//! generation through the one build (backend ids stay `host:port`: health, sticky tokens and
//! detected protocols carry over). An error never empties a set: the last good one keeps
//! serving, the state change is logged once, counted, and shown on `/config/status`.

pub mod client;
pub mod ingress;
mod ingresses;
mod secrets;
mod services;
pub mod slices;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aralez_compiler::{KubernetesConfig, Plan, Provider};
use serde_json::json;

use super::reload::{Notifier, ReadError, Source, Watch};
use super::watch::WatchError;
use aralez_compiler::Backend;

use crate::generation::{unix_now, Generation, GenerationStore, Inputs, ServiceKey};
use crate::metrics::Metrics;
use client::Client;

/// The provider label in metrics, logs and `/config/status`, and the reload trigger.
pub const PROVIDER: &str = "kubernetes";

/// The Kubernetes source of the reload thread.
pub struct KubernetesSource {
    store: Arc<GenerationStore>,
    shared: Arc<Shared>,
}

impl KubernetesSource {
    /// A source that follows what `store` serves; a relative `tokenpath` is read from `base` (the
    /// folder of upstreams.yaml).
    pub fn new(store: Arc<GenerationStore>, base: PathBuf) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            metrics: store.metrics().clone(),
            base,
        });
        Self { store, shared }
    }
}

impl Source for KubernetesSource {
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

    /// Copies the last good endpoint set of every watched service into `inputs` (the sets of
    /// other providers stay), and the service entries of the Ingresses.
    fn read(&self, inputs: &mut Inputs) -> Result<(), ReadError> {
        inputs.discovered.retain(|k, _| k.provider != PROVIDER);
        let state = self.shared.lock();
        let namespace = state.config.as_ref().and_then(|c| c.namespace.as_deref());
        inputs
            .discovered
            .extend(state.endpoints.iter().map(|(upstream, endpoints)| {
                (
                    ServiceKey::kubernetes(namespace, upstream),
                    endpoints.clone(),
                )
            }));
        inputs
            .generated
            .retain(|(name, _)| !name.starts_with(ingresses::SOURCE_PREFIX));
        if let Some(i) = &state.ingress {
            inputs
                .generated
                .extend(i.generated.iter().map(|(n, t)| (n.clone(), t.clone())));
        }
        // the TLS Secrets the served Ingresses name join the certificate folder's pairs
        if let Some(certs) = &inputs.certs {
            let empty = (
                secrets::TlsSecrets::new(),
                std::collections::BTreeSet::new(),
            );
            let (all, referenced) = state
                .ingress
                .as_ref()
                .map_or((&empty.0, &empty.1), |i| (&i.secrets, &i.referenced));
            let ours = |name: &str| name.starts_with(secrets::PAIR_PREFIX);
            let had = certs.load.pairs.iter().any(|p| ours(&p.name))
                || certs.load.errors.iter().any(|e| ours(&e.name));
            if had || !referenced.is_empty() {
                let now = crate::tls::certs::now_unix();
                inputs.certs = Some(secrets::with_secrets(certs, all, referenced, now));
            }
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
pub(super) struct State {
    notifier: Option<Notifier>,
    /// The settings the running watches use.
    config: Option<KubernetesConfig>,
    /// Bumped whenever the settings change: threads of an older epoch exit.
    epoch: u64,
    /// The watched services.
    services: BTreeMap<String, ServiceState>,
    /// The last good endpoints of each watched service that synced at least once.
    endpoints: BTreeMap<String, Vec<Backend>>,
    /// The Ingress controller (`ingress_class`).
    ingress: Option<ingresses::IngressState>,
    /// The generated entries of a stopped Ingress watch, for the next one to start from.
    last_generated: Option<BTreeMap<String, String>>,
    /// The provider state last logged (`None`: starting).
    up: Option<bool>,
    last_sync: Option<u64>,
    last_error: Option<String>,
}

pub(super) struct ServiceState {
    stop: Arc<AtomicBool>,
    /// `None` until the first answer or error.
    ok: Option<bool>,
    /// The `resourceVersion` of the last event.
    version: String,
    server: Option<String>,
    error: Option<String>,
}

impl ServiceState {
    /// Records an answer from `server`; true when it ends a failure (for a recovery log line).
    fn answered(&mut self, server: &str) -> bool {
        let recovered = self.ok == Some(false);
        self.ok = Some(true);
        self.server = Some(server.to_string());
        self.error = None;
        recovered
    }

    /// Records a failed request; true when it starts a failure (for a warning logged once).
    fn failed(&mut self, message: &str) -> bool {
        let first = self.ok != Some(false);
        self.ok = Some(false);
        self.error = Some(message.to_string());
        first
    }
}

/// The Services of `plan` that Kubernetes discovers (`name` or `name:port`).
fn services(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .routes()
        .iter()
        .filter_map(|r| r.discovery.as_ref())
        .filter(|d| d.provider == Provider::Kubernetes)
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
        let wanted = match plan.kubernetes() {
            Some(c) if plan.provider() == Provider::Kubernetes => Some((c.clone(), services(plan))),
            _ => None,
        };
        let mut state = self.lock();
        let Some((config, names)) = wanted else {
            if state.config.take().is_some() {
                log::info!("kubernetes: provider stopped");
            }
            for (_, s) in std::mem::take(&mut state.services) {
                s.stop.store(true, Ordering::SeqCst);
            }
            Self::stop_ingresses(&mut state, false);
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
            // new settings: every watch restarts; the last good sets serve until they sync,
            // unless the namespace changed (another namespace's Services are other Services)
            for s in state.services.values() {
                s.stop.store(true, Ordering::SeqCst);
            }
            state.services.clear();
            if state.config.as_ref().map(|c| &c.namespace) != Some(&config.namespace) {
                state.endpoints.clear();
            }
            Self::stop_ingresses(&mut state, config.ingress_class.is_some());
            state.epoch += 1;
            log::info!(
                "kubernetes: watching {} service(s){}",
                names.len(),
                if config.servers.is_empty() {
                    " through the in-cluster API server".to_string()
                } else {
                    format!(
                        " through {}",
                        config
                            .servers
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
            state.config = Some(config.clone());
        }
        if let Some(class) = &config.ingress_class {
            if state.ingress.is_none() {
                let client = Arc::new(Client::new(&config, &self.base));
                let address = config.ingress_status_address.clone();
                self.start_ingresses(&mut state, client, class, address);
            }
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
        if new.is_empty() {
            self.publish(&mut state);
            return;
        }
        let client = Arc::new(Client::new(&config, &self.base));
        for name in new {
            let stop = Arc::new(AtomicBool::new(false));
            let watcher = services::SliceWatch {
                shared: self.clone(),
                epoch: state.epoch,
                upstream: name.clone(),
            };
            let (thread_client, thread_stop) = (client.clone(), stop.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("aralez-k8s-{name}"))
                .spawn(move || watch::run(&thread_client, &watcher, &thread_stop));
            let error = spawned
                .err()
                .map(|e| format!("cannot start the watch thread: {e}"));
            if let Some(e) = &error {
                log::error!("kubernetes: service {name}: {e}");
            }
            state.services.insert(
                name,
                ServiceState {
                    stop,
                    ok: error.as_ref().map(|_| false),
                    version: String::new(),
                    server: None,
                    error,
                },
            );
        }
        self.publish(&mut state);
    }

    /// Counts a successful answer (`changed` or not), publishes, and on a change tells the
    /// reload thread.
    fn record_sync(&self, state: &mut State, changed: bool) {
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
        self.publish(state);
        if changed {
            if let Some(n) = &state.notifier {
                n.provider_changed(PROVIDER);
            }
        }
    }

    /// Counts a failed request, and publishes.
    fn record_failure(&self, state: &mut State, message: String) {
        state.last_error = Some(message);
        self.metrics
            .provider_updates
            .with_label_values(&[PROVIDER, "error"])
            .inc();
        self.publish(state);
    }

    /// Sets the gauge and the `/config/status` entry; logs a change of the provider state.
    fn publish(&self, state: &mut State) {
        let watches = || {
            state.services.values().chain(
                state
                    .ingress
                    .iter()
                    .flat_map(|i| [&i.watch, &i.secret_watch]),
            )
        };
        let up = if watches().any(|s| s.ok == Some(false)) {
            Some(false)
        } else if watches().all(|s| s.ok == Some(true)) {
            Some(true)
        } else {
            None
        };
        if up.is_some() && up != state.up {
            match up {
                Some(true) => log::info!("kubernetes: provider up"),
                _ => log::error!(
                    "kubernetes: provider down: {}; the last good endpoints keep serving",
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
                let endpoints = state.endpoints.get(name).map(|e| {
                    e.iter().map(ToString::to_string).collect::<Vec<_>>()
                });
                let value = json!({
                    "state": match s.ok { None => "starting", Some(true) => "up", Some(false) => "down" },
                    "endpoints": endpoints,
                    "resource_version": s.version,
                    "server": s.server,
                    "error": s.error,
                });
                (name.clone(), value)
            })
            .collect();
        let value = json!({
            "state": match up { None => "starting", Some(true) => "up", Some(false) => "down" },
            "last_sync": state.last_sync,
            "last_error": state.last_error,
            "namespace": state.config.as_ref().and_then(|c| c.namespace.clone()),
            "services": services,
            "ingress_controller": state.ingress.as_ref().map(ingresses::status),
        });
        self.metrics.set_provider_state(PROVIDER, Some(value));
    }
}
