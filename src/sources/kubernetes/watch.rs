//! The list-then-watch loop of one resource (the EndpointSlices of a Service, or the Ingresses):
//! one thread each.
//!
//! - List the objects, then watch them from the list's `resourceVersion` with
//!   `allowWatchBookmarks=true`; every `ADDED`/`MODIFIED`/`DELETED` event updates the object map
//!   (keyed by namespace and name) and is reported; `BOOKMARK` only moves the version.
//! - The server ends a watch after `timeoutSeconds` (jittered around [`WATCH_TIMEOUT`]): it is
//!   reopened from the last version, as is a stream that breaks (at most every [`MIN_STREAM`]).
//!   A stream that sends nothing (not even a bookmark) for `watch_idle_seconds` is dropped and
//!   reopened the same way.
//! - `410 Gone` (an `ERROR` event with a `Status` of code 410, or the status of the request):
//!   the version is too old, the loop lists again.
//! - Any other error moves to the next server; once every server failed in a row, the loop waits
//!   a jittered exponential backoff before listing again. What was reported last keeps serving.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{Client, ClientError};
use super::slices::status_code;
use crate::sources::consul::watch::{backoff, random_unit, sleep};

/// How long the server keeps one watch open (jittered by up to a fifth).
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Least time between the openings of two watches after a broken stream (a server that cuts
/// every stream at once cannot make the loop spin).
const MIN_STREAM: Duration = Duration::from_millis(250);

/// The objects of one watch, by `namespace/name`.
pub type Objects = BTreeMap<String, Value>;

/// What one watch reports to.
pub(super) trait Watcher {
    /// What is watched, for logs.
    fn label(&self) -> &str;
    /// The list path (with its query) on `client`.
    fn path(&self, client: &Client) -> Result<String, ClientError>;
    /// The objects after a list or an event; false when the watch is retired.
    fn changed(&self, server: &str, objects: &Objects, version: &str) -> bool;
    /// A failed request (what was reported last keeps serving); false when retired.
    fn failed(&self, server: &str, e: &ClientError) -> bool;
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

/// Runs the loop of `watcher` until `stop` is set or it is retired.
pub(super) fn run(client: &Client, watcher: &dyn Watcher, stop: &AtomicBool) {
    let servers = client.servers.len().max(1);
    let mut current = 0usize;
    let mut failures = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let server = client.servers.get(current).cloned().unwrap_or_default();
        let result = if server.is_empty() {
            Err(ClientError::Settings(
                "no `servers` configured and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are unset".into(),
            ))
        } else {
            watcher
                .path(client)
                .and_then(|path| session(client, watcher, &server, &path, stop))
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match result {
            Ok(End::Stop) => return,
            Ok(_) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                if !watcher.failed(&server, &e) {
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

/// `namespace/name` of an object.
fn key(object: &Value) -> String {
    let field = |f: &str| {
        object
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    format!("{}/{}", field("namespace"), field("name"))
}

/// One list and the watches that follow it on `server`, until a relist is needed or an error.
fn session(
    client: &Client,
    watcher: &dyn Watcher,
    server: &str,
    path: &str,
    stop: &AtomicBool,
) -> Result<End, ClientError> {
    let label = watcher.label();
    let list = client.list(server, path)?;
    let mut version = list.metadata.resource_version;
    let mut objects: Objects = list
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|o| (key(&o), o))
        .collect();
    if !watcher.changed(server, &objects, &version) {
        return Ok(End::Stop);
    }
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(End::Stop);
        }
        let timeout = WATCH_TIMEOUT.mul_f64(0.8 + 0.2 * random_unit());
        let opened = Instant::now();
        let end = match client.watch(server, path, &version, timeout) {
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
                        log::info!("kubernetes: {label}: the watch sent nothing for too long; watching again");
                        break End::Rewatch;
                    }
                    // a cut stream (API server restart, load balancer): watch again; the next
                    // request says whether the server is really down
                    Err(ClientError::Transport { message, .. }) => {
                        log::info!("kubernetes: {label}: the watch stream broke ({message}); watching again");
                        sleep(MIN_STREAM.saturating_sub(opened.elapsed()), stop);
                        break End::Rewatch;
                    }
                    Err(e) => return Err(e),
                };
                let object_version = event
                    .object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" => {
                        objects.insert(key(&event.object), event.object);
                    }
                    "DELETED" => {
                        objects.remove(&key(&event.object));
                    }
                    "BOOKMARK" => {}
                    "ERROR" if status_code(&event.object) == 410 => break End::Relist,
                    "ERROR" => {
                        let message = event
                            .object
                            .get("message")
                            .and_then(Value::as_str)
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
                if event.kind != "BOOKMARK" && !watcher.changed(server, &objects, &version) {
                    return Ok(End::Stop);
                }
            },
        };
        match end {
            End::Rewatch => continue,
            End::Relist => {
                log::info!("kubernetes: {label}: version {version} is gone (410); listing again");
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
