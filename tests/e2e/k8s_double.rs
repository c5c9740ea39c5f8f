//! A loopback stand-in for a Kubernetes API server, as documented, over HTTPS with a generated CA:
//! only `GET /apis/discovery.k8s.io/v1/namespaces/<ns>/endpointslices` with
//! `labelSelector=kubernetes.io/service-name=<svc>` and `GET /apis/networking.k8s.io/v1/ingresses`
//! (every namespace, or `/namespaces/<ns>/ingresses`): a list (`kind: EndpointSliceList` /
//! `IngressList`, `metadata.resourceVersion`), or with `watch=true&resourceVersion=N&allowWatchBookmarks=true&
//! timeoutSeconds=S` a chunked stream of one JSON event per line (`ADDED`, `MODIFIED`, `DELETED`,
//! `BOOKMARK`, and `ERROR` with a `Status` of code 410 when N was compacted away). Every request
//! needs `Authorization: Bearer <token>` (401 with a `Status` otherwise). The test controls the
//! slices, the token, compaction, an outage (500 to every request, open watches cut), a stall
//! (open watches send nothing), and can kill it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod api;
use api::{base64, status_object, upsert, Select, INGRESSES, SECRETS, SLICES};

/// How often an idle watch gets a bookmark (the real API server: about every minute).
const BOOKMARK_EVERY: Duration = Duration::from_millis(500);

/// One endpoint of a slice: its address and `conditions.ready`.
pub type Ep<'a> = (&'a str, bool);

/// One request the double received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub target: String,
    pub token: Option<String>,
    pub status: u16,
}

struct State {
    version: u64,
    /// Compacted: a watch from a version below this gets 410.
    oldest: u64,
    /// (resource, namespace, name) to the object.
    objects: BTreeMap<(&'static str, String, String), Value>,
    /// Every change: (version, event type, resource, namespace, object).
    history: Vec<(u64, &'static str, &'static str, String, Value)>,
    token: String,
    failing: bool,
    stalled: bool,
    /// Bumped to cut every open watch.
    cut: u64,
    seen: Vec<Seen>,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

/// The double; stopped (listener closed, connections shut) on drop or [`K8sDouble::kill`].
pub struct K8sDouble {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl K8sDouble {
    /// Starts on 127.0.0.1 (ephemeral port) serving `chain_pem` + `key_pem`, requiring `token`.
    pub fn start(chain_pem: &str, key_pem: &str, token: &str) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                version: 100,
                oldest: 0,
                objects: BTreeMap::new(),
                history: Vec::new(),
                token: token.to_string(),
                failing: false,
                stalled: false,
                cut: 0,
                seen: Vec::new(),
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let accept = inner.clone();
        std::thread::spawn(move || {
            while !accept.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let Ok(raw) = s.try_clone() else { continue };
                        if let Ok(c) = s.try_clone() {
                            accept.conns.lock().unwrap().push(c);
                        }
                        let (conn, config) = (accept.clone(), config.clone());
                        std::thread::spawn(move || {
                            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                            let Ok(session) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            serve(rustls::StreamOwned::new(session, s), &raw, &conn);
                            let _ = raw.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, inner }
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.inner.state.lock().unwrap();
        f(&mut s);
        self.inner.changed.notify_all();
    }

    /// Creates or replaces the slice `name` of `service` in `ns` with `endpoints` (IPv4 or IPv6
    /// addresses, by the first one) and `ports` (name, port).
    pub fn set_slice(
        &self,
        ns: &str,
        service: &str,
        name: &str,
        endpoints: &[Ep],
        ports: &[(&str, u16)],
    ) {
        self.change(|s| {
            s.version += 1;
            let v6 = endpoints.first().is_some_and(|(a, _)| a.contains(':'));
            let object = json!({
                "kind": "EndpointSlice",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": {
                    "name": name, "namespace": ns, "resourceVersion": s.version.to_string(),
                    "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                },
                "addressType": if v6 { "IPv6" } else { "IPv4" },
                "endpoints": endpoints.iter().map(|(a, ready)| json!({
                    "addresses": [a],
                    "conditions": {"ready": ready, "serving": ready, "terminating": false},
                    "nodeName": "node-1",
                })).collect::<Vec<_>>(),
                "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"})).collect::<Vec<_>>(),
            });
            upsert(s, SLICES, ns, name, object);
        });
    }

    /// Creates or replaces the Ingress `name` in `ns` with `spec` and `annotations`.
    pub fn set_ingress(&self, ns: &str, name: &str, spec: Value, annotations: Value) {
        self.change(|s| {
            s.version += 1;
            let object = json!({
                "kind": "Ingress",
                "apiVersion": "networking.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": s.version.to_string(),
                             "annotations": annotations},
                "spec": spec,
                "status": {"loadBalancer": {}},
            });
            upsert(s, INGRESSES, ns, name, object);
        });
    }

    /// Creates or replaces the TLS Secret `name` in `ns` (`kubernetes.io/tls`, base64 `data`).
    pub fn set_tls_secret(&self, ns: &str, name: &str, crt_pem: &str, key_pem: &str) {
        self.change(|s| {
            s.version += 1;
            let object = json!({
                "kind": "Secret",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": s.version.to_string()},
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": base64(crt_pem.as_bytes()), "tls.key": base64(key_pem.as_bytes())},
            });
            upsert(s, SECRETS, ns, name, object);
        });
    }

    /// The Ingress `name` in `ns`, as stored.
    pub fn ingress(&self, ns: &str, name: &str) -> Option<Value> {
        let s = self.inner.state.lock().unwrap();
        s.objects
            .get(&(INGRESSES, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Deletes the Ingress `name` in `ns`.
    pub fn delete_ingress(&self, ns: &str, name: &str) {
        self.delete(INGRESSES, ns, name);
    }

    /// Deletes the slice `name` in `ns`.
    pub fn delete_slice(&self, ns: &str, name: &str) {
        self.delete(SLICES, ns, name);
    }

    fn delete(&self, resource: &'static str, ns: &str, name: &str) {
        self.change(|s| {
            if let Some(mut object) =
                s.objects
                    .remove(&(resource, ns.to_string(), name.to_string()))
            {
                s.version += 1;
                object["metadata"]["resourceVersion"] = json!(s.version.to_string());
                let version = s.version;
                s.history
                    .push((version, "DELETED", resource, ns.to_string(), object));
            }
        });
    }

    /// Compacts the history (a watch from any older version gets 410) and cuts the open watches,
    /// so that clients watch again from a version that is gone.
    pub fn compact_and_cut(&self) {
        self.change(|s| {
            s.version += 1;
            s.oldest = s.version;
            s.history.clear();
            s.cut += 1;
        });
    }

    /// Requires `token` from now on (a request with another gets 401; open watches go on, as
    /// on a real API server, which authenticates a request once).
    pub fn set_token(&self, token: &str) {
        self.change(|s| s.token = token.to_string());
    }

    /// An outage: every request gets 500 and open watches are cut, until it is over.
    pub fn set_failing(&self, failing: bool) {
        self.change(|s| {
            s.failing = failing;
            s.cut += 1;
        });
    }

    /// Open and new watches send nothing (no event, no bookmark) until unset.
    pub fn set_stalled(&self, stalled: bool) {
        self.change(|s| s.stalled = stalled);
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.state.lock().unwrap().seen.clone()
    }

    /// Stops listening and shuts every connection.
    pub fn kill(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.changed.notify_all();
        for c in self.inner.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for K8sDouble {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve<S: Read + Write>(s: S, raw: &TcpStream, inner: &Inner) {
    let mut r = BufReader::new(s);
    loop {
        let Some(line) =
            crate::common::next_request_line(&mut r, || inner.stop.load(Ordering::SeqCst))
        else {
            return;
        };
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let method = line.split_whitespace().next().unwrap_or("").to_string();
        let mut token = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.trim().eq_ignore_ascii_case("authorization") {
                    token = v.trim().strip_prefix("Bearer ").map(str::to_string);
                }
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0).min(1 << 20);
                }
            }
        }
        let mut body_in = vec![0u8; length];
        if r.read_exact(&mut body_in).is_err() {
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let params: BTreeMap<String, String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .map(|(k, v)| (k.to_string(), v.replace("%2F", "/").replace("%3D", "=")))
            .collect();
        let select = Select::of(path, params.get("labelSelector").map(String::as_str));
        let watch = params.get("watch").is_some_and(|w| w == "true" || w == "1");
        let (status, body) = {
            let mut s = inner.state.lock().unwrap();
            let answer = if s.failing {
                (
                    500,
                    status_object(500, "InternalError", "etcdserver: leader changed"),
                )
            } else if token.as_deref() != Some(s.token.as_str()) {
                (401, status_object(401, "Unauthorized", "Unauthorized"))
            } else if method == "PUT" {
                drop(s);
                let answer = put_status(inner, path, &body_in);
                s = inner.state.lock().unwrap();
                answer
            } else if method != "GET" {
                (
                    405,
                    status_object(405, "MethodNotAllowed", "method not allowed"),
                )
            } else if select.is_none() {
                (
                    404,
                    status_object(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                )
            } else if watch {
                (200, Value::Null)
            } else {
                let select = select.clone().unwrap();
                let items: Vec<Value> = s
                    .objects
                    .iter()
                    .filter(|((r, n, _), o)| select.picks(r, n, o))
                    .map(|(_, o)| o.clone())
                    .collect();
                (
                    200,
                    json!({"kind": select.list_kind(), "apiVersion": "v1",
                             "metadata": {"resourceVersion": s.version.to_string()}, "items": items}),
                )
            };
            drop(s);
            let mut s = inner.state.lock().unwrap();
            s.seen.push(Seen {
                target: target.clone(),
                token: token.clone(),
                status: answer.0,
            });
            answer
        };
        let w = r.get_mut();
        if status == 200 && watch {
            let from: u64 = params
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let timeout = params
                .get("timeoutSeconds")
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(1800), Duration::from_secs);
            let bookmarks = params
                .get("allowWatchBookmarks")
                .is_some_and(|v| v == "true");
            match stream(w, inner, &select.clone().unwrap(), from, timeout, bookmarks) {
                Some(()) => continue,
                None => {
                    // cut: the connection drops without the last chunk
                    let _ = raw.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
        let body = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if w.write_all(head.as_bytes()).is_err()
            || w.write_all(body.as_bytes()).is_err()
            || w.flush().is_err()
        {
            return;
        }
    }
}

/// `PUT .../namespaces/<ns>/ingresses/<name>/status`: replaces the Ingress's status (409 when
/// `metadata.resourceVersion` is not the current one), as a `MODIFIED` event.
fn put_status(inner: &Inner, path: &str, body: &[u8]) -> (u16, Value) {
    let Some((ns, name)) = path
        .strip_prefix("/apis/networking.k8s.io/v1/namespaces/")
        .and_then(|p| p.strip_suffix("/status"))
        .and_then(|p| p.split_once("/ingresses/"))
    else {
        return (404, status_object(404, "NotFound", "not found"));
    };
    let Ok(sent) = serde_json::from_slice::<Value>(body) else {
        return (400, status_object(400, "BadRequest", "not JSON"));
    };
    let mut s = inner.state.lock().unwrap();
    let key = (INGRESSES, ns.to_string(), name.to_string());
    let Some(mut object) = s.objects.get(&key).cloned() else {
        return (404, status_object(404, "NotFound", "no such Ingress"));
    };
    if sent["metadata"]["resourceVersion"] != object["metadata"]["resourceVersion"] {
        return (
            409,
            status_object(409, "Conflict", "the object has been modified"),
        );
    }
    s.version += 1;
    object["status"] = sent["status"].clone();
    object["metadata"]["resourceVersion"] = json!(s.version.to_string());
    upsert(&mut s, INGRESSES, ns, name, object.clone());
    inner.changed.notify_all();
    (200, object)
}

fn chunk<W: Write>(w: &mut W, line: &str) -> bool {
    let data = format!("{line}\n");
    w.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .is_ok()
        && w.flush().is_ok()
}

/// Streams the events of `svc` in `ns` after `from` until `timeout` (`Some`: ended cleanly) or
/// a cut / write error (`None`).
fn stream<W: Write>(
    w: &mut W,
    inner: &Inner,
    select: &Select,
    from: u64,
    timeout: Duration,
    bookmarks: bool,
) -> Option<()> {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if w.write_all(head.as_bytes()).is_err() {
        return None;
    }
    let deadline = Instant::now() + timeout;
    let mut state = inner.state.lock().unwrap();
    let cut = state.cut;
    if from < state.oldest {
        let event = json!({"type": "ERROR", "object": status_object(410, "Expired",
            &format!("too old resource version: {from} ({})", state.oldest))});
        drop(state);
        chunk(w, &event.to_string());
        return w.write_all(b"0\r\n\r\n").ok();
    }
    let mut sent = from;
    let mut last_write = Instant::now();
    loop {
        if inner.stop.load(Ordering::SeqCst) || state.cut != cut {
            return None;
        }
        if Instant::now() >= deadline {
            drop(state);
            return w.write_all(b"0\r\n\r\n").and_then(|()| w.flush()).ok();
        }
        if !state.stalled {
            let events: Vec<String> = state
                .history
                .iter()
                .filter(|(v, _, r, n, o)| *v > sent && select.picks(r, n, o))
                .map(|(_, kind, _, _, o)| json!({"type": kind, "object": o}).to_string())
                .collect();
            let version = state.version;
            let bookmark = bookmarks && last_write.elapsed() >= BOOKMARK_EVERY;
            sent = version;
            if !events.is_empty() || bookmark {
                drop(state);
                for e in &events {
                    if !chunk(w, e) {
                        return None;
                    }
                }
                if bookmark {
                    let b = json!({"type": "BOOKMARK", "object": {"kind": "EndpointSlice",
                        "apiVersion": "discovery.k8s.io/v1", "metadata": {"resourceVersion": version.to_string()}}});
                    if !chunk(w, &b.to_string()) {
                        return None;
                    }
                }
                last_write = Instant::now();
                state = inner.state.lock().unwrap();
                continue;
            }
        }
        state = inner
            .changed
            .wait_timeout(state, Duration::from_millis(100))
            .unwrap()
            .0;
    }
}
