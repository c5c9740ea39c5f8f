//! Folds globals into routes and freezes the [`Plan`].

use std::collections::BTreeMap;

use crate::codes;
use crate::diag::Sink;
use crate::input::Context;
use crate::plan::{Discovery, HostTable, PathTable, Plan, Provider, Route};
use crate::values::HostKey;

use super::policy::{Header, Policy};
use super::providers::Service;
use super::schema::{Globals, RawHost};

/// Appends `global` headers whose names the route does not set itself.
fn fold_headers(own: &[Header], global: &[Header]) -> Vec<Header> {
    let mut out = own.to_vec();
    out.extend(
        global
            .iter()
            .filter(|(n, _)| !own.iter().any(|(o, _)| o == n))
            .cloned(),
    );
    out
}

/// One route's policy: the path's own settings (`p`), its host's (`h`, only `rate_limit`) and the
/// globals (`g`); the most specific wins.
fn route(
    host: &HostKey,
    prefix: &str,
    p: &Policy,
    h: &Policy,
    g: &Policy,
    discovery: Option<Discovery>,
) -> Route {
    let host = host.display();
    Route {
        id: format!("{host}{prefix}"),
        host,
        path: prefix.to_string(),
        backends: p.servers.clone().unwrap_or_default(),
        discovery,
        to_https: p.to_https.or(g.to_https).unwrap_or(false),
        redirect_to: p.redirect_to.clone(),
        request_headers: fold_headers(&p.request_headers, &g.request_headers),
        response_headers: fold_headers(&p.response_headers, &g.response_headers),
        auth: p.auth.clone().or_else(|| g.auth.clone()),
        forward_auth_header: p
            .forward_auth_header
            .or(g.forward_auth_header)
            .unwrap_or(false),
        rate_limit: p.rate_limit.or(h.rate_limit).or(g.rate_limit),
        x4xx_limit: p.x4xx_limit.or(g.x4xx_limit),
        sticky: match p.sticky {
            Some(s) => s,
            None => g.sticky.flatten(),
        },
        healthcheck: p.healthcheck.unwrap_or(true),
        verify_upstream_tls: p
            .verify_upstream_tls
            .or(g.verify_upstream_tls)
            .unwrap_or(false),
    }
}

/// Builds the plan from the globals of upstreams.yaml and the merged hosts (later sources
/// already replaced earlier ones). Reports provider-level problems into `sink` (upstreams.yaml).
pub(crate) fn plan(
    sink: &mut Sink<'_>,
    ctx: &Context<'_>,
    globals: &Globals,
    raw_hosts: &BTreeMap<String, RawHost>,
    generated: &mut [(Sink<'_>, Vec<Service>)],
) -> Option<Plan> {
    let hosts = raw_hosts;
    let provider = globals.provider.map(|(p, _)| p);
    if !globals.provider_written {
        sink.report(
            codes::MISSING_KEY,
            (0, 0),
            "",
            "`provider` is required; add `provider: \"file\"` (or consul / kubernetes)",
        );
    }
    let g = &globals.policy;
    let mut routes: Vec<(Route, (u32, u32), String)> = Vec::new();
    for h in hosts.values() {
        for p in &h.paths {
            routes.push((
                route(&h.key, &p.prefix, &p.policy, &h.policy, g, None),
                p.pos,
                p.ypath.clone(),
            ));
        }
    }
    let mut consul = None;
    let mut kubernetes = None;
    for (kind, section) in [
        (Provider::Consul, &globals.consul),
        (Provider::Kubernetes, &globals.kubernetes),
    ] {
        let selected = provider == Some(kind);
        match section {
            Some(s) if selected => {
                consul = consul.or_else(|| s.consul.clone());
                kubernetes = kubernetes.or_else(|| s.kubernetes.clone());
                for svc in &s.services {
                    add_service(sink, &mut routes, svc, g, kind, false);
                }
                for (gen_sink, services) in generated.iter_mut() {
                    for svc in services.iter() {
                        add_service(gen_sink, &mut routes, svc, g, kind, true);
                    }
                }
            }
            Some(s) if provider.is_some() => sink.report(
                codes::SECTION_IGNORED,
                s.pos,
                kind.as_str(),
                format!(
                    "the `{}` section is ignored because `provider` is `{}`; remove it, or set `provider: \"{}\"`",
                    kind.as_str(),
                    provider.map_or("file", Provider::as_str),
                    kind.as_str()
                ),
            ),
            None if selected => {
                let at = globals.provider.map_or((0, 0), |(_, p)| p);
                sink.report(
                    codes::MISSING_PROVIDER_SECTION,
                    at,
                    "provider",
                    format!(
                        "`provider: {0}` needs a `{0}:` section with its servers and services",
                        kind.as_str()
                    ),
                );
            }
            _ => {}
        }
    }
    if ctx.tls_listener {
        for (r, at, ypath) in &routes {
            if r.auth.is_some() && !r.to_https && r.redirect_to.is_none() {
                sink.report(
                    codes::AUTH_PLAIN_HTTP,
                    *at,
                    ypath,
                    format!(
                        "route `{}` asks for credentials but also serves plain HTTP, so they can travel unencrypted; set `to_https: true`",
                        r.id
                    ),
                );
            }
        }
    }
    let provider = provider?;
    let mut routes: Vec<Route> = routes.into_iter().map(|(r, _, _)| r).collect();
    routes.sort_by(|a, b| a.id.cmp(&b.id));
    let acme_hosts = raw_hosts
        .values()
        .filter_map(|h| match &h.key {
            HostKey::Exact(name) if h.acme || globals.acme_all => Some(name.clone()),
            _ => None,
        })
        .collect();
    let hosts = host_table(&routes);
    let mut plan = Plan {
        hash: String::new(),
        acme_hosts,
        provider,
        hosts,
        routes: routes.into_iter().map(std::sync::Arc::new).collect(),
        consul,
        kubernetes,
        global_jwt: g.auth.as_ref().and_then(|a| a.jwt_claims()).cloned(),
    };
    plan.hash = crate::canon::hash(&plan);
    Some(plan)
}

/// Adds a service's route. A route with its id that exists already is an error for a written
/// service; a generated one is left out with a W0014 warning.
fn add_service(
    sink: &mut Sink<'_>,
    routes: &mut Vec<(Route, (u32, u32), String)>,
    svc: &Service,
    g: &Policy,
    kind: Provider,
    generated: bool,
) {
    let r = route(
        &svc.host,
        &svc.prefix,
        &svc.policy,
        &Policy::default(),
        g,
        Some(Discovery {
            provider: kind,
            service: svc.upstream.clone(),
        }),
    );
    if routes.iter().any(|(x, _, _)| x.id == r.id) {
        let (code, message) = if generated {
            (
                codes::GENERATED_SKIPPED,
                format!(
                    "service `{}`: route `{}` is already defined (by the files or another service); left out",
                    svc.upstream, r.id
                ),
            )
        } else {
            (
                codes::DUPLICATE_ROUTE,
                format!(
                    "`{}` is already defined as a host path; give the service another `path` or remove the file route",
                    r.id
                ),
            )
        };
        sink.report(code, svc.pos, &svc.ypath, message);
        return;
    }
    routes.push((r, svc.pos, svc.ypath.clone()));
}

/// Builds the host table of sorted routes.
pub(crate) fn host_table(routes: &[Route]) -> HostTable {
    let mut groups: BTreeMap<&str, Vec<(String, usize)>> = BTreeMap::new();
    for (i, r) in routes.iter().enumerate() {
        groups.entry(&r.host).or_default().push((r.path.clone(), i));
    }
    let mut table = HostTable::default();
    for (host, entries) in groups {
        let paths = PathTable::new(entries);
        if host == "DEFAULT" {
            table.default = Some(paths);
        } else if let Some(suffix) = host.strip_prefix("*.") {
            table.wildcard.insert(suffix.to_string(), paths);
        } else {
            table.exact.insert(host.to_string(), paths);
        }
    }
    table
}
