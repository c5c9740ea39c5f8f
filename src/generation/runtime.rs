//! What a generation serves: per route, its policy, its resolved peers with their runtime state,
//! and its authentication, in one value ([`RouteRuntime`]) indexed by a [`RouteIdx`].

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use aralez_compiler::{Backend, Plan, Route};
use pingora::http::IntoCaseHeaderName;

use crate::auth::RouteAuth;
use crate::balance::{Registry, RouteState};
use crate::health::Health;
use crate::tls::upstream::ProtocolCell;

/// Index of a route in its generation; only [`super::Generation::lookup`] makes one, so it is
/// always valid for the generation it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteIdx(pub(super) usize);

/// One route as it serves: its compiled policy, its peers and its authentication.
#[derive(Debug)]
pub struct RouteRuntime {
    /// The compiled route (host, path, limits, headers, flags).
    pub policy: Arc<Route>,
    /// Its backends, resolved, with the round-robin cursor.
    pub peers: RoutePeers,
    /// Its authentication with the secret loaded (`None`: open).
    pub auth: Option<RouteAuth>,
    /// `policy.request_headers` with each name's wire spelling made once per generation.
    pub request_headers: WireHeaders,
    /// `policy.response_headers` with each name's wire spelling made once per generation.
    pub response_headers: WireHeaders,
}

/// Headers to add, as pingora takes them: the name's wire spelling (as `Bytes`, which pingora
/// takes as the spelling itself) and the value. Made from a `HeaderName`, pingora derives that
/// spelling again (a heap copy for a non-standard name) on every request; cloned from here it is
/// a reference count.
pub type WireHeaders = Vec<(bytes::Bytes, http::HeaderValue)>;

/// The wire spelling pingora itself gives `list`'s names (title case for standard ones, as
/// written otherwise), made once.
fn wire_headers(list: &aralez_compiler::HeaderList) -> WireHeaders {
    list.iter()
        .map(|(name, value)| {
            let spelling = name.into_case_header_name();
            (
                bytes::Bytes::copy_from_slice(spelling.as_slice()),
                value.clone(),
            )
        })
        .collect()
}

/// The resolved backends of one route and its runtime state (see [`crate::balance`]).
#[derive(Debug, Default)]
pub struct RoutePeers {
    /// Backends that resolved to an address, in config order.
    pub peers: Vec<Peer>,
    /// Round-robin position, shared with the previous generation's route of the same id.
    pub state: Arc<RouteState>,
}

/// One upstream server, ready to connect to.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `host:port` as written in the config; the stable backend id.
    pub id: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Host name to send as SNI (empty for IP literals).
    pub sni: String,
    /// Health of this backend on this route, shared across generations while it is unchanged.
    pub health: Arc<Health>,
    /// How the backend speaks, as last detected (shared by every route that uses it).
    pub protocol: Arc<ProtocolCell>,
    /// Value of the sticky cookie that names this backend.
    pub sticky_token: String,
}

impl Peer {
    /// What protocol detection needs of this peer: where to probe, and the cell to fill.
    pub fn detection_target(&self) -> crate::tls::upstream::Target {
        crate::tls::upstream::Target {
            id: self.id.clone(),
            addr: self.addr,
            sni: self.sni.clone(),
            cell: self.protocol.clone(),
        }
    }
}

/// Builds the runtime of every route of `plan` with `auth` (same order): backends resolved
/// (blocking DNS for names; literals are parsed), those that do not resolve left out and
/// reported in the returned warnings. Runtime state comes from `registry`, so unchanged routes
/// and backends keep theirs.
///
/// A route whose backends a provider discovers takes them from `discovered` (none, with a
/// warning, while its service has not been synced or has no passing instance).
pub(super) fn routes(
    plan: &Plan,
    auth: Vec<Option<RouteAuth>>,
    registry: &Registry,
    discovered: &super::Discovered,
) -> (Vec<RouteRuntime>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut cache: std::collections::HashMap<(String, u16), Option<SocketAddr>> =
        std::collections::HashMap::new();
    let mut auth = auth.into_iter();
    let routes = plan
        .routes()
        .iter()
        .map(|route| {
            let backends = match &route.discovery {
                None => route.backends.as_slice(),
                Some(d) => match discovered.get(&super::ServiceKey::of(plan, d)) {
                    Some(list) => {
                        if list.is_empty() {
                            warnings.push(format!(
                                "route {}: {} service `{}` has no passing instance",
                                route.id,
                                d.provider.as_str(),
                                d.service
                            ));
                        }
                        list.as_slice()
                    }
                    None => {
                        warnings.push(format!(
                            "route {}: {} service `{}` is not synced yet; no backend until it is",
                            route.id,
                            d.provider.as_str(),
                            d.service
                        ));
                        &[]
                    }
                },
            };
            let peers = backends
                .iter()
                .filter_map(|b| {
                    let addr = *cache
                        .entry((b.host.clone(), b.port))
                        .or_insert_with(|| resolve(b));
                    match addr {
                        Some(addr) => Some(peer(b, addr, &route.id, registry)),
                        None => {
                            warnings.push(format!(
                                "route {}: backend {}:{} does not resolve; left out",
                                route.id, b.host, b.port
                            ));
                            None
                        }
                    }
                })
                .collect();
            RouteRuntime {
                policy: route.clone(),
                peers: RoutePeers {
                    peers,
                    state: registry.route_state(&route.id),
                },
                auth: auth.next().flatten(),
                request_headers: wire_headers(&route.request_headers),
                response_headers: wire_headers(&route.response_headers),
            }
        })
        .collect();
    (routes, warnings)
}

fn peer(b: &Backend, addr: SocketAddr, route: &str, registry: &Registry) -> Peer {
    let is_ip = b.host.parse::<std::net::IpAddr>().is_ok();
    let id = backend_id(b);
    Peer {
        health: registry.health(route, &id, addr),
        protocol: registry.protocol(&id, addr),
        sticky_token: registry.sticky_token(&id),
        id,
        addr,
        sni: if is_ip { String::new() } else { b.host.clone() },
    }
}

/// Drops the runtime state of routes and backends that `routes` no longer has.
pub(super) fn prune(registry: &Registry, routes: &[RouteRuntime]) {
    let ids: HashSet<&str> = routes.iter().map(|r| r.policy.id.as_str()).collect();
    let backends: HashSet<(&str, &str)> = routes
        .iter()
        .flat_map(|r| {
            r.peers
                .peers
                .iter()
                .map(|p| (r.policy.id.as_str(), p.id.as_str()))
        })
        .collect();
    registry.retain(&ids, &backends);
}

/// The stable id of a backend: `host:port`, with brackets for IPv6 literals.
pub fn backend_id(b: &Backend) -> String {
    if b.host.contains(':') {
        format!("[{}]:{}", b.host, b.port)
    } else {
        format!("{}:{}", b.host, b.port)
    }
}

fn resolve(b: &Backend) -> Option<SocketAddr> {
    if let Ok(ip) = b.host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, b.port));
    }
    (b.host.as_str(), b.port).to_socket_addrs().ok()?.next()
}

/// Detects the protocol of every backend of `generation` that was never detected (or is stale),
/// once per backend, before the generation serves. Bounded by the probe timeouts.
pub(super) fn detect_new(
    detector: Option<&Arc<crate::tls::upstream::Detector>>,
    generation: &super::Generation,
) {
    let Some(detector) = detector else { return };
    let mut seen = std::collections::HashSet::new();
    let targets: Vec<crate::tls::upstream::Target> = generation
        .routes()
        .iter()
        .flat_map(|r| r.peers.peers.iter())
        .filter(|p| p.protocol.needs_detection() && seen.insert(p.id.as_str()))
        .map(Peer::detection_target)
        .collect();
    detector.detect_all_blocking(targets);
}
