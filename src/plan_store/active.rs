//! The runtime view of a plan: its backends resolved to addresses (off the request path), with
//! the health, round-robin and sticky state carried over from earlier plans by stable ids.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use aralez_compiler::{Backend, Plan};

use super::unix_now;
use crate::balance::{Registry, RouteState};
use crate::health::Health;

/// A plan plus the runtime view of its backends (addresses resolved off the request path).
#[derive(Debug)]
pub struct Active {
    /// The compiled plan.
    pub plan: Plan,
    /// Per route (same index as `plan.routes`), its usable peers.
    pub routes: Vec<RoutePeers>,
    /// Unix time (seconds) when this plan became active.
    pub since: u64,
    /// Per route (same index as `plan.routes`), its authentication with secrets resolved.
    pub auth: crate::auth::AuthTable,
}

/// The resolved backends of one route and its runtime state (see [`crate::balance`]).
#[derive(Debug, Default)]
pub struct RoutePeers {
    /// Backends that resolved to an address, in config order.
    pub peers: Vec<Peer>,
    /// Round-robin position, shared with the previous plan's route of the same id.
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
    /// Health of this backend on this route, shared across plans while it is unchanged.
    pub health: Arc<Health>,
    /// Value of the sticky cookie that names this backend.
    pub sticky_token: String,
}

impl Active {
    /// Resolves every backend of `plan` (blocking DNS for names; literals are parsed). Backends that
    /// do not resolve are left out and reported in the returned warnings. Runtime state (cursors,
    /// health) comes from `registry`, so unchanged routes and backends keep theirs.
    pub fn build(plan: Plan, registry: &Registry) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut cache: std::collections::HashMap<(String, u16), Option<SocketAddr>> =
            std::collections::HashMap::new();
        let routes = plan
            .routes
            .iter()
            .map(|route| {
                let peers = route
                    .backends
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
                RoutePeers {
                    peers,
                    state: registry.route_state(&route.id),
                }
            })
            .collect();
        let active = Active {
            plan,
            routes,
            since: unix_now(),
            auth: crate::auth::AuthTable::default(),
        };
        (active, warnings)
    }
}

fn peer(b: &Backend, addr: SocketAddr, route: &str, registry: &Registry) -> Peer {
    let is_ip = b.host.parse::<std::net::IpAddr>().is_ok();
    let id = backend_id(b);
    Peer {
        health: registry.health(route, &id, addr),
        sticky_token: registry.sticky_token(&id),
        id,
        addr,
        sni: if is_ip { String::new() } else { b.host.clone() },
    }
}

/// Drops the runtime state of routes and backends that `active` no longer has.
pub(super) fn prune(registry: &Registry, active: &Active) {
    let routes: HashSet<&str> = active.plan.routes.iter().map(|r| r.id.as_str()).collect();
    let backends: HashSet<(&str, &str)> = active
        .plan
        .routes
        .iter()
        .zip(active.routes.iter())
        .flat_map(|(r, peers)| peers.peers.iter().map(|p| (r.id.as_str(), p.id.as_str())))
        .collect();
    registry.retain(&routes, &backends);
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
