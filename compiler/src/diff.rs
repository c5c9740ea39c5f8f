//! Human-readable differences between two plans.

use std::collections::BTreeMap;

use crate::plan::{HeaderList, JwtClaims, Plan, Route};

/// Lines describing what changes from `old` to `new`: `+ route ID`, `- route ID`,
/// `~ route ID: backends a,b -> a,c`, and `~ provider ...`. Sorted by route id; secrets are never
/// shown (a changed secret reads `auth secret changed`). Empty when the hashes are equal.
pub fn diff_plans(old: &Plan, new: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if old.hash == new.hash {
        return out;
    }
    if old.provider != new.provider {
        out.push(format!(
            "~ provider: {} -> {}",
            old.provider.as_str(),
            new.provider.as_str()
        ));
    }
    if old.consul != new.consul {
        out.push("~ consul settings changed".into());
    }
    if old.kubernetes != new.kubernetes {
        out.push("~ kubernetes settings changed".into());
    }
    if old.global_jwt != new.global_jwt {
        out.push(format!(
            "~ global jwt claims (issued by POST /jwt): {} -> {}",
            claims(old.global_jwt.as_ref()),
            claims(new.global_jwt.as_ref())
        ));
    }
    let a: BTreeMap<&str, &Route> = old.routes.iter().map(|r| (r.id.as_str(), &**r)).collect();
    let b: BTreeMap<&str, &Route> = new.routes.iter().map(|r| (r.id.as_str(), &**r)).collect();
    let mut ids: Vec<&str> = a.keys().chain(b.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        match (a.get(id), b.get(id)) {
            (None, Some(r)) => out.push(format!("+ route {id} -> {}", backends(r))),
            (Some(_), None) => out.push(format!("- route {id}")),
            (Some(x), Some(y)) => {
                for change in route_changes(x, y) {
                    out.push(format!("~ route {id}: {change}"));
                }
            }
            (None, None) => {}
        }
    }
    if out.is_empty() {
        out.push("~ plan hash changed (no route-level difference)".into());
    }
    out
}

fn backends(r: &Route) -> String {
    if let Some(d) = &r.discovery {
        return format!("{}:{}", d.provider.as_str(), d.service);
    }
    if r.backends.is_empty() {
        return "-".into();
    }
    r.backends
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn headers(h: &HeaderList) -> String {
    if h.is_empty() {
        return "-".into();
    }
    h.iter()
        .map(|(n, v)| format!("{}:{}", n.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `iss=… aud=a,b leeway=30s`, or `-`.
fn claims(c: Option<&JwtClaims>) -> String {
    let Some(c) = c else {
        return "-".into();
    };
    let aud = if c.audience.is_empty() {
        "-".to_string()
    } else {
        c.audience.join(",")
    };
    format!(
        "iss={} aud={aud} leeway={}s",
        c.issuer.as_deref().unwrap_or("-"),
        c.leeway_seconds
    )
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn route_changes(x: &Route, y: &Route) -> Vec<String> {
    let mut c = Vec::new();
    let mut cmp = |name: &str, a: String, b: String| {
        if a != b {
            c.push(format!("{name} {a} -> {b}"));
        }
    };
    cmp("backends", backends(x), backends(y));
    cmp("to_https", x.to_https.to_string(), y.to_https.to_string());
    cmp(
        "redirect_to",
        opt(x.redirect_to.as_ref()),
        opt(y.redirect_to.as_ref()),
    );
    cmp(
        "request_headers",
        headers(&x.request_headers),
        headers(&y.request_headers),
    );
    cmp(
        "response_headers",
        headers(&x.response_headers),
        headers(&y.response_headers),
    );
    cmp(
        "auth",
        opt(x.auth.as_ref().map(|a| a.kind())),
        opt(y.auth.as_ref().map(|a| a.kind())),
    );
    cmp(
        "forward_auth_header",
        x.forward_auth_header.to_string(),
        y.forward_auth_header.to_string(),
    );
    cmp("rate_limit", opt(x.rate_limit), opt(y.rate_limit));
    cmp("x4xx_limit", opt(x.x4xx_limit), opt(y.x4xx_limit));
    let sticky = |r: &Route| match r.sticky {
        None => "-".to_string(),
        Some(s) => s.max_age.map_or("session".into(), |m| format!("{m}s")),
    };
    cmp("sticky", sticky(x), sticky(y));
    cmp(
        "healthcheck",
        x.healthcheck.to_string(),
        y.healthcheck.to_string(),
    );
    cmp(
        "verify_upstream_tls",
        x.verify_upstream_tls.to_string(),
        y.verify_upstream_tls.to_string(),
    );
    cmp(
        "jwt_claims",
        claims(x.auth.as_ref().and_then(|a| a.jwt_claims())),
        claims(y.auth.as_ref().and_then(|a| a.jwt_claims())),
    );
    let same_kind = x.auth.as_ref().map(|a| a.kind()) == y.auth.as_ref().map(|a| a.kind());
    let creds = |r: &Route| r.auth.as_ref().and_then(|a| a.creds().cloned());
    if same_kind && creds(x) != creds(y) {
        c.push("auth secret changed".into());
    }
    c
}
