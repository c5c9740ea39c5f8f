//! The Ingress controller mode: one watch of the Ingresses of every namespace. Each Ingress of
//! the configured class becomes a generated list of service entries ([`super::ingress`]), one
//! generated source per Ingress, which the reload compiles beside the files (an entry that does
//! not compile is left out with W0014; an Ingress this build cannot serve as written is skipped
//! whole, logged once and shown on `/config/status`). Their backend Services are then watched
//! like the Services of service mode, in the Ingress's namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::client::{Client, ClientError};
use super::secrets::{SecretWatch, TlsSecrets};
use super::watch::{Objects, Watcher};
use super::{ingress, ServiceState, Shared, State};

/// The list path of the Ingresses of every namespace.
const INGRESSES: &str = "/apis/networking.k8s.io/v1/ingresses";
/// The prefix of the generated sources' names (`kubernetes-ingress:NAMESPACE/NAME`).
pub const SOURCE_PREFIX: &str = "kubernetes-ingress:";

/// The controller's state.
pub(super) struct IngressState {
    /// The watch.
    pub watch: ServiceState,
    /// Generated source name to its service entries (JSON): the last good set.
    pub generated: BTreeMap<String, String>,
    /// `NAMESPACE/NAME` of every Ingress of the class: its route count, or why it is skipped.
    pub reports: BTreeMap<String, Result<usize, String>>,
    /// The watch of the TLS Secrets.
    pub secret_watch: ServiceState,
    /// Every TLS Secret, as last synced.
    pub secrets: TlsSecrets,
    /// The Secrets the served Ingresses' `tls:` name.
    pub referenced: BTreeSet<String>,
}

/// The watch of the Ingresses.
pub(super) struct IngressWatch {
    pub shared: Arc<Shared>,
    pub epoch: u64,
    pub class: String,
    /// Writes `status.loadBalancer.ingress` of the served Ingresses.
    pub client: Arc<Client>,
    /// The address to write there (`None`: the status is left alone).
    pub status_address: Option<String>,
}

impl IngressWatch {
    /// Writes the configured address into the Ingress's `status.loadBalancer.ingress` when it
    /// holds something else (the watch then sees the change, which is already as wanted).
    fn write_status(&self, server: &str, key: &str, object: &serde_json::Value) {
        let Some(address) = &self.status_address else {
            return;
        };
        let wanted = if address.parse::<std::net::IpAddr>().is_ok() {
            json!([{"ip": address}])
        } else {
            json!([{"hostname": address}])
        };
        if object.pointer("/status/loadBalancer/ingress") == Some(&wanted) {
            return;
        }
        let Some((namespace, name)) = key.split_once('/') else {
            return;
        };
        let mut updated = object.clone();
        updated["status"] = json!({"loadBalancer": {"ingress": wanted}});
        let path =
            format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}/status");
        match self.client.put(server, &path, &updated) {
            Ok(()) => log::info!("kubernetes: Ingress {key}: status.loadBalancer set to {address}"),
            // 409: changed meanwhile; the next event brings it back here
            Err(e) => log::warn!("kubernetes: Ingress {key}: cannot write its status: {e}"),
        }
    }
}

impl Watcher for IngressWatch {
    fn label(&self) -> &str {
        "ingresses"
    }

    fn path(&self, _client: &Client) -> Result<String, ClientError> {
        Ok(INGRESSES.to_string())
    }

    fn changed(&self, server: &str, objects: &Objects, _version: &str) -> bool {
        let mut generated = BTreeMap::new();
        let mut reports = BTreeMap::new();
        let mut referenced = BTreeSet::new();
        for (key, object) in objects {
            if ingress::class(object) != Some(self.class.as_str()) {
                continue;
            }
            match ingress::entries(object) {
                Ok(entries) => {
                    reports.insert(key.clone(), Ok(entries.len()));
                    referenced.extend(ingress::tls_secrets(object));
                    self.write_status(server, key, object);
                    generated.insert(
                        format!("{SOURCE_PREFIX}{key}"),
                        serde_json::Value::Array(entries).to_string(),
                    );
                }
                Err(why) => {
                    reports.insert(key.clone(), Err(why));
                }
            }
        }
        self.shared
            .ingresses_synced(self.epoch, server, generated, reports, referenced)
    }

    fn failed(&self, server: &str, e: &ClientError) -> bool {
        self.shared.ingresses_failed(self.epoch, server, e)
    }
}

impl Shared {
    /// Starts the Ingress and TLS Secret watches of `class` (when not running); the Ingresses'
    /// status gets `status_address` when set.
    pub(super) fn start_ingresses(
        self: &Arc<Self>,
        state: &mut State,
        client: Arc<Client>,
        class: &str,
        status_address: Option<String>,
    ) {
        if state.ingress.is_some() {
            return;
        }
        let watcher = IngressWatch {
            shared: self.clone(),
            epoch: state.epoch,
            class: class.to_string(),
            client: client.clone(),
            status_address,
        };
        let ingress_watch = spawn("ingresses", client.clone(), Box::new(watcher));
        let secrets = SecretWatch {
            shared: self.clone(),
            epoch: state.epoch,
        };
        let secret_watch = spawn("secrets", client, Box::new(secrets));
        log::info!("kubernetes: Ingress controller for class `{class}`");
        let generated = state.last_generated.take().unwrap_or_default();
        state.ingress = Some(IngressState {
            watch: ingress_watch,
            generated,
            reports: BTreeMap::new(),
            secret_watch,
            secrets: TlsSecrets::new(),
            referenced: BTreeSet::new(),
        });
    }

    /// Stops the Ingress watch; its last good entries stay for the next one (`keep`) or go.
    pub(super) fn stop_ingresses(state: &mut State, keep: bool) {
        if let Some(i) = state.ingress.take() {
            i.watch.stop.store(true, Ordering::SeqCst);
            i.secret_watch.stop.store(true, Ordering::SeqCst);
            state.last_generated = keep.then_some(i.generated);
        }
        if !keep {
            state.last_generated = None;
        }
    }

    /// Records the Ingresses after a list or an event; false when the watch is retired.
    fn ingresses_synced(
        &self,
        epoch: u64,
        server: &str,
        generated: BTreeMap<String, String>,
        reports: BTreeMap<String, Result<usize, String>>,
        referenced: BTreeSet<String>,
    ) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch {
            return false;
        }
        let Some(i) = state.ingress.as_mut() else {
            return false;
        };
        if i.watch.answered(server) {
            log::info!("kubernetes: ingresses: synced again from {server}");
        }
        for (key, report) in &reports {
            if i.reports.get(key) != Some(report) {
                match report {
                    Ok(n) => log::info!("kubernetes: Ingress {key}: {n} route(s)"),
                    Err(why) => log::warn!("kubernetes: Ingress {key} skipped: {why}"),
                }
            }
        }
        for key in i.reports.keys().filter(|k| !reports.contains_key(*k)) {
            log::info!("kubernetes: Ingress {key}: gone");
        }
        i.reports = reports;
        let changed = i.generated != generated || i.referenced != referenced;
        i.generated = generated;
        i.referenced = referenced;
        self.record_sync(&mut state, changed);
        true
    }

    /// Records a failed request of the Ingress watch; false when it is retired.
    fn ingresses_failed(&self, epoch: u64, server: &str, e: &ClientError) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch {
            return false;
        }
        let Some(i) = state.ingress.as_mut() else {
            return false;
        };
        let message = e.to_string();
        if i.watch.failed(&message) {
            log::warn!("kubernetes: ingresses: {message}; the last good Ingresses keep serving (server {server} failed, retrying)");
        }
        self.record_failure(&mut state, message);
        true
    }
}

/// Starts one watch thread of the controller.
fn spawn(what: &str, client: Arc<Client>, watcher: Box<dyn Watcher + Send>) -> ServiceState {
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("aralez-k8s-{what}"))
        .spawn(move || super::watch::run(&client, watcher.as_ref(), &thread_stop));
    let error = spawned
        .err()
        .map(|e| format!("cannot start the watch thread: {e}"));
    if let Some(e) = &error {
        log::error!("kubernetes: {what}: {e}");
    }
    ServiceState {
        stop,
        ok: error.as_ref().map(|_| false),
        version: String::new(),
        server: None,
        error,
    }
}

impl Shared {
    /// Records the TLS Secrets after a list or an event; false when the watch is retired.
    pub(super) fn secrets_synced(&self, epoch: u64, server: &str, secrets: TlsSecrets) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch {
            return false;
        }
        let Some(i) = state.ingress.as_mut() else {
            return false;
        };
        if i.secret_watch.answered(server) {
            log::info!("kubernetes: TLS secrets: synced again from {server}");
        }
        // only the Secrets that served Ingresses name matter to the generation
        let changed = i
            .referenced
            .iter()
            .any(|k| i.secrets.get(k) != secrets.get(k));
        i.secrets = secrets;
        self.record_sync(&mut state, changed);
        true
    }

    /// Records a failed request of the Secret watch; false when it is retired.
    pub(super) fn secrets_failed(&self, epoch: u64, server: &str, e: &ClientError) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch {
            return false;
        }
        let Some(i) = state.ingress.as_mut() else {
            return false;
        };
        let message = e.to_string();
        if i.secret_watch.failed(&message) {
            log::warn!("kubernetes: TLS secrets: {message}; the last good certificates keep serving (server {server} failed, retrying)");
        }
        self.record_failure(&mut state, message);
        true
    }
}

/// The `/config/status` entry of the controller.
pub(super) fn status(i: &IngressState) -> serde_json::Value {
    let ingresses: serde_json::Map<String, serde_json::Value> = i
        .reports
        .iter()
        .map(|(key, report)| {
            let value = match report {
                Ok(n) => json!({"state": "served", "routes": n}),
                Err(why) => json!({"state": "skipped", "error": why}),
            };
            (key.clone(), value)
        })
        .collect();
    let state = |w: &ServiceState| match w.ok {
        None => "starting",
        Some(true) => "up",
        Some(false) => "down",
    };
    json!({
        "state": state(&i.watch),
        "server": i.watch.server,
        "error": i.watch.error,
        "ingresses": ingresses,
        "tls_secrets": {
            "state": state(&i.secret_watch),
            "error": i.secret_watch.error,
            "referenced": i.referenced,
        },
    })
}
