//! An Ingress (`networking.k8s.io/v1`) as service entries for the compiler: each rule's host and
//! paths to the backend Service (`NAMESPACE/SERVICE:PORT`, in the Ingress's own namespace), the
//! `defaultBackend` on the `DEFAULT` host, the `aralez.rs/*` annotations as the entries' policy
//! keys, and the TLS Secrets its `tls:` names. What this build cannot serve as written (Exact
//! paths, auth annotations, resource backends) makes the whole Ingress skipped and reported,
//! never half applied.

use serde_json::{json, Map, Value};

/// `aralez.rs/rate-limit`: requests per second per client IP.
pub const RATE_LIMIT: &str = "aralez.rs/rate-limit";
/// `aralez.rs/to-https`: `"true"` redirects plain HTTP to HTTPS.
pub const TO_HTTPS: &str = "aralez.rs/to-https";
/// `aralez.rs/request-headers`: `Name:Value` lines (or comma-separated) added towards the upstream.
pub const REQUEST_HEADERS: &str = "aralez.rs/request-headers";
/// `aralez.rs/response-headers`: `Name:Value` lines (or comma-separated) added to responses.
pub const RESPONSE_HEADERS: &str = "aralez.rs/response-headers";
/// Annotations this build does not enforce: an Ingress using one is skipped.
const UNSUPPORTED_ANNOTATIONS: &[&str] = &["aralez.rs/auth-type", "aralez.rs/auth-secret"];

/// The Ingress's class: `spec.ingressClassName`, else the legacy annotation.
pub fn class(ingress: &Value) -> Option<&str> {
    ingress
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
        .or_else(|| {
            ingress
                .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
                .and_then(Value::as_str)
        })
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// `NAMESPACE/SERVICE:PORT` of a backend, or why it cannot be served.
fn upstream(namespace: &str, backend: &Value) -> Result<String, String> {
    if backend.get("resource").is_some() {
        return Err("a `resource` backend is not supported (only Services)".into());
    }
    let name = text(backend, "/service/name").ok_or("a backend without `service.name`")?;
    let port = match (
        text(backend, "/service/port/name"),
        backend
            .pointer("/service/port/number")
            .and_then(Value::as_u64),
    ) {
        (Some(n), _) => n.to_string(),
        (None, Some(n)) => n.to_string(),
        (None, None) => return Err(format!("backend `{name}` has no `service.port`")),
    };
    Ok(format!("{namespace}/{name}:{port}"))
}

/// `Name:Value` items of a header annotation (one per line, or comma-separated).
fn headers(value: &str) -> Vec<Value> {
    value
        .split(['\n', ','])
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| Value::String(h.to_string()))
        .collect()
}

/// The policy keys of the Ingress's annotations.
fn policy(ingress: &Value) -> Result<Map<String, Value>, String> {
    let mut keys = Map::new();
    let Some(annotations) = ingress
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    else {
        return Ok(keys);
    };
    for (name, value) in annotations {
        let value = value.as_str().unwrap_or_default();
        match name.as_str() {
            RATE_LIMIT => {
                let n: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{RATE_LIMIT} `{value}` is not a whole number"))?;
                keys.insert("rate_limit".into(), json!(n));
            }
            TO_HTTPS => match value.trim() {
                "true" => {
                    keys.insert("to_https".into(), json!(true));
                }
                "false" => {
                    keys.insert("to_https".into(), json!(false));
                }
                other => return Err(format!("{TO_HTTPS} `{other}` is not true or false")),
            },
            REQUEST_HEADERS => {
                keys.insert("headers".into(), Value::Array(headers(value)));
            }
            RESPONSE_HEADERS => {
                keys.insert("client_headers".into(), Value::Array(headers(value)));
            }
            n if UNSUPPORTED_ANNOTATIONS.contains(&n) => {
                return Err(format!("annotation {n} is not supported by this build"))
            }
            n if n.starts_with("aralez.rs/") => {
                return Err(format!("unknown annotation {n}"));
            }
            _ => {}
        }
    }
    Ok(keys)
}

/// `NAMESPACE/NAME` of the TLS Secrets the Ingress's `tls:` names (in its own namespace).
pub fn tls_secrets(ingress: &Value) -> Vec<String> {
    let namespace = text(ingress, "/metadata/namespace").unwrap_or("default");
    ingress
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|t| text(t, "/secretName"))
        .filter(|name| !name.is_empty())
        .map(|name| format!("{namespace}/{name}"))
        .collect()
}

/// The service entries of `ingress`, or why it is skipped.
pub fn entries(ingress: &Value) -> Result<Vec<Value>, String> {
    let namespace = text(ingress, "/metadata/namespace").unwrap_or("default");
    let keys = policy(ingress)?;
    let entry = |host: &str, path: &str, upstream: String| {
        let mut e = keys.clone();
        e.insert("hostname".into(), json!(host));
        e.insert("path".into(), json!(path));
        e.insert("upstream".into(), json!(upstream));
        Value::Object(e)
    };
    let mut out = Vec::new();
    if let Some(backend) = ingress.pointer("/spec/defaultBackend") {
        out.push(entry("DEFAULT", "/", upstream(namespace, backend)?));
    }
    let rules = ingress
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for rule in rules {
        let host = text(rule, "/host")
            .filter(|h| !h.is_empty())
            .unwrap_or("DEFAULT");
        let paths = rule
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for p in paths {
            let path = text(p, "/path").filter(|p| !p.is_empty()).unwrap_or("/");
            match text(p, "/pathType").unwrap_or("ImplementationSpecific") {
                "Prefix" | "ImplementationSpecific" => {}
                other => {
                    return Err(format!(
                        "pathType {other} of `{host}{path}` is not supported by this build (Prefix and ImplementationSpecific are)"
                    ))
                }
            }
            let backend = p.get("backend").ok_or("a path without `backend`")?;
            out.push(entry(host, path, upstream(namespace, backend)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ingress(spec: Value, annotations: Value) -> Value {
        json!({"metadata": {"namespace": "shop", "name": "web", "annotations": annotations}, "spec": spec})
    }

    #[test]
    fn rules_paths_and_default_backend_become_entries_in_the_ingress_namespace() {
        let i = ingress(
            json!({"ingressClassName": "aralez",
                "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                "rules": [{"host": "shop.test", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                    {"path": "/api", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "api", "port": {"number": 8080}}}}]}},
                  {"http": {"paths": [{"path": "/x", "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"number": 1}}}}]}}]}),
            json!({"aralez.rs/rate-limit": "7", "aralez.rs/to-https": "false",
                   "aralez.rs/request-headers": "X-A:1\nX-B:2", "other.io/x": "ignored"}),
        );
        assert_eq!(class(&i), Some("aralez"));
        let e = entries(&i).unwrap();
        let summary: Vec<String> = e
            .iter()
            .map(|e| {
                format!(
                    "{}{} {}",
                    e["hostname"].as_str().unwrap(),
                    e["path"].as_str().unwrap(),
                    e["upstream"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "DEFAULT/ shop/fallback:80",
                "shop.test/ shop/web:http",
                "shop.test/api shop/api:8080",
                "DEFAULT/x shop/x:1"
            ]
        );
        assert_eq!(e[1]["rate_limit"], 7);
        assert_eq!(e[1]["to_https"], false);
        assert_eq!(e[1]["headers"], json!(["X-A:1", "X-B:2"]));
    }

    #[test]
    fn what_this_build_cannot_serve_skips_the_whole_ingress() {
        let rule = |path_type: &str| {
            json!({"rules": [{"host": "a.test", "http": {"paths": [
                {"path": "/", "pathType": path_type, "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]})
        };
        assert!(entries(&ingress(rule("Exact"), json!({})))
            .unwrap_err()
            .contains("Exact"));
        let mut tls = rule("Prefix");
        tls["tls"] = json!([{"hosts": ["a.test"], "secretName": "a-tls"}, {"hosts": ["b.test"]}]);
        let tls = ingress(tls, json!({}));
        assert_eq!(entries(&tls).unwrap().len(), 1, "tls: is served");
        assert_eq!(tls_secrets(&tls), ["shop/a-tls"]);
        for (k, v) in [
            ("aralez.rs/auth-type", "basic"),
            ("aralez.rs/rate-limit", "x"),
            ("aralez.rs/to-https", "yes"),
            ("aralez.rs/typo", "1"),
        ] {
            let err = entries(&ingress(rule("Prefix"), json!({k: v}))).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
        let no_port = json!({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web"}}}]}}]});
        assert!(entries(&ingress(no_port, json!({}))).is_err());
    }
}
