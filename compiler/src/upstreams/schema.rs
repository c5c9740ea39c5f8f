//! Walks one upstreams source (upstreams.yaml or a conf.d file) into its globals and hosts.

use std::collections::HashMap;

use crate::codes;
use crate::diag::Sink;
use crate::input::Context;
use crate::plan::Provider;
use crate::suggest;
use crate::values::{self, HostKey};
use crate::walk::{self, pos, Entry};
use crate::yaml::Node;
use crate::ypath;

use super::policy::{self, Policy, Scope};
use super::providers::{self, ProviderSection};

/// One path of a host.
#[derive(Debug, Clone)]
pub(crate) struct RawPath {
    /// Normalised prefix.
    pub prefix: String,
    /// Position of the path key.
    pub pos: (u32, u32),
    /// YAML path of the path key.
    pub ypath: String,
    /// Its settings.
    pub policy: Policy,
}

/// One virtual host.
#[derive(Debug, Clone)]
pub(crate) struct RawHost {
    /// The parsed key.
    pub key: HostKey,
    /// Its paths.
    pub paths: Vec<RawPath>,
    /// Host-level settings (only `rate_limit`), between the paths' and the globals'.
    pub policy: Policy,
    /// `acme: true`: the certificate of this (exact) name is obtained over ACME.
    pub acme: bool,
}

/// The global settings of upstreams.yaml.
#[derive(Debug, Clone, Default)]
pub(crate) struct Globals {
    /// `provider` and the position of its value.
    pub provider: Option<(Provider, (u32, u32))>,
    /// Whether `provider` was written at all (even if invalid).
    pub provider_written: bool,
    /// Global policy.
    pub policy: Policy,
    /// `consul:` section.
    pub consul: Option<ProviderSection>,
    /// `kubernetes:` section.
    pub kubernetes: Option<ProviderSection>,
    /// `acme_hosts: all`: every exact host name gets an ACME certificate.
    pub acme_all: bool,
}

/// What one source contributes.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileDoc {
    /// Globals (only upstreams.yaml has them).
    pub globals: Globals,
    /// Hosts in document order.
    pub hosts: Vec<RawHost>,
}

const PROVIDERS: &[&str] = &["file", "consul", "kubernetes"];

/// Walks a root mapping. `main` is true for upstreams.yaml (globals allowed).
pub(crate) fn file(sink: &mut Sink<'_>, ctx: &Context<'_>, root: &Node, main: bool) -> FileDoc {
    let mut doc = FileDoc::default();
    let Some(entries) = walk::entries(sink, root, "", "the upstreams file") else {
        return doc;
    };
    let global_keys = policy::keys(Scope::Global);
    let mut seen_hosts: HashMap<HostKey, (u32, u32)> = HashMap::new();
    for e in &entries {
        let path = ypath::key("", e.key);
        let is_global = global_keys.contains(&e.key) && e.key != "upstreams";
        if is_global && !main {
            sink.report(
                codes::GLOBAL_IN_CONFD,
                pos(e.key_node),
                &path,
                format!(
                    "`{}` is a global setting, and conf.d files may only define hosts; move it to upstreams.yaml",
                    e.key
                ),
            );
            continue;
        }
        match e.key {
            "provider" => {
                doc.globals.provider_written = true;
                doc.globals.provider = provider(sink, ctx, e, &path);
            }
            "consul" | "kubernetes" => {
                let kind = if e.key == "consul" {
                    Provider::Consul
                } else {
                    Provider::Kubernetes
                };
                let section = providers::section(sink, ctx, kind, e, &path);
                if kind == Provider::Consul {
                    doc.globals.consul = section;
                } else {
                    doc.globals.kubernetes = section;
                }
            }
            "acme_hosts" => match walk::str_of(sink, e.value, &path) {
                Some("all") => doc.globals.acme_all = true,
                Some("none") => doc.globals.acme_all = false,
                Some(other) => sink.report(
                    codes::BAD_ENUM,
                    pos(e.value),
                    &path,
                    format!(
                        "`{other}` is not one of all, none (mark single hosts with `acme: true`)"
                    ),
                ),
                None => {}
            },
            "upstreams" => {
                sink.report(
                    codes::DEPRECATED,
                    pos(e.key_node),
                    &path,
                    "`upstreams:` is the Aralez 0.92 layout; write the hosts at the top level, next to `provider`",
                );
                if let Some(hosts) = walk::entries(sink, e.value, &path, "of virtual hosts") {
                    for h in &hosts {
                        host(sink, ctx, h, &path, &mut seen_hosts, &mut doc.hosts);
                    }
                }
            }
            // `x-name:` extension keys (no dot) are ignored: a place for YAML anchors.
            k if k.starts_with("x-") && !k.contains('.') => {}
            _ if is_global => {
                policy::entry(sink, ctx, Scope::Global, e, "", &mut doc.globals.policy);
            }
            _ => {
                let looks_like_host = e.key == "DEFAULT"
                    || e.key.contains(['.', '*', ':'])
                    || suggest::closest(e.key, &global_keys).is_none();
                if looks_like_host {
                    host(sink, ctx, e, "", &mut seen_hosts, &mut doc.hosts);
                } else {
                    walk::unknown_key(sink, e, "", &global_keys);
                }
            }
        }
    }
    doc
}

fn provider(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    e: &Entry<'_>,
    path: &str,
) -> Option<(Provider, (u32, u32))> {
    let name = walk::str_of(sink, e.value, path)?;
    let p = match name {
        "file" => Provider::File,
        "consul" => Provider::Consul,
        "kubernetes" => Provider::Kubernetes,
        other => {
            let hint = match suggest::closest(other, PROVIDERS) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "use file, consul or kubernetes".into(),
            };
            sink.report(
                codes::UNKNOWN_PROVIDER,
                pos(e.value),
                path,
                format!("unknown provider `{other}`; {hint}"),
            );
            return None;
        }
    };
    let canonical = format!("provider:{name}");
    if policy::refused(
        sink,
        ctx,
        e.value,
        path,
        &format!("provider: {name}"),
        &canonical,
    ) {
        return None;
    }
    Some((p, pos(e.value)))
}

fn host(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    e: &Entry<'_>,
    base: &str,
    seen: &mut HashMap<HostKey, (u32, u32)>,
    out: &mut Vec<RawHost>,
) {
    let path = ypath::key(base, e.key);
    let key = match values::host_key(e.key) {
        Ok(k) => k,
        Err((code, msg)) => {
            sink.report(code, pos(e.key_node), &path, msg);
            return;
        }
    };
    if let Some((line, col)) = seen.get(&key) {
        sink.report(
            codes::DUPLICATE_HOST,
            pos(e.key_node),
            &path,
            format!(
                "virtual host `{}` is already defined at line {line}, column {col} (host names are case-insensitive); merge the two definitions",
                key.display()
            ),
        );
        return;
    }
    seen.insert(key.clone(), pos(e.key_node));
    let Some(entries) = walk::entries(sink, e.value, &path, "with `paths`") else {
        return;
    };
    let mut paths = Vec::new();
    let mut seen_paths: HashMap<String, (u32, u32)> = HashMap::new();
    let mut had_paths = false;
    let mut host_policy = Policy::default();
    let mut acme = false;
    for he in &entries {
        if he.key == "acme" {
            acme = acme_flag(sink, &key, he, &path);
            continue;
        }
        if he.key != "paths" {
            if !policy::entry(sink, ctx, Scope::Host, he, &path, &mut host_policy) {
                walk::unknown_key(sink, he, &path, &policy::keys(Scope::Host));
            }
            continue;
        }
        had_paths = true;
        let ppath = ypath::key(&path, "paths");
        let Some(pentries) = walk::entries(sink, he.value, &ppath, "of path prefixes") else {
            continue;
        };
        if pentries.is_empty() {
            sink.report(
                codes::EMPTY_HOST,
                pos(he.value),
                &ppath,
                format!(
                    "host `{}` has no paths; add at least `\"/\"`",
                    key.display()
                ),
            );
        }
        for pe in &pentries {
            if let Some(p) = path_entry(sink, ctx, pe, &ppath, &mut seen_paths) {
                paths.push(p);
            }
        }
    }
    if !had_paths {
        sink.report(
            codes::MISSING_KEY,
            pos(e.key_node),
            &path,
            format!(
                "host `{}` has no `paths`; add `paths:` with at least `\"/\"`",
                key.display()
            ),
        );
    }
    out.push(RawHost {
        key,
        paths,
        policy: host_policy,
        acme,
    });
}

/// A host's `acme: true|false`; wildcards and `DEFAULT` are refused (they need DNS-01).
fn acme_flag(sink: &mut Sink<'_>, key: &HostKey, e: &Entry<'_>, base: &str) -> bool {
    let path = ypath::key(base, e.key);
    let Some(on) = walk::bool_of(sink, e.value, &path) else {
        return false;
    };
    if on && !matches!(key, HostKey::Exact(_)) {
        sink.report(
            codes::ACME_NAME_UNSUPPORTED,
            pos(e.key_node),
            &path,
            format!(
                "`acme: true` on `{}`: wildcard and DEFAULT certificates need the DNS-01 challenge, which this build does not implement; mark exact host names, or put the certificate in `proxy_certificates` yourself",
                key.display()
            ),
        );
        return false;
    }
    on
}

fn path_entry(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    e: &Entry<'_>,
    base: &str,
    seen: &mut HashMap<String, (u32, u32)>,
) -> Option<RawPath> {
    let ypath = ypath::key(base, e.key);
    let prefix = match values::path_prefix(e.key) {
        Ok(p) => p,
        Err((code, msg)) => {
            sink.report(code, pos(e.key_node), &ypath, msg);
            return None;
        }
    };
    if let Some(first) = seen.get(&prefix) {
        sink.report(
            codes::DUPLICATE_PATH,
            pos(e.key_node),
            &ypath,
            format!(
                "path `{}` is the same as the path at line {}, column {} after normalisation (`{prefix}`); keep one of them",
                e.key, first.0, first.1
            ),
        );
        return None;
    }
    seen.insert(prefix.clone(), pos(e.key_node));
    let mut policy = Policy::default();
    if let Some(entries) = walk::entries(sink, e.value, &ypath, "of path settings with `servers`") {
        let keys = policy::keys(Scope::Path);
        for pe in &entries {
            if !policy::entry(sink, ctx, Scope::Path, pe, &ypath, &mut policy) {
                walk::unknown_key(sink, pe, &ypath, &keys);
            }
        }
        let has_servers_key = entries.iter().any(|pe| pe.key == "servers");
        if !has_servers_key && policy.redirect_to.is_none() {
            let redirect_written = entries.iter().any(|pe| pe.key == "redirect_to");
            if !redirect_written {
                sink.report(
                    codes::NO_SERVERS,
                    pos(e.key_node),
                    &ypath,
                    "path has no `servers`; list at least one `host:port` (or set `redirect_to`)",
                );
            }
        }
    }
    Some(RawPath {
        prefix,
        pos: pos(e.key_node),
        ypath,
        policy,
    })
}
