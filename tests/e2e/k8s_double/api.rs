//! The object store helpers of the API double: resources, what a request selects, Secret
//! encoding and `Status` objects.

use serde_json::{json, Value};

use super::State;

pub(super) const SLICES: &str = "endpointslices";
pub(super) const INGRESSES: &str = "ingresses";
pub(super) const SECRETS: &str = "secrets";

/// Standard base64 with padding (as the API encodes Secret `data`).
pub(super) fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(super) fn upsert(s: &mut State, resource: &'static str, ns: &str, name: &str, object: Value) {
    let key = (resource, ns.to_string(), name.to_string());
    let kind = if s.objects.contains_key(&key) {
        "MODIFIED"
    } else {
        "ADDED"
    };
    s.objects.insert(key, object.clone());
    let version = s.version;
    s.history
        .push((version, kind, resource, ns.to_string(), object));
}

/// What a request asks for: the resource, its namespace (`None`: all), the Service label.
#[derive(Clone)]
pub(super) struct Select {
    resource: &'static str,
    namespace: Option<String>,
    service: Option<String>,
}

impl Select {
    pub(super) fn of(path: &str, label: Option<&str>) -> Option<Self> {
        if let Some(rest) = path.strip_prefix("/apis/discovery.k8s.io/v1/namespaces/") {
            let ns = rest.strip_suffix("/endpointslices")?;
            let service = label?.strip_prefix("kubernetes.io/service-name=")?;
            return Some(Self {
                resource: SLICES,
                namespace: Some(ns.into()),
                service: Some(service.into()),
            });
        }
        if path == "/api/v1/secrets" {
            return Some(Self {
                resource: SECRETS,
                namespace: None,
                service: None,
            });
        }
        if path == "/apis/networking.k8s.io/v1/ingresses" {
            return Some(Self {
                resource: INGRESSES,
                namespace: None,
                service: None,
            });
        }
        let ns = path
            .strip_prefix("/apis/networking.k8s.io/v1/namespaces/")?
            .strip_suffix("/ingresses")?;
        Some(Self {
            resource: INGRESSES,
            namespace: Some(ns.into()),
            service: None,
        })
    }

    pub(super) fn picks(&self, resource: &str, ns: &str, object: &Value) -> bool {
        resource == self.resource
            && (resource != SECRETS || object["type"] == "kubernetes.io/tls")
            && self.namespace.as_deref().is_none_or(|n| n == ns)
            && self
                .service
                .as_deref()
                .is_none_or(|svc| object["metadata"]["labels"]["kubernetes.io/service-name"] == svc)
    }

    pub(super) fn list_kind(&self) -> &'static str {
        match self.resource {
            SLICES => "EndpointSliceList",
            SECRETS => "SecretList",
            _ => "IngressList",
        }
    }
}

pub(super) fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}
