//! Choosing a backend: the sticky cookie first, else round robin over the healthy backends of the
//! route; plus the registry of runtime state (round-robin cursors, health) that outlives plan swaps.
//!
//! Sticky cookies carry `backend_id=<token>`, where the token is an HMAC-SHA256 of the backend id
//! (`host:port` as written) under a process key: opaque (it does not reveal the address) and stable
//! across reloads. The key is derived from the master key when one is configured, so tokens also
//! survive restarts; without a master key it is random per process (a restart re-pins clients).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use ring::hmac;

use crate::generation::RoutePeers;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::tls::upstream::ProtocolCell;

/// The sticky cookie's name.
pub const COOKIE: &str = "backend_id";

/// Round-robin position of one route, kept across plan swaps.
#[derive(Debug, Default)]
pub struct RouteState {
    cursor: AtomicUsize,
}

/// Runtime state keyed by stable ids from the plan (route id, backend id), handed to every new
/// plan so that unchanged routes and backends keep their cursor and health.
pub struct Registry {
    routes: Mutex<HashMap<String, Arc<RouteState>>>,
    health: Mutex<HashMap<(String, String), Arc<Health>>>,
    protocols: Mutex<HashMap<String, (SocketAddr, Arc<ProtocolCell>)>>,
    sticky_key: hmac::Key,
    metrics: Option<Arc<Metrics>>,
}

impl Registry {
    /// A registry whose sticky tokens are keyed by `sticky_secret` (see [`sticky_secret`]).
    pub fn new(sticky_secret: &[u8], metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            routes: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            protocols: Mutex::new(HashMap::new()),
            sticky_key: hmac::Key::new(hmac::HMAC_SHA256, sticky_secret),
            metrics,
        }
    }

    /// The cursor of route `id` (created on first use).
    pub fn route_state(&self, id: &str) -> Arc<RouteState> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.entry(id.to_string()).or_default().clone()
    }

    /// The health of `backend` on route `route` at `addr`: the existing state when the backend is
    /// unchanged, else a fresh, healthy one.
    pub fn health(&self, route: &str, backend: &str, addr: SocketAddr) -> Arc<Health> {
        let mut map = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let key = (route.to_string(), backend.to_string());
        if let Some(h) = map.get(&key) {
            if h.addr == addr {
                return h.clone();
            }
        }
        let gauge = self
            .metrics
            .as_ref()
            .map(|m| m.upstream_healthy.with_label_values(&[route, backend]));
        let h = Arc::new(Health::new(addr, gauge));
        map.insert(key, h.clone());
        h
    }

    /// The protocol of backend `id` at `addr`, shared by every route that uses it: the existing
    /// cell while the backend and its address are unchanged, else a fresh (undetected) one.
    pub fn protocol(&self, id: &str, addr: SocketAddr) -> Arc<ProtocolCell> {
        let mut map = self.protocols.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some((at, cell)) if *at == addr => cell.clone(),
            _ => {
                let cell = Arc::new(ProtocolCell::default());
                map.insert(id.to_string(), (addr, cell.clone()));
                cell
            }
        }
    }

    /// Forgets the state of routes and backends that are not in `keep` (the new plan's), and
    /// removes their metric series.
    pub fn retain(&self, routes: &HashSet<&str>, backends: &HashSet<(&str, &str)>) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| routes.contains(id.as_str()));
        let mut map = self.health.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|(route, backend), _| {
            let keep = backends.contains(&(route.as_str(), backend.as_str()));
            if !keep {
                if let Some(m) = &self.metrics {
                    let _ = m.upstream_healthy.remove_label_values(&[route, backend]);
                }
            }
            keep
        });
        drop(map);
        let ids: HashSet<&str> = backends.iter().map(|(_, b)| *b).collect();
        self.protocols
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| ids.contains(id.as_str()));
    }

    /// The sticky-cookie token of a backend id (32 hex digits).
    pub fn sticky_token(&self, backend_id: &str) -> String {
        let tag = hmac::sign(&self.sticky_key, backend_id.as_bytes());
        tag.as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The secret that keys sticky tokens: derived from the master key when there is one (stable
/// across restarts), else 32 random bytes.
pub fn sticky_secret(master_key: Option<&str>) -> Vec<u8> {
    if let Some(k) = master_key {
        let key = hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes());
        return hmac::sign(&key, b"aralez sticky-session cookie v1")
            .as_ref()
            .to_vec();
    }
    let mut buf = vec![0u8; 32];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).is_err() {
        // no system randomness: fall back to std's per-process random hasher keys
        use std::hash::{BuildHasher, Hasher};
        for chunk in buf.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            for (d, s) in chunk.iter_mut().zip(h.finish().to_le_bytes()) {
                *d = s;
            }
        }
    }
    buf
}

/// How a backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The request's sticky cookie named this healthy backend.
    Sticky(usize),
    /// Round robin (a sticky route then issues a new cookie).
    RoundRobin(usize),
}

impl Pick {
    /// Index of the chosen peer.
    pub fn index(self) -> usize {
        match self {
            Pick::Sticky(i) | Pick::RoundRobin(i) => i,
        }
    }
}

/// Chooses a backend of `route`: the one the sticky `cookie` names when it is usable, else the
/// next healthy one in round-robin order; for a retry (`exclude`: the backend that just failed),
/// the next healthy one after it. With
/// `use_health` false (`healthcheck: false`) every backend counts as healthy. `None`: no usable
/// backend.
pub fn pick(
    route: &RoutePeers,
    use_health: bool,
    cookie: Option<&str>,
    exclude: Option<usize>,
) -> Option<Pick> {
    let usable = |i: usize| {
        Some(i) != exclude
            && route
                .peers
                .get(i)
                .is_some_and(|p| !use_health || p.health.is_healthy())
    };
    if let Some(token) = cookie {
        if let Some(i) = route.peers.iter().position(|p| p.sticky_token == token) {
            if usable(i) {
                return Some(Pick::Sticky(i));
            }
        }
    }
    let n = route.peers.len();
    if n == 0 {
        return None;
    }
    // a retry takes the backend after the failed one and leaves the cursor alone, so a dead
    // backend that is still in rotation costs every other request one retry, not every request
    let start = match exclude {
        Some(failed) => failed.wrapping_add(1),
        None => route.state.cursor.fetch_add(1, Ordering::Relaxed),
    };
    (0..n)
        .map(|k| start.wrapping_add(k) % n)
        .find(|&i| usable(i))
        .map(Pick::RoundRobin)
}

/// Whether a retry has somewhere to go: a usable backend other than `failed`.
pub fn has_other(route: &RoutePeers, use_health: bool, failed: Option<usize>) -> bool {
    route
        .peers
        .iter()
        .enumerate()
        .any(|(i, p)| Some(i) != failed && (!use_health || p.health.is_healthy()))
}

/// The value of the `backend_id` cookie of a request, if any.
pub fn request_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.trim_matches('"'))
        })
}

/// The `Set-Cookie` value that pins a client to `token`.
pub fn set_cookie(token: &str, max_age: Option<u64>, tls: bool) -> String {
    let mut c = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
    if tls {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::generation::Peer;

    fn peers(reg: &Registry, n: usize) -> RoutePeers {
        let peers = (0..n)
            .map(|i| {
                let id = format!("10.0.0.{i}:80");
                let addr: SocketAddr = id.parse().unwrap();
                Peer {
                    sticky_token: reg.sticky_token(&id),
                    health: reg.health("r/", &id, addr),
                    protocol: reg.protocol(&id, addr),
                    id,
                    addr,
                    sni: String::new(),
                }
            })
            .collect();
        RoutePeers {
            peers,
            state: reg.route_state("r/"),
        }
    }

    #[test]
    fn round_robin_skips_unhealthy_backends() {
        let reg = Registry::new(b"k", None);
        let r = peers(&reg, 3);
        let seq: Vec<usize> = (0..6)
            .map(|_| pick(&r, true, None, None).unwrap().index())
            .collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 1, 2]);
        r.peers[1].health.record(false, 1, 1);
        let seq: Vec<usize> = (0..4)
            .map(|_| pick(&r, true, None, None).unwrap().index())
            .collect();
        assert!(!seq.contains(&1), "{seq:?}");
        // healthcheck: false keeps it in rotation
        assert!((0..3).any(|_| pick(&r, false, None, None).unwrap().index() == 1));
        // all down: nothing to pick
        r.peers[0].health.record(false, 1, 1);
        r.peers[2].health.record(false, 1, 1);
        assert_eq!(pick(&r, true, None, None), None);
        assert!(!has_other(&r, true, None));
    }

    #[test]
    fn retries_avoid_the_failed_backend() {
        let reg = Registry::new(b"k", None);
        let r = peers(&reg, 2);
        for _ in 0..4 {
            assert_eq!(pick(&r, true, None, Some(0)), Some(Pick::RoundRobin(1)));
        }
        assert!(has_other(&r, true, Some(0)));
        let single = peers(&Registry::new(b"k", None), 1);
        assert!(!has_other(&single, true, Some(0)));
    }

    #[test]
    fn sticky_cookie_pins_while_healthy() {
        let reg = Registry::new(b"k", None);
        let r = peers(&reg, 3);
        let token = r.peers[2].sticky_token.clone();
        for _ in 0..5 {
            assert_eq!(pick(&r, true, Some(&token), None), Some(Pick::Sticky(2)));
        }
        r.peers[2].health.record(false, 1, 1);
        assert!(matches!(
            pick(&r, true, Some(&token), None),
            Some(Pick::RoundRobin(i)) if i != 2
        ));
        assert!(matches!(
            pick(&r, true, Some("forged"), None),
            Some(Pick::RoundRobin(_))
        ));
    }

    #[test]
    fn tokens_are_opaque_and_keyed() {
        let a = Registry::new(&sticky_secret(Some("master")), None);
        let b = Registry::new(&sticky_secret(Some("master")), None);
        let c = Registry::new(&sticky_secret(None), None);
        let t = a.sticky_token("10.0.0.1:80");
        assert_eq!(t.len(), 32);
        assert!(!t.contains("10.0.0.1"));
        assert_eq!(
            t,
            b.sticky_token("10.0.0.1:80"),
            "same master key, same token"
        );
        assert_ne!(t, c.sticky_token("10.0.0.1:80"));
        assert_ne!(t, a.sticky_token("10.0.0.2:80"));
    }

    #[test]
    fn state_survives_for_unchanged_backends_only() {
        let reg = Registry::new(b"k", None);
        let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let h = reg.health("r/", "b:80", addr);
        h.record(false, 1, 1);
        assert!(!reg.health("r/", "b:80", addr).is_healthy(), "kept");
        let moved: SocketAddr = "10.0.0.9:80".parse().unwrap();
        assert!(
            reg.health("r/", "b:80", moved).is_healthy(),
            "new address, new state"
        );
        let routes = HashSet::new();
        reg.retain(&routes, &HashSet::new());
        assert!(reg.health("r/", "b:80", moved).is_healthy());
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; backend_id=abc; z=2".parse().unwrap(),
        );
        assert_eq!(request_cookie(&h), Some("abc"));
        assert_eq!(request_cookie(&HeaderMap::new()), None);
        assert_eq!(
            set_cookie("t", Some(60), true),
            "backend_id=t; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
        );
        assert_eq!(
            set_cookie("t", None, false),
            "backend_id=t; Path=/; HttpOnly; SameSite=Lax"
        );
    }
}
