//! The policy keys shared by the global section, paths and provider services: limits, auth,
//! headers, redirects, sticky sessions.

use http::{HeaderName, HeaderValue};

use crate::codes;
use crate::diag::Sink;
use crate::input::Context;
use crate::plan::{Auth, Backend, Sticky};
use crate::values;
use crate::walk::{self, pos, Entry};
use crate::yaml::{Node, Value};
use crate::ypath;

/// A validated header.
pub(crate) type Header = (HeaderName, HeaderValue);

/// Where a policy block sits; decides which keys exist and what `headers` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Top level of upstreams.yaml: `headers` are response headers.
    Global,
    /// A virtual host, next to its `paths`: only `rate_limit`.
    Host,
    /// A host path: `headers` are request headers.
    Path,
    /// A Consul/Kubernetes service entry: like a path, without `servers`.
    Service,
}

/// Keys valid in every scope.
const COMMON: &[&str] = &[
    "authorization",
    "client_headers",
    "forward_auth_header",
    "headers",
    "rate_limit",
    "server_headers",
    "sticky_sessions",
    "to_https",
    "verify_upstream_tls",
    "x4xx_limit",
];

/// Keys valid only on paths.
pub(crate) const PATH_ONLY: &[&str] = &["healthcheck", "redirect_to", "servers"];

/// Policy keys valid on a virtual host (next to `paths`).
const HOST_ONLY: &[&str] = &["acme", "rate_limit"];

/// All keys valid in a scope (for did-you-mean).
pub(crate) fn keys(scope: Scope) -> Vec<&'static str> {
    let mut k: Vec<&str> = COMMON.to_vec();
    match scope {
        Scope::Global => k.extend([
            "acme_hosts",
            "provider",
            "consul",
            "kubernetes",
            "upstreams",
        ]),
        Scope::Host => k = HOST_ONLY.iter().copied().chain(["paths"]).collect(),
        Scope::Path => k.extend(PATH_ONLY),
        Scope::Service => k.extend(["hostname", "upstream", "path"]),
    }
    k.sort_unstable();
    k
}

/// The settings of one policy block, each `None` when not written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// `servers` (paths only).
    pub servers: Option<Vec<Backend>>,
    /// Headers towards the upstream.
    pub request_headers: Vec<Header>,
    /// Headers towards the client.
    pub response_headers: Vec<Header>,
    /// `rate_limit`.
    pub rate_limit: Option<u32>,
    /// `x4xx_limit`.
    pub x4xx_limit: Option<u32>,
    /// `to_https`.
    pub to_https: Option<bool>,
    /// `authorization`.
    pub auth: Option<Auth>,
    /// `forward_auth_header`.
    pub forward_auth_header: Option<bool>,
    /// `verify_upstream_tls`.
    pub verify_upstream_tls: Option<bool>,
    /// `sticky_sessions`: `Some(None)` when explicitly off.
    pub sticky: Option<Option<Sticky>>,
    /// `healthcheck` (paths only).
    pub healthcheck: Option<bool>,
    /// `redirect_to` (paths only).
    pub redirect_to: Option<String>,
}

/// Reports E0900 when `canonical` is in the unsupported list; true when refused.
pub(crate) fn refused(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    key_node: &Node,
    path: &str,
    shown: &str,
    canonical: &str,
) -> bool {
    if ctx.unsupported.contains(&canonical) {
        sink.report(
            codes::UNSUPPORTED,
            pos(key_node),
            path,
            format!("`{shown}` is not supported yet by this build of aralez; remove it"),
        );
        return true;
    }
    false
}

/// Reports W0001: `e.key` is the Aralez 0.92 spelling of `canonical`.
pub(crate) fn deprecated(sink: &mut Sink<'_>, e: &Entry<'_>, path: &str, canonical: &str) {
    sink.report(
        codes::DEPRECATED,
        pos(e.key_node),
        path,
        format!(
            "`{}` is the Aralez 0.92 spelling; write `{canonical}` instead",
            e.key
        ),
    );
}

/// Parses one policy key into `policy`. Returns false when `e.key` is not a policy key of `scope`.
pub(crate) fn entry(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    scope: Scope,
    e: &Entry<'_>,
    base: &str,
    policy: &mut Policy,
) -> bool {
    let path = ypath::key(base, e.key);
    let known = match scope {
        Scope::Host => HOST_ONLY.contains(&e.key),
        Scope::Path => COMMON.contains(&e.key) || PATH_ONLY.contains(&e.key),
        Scope::Global | Scope::Service => COMMON.contains(&e.key),
    };
    if !known {
        return false;
    }
    // Deprecated spellings are also refused under their canonical name.
    let canonical = match (e.key, scope) {
        ("client_headers", Scope::Global) => "headers",
        ("server_headers", Scope::Path | Scope::Service) => "headers",
        (k, _) => k,
    };
    // A feature switched off (`sticky_sessions: false`, `to_https: false`…) asks nothing of the
    // runtime, so it is accepted even where the feature is not supported.
    let switched_off = matches!(e.value.value, crate::yaml::Value::Bool(false));
    if !switched_off
        && (refused(sink, ctx, e.key_node, &path, e.key, e.key)
            || (canonical != e.key && refused(sink, ctx, e.key_node, &path, e.key, canonical)))
    {
        return true;
    }
    let v = e.value;
    match e.key {
        "servers" => policy.servers = servers(sink, v, &path),
        "headers" | "client_headers" | "server_headers" => {
            let to_response = match (e.key, scope) {
                ("headers", Scope::Global) => true,
                ("headers", _) => false,
                ("client_headers", Scope::Global) => {
                    deprecated(sink, e, &path, "headers");
                    true
                }
                ("client_headers", _) => true,
                ("server_headers", Scope::Global) => false,
                _ => {
                    deprecated(sink, e, &path, "headers");
                    false
                }
            };
            let list = headers(sink, v, &path);
            if to_response {
                policy.response_headers.extend(list);
            } else {
                policy.request_headers.extend(list);
            }
        }
        "rate_limit" => policy.rate_limit = limit(sink, v, &path, "rate_limit"),
        "x4xx_limit" => policy.x4xx_limit = limit(sink, v, &path, "x4xx_limit"),
        "to_https" => {
            policy.to_https = walk::bool_of(sink, v, &path);
            if policy.to_https == Some(true) && !ctx.tls_listener {
                sink.report(
                    codes::TO_HTTPS_NO_TLS,
                    pos(v),
                    &path,
                    "`to_https: true` but no TLS listener is configured, so clients are redirected to a port nobody serves; set `proxy_address_tls` in main.yaml or remove `to_https`",
                );
            }
        }
        "authorization" => policy.auth = super::auth::auth(sink, v, &path),
        "forward_auth_header" => policy.forward_auth_header = walk::bool_of(sink, v, &path),
        "verify_upstream_tls" => policy.verify_upstream_tls = walk::bool_of(sink, v, &path),
        "sticky_sessions" => policy.sticky = sticky(sink, v, &path),
        "healthcheck" => policy.healthcheck = walk::bool_of(sink, v, &path),
        "redirect_to" => {
            policy.redirect_to = walk::str_of(sink, v, &path).and_then(|s| {
                values::http_url(s, codes::BAD_REDIRECT, "redirect_to")
                    .map_err(|(c, m)| sink.report(c, pos(v), &path, m))
                    .ok()
            });
        }
        _ => return false,
    }
    true
}

fn servers(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<Vec<Backend>> {
    let items = walk::seq_of(sink, node, path)?;
    if items.is_empty() {
        sink.report(
            codes::NO_SERVERS,
            pos(node),
            path,
            "`servers` is empty; list at least one `host:port`",
        );
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = ypath::index(path, i);
        if let Some(s) = walk::str_of(sink, item, &p) {
            match values::server(s) {
                Ok(b) => out.push(b),
                Err((code, msg)) => sink.report(code, pos(item), &p, msg),
            }
        }
    }
    Some(out)
}

/// A list of `"Name:Value"` headers (also accepts a single string).
pub(crate) fn headers(sink: &mut Sink<'_>, node: &Node, path: &str) -> Vec<Header> {
    let single;
    let items: &[Node] = match &node.value {
        Value::Str(_) => {
            single = [node.clone()];
            &single
        }
        _ => match walk::seq_of(sink, node, path) {
            Some(items) => items,
            None => return Vec::new(),
        },
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = ypath::index(path, i);
        let Some(s) = walk::str_of(sink, item, &p) else {
            continue;
        };
        match values::header(s) {
            Ok((name, value)) => {
                if values::looks_secret(&name) && !value.is_empty() {
                    sink.report(
                        codes::INLINE_SECRET,
                        pos(item),
                        &p,
                        format!(
                            "header `{}` looks like a credential written inline; keep this file out of version control, or remove the header",
                            name.as_str()
                        ),
                    );
                }
                out.push((name, value));
            }
            Err((code, msg)) => sink.report(code, pos(item), &p, msg),
        }
    }
    out
}

fn limit(sink: &mut Sink<'_>, node: &Node, path: &str, name: &str) -> Option<u32> {
    walk::int_of(sink, node, path, 1, i64::from(u32::MAX), name).and_then(|i| u32::try_from(i).ok())
}

fn sticky(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<Option<Sticky>> {
    match node.value {
        Value::Bool(false) => Some(None),
        Value::Bool(true) => Some(Some(Sticky { max_age: None })),
        Value::Int(n) if n >= 1 => Some(Some(Sticky {
            max_age: u64::try_from(n).ok(),
        })),
        Value::Int(n) => {
            sink.report(
                codes::OUT_OF_RANGE,
                pos(node),
                path,
                format!("`sticky_sessions` is {n}; write a cookie Max-Age in seconds (>= 1), `true` for a session cookie, or `false` to disable"),
            );
            None
        }
        _ => {
            walk::wrong_type(sink, node, path, "true, false or a number of seconds");
            None
        }
    }
}
