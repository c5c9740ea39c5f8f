//! A loopback stand-in for a Consul agent's HTTP API, as documented: only
//! `GET /v1/health/service/<name>` with `passing`, `dc`, `index` and `wait` (blocking queries:
//! the request is held until the index moves past `index` or `wait` ends, and every answer
//! carries `X-Consul-Index`), and the `X-Consul-Token` check (403 when the token is wrong).
//! The test controls the instances, the token, and an outage (500 to every request, held
//! requests included), and can kill it (connection refused).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One registered instance of a service.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub address: String,
    pub port: u16,
    /// Its health checks pass.
    pub passing: bool,
}

impl Instance {
    /// A passing instance at `addr`.
    pub fn at(id: &str, addr: SocketAddr) -> Self {
        Self {
            id: id.into(),
            address: addr.ip().to_string(),
            port: addr.port(),
            passing: true,
        }
    }
}

/// One request the double received (`status` 0 while it is held).
#[derive(Debug, Clone)]
pub struct Seen {
    pub target: String,
    pub token: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    index: u64,
    services: BTreeMap<String, Vec<Instance>>,
    /// Service tags (the catalog lists every registered service with its tags).
    tags: BTreeMap<String, Vec<String>>,
    token: Option<String>,
    failing: bool,
    /// Added before every answer (a slow server).
    delay: Duration,
    seen: Vec<Seen>,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

/// The double; stopped (listener closed, connections shut) on drop or [`ConsulDouble::kill`].
pub struct ConsulDouble {
    pub addr: SocketAddr,
    tls: bool,
    inner: Arc<Inner>,
}

impl ConsulDouble {
    /// Starts on 127.0.0.1 (ephemeral port), index 1, no services, no token required.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// The same over TLS with `chain_pem` + `key_pem` (`https://`).
    pub fn start_tls(chain_pem: &str, key_pem: &str) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Self::start_with(Some(Arc::new(config)))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                index: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let accept = inner.clone();
        let tls_on = tls.is_some();
        std::thread::spawn(move || {
            while !accept.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if let Ok(c) = s.try_clone() {
                            accept.conns.lock().unwrap().push(c);
                        }
                        let conn = accept.clone();
                        let tls = tls.clone();
                        std::thread::spawn(move || {
                            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                            match tls {
                                None => serve(s, &conn),
                                Some(config) => {
                                    let Ok(session) = rustls::ServerConnection::new(config) else {
                                        return;
                                    };
                                    serve(rustls::StreamOwned::new(session, s), &conn);
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            tls: tls_on,
            inner,
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` when started with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.inner.state.lock().unwrap();
        f(&mut s);
        s.index += 1;
        self.inner.changed.notify_all();
    }

    /// Registers (replaces) the instances of `service`; the index moves.
    pub fn set_service(&self, service: &str, instances: Vec<Instance>) {
        self.change(|s| {
            s.services.insert(service.to_string(), instances);
        });
    }

    /// Sets the tags of `service` (as every instance registers them); the index moves.
    pub fn set_tags(&self, service: &str, tags: &[&str]) {
        self.change(|s| {
            s.tags.insert(
                service.to_string(),
                tags.iter().map(|t| t.to_string()).collect(),
            );
        });
    }

    /// Marks the checks of instance `id` of `service` passing or failing; the index moves.
    pub fn set_passing(&self, service: &str, id: &str, passing: bool) {
        self.change(|s| {
            for i in s.services.get_mut(service).into_iter().flatten() {
                if i.id == id {
                    i.passing = passing;
                }
            }
        });
    }

    /// Requires this token from now on (`None`: any); held queries with another token end
    /// with 403, as when a token is revoked.
    pub fn set_token(&self, token: Option<&str>) {
        let mut s = self.inner.state.lock().unwrap();
        s.token = token.map(str::to_string);
        self.inner.changed.notify_all();
    }

    /// An outage: every request, held ones too, gets 500 until it is over.
    pub fn set_failing(&self, failing: bool) {
        let mut s = self.inner.state.lock().unwrap();
        s.failing = failing;
        self.inner.changed.notify_all();
    }

    /// Holds every later answer `delay` longer (a slow server).
    pub fn set_delay(&self, delay: Duration) {
        self.inner.state.lock().unwrap().delay = delay;
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.state.lock().unwrap().seen.clone()
    }

    /// Stops listening and shuts every connection (held queries included).
    pub fn kill(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.changed.notify_all();
        for c in self.inner.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve<S: Read + Write>(s: S, inner: &Inner) {
    let mut r = BufReader::new(s);
    loop {
        let Some(line) =
            crate::common::next_request_line(&mut r, || inner.stop.load(Ordering::SeqCst))
        else {
            return;
        };
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut token = None;
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
                if k.trim().eq_ignore_ascii_case("x-consul-token") {
                    token = Some(v.trim().to_string());
                }
            }
        }
        // recorded on arrival (status 0 while a query is held)
        let at = {
            let mut state = inner.state.lock().unwrap();
            state.seen.push(Seen {
                target: target.clone(),
                token: token.clone(),
                status: 0,
            });
            state.seen.len() - 1
        };
        let delay = inner.state.lock().unwrap().delay;
        std::thread::sleep(delay);
        let (status, index, body) = answer(inner, &method, &target, token.as_deref());
        if let Some(seen) = inner.state.lock().unwrap().seen.get_mut(at) {
            seen.status = status;
        }
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Consul-Index: {index}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let w = r.get_mut();
        if w.write_all(head.as_bytes()).is_err()
            || w.write_all(body.as_bytes()).is_err()
            || w.flush().is_err()
        {
            return;
        }
    }
}

/// The answer to one request: status, `X-Consul-Index`, body.
fn answer(inner: &Inner, method: &str, target: &str, token: Option<&str>) -> (u16, u64, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: BTreeMap<&str, &str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let mut state = inner.state.lock().unwrap();
    let catalog = path == "/v1/catalog/services";
    let service = match path.strip_prefix("/v1/health/service/") {
        Some(service) => service,
        None if catalog => "",
        None => return (404, state.index, "\"not found\"".into()),
    };
    if method != "GET" {
        return (405, state.index, "\"method not allowed\"".into());
    }
    let refused = |s: &State| s.token.as_deref().is_some_and(|t| token != Some(t));
    if refused(&state) {
        return (403, state.index, "\"ACL not found\"".into());
    }
    // blocking query: hold until the index moves past `index` or `wait` ends
    let wanted: u64 = params
        .get("index")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let wait = params.get("wait").map_or(Duration::from_secs(300), |w| {
        if let Some(ms) = w.strip_suffix("ms") {
            Duration::from_millis(ms.parse().unwrap_or(0))
        } else if let Some(s) = w.strip_suffix('s') {
            Duration::from_secs(s.parse().unwrap_or(0))
        } else if let Some(m) = w.strip_suffix('m') {
            Duration::from_secs(60 * m.parse::<u64>().unwrap_or(0))
        } else {
            Duration::from_secs(w.parse().unwrap_or(0))
        }
    });
    let deadline = Instant::now() + wait.min(Duration::from_secs(600));
    while wanted > 0
        && state.index <= wanted
        && !state.failing
        && !refused(&state)
        && !inner.stop.load(Ordering::SeqCst)
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        state = inner.changed.wait_timeout(state, left).unwrap().0;
    }
    if refused(&state) {
        // the token was revoked while the query was held
        return (403, state.index, "\"ACL not found\"".into());
    }
    if state.failing {
        return (500, state.index, "\"rpc error: No cluster leader\"".into());
    }
    if catalog {
        // `GET /v1/catalog/services`: every registered service with its tags
        let listing: serde_json::Map<String, serde_json::Value> = state
            .services
            .keys()
            .map(|name| {
                let tags = state.tags.get(name).cloned().unwrap_or_default();
                (name.clone(), serde_json::json!(tags))
            })
            .collect();
        return (
            200,
            state.index,
            serde_json::Value::Object(listing).to_string(),
        );
    }
    let passing = params.contains_key("passing");
    let dc = params.get("dc").copied().unwrap_or("dc1");
    let entries: Vec<serde_json::Value> = state
        .services
        .get(service)
        .into_iter()
        .flatten()
        .filter(|i| i.passing || !passing)
        .map(|i| {
            let status = if i.passing { "passing" } else { "critical" };
            serde_json::json!({
                "Node": {"ID": "", "Node": format!("node-{}", i.id), "Address": i.address, "Datacenter": dc},
                "Service": {
                    "ID": i.id, "Service": service, "Tags": state.tags.get(service).cloned().unwrap_or_default(), "Meta": {},
                    "Address": i.address, "Port": i.port,
                },
                "Checks": [
                    {"Node": format!("node-{}", i.id), "CheckID": "serfHealth", "Status": "passing"},
                    {"Node": format!("node-{}", i.id), "CheckID": format!("service:{}", i.id), "Status": status, "ServiceID": i.id},
                ],
            })
        })
        .collect();
    (
        200,
        state.index,
        serde_json::Value::Array(entries).to_string(),
    )
}
