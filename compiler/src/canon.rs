//! The canonical form of a plan: deterministic JSON (sorted keys) for `aralez compile`, and the
//! content hash, which covers the secrets that the JSON redacts.

use ring::digest;
use serde_json::{json, Map, Value};

use crate::plan::{Auth, HeaderList, JwtClaims, PathTable, Plan, Route};

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
///
/// The serialization is a fixed-order, length-prefixed encoding of every field (routes in id
/// order; the host table is derived from the routes), so it is independent of YAML key order and
/// formatting, and cheap for large plans.
pub(crate) fn hash(plan: &Plan) -> String {
    let mut h = Canon(digest::Context::new(&digest::SHA256));
    h.str("aralez-plan-v1");
    h.str(plan.provider.as_str());
    match &plan.consul {
        None => h.tag(0),
        Some(c) => {
            h.tag(1);
            h.list(c.servers.iter().map(String::as_str));
            h.opt(c.token.as_deref());
            h.opt(c.token_file.as_deref());
            h.opt(c.datacenter.as_deref());
            h.num(c.wait_seconds);
            h.opt(c.tls.ca_file.as_deref());
            h.opt(c.tls.server_name.as_deref());
            h.tag(u8::from(c.tag_mode));
        }
    }
    match &plan.kubernetes {
        None => h.tag(0),
        Some(k) => {
            h.tag(1);
            h.list(
                k.servers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            );
            h.opt(k.tokenpath.as_deref());
            h.opt(k.namespace.as_deref());
        }
    }
    match &plan.global_jwt {
        None => h.tag(0),
        Some(c) => {
            h.tag(1);
            h.claims(c);
        }
    }
    // only when present, so that the hashes of plans without ACME names stay what they were
    if !plan.acme_hosts.is_empty() {
        h.str("acme_hosts");
        h.list(plan.acme_hosts.iter().map(String::as_str));
    }
    h.num(plan.routes.len() as u64);
    for r in &plan.routes {
        h.str(&r.id);
        h.str(&r.host);
        h.str(&r.path);
        h.num(r.backends.len() as u64);
        for b in &r.backends {
            h.str(&b.host);
            h.num(u64::from(b.port));
        }
        match &r.discovery {
            None => h.tag(0),
            Some(d) => {
                h.tag(1);
                h.str(d.provider.as_str());
                h.str(&d.service);
            }
        }
        h.tag(u8::from(r.to_https));
        h.opt(r.redirect_to.as_deref());
        for list in [&r.request_headers, &r.response_headers] {
            h.num(list.len() as u64);
            for (n, v) in list {
                h.str(n.as_str());
                h.bytes(v.as_bytes());
            }
        }
        match &r.auth {
            None => h.tag(0),
            Some(a) => {
                h.tag(1);
                h.str(a.kind());
                h.opt(a.secret());
                if let Some(file) = a.creds_file() {
                    h.tag(2);
                    h.str(file);
                }
                if let Some(c) = a.jwt_claims() {
                    h.tag(3);
                    h.claims(c);
                }
            }
        }
        h.tag(u8::from(r.forward_auth_header));
        h.opt_num(r.rate_limit.map(u64::from));
        h.opt_num(r.x4xx_limit.map(u64::from));
        match r.sticky {
            None => h.tag(0),
            Some(s) => {
                h.tag(1);
                h.opt_num(s.max_age);
            }
        }
        h.tag(u8::from(r.healthcheck));
        h.tag(u8::from(r.verify_upstream_tls));
    }
    let d = h.0.finish();
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Length-prefixed, typed writes into a digest (unambiguous: no two plans encode alike).
struct Canon(digest::Context);

impl Canon {
    fn tag(&mut self, t: u8) {
        self.0.update(&[t]);
    }
    fn num(&mut self, n: u64) {
        self.0.update(&n.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.num(b.len() as u64);
        self.0.update(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.tag(0),
            Some(s) => {
                self.tag(1);
                self.str(s);
            }
        }
    }
    fn opt_num(&mut self, n: Option<u64>) {
        match n {
            None => self.tag(0),
            Some(n) => {
                self.tag(1);
                self.num(n);
            }
        }
    }
    fn claims(&mut self, c: &JwtClaims) {
        self.opt(c.issuer.as_deref());
        self.list(c.audience.iter().map(String::as_str));
        self.num(u64::from(c.leeway_seconds));
    }
    fn list<'a>(&mut self, items: impl Iterator<Item = &'a str>) {
        let items: Vec<&str> = items.collect();
        self.num(items.len() as u64);
        for i in items {
            self.str(i);
        }
    }
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
    let mut v = value_without_acme(plan, redact);
    if !plan.acme_hosts.is_empty() {
        v["acme_hosts"] = json!(plan.acme_hosts);
    }
    v
}

fn value_without_acme(plan: &Plan, redact: bool) -> Value {
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
            "datacenter": c.datacenter,
            "wait_seconds": c.wait_seconds,
            "tls": {
                "ca_file": c.tls.ca_file,
                "server_name": c.tls.server_name,
            },
            "tag_mode": c.tag_mode,
        })),
        "global_jwt": plan.global_jwt.as_ref().map(claims),
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
        Auth::Forward(f) => return forward(f),
    };
    let mut m = Map::new();
    m.insert("type".into(), Value::String(a.kind().into()));
    m.insert(key.into(), secret(a.secret(), redact));
    if let Some(file) = a.creds_file() {
        m.insert("creds_file".into(), Value::String(file.into()));
    }
    if let Some(Value::Object(c)) = a.jwt_claims().map(claims) {
        m.extend(c);
    }
    Value::Object(m)
}

/// A forward authorization (nothing secret in it: shown as written).
fn forward(f: &crate::plan::ForwardAuth) -> Value {
    json!({
        "type": "forward",
        "url": f.url,
        "timeout_ms": f.timeout_ms,
        "request_headers": f.request_headers,
        "response_headers": f.response_headers,
        "trust_forward_header": f.trust_forward_header,
        "cache_seconds": f.cache_seconds,
    })
}

/// The claim settings of a jwt authorization (not secret: shown as written).
fn claims(c: &JwtClaims) -> Value {
    json!({
        "issuer": c.issuer,
        "audience": c.audience,
        "leeway_seconds": c.leeway_seconds,
    })
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
