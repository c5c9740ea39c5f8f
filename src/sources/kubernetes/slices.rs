//! EndpointSlices (`discovery.k8s.io/v1`) as the Kubernetes API documents them, and the endpoint
//! set of one Service computed from them: ready endpoints only, every address family, the port
//! chosen by the Service port name or number.

use std::collections::BTreeMap;

use aralez_compiler::Backend;
use serde::Deserialize;

use crate::sources::consul::client::endpoint_host;

/// Object metadata: the fields the watch needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The object's name (unique among the slices of a namespace).
    #[serde(default)]
    pub name: String,
    /// The version of the object, or of the list / the bookmark.
    #[serde(default)]
    pub resource_version: String,
}

/// One EndpointSlice.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slice {
    /// Its metadata.
    #[serde(default)]
    pub metadata: Meta,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// Its endpoints (`null` in the API when there is none).
    #[serde(default)]
    pub endpoints: Option<Vec<Endpoint>>,
    /// Its ports (`null`: none).
    #[serde(default)]
    pub ports: Option<Vec<Port>>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Endpoint {
    /// Its addresses (all of them are the same backend, the API says; each is used).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Its conditions.
    #[serde(default)]
    pub conditions: Conditions,
}

/// The conditions of an endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Conditions {
    /// Ready to receive traffic; the API says an absent value means ready.
    pub ready: Option<bool>,
}

/// One port of a slice.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Port {
    /// The Service port name (empty for a Service's only, unnamed port).
    pub name: Option<String>,
    /// The endpoint port (`None`: "all ports", which a proxy cannot use).
    pub port: Option<i64>,
    /// `TCP` (the default), `UDP` or `SCTP`.
    pub protocol: Option<String>,
}

/// A list answer (`EndpointSliceList`, `IngressList`).
#[derive(Debug, Clone, Deserialize)]
pub struct ObjectList {
    /// `resourceVersion` of the list: where the watch starts.
    #[serde(default)]
    pub metadata: Meta,
    /// The objects (`null`: none).
    #[serde(default)]
    pub items: Option<Vec<serde_json::Value>>,
}

/// One line of a watch stream.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The slice, the bookmark (metadata only), or a `Status` for `ERROR`.
    pub object: serde_json::Value,
}

/// The endpoint set of a Service: every ready address of every slice with the chosen port,
/// sorted and unique, and the count of endpoints left out (unusable address, no such port).
pub fn endpoint_set(slices: &BTreeMap<String, Slice>, port: Option<&str>) -> (Vec<Backend>, usize) {
    let mut set = Vec::new();
    let mut skipped = 0usize;
    for slice in slices.values() {
        let endpoints = slice.endpoints.as_deref().unwrap_or_default();
        let ready = endpoints
            .iter()
            .filter(|e| e.conditions.ready != Some(false));
        let Some(number) = chosen_port(slice.ports.as_deref().unwrap_or_default(), port) else {
            skipped = skipped.saturating_add(ready.count());
            continue;
        };
        for endpoint in ready {
            for address in &endpoint.addresses {
                match endpoint_host(address) {
                    Some(host)
                        if slice.address_type != "FQDN"
                            || host.parse::<std::net::IpAddr>().is_err() =>
                    {
                        set.push(Backend { host, port: number });
                    }
                    _ => skipped = skipped.saturating_add(1),
                }
            }
        }
    }
    set.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    set.dedup();
    (set, skipped)
}

/// The port of a slice to use: the one named `wanted`, or numbered `wanted` (the endpoint port);
/// else the slice's only TCP port, when nothing was asked for or a number was (a slice holds
/// target ports, so the Service port number an Ingress names can only be mapped this way: a
/// single-port Service's only port). `None` when there is no such port.
fn chosen_port(ports: &[Port], wanted: Option<&str>) -> Option<u16> {
    let tcp: Vec<&Port> = ports
        .iter()
        .filter(|p| {
            p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                && p.port.is_some_and(|n| (1..=65535).contains(&n))
        })
        .collect();
    let only = match tcp.as_slice() {
        [only] => Some(*only),
        _ => None,
    };
    let pick = match wanted {
        Some(w) => {
            let named = tcp
                .iter()
                .copied()
                .filter(|p| {
                    p.name.as_deref() == Some(w)
                        || p.port.map(|n| n.to_string()).as_deref() == Some(w)
                })
                .min_by_key(|p| p.port);
            let numbered = w.bytes().all(|b| b.is_ascii_digit());
            named.or(if numbered { only } else { None })
        }
        None => only,
    };
    pick.and_then(|p| p.port)
        .and_then(|n| u16::try_from(n).ok())
}

/// The `code` of an `ERROR` event's `Status` object (0 when absent).
pub fn status_code(object: &serde_json::Value) -> u64 {
    object
        .get("code")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn slice(json: &str) -> Slice {
        serde_json::from_str(json).unwrap()
    }

    fn ids(slices: &[&str], port: Option<&str>) -> (Vec<String>, usize) {
        let map: BTreeMap<String, Slice> = slices
            .iter()
            .enumerate()
            .map(|(i, s)| (i.to_string(), slice(s)))
            .collect();
        let (set, skipped) = endpoint_set(&map, port);
        (set.iter().map(ToString::to_string).collect(), skipped)
    }

    const V4: &str = r#"{"metadata":{"name":"web-1","resourceVersion":"5"},"addressType":"IPv4",
        "endpoints":[{"addresses":["10.0.0.2"],"conditions":{"ready":true}},
                     {"addresses":["10.0.0.1"]},
                     {"addresses":["10.0.0.3"],"conditions":{"ready":false,"serving":true}}],
        "ports":[{"name":"http","port":8080,"protocol":"TCP"},{"name":"metrics","port":9090}]}"#;
    const V6: &str = r#"{"metadata":{"name":"web-2"},"addressType":"IPv6",
        "endpoints":[{"addresses":["fd00::1"],"conditions":{"ready":true}}],
        "ports":[{"name":"http","port":8080},{"name":"metrics","port":9090}]}"#;

    #[test]
    fn ready_endpoints_of_every_family_with_the_named_or_numbered_port() {
        let (set, skipped) = ids(&[V4, V6], Some("http"));
        assert_eq!(set, ["10.0.0.1:8080", "10.0.0.2:8080", "[fd00::1]:8080"]);
        assert_eq!(skipped, 0);
        let (set, _) = ids(&[V4, V6], Some("9090"));
        assert_eq!(set, ["10.0.0.1:9090", "10.0.0.2:9090", "[fd00::1]:9090"]);
    }

    #[test]
    fn several_ports_and_none_chosen_or_an_unknown_one_leave_the_endpoints_out() {
        assert_eq!(ids(&[V4], None), (Vec::new(), 2));
        assert_eq!(ids(&[V4], Some("grpc")), (Vec::new(), 2));
        let one = r#"{"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.9"]}],"ports":[{"name":"","port":80}]}"#;
        assert_eq!(ids(&[one], None).0, ["10.0.0.9:80"]);
        // a Service port number (80 -> target 8080) maps to a single-port slice's only port
        let target = r#"{"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.9"]}],"ports":[{"name":"","port":8080}]}"#;
        assert_eq!(ids(&[target], Some("80")).0, ["10.0.0.9:8080"]);
        assert_eq!(ids(&[target], Some("web")), (Vec::new(), 1));
        assert_eq!(ids(&[V4], Some("80")), (Vec::new(), 2));
    }

    #[test]
    fn null_lists_and_bad_addresses_are_not_fatal() {
        let empty =
            r#"{"metadata":{"name":"x"},"addressType":"IPv4","endpoints":null,"ports":null}"#;
        assert_eq!(ids(&[empty], None), (Vec::new(), 0));
        let bad = r#"{"addressType":"FQDN","endpoints":[{"addresses":["bad host!","10.0.0.1","pod.example"]}],"ports":[{"port":80}]}"#;
        assert_eq!(ids(&[bad], None), (vec!["pod.example:80".to_string()], 2));
    }
}
