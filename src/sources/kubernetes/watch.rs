//! The list-then-watch loop of one Service: one thread per watched Service.
//!
//! - List the Service's EndpointSlices, then watch them from the list's `resourceVersion` with
//!   `allowWatchBookmarks=true`; every `ADDED`/`MODIFIED`/`DELETED` event updates the slice map
//!   and the endpoint set; `BOOKMARK` only moves the version.
//! - The server ends a watch after `timeoutSeconds` (jittered around [`WATCH_TIMEOUT`]): it is
//!   reopened from the last version. A stream that sends nothing (not even a bookmark) for
//!   `watch_idle_seconds` is dropped and reopened the same way.
//! - `410 Gone` (an `ERROR` event with a `Status` of code 410, or the status of the request):
//!   the version is too old, the loop lists again.
//! - Any other error moves to the next server; once every server failed in a row, the loop waits
//!   a jittered exponential backoff before listing again. The last good set keeps serving.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::{Client, ClientError};
use super::slices::{endpoint_set, status_code, Slice};
use super::Shared;
use crate::sources::consul::watch::{backoff, random_unit, sleep};

/// How long the server keeps one watch open (jittered by up to a fifth).
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Least time between the openings of two watches after a broken stream (a server that cuts
/// every stream at once cannot make the loop spin).
const MIN_STREAM: Duration = Duration::from_millis(250);

/// What a watch thread needs: the client, and where to report.
pub(super) struct Ctx {
    pub client: Client,
    pub shared: Arc<Shared>,
    /// The configuration epoch the thread belongs to (a newer one retires it).
    pub epoch: u64,
}

/// How a watch ended.
enum End {
    /// The stream ended or went idle: watch again from the last version.
    Rewatch,
    /// The version is gone (410): list again.
    Relist,
    /// The watch is retired.
    Stop,
}

/// Runs the loop of `service` (`name` or `name:port`) until `stop` is set or its epoch is retired.
pub(super) fn run(ctx: &Ctx, service: &str, stop: &AtomicBool) {
    let (name, port) = match service.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (service, None),
    };
    let servers = ctx.client.servers.len().max(1);
    let mut current = 0usize;
    let mut failures = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let server = ctx.client.servers.get(current).cloned().unwrap_or_default();
        let result = if server.is_empty() {
            Err(ClientError::Settings(
                "no `servers` configured and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are unset".into(),
            ))
        } else {
            session(ctx, &server, service, name, port, stop)
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match result {
            Ok(End::Stop) => return,
            Ok(_) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                if !ctx.shared.failed(ctx.epoch, service, &server, &e) {
                    return;
                }
                current = (current + 1) % servers;
                let per_round = u32::try_from(servers).unwrap_or(u32::MAX);
                if failures % per_round == 0 {
                    sleep(backoff(failures / per_round, random_unit()), stop);
                }
            }
        }
    }
}

/// One list and the watches that follow it on `server`, until a relist is needed or an error.
fn session(
    ctx: &Ctx,
    server: &str,
    service: &str,
    name: &str,
    port: Option<&str>,
    stop: &AtomicBool,
) -> Result<End, ClientError> {
    let list = ctx.client.list(server, name)?;
    let mut version = list.metadata.resource_version;
    let mut slices: BTreeMap<String, Slice> = list
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.metadata.name.clone(), s))
        .collect();
    if !report(ctx, server, service, &slices, port, &version) {
        return Ok(End::Stop);
    }
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(End::Stop);
        }
        let timeout = WATCH_TIMEOUT.mul_f64(0.8 + 0.2 * random_unit());
        let opened = Instant::now();
        let end = match ctx.client.watch(server, name, &version, timeout) {
            Err(ClientError::Status { status: 410, .. }) => End::Relist,
            Err(e) => return Err(e),
            Ok(mut events) => loop {
                if stop.load(Ordering::SeqCst) {
                    return Ok(End::Stop);
                }
                let event = match events.next_event() {
                    Ok(Some(e)) => e,
                    Ok(None) => break End::Rewatch,
                    Err(ClientError::Transport { message, .. }) if is_idle(&message) => {
                        log::info!("kubernetes: service {service}: the watch sent nothing for too long; watching again");
                        break End::Rewatch;
                    }
                    // a cut stream (API server restart, load balancer): watch again; the next
                    // request says whether the server is really down
                    Err(ClientError::Transport { message, .. }) => {
                        log::info!("kubernetes: service {service}: the watch stream broke ({message}); watching again");
                        sleep(MIN_STREAM.saturating_sub(opened.elapsed()), stop);
                        break End::Rewatch;
                    }
                    Err(e) => return Err(e),
                };
                let object_version = event
                    .object
                    .pointer("/metadata/resourceVersion")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" | "DELETED" => {
                        let slice: Slice = serde_json::from_value(event.object).map_err(|e| {
                            ClientError::Body {
                                server: server.to_string(),
                                message: format!("watch event: {e}"),
                            }
                        })?;
                        if event.kind == "DELETED" {
                            slices.remove(&slice.metadata.name);
                        } else {
                            slices.insert(slice.metadata.name.clone(), slice);
                        }
                    }
                    "BOOKMARK" => {}
                    "ERROR" if status_code(&event.object) == 410 => break End::Relist,
                    "ERROR" => {
                        let message = event
                            .object
                            .get("message")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("no message");
                        return Err(ClientError::Body {
                            server: server.to_string(),
                            message: format!(
                                "watch error {}: {message}",
                                status_code(&event.object)
                            ),
                        });
                    }
                    other => {
                        return Err(ClientError::Body {
                            server: server.to_string(),
                            message: format!("unknown watch event type `{other}`"),
                        })
                    }
                }
                if !object_version.is_empty() {
                    version = object_version;
                }
                if event.kind != "BOOKMARK"
                    && !report(ctx, server, service, &slices, port, &version)
                {
                    return Ok(End::Stop);
                }
            },
        };
        match end {
            End::Rewatch => continue,
            End::Relist => {
                log::info!(
                    "kubernetes: service {service}: version {version} is gone (410); listing again"
                );
                return Ok(End::Relist);
            }
            End::Stop => return Ok(End::Stop),
        }
    }
}

/// A read timeout of the idle watch stream (as ureq reports it).
fn is_idle(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("timed out") || m.contains("would block") || m.contains("temporarily unavailable")
}

/// Reports the endpoint set of `slices`; false when the watch is retired.
fn report(
    ctx: &Ctx,
    server: &str,
    service: &str,
    slices: &BTreeMap<String, Slice>,
    port: Option<&str>,
    version: &str,
) -> bool {
    let (endpoints, skipped) = endpoint_set(slices, port);
    ctx.shared
        .synced(ctx.epoch, service, server, endpoints, skipped, version)
}
