//! The EndpointSlice watch of one discovered Service (service mode, and the backends of
//! Ingresses): its [`Watcher`] turns the slices into the Service's endpoint set, which the
//! provider keeps as the last good one.

use std::collections::BTreeMap;
use std::sync::Arc;

use aralez_compiler::Backend;

use super::client::{Client, ClientError};
use super::slices::{endpoint_set, Slice};
use super::watch::{Objects, Watcher};
use super::Shared;

/// The watch of the EndpointSlices of one `upstream` (`[NAMESPACE/]SERVICE[:PORT]`).
pub(super) struct SliceWatch {
    pub shared: Arc<Shared>,
    /// The configuration epoch the thread belongs to (a newer one retires it).
    pub epoch: u64,
    pub upstream: String,
}

impl Watcher for SliceWatch {
    fn label(&self) -> &str {
        &self.upstream
    }

    fn path(&self, client: &Client) -> Result<String, ClientError> {
        client.slices_path(&self.upstream)
    }

    fn changed(&self, server: &str, objects: &Objects, version: &str) -> bool {
        let mut unreadable = 0usize;
        let slices: BTreeMap<String, Slice> = objects
            .iter()
            .filter_map(|(k, v)| match serde_json::from_value::<Slice>(v.clone()) {
                Ok(s) => Some((k.clone(), s)),
                Err(_) => {
                    unreadable += 1;
                    None
                }
            })
            .collect();
        let port = self.upstream.split_once(':').map(|(_, p)| p);
        let (endpoints, skipped) = endpoint_set(&slices, port);
        if unreadable > 0 {
            log::warn!(
                "kubernetes: service {}: {unreadable} EndpointSlice(s) are not the documented JSON; left out",
                self.upstream
            );
        }
        self.shared.synced(
            self.epoch,
            &self.upstream,
            server,
            endpoints,
            skipped,
            version,
        )
    }

    fn failed(&self, server: &str, e: &ClientError) -> bool {
        self.shared.failed(self.epoch, &self.upstream, server, e)
    }
}

impl Shared {
    /// Records the endpoint set after a list or an event; false when the watch is retired.
    pub(crate) fn synced(
        &self,
        epoch: u64,
        service: &str,
        server: &str,
        endpoints: Vec<Backend>,
        skipped: usize,
        version: &str,
    ) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch {
            return false;
        }
        let Some(s) = state.services.get_mut(service) else {
            return false;
        };
        if s.answered(server) {
            log::info!("kubernetes: service {service}: synced again from {server}");
        }
        s.version = version.to_string();
        let changed = state.endpoints.get(service) != Some(&endpoints);
        if changed {
            let ids: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
            log::info!(
                "kubernetes: service {service}: {} ready endpoint(s){}{}",
                ids.len(),
                if ids.is_empty() { "" } else { ": " },
                ids.join(", ")
            );
            if skipped > 0 {
                log::warn!(
                    "kubernetes: service {service}: {skipped} ready endpoint address(es) left out (unusable address, or no such TCP port: name it with `upstream: SERVICE:PORT`)"
                );
            }
            state.endpoints.insert(service.to_string(), endpoints);
        }
        self.record_sync(&mut state, changed);
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
        if s.failed(&message) {
            log::warn!(
                "kubernetes: service {service}: {message}; its last good endpoints keep serving (server {server} failed, retrying)"
            );
        } else {
            log::debug!("kubernetes: service {service}: {message}");
        }
        self.record_failure(&mut state, message);
        true
    }
}
