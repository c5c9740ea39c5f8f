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
    "tag_mode",
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
pub const KUBE_KEYS: &[&str] = &["namespace", "servers", "services", "tokenpath"];

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
    let mut tag_mode = false;
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
            "tag_mode" => tag_mode = walk::bool_of(sink, se.value, &p).unwrap_or(false),
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
                    if let Some(s) = service(sink, ctx, item, &ip, &services) {
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
                tag_mode,
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

fn service(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
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
                    name_ok(sink, e.value, &p, s, "service name").then(|| s.to_string())
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

/// The service entries of a list a provider generated (see
/// [`crate::compile_upstreams_with`]). An entry with an error is left out, reported as W0014
/// with the error's message; the sequence itself not parsing is one W0014 for the whole source.
pub(crate) fn generated(sink: &mut Sink<'_>, ctx: &Context<'_>, text: &str) -> Vec<Service> {
    let items = match crate::yaml::parse(text) {
        Ok(Some(crate::yaml::Node {
            value: crate::yaml::Value::Seq(items),
            ..
        })) => Ok(items),
        Ok(_) => Err("not a list".to_string()),
        Err(e) => Err(e.message),
    };
    let items = match items {
        Ok(items) => items,
        Err(why) => {
            sink.report(
                codes::GENERATED_SKIPPED,
                (1, 1),
                "",
                format!("generated services cannot be read ({why}); none of them is served"),
            );
            return Vec::new();
        }
    };
    let mut services: Vec<Service> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = ypath::index("", i);
        let mut one = Sink::new(sink.file);
        let parsed = service(&mut one, ctx, item, &ip, &services);
        let name = upstream_of(item).unwrap_or("?").to_string();
        match (parsed, first_error(&one)) {
            (Some(s), None) => services.push(s),
            (_, why) => sink.report(
                codes::GENERATED_SKIPPED,
                pos(item),
                &ip,
                format!(
                    "service `{name}` left out: {}",
                    why.unwrap_or_else(|| "invalid entry".into())
                ),
            ),
        }
    }
    services
}

/// The message of the first error `sink` holds.
fn first_error(sink: &Sink<'_>) -> Option<String> {
    sink.diags
        .iter()
        .find(|d| d.is_error())
        .map(|d| d.message.clone())
}

/// The `upstream` string of a service entry node, if it has one.
fn upstream_of(item: &crate::yaml::Node) -> Option<&str> {
    let crate::yaml::Value::Map(pairs) = &item.value else {
        return None;
    };
    pairs.iter().find_map(|(k, v)| match (&k.value, &v.value) {
        (crate::yaml::Value::Str(k), crate::yaml::Value::Str(v)) if k == "upstream" => {
            Some(v.as_str())
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use crate::input::{Context, Source};

    const FILES: &str = "provider: consul\nconsul:\n  servers: [\"http://127.0.0.1:8500\"]\n  tag_mode: true\n  services: []\nfile.test:\n  paths:\n    \"/\": {servers: [\"127.0.0.1:8000\"]}\n";

    fn compile(generated: &str) -> crate::Compiled<crate::Plan> {
        let files = [Source {
            name: "upstreams.yaml",
            text: FILES,
        }];
        let generated = [Source {
            name: "consul catalog tags",
            text: generated,
        }];
        crate::compile_upstreams_with(&files, &generated, &Context::default()).unwrap()
    }

    #[test]
    fn generated_entries_join_and_bad_or_colliding_ones_are_left_out_with_w0014() {
        let c = compile(
            r#"[{"hostname": "a.test", "upstream": "a"},
                {"hostname": "b.test", "upstream": "b", "rate_limit": "ten"},
                {"hostname": "file.test", "upstream": "c"},
                {"hostname": "a.test", "upstream": "d"}]"#,
        );
        let ids: Vec<&str> = c.value.routes().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a.test/", "file.test/"]);
        let w: Vec<(&str, &str)> = c
            .warnings
            .iter()
            .map(|d| (d.code, d.message.as_str()))
            .collect();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().all(|(code, _)| *code == "W0014"), "{w:?}");
        assert!(w[0].1.contains("service `b` left out"), "{w:?}");
        assert!(w
            .iter()
            .any(|(_, m)| m.contains("route `file.test/` is already defined")));
        // not a list: one warning, the files' routes serve
        let c = compile("{}");
        assert_eq!(c.value.routes().len(), 1);
        assert_eq!(c.warnings[0].code, "W0014");
    }
}
