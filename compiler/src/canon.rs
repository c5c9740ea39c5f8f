//! The canonical form of a plan: deterministic JSON (sorted keys) for `aralez compile`, and the
//! content hash, which covers the secrets that the JSON redacts.

use ring::digest;
use serde_json::{json, Map, Value};

use crate::plan::{Auth, HeaderList, PathTable, Plan, Route};

const REDACTED: &str = "<redacted>";

/// Deterministic, pretty JSON of the plan (sorted keys); secrets shown as `"<redacted>"`.
pub fn plan_json(plan: &Plan) -> String {
    let mut v = value(plan, true);
    if let Value::Object(m) = &mut v {
        m.insert("hash".into(), Value::String(plan.hash.clone()));
    }
    let v = sorted(v);
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Hex SHA-256 of the canonical serialization of the plan, secrets included, `hash` excluded.
pub(crate) fn hash(plan: &Plan) -> String {
    let text = serde_json::to_string(&sorted(value(plan, false))).unwrap_or_default();
    let d = digest::digest(&digest::SHA256, text.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Rebuilds every object with its keys in sorted order, whatever map type serde_json uses.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in pairs {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn secret(s: Option<&str>, redact: bool) -> Value {
    match s {
        None => Value::Null,
        Some(_) if redact => Value::String(REDACTED.into()),
        Some(s) => Value::String(s.into()),
    }
}

fn value(plan: &Plan, redact: bool) -> Value {
    let routes: Vec<Value> = plan.routes.iter().map(|r| route(r, redact)).collect();
    let ids = |t: &PathTable| -> Value {
        let mut m = Map::new();
        for (prefix, idx) in &t.prefixes {
            let id = plan.routes.get(*idx).map_or("", |r| r.id.as_str());
            m.insert(prefix.clone(), Value::String(id.into()));
        }
        Value::Object(m)
    };
    let names = |t: &std::collections::BTreeMap<String, PathTable>| -> Value {
        Value::Object(t.iter().map(|(k, v)| (k.clone(), ids(v))).collect())
    };
    json!({
        "provider": plan.provider.as_str(),
        "routes": routes,
        "hosts": {
            "exact": names(&plan.hosts.exact),
            "wildcard": names(&plan.hosts.wildcard),
            "default": plan.hosts.default.as_ref().map(ids),
        },
        "consul": plan.consul.as_ref().map(|c| json!({
            "servers": c.servers,
            "token": secret(c.token.as_deref(), redact),
            "token_file": c.token_file,
        })),
        "kubernetes": plan.kubernetes.as_ref().map(|k| json!({
            "servers": k.servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "tokenpath": k.tokenpath,
            "namespace": k.namespace,
        })),
    })
}

fn headers(h: &HeaderList) -> Vec<String> {
    h.iter()
        .map(|(n, v)| format!("{}:{}", n.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

fn auth(a: &Auth, redact: bool) -> Value {
    let key = match a {
        Auth::Basic { .. } => "creds",
        Auth::Apikey { .. } => "key",
        Auth::Jwt { .. } => "secret",
    };
    let mut m = Map::new();
    m.insert("type".into(), Value::String(a.kind().into()));
    m.insert(key.into(), secret(a.secret(), redact));
    Value::Object(m)
}

fn route(r: &Route, redact: bool) -> Value {
    json!({
        "id": r.id,
        "host": r.host,
        "path": r.path,
        "backends": r.backends.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "discovery": r.discovery.as_ref().map(|d| json!({
            "provider": d.provider.as_str(),
            "service": d.service,
        })),
        "to_https": r.to_https,
        "redirect_to": r.redirect_to,
        "request_headers": headers(&r.request_headers),
        "response_headers": headers(&r.response_headers),
        "auth": r.auth.as_ref().map(|a| auth(a, redact)),
        "forward_auth_header": r.forward_auth_header,
        "rate_limit": r.rate_limit,
        "x4xx_limit": r.x4xx_limit,
        "sticky": r.sticky.map(|s| json!({ "max_age": s.max_age })),
        "healthcheck": r.healthcheck,
        "verify_upstream_tls": r.verify_upstream_tls,
    })
}
