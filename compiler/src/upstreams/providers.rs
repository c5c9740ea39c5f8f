//! The `consul:` and `kubernetes:` sections and their service lists.

use crate::codes;
use crate::diag::Sink;
use crate::input::Context;
use crate::plan::{ConsulConfig, ConsulTls, KubernetesConfig, Provider};
use crate::values::{self, HostKey};
use crate::walk::{self, pos, Entry};
use crate::ypath;

use super::policy::{self, Policy, Scope};

/// A service entry: a virtual host + path whose backends a provider discovers.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    /// The virtual host (`hostname`).
    pub host: HostKey,
    /// Normalised path prefix (`path`, default `/`).
    pub prefix: String,
    /// Position of the entry.
    pub pos: (u32, u32),
    /// YAML path of the entry.
    pub ypath: String,
    /// Consul service / Kubernetes Service name (`upstream`).
    pub upstream: String,
    /// Policy of the route.
    pub policy: Policy,
}

/// A parsed provider section.
#[derive(Debug, Clone)]
pub(crate) struct ProviderSection {
    /// Position of the section key.
    pub pos: (u32, u32),
    /// Consul settings (for `consul:`).
    pub consul: Option<ConsulConfig>,
    /// Kubernetes settings (for `kubernetes:`).
    pub kubernetes: Option<KubernetesConfig>,
    /// Its services.
    pub services: Vec<Service>,
}

/// Every key of a `consul:` section (exposed as [`crate::keys::CONSUL`]).
pub const CONSUL_KEYS: &[&str] = &[
    "datacenter",
    "servers",
    "services",
    "tls",
    "token",
    "token_file",
    "wait_seconds",
];
/// Every key of the `tls:` block of a `consul:` section (exposed as [`crate::keys::CONSUL_TLS`]).
pub const CONSUL_TLS_KEYS: &[&str] = &["ca_file", "server_name"];
/// Default `wait_seconds` of a Consul blocking query (Consul's own default is 5 minutes too).
pub const DEFAULT_CONSUL_WAIT_SECONDS: u64 = 300;
/// Largest `wait_seconds` (Consul caps `wait` at 10 minutes).
pub const MAX_CONSUL_WAIT_SECONDS: i64 = 600;
/// Every key of a `kubernetes:` section (exposed as [`crate::keys::KUBERNETES`]).
pub const KUBE_KEYS: &[&str] = &[
    "ingress_class",
    "namespace",
    "servers",
    "services",
    "tokenpath",
    "watch_idle_seconds",
];
/// Default `watch_idle_seconds`: the API server sends a bookmark about every minute.
pub const DEFAULT_KUBE_WATCH_IDLE_SECONDS: u64 = 150;
/// Largest `watch_idle_seconds`.
pub const MAX_KUBE_WATCH_IDLE_SECONDS: i64 = 3600;

/// Parses a `consul:` or `kubernetes:` section.
pub(crate) fn section(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    kind: Provider,
    e: &Entry<'_>,
    path: &str,
) -> Option<ProviderSection> {
    let entries = walk::entries(sink, e.value, path, "of provider settings")?;
    let known = if kind == Provider::Consul {
        CONSUL_KEYS
    } else {
        KUBE_KEYS
    };
    let mut url_servers = Vec::new();
    let mut addr_servers = Vec::new();
    let mut token = None;
    let mut token_file = None;
    let mut tokenpath = None;
    let mut namespace = None;
    let mut services = Vec::new();
    let mut had_servers = false;
    let mut bad_server = false;
    let mut datacenter = None;
    let mut wait_seconds = DEFAULT_CONSUL_WAIT_SECONDS;
    let mut tls = ConsulTls::default();
    let mut watch_idle_seconds = DEFAULT_KUBE_WATCH_IDLE_SECONDS;
    for se in &entries {
        let p = ypath::key(path, se.key);
        if !known.contains(&se.key) {
            walk::unknown_key(sink, se, path, known);
            continue;
        }
        match se.key {
            "servers" => {
                had_servers = true;
                let Some(items) = walk::seq_of(sink, se.value, &p) else {
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let ip = ypath::index(&p, i);
                    let Some(s) = walk::str_of(sink, item, &ip) else {
                        continue;
                    };
                    let parsed = if kind == Provider::Consul {
                        values::http_url(s, codes::BAD_PROVIDER_SERVER, "Consul server")
                            .map(|u| url_servers.push(u))
                    } else {
                        values::server(s).map(|b| addr_servers.push(b))
                    };
                    if let Err((code, msg)) = parsed {
                        bad_server = true;
                        sink.report(code, pos(item), &ip, msg);
                    }
                }
            }
            "token" => token = walk::nonempty_str_of(sink, se.value, &p).map(str::to_string),
            "token_file" => {
                token_file = walk::nonempty_str_of(sink, se.value, &p).map(str::to_string)
            }
            "tokenpath" => {
                tokenpath = walk::nonempty_str_of(sink, se.value, &p).map(str::to_string)
            }
            "datacenter" => {
                datacenter = walk::nonempty_str_of(sink, se.value, &p).and_then(|s| {
                    name_ok(sink, se.value, &p, s, "datacenter").then(|| s.to_string())
                })
            }
            "wait_seconds" => {
                if let Some(n) = walk::int_of(
                    sink,
                    se.value,
                    &p,
                    1,
                    MAX_CONSUL_WAIT_SECONDS,
                    "wait_seconds",
                ) {
                    wait_seconds = n.unsigned_abs();
                }
            }
            "tls" => tls = consul_tls(sink, se.value, &p).unwrap_or_default(),
            "watch_idle_seconds" => {
                if let Some(n) = walk::int_of(
                    sink,
                    se.value,
                    &p,
                    1,
                    MAX_KUBE_WATCH_IDLE_SECONDS,
                    "watch_idle_seconds",
                ) {
                    watch_idle_seconds = n.unsigned_abs();
                }
            }
            "ingress_class" => {
                // the Ingress controller mode is not built yet: refused, never ignored
                let shown = "kubernetes.ingress_class";
                if !policy::refused(sink, ctx, se.key_node, &p, shown, shown) {
                    walk::nonempty_str_of(sink, se.value, &p);
                }
            }
            "namespace" => {
                namespace = walk::nonempty_str_of(sink, se.value, &p).and_then(|s| {
                    name_ok(sink, se.value, &p, s, "namespace").then(|| s.to_string())
                })
            }
            _ => {
                let Some(items) = walk::seq_of(sink, se.value, &p) else {
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let ip = ypath::index(&p, i);
                    if let Some(s) = service(sink, ctx, kind, item, &ip, &services) {
                        services.push(s);
                    }
                }
            }
        }
    }
    let no_servers = had_servers && url_servers.is_empty() && !bad_server;
    if kind == Provider::Consul && (!had_servers || no_servers) {
        sink.report(
            codes::MISSING_KEY,
            pos(e.key_node),
            path,
            "`consul` needs `servers`, e.g. `servers: [\"http://127.0.0.1:8500\"]`",
        );
    }
    let (consul, kubernetes) = if kind == Provider::Consul {
        (
            Some(ConsulConfig {
                servers: url_servers,
                token,
                token_file,
                datacenter,
                wait_seconds,
                tls,
            }),
            None,
        )
    } else {
        (
            None,
            Some(KubernetesConfig {
                servers: addr_servers,
                tokenpath,
                namespace,
                watch_idle_seconds,
            }),
        )
    };
    Some(ProviderSection {
        pos: pos(e.key_node),
        consul,
        kubernetes,
        services,
    })
}

/// The `tls:` block of a `consul:` section.
fn consul_tls(sink: &mut Sink<'_>, node: &crate::yaml::Node, path: &str) -> Option<ConsulTls> {
    let entries = walk::entries(sink, node, path, "with `ca_file` and/or `server_name`")?;
    let mut tls = ConsulTls::default();
    for e in &entries {
        let p = ypath::key(path, e.key);
        match e.key {
            "ca_file" => {
                tls.ca_file = walk::nonempty_str_of(sink, e.value, &p).map(str::to_string);
            }
            "server_name" => {
                tls.server_name = walk::nonempty_str_of(sink, e.value, &p).and_then(|s| {
                    let ok = values::is_dns_name(s) || s.parse::<std::net::IpAddr>().is_ok();
                    if !ok {
                        sink.report(
                            codes::BAD_HOST,
                            pos(e.value),
                            &p,
                            format!("`server_name` `{s}` is not a DNS name or IP address"),
                        );
                    }
                    ok.then(|| s.to_ascii_lowercase())
                });
            }
            _ => walk::unknown_key(sink, e, path, CONSUL_TLS_KEYS),
        }
    }
    Some(tls)
}

fn name_ok(sink: &mut Sink<'_>, node: &crate::yaml::Node, path: &str, s: &str, what: &str) -> bool {
    let ok = s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !ok {
        sink.report(
            codes::BAD_NAME,
            pos(node),
            path,
            format!("{what} `{s}` may only contain letters, digits, `-`, `.` and `_`"),
        );
    }
    ok
}

/// A Kubernetes `upstream`: a Service name, optionally `:port` (a port name or number).
fn kube_upstream_ok(s: &str) -> bool {
    let (name, port) = s.split_once(':').unwrap_or((s, ""));
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    label(name) && (!s.contains(':') || label(port))
}

fn service(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    kind: Provider,
    node: &crate::yaml::Node,
    path: &str,
    existing: &[Service],
) -> Option<Service> {
    let entries = walk::entries(sink, node, path, "with `hostname` and `upstream`")?;
    let keys = policy::keys(Scope::Service);
    let mut host = None;
    let mut upstream = None;
    let mut prefix = Some("/".to_string());
    let mut policy = Policy::default();
    let mut had_host = false;
    let mut had_upstream = false;
    for e in &entries {
        let p = ypath::key(path, e.key);
        match e.key {
            "hostname" => {
                had_host = true;
                host = walk::nonempty_str_of(sink, e.value, &p).and_then(|s| {
                    values::host_key(s)
                        .map_err(|(c, m)| sink.report(c, pos(e.value), &p, m))
                        .ok()
                });
            }
            "upstream" => {
                had_upstream = true;
                upstream = walk::nonempty_str_of(sink, e.value, &p).and_then(|s| {
                    if kind != Provider::Kubernetes {
                        return name_ok(sink, e.value, &p, s, "service name").then(|| s.to_string());
                    }
                    if !kube_upstream_ok(s) {
                        sink.report(
                            codes::BAD_NAME,
                            pos(e.value),
                            &p,
                            format!("Kubernetes `upstream` `{s}` is not `SERVICE` or `SERVICE:PORT` (lower-case letters, digits and `-`; PORT a port name or number)"),
                        );
                        return None;
                    }
                    Some(s.to_string())
                });
            }
            "path" => {
                prefix = walk::str_of(sink, e.value, &p).and_then(|s| {
                    values::path_prefix(s)
                        .map_err(|(c, m)| sink.report(c, pos(e.value), &p, m))
                        .ok()
                });
            }
            _ => {
                if !policy::entry(sink, ctx, Scope::Service, e, path, &mut policy) {
                    walk::unknown_key(sink, e, path, &keys);
                }
            }
        }
    }
    for (had, key) in [(had_host, "hostname"), (had_upstream, "upstream")] {
        if !had {
            sink.report(
                codes::MISSING_KEY,
                pos(node),
                path,
                format!("service entry needs `{key}`"),
            );
        }
    }
    let (host, upstream, prefix) = (host?, upstream?, prefix?);
    if let Some(first) = existing
        .iter()
        .find(|s| s.host == host && s.prefix == prefix)
    {
        sink.report(
            codes::DUPLICATE_ROUTE,
            pos(node),
            path,
            format!(
                "`{}{prefix}` is already served by the service at line {}, column {}; give one of them another `path`",
                host.display(),
                first.pos.0,
                first.pos.1
            ),
        );
        return None;
    }
    Some(Service {
        host,
        prefix,
        pos: pos(node),
        ypath: path.to_string(),
        upstream,
        policy,
    })
}
