//! Tag mode: the catalog's services tagged `aralez.host=<vhost>` as service entries for the
//! compiler (a JSON list, compiled like the `services` of the `consul:` section; an entry that
//! does not compile is left out with a W0014 warning, the others serve).
//!
//! Tags of a service: `aralez.host=<vhost>` (one route per host tag; required),
//! `aralez.path=<prefix>`, `aralez.rate_limit=<n>`, `aralez.to_https=true|false`. Any other
//! `aralez.*` tag is passed on under its own name, so the compiler reports it as an unknown key
//! and the service is left out rather than routed without it.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// The name of the generated source (in diagnostics and on `/config/status`).
pub const SOURCE: &str = "consul catalog tags";
/// The tag prefix Aralez reads.
const PREFIX: &str = "aralez.";

/// The service entries of the tagged services, as the JSON list the compiler reads.
pub fn entries(services: &BTreeMap<String, Vec<String>>) -> String {
    let mut list = Vec::new();
    for (name, tags) in services {
        let mut hosts = Vec::new();
        let mut settings = Map::new();
        for tag in tags {
            let Some((key, value)) = tag
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split_once('='))
            else {
                continue;
            };
            match key {
                "host" => hosts.push(value.to_string()),
                "path" => {
                    settings.insert("path".into(), Value::String(value.to_string()));
                }
                "rate_limit" => {
                    settings.insert("rate_limit".into(), scalar(value));
                }
                "to_https" => {
                    settings.insert("to_https".into(), scalar(value));
                }
                other => {
                    settings.insert(format!("{PREFIX}{other}"), scalar(value));
                }
            }
        }
        hosts.sort();
        hosts.dedup();
        for host in hosts {
            let mut entry = settings.clone();
            entry.insert("hostname".into(), Value::String(host));
            entry.insert("upstream".into(), Value::String(name.clone()));
            list.push(Value::Object(entry));
        }
    }
    json!(list).to_string()
}

/// A tag value as the compiler should see it: an integer or a boolean when it spells one, else
/// a string (so `rate_limit=ten` is reported as the wrong type, not read as 0).
fn scalar(value: &str) -> Value {
    if let Ok(n) = value.parse::<i64>() {
        return Value::from(n);
    }
    match value {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(items: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        items
            .iter()
            .map(|(n, t)| (n.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn tagged_services_become_entries_and_untagged_ones_do_not() {
        let text = entries(&catalog(&[
            ("consul", &[]),
            (
                "web",
                &[
                    "aralez.host=web.test",
                    "aralez.host=www.test",
                    "aralez.path=/api",
                    "aralez.rate_limit=5",
                    "aralez.to_https=true",
                    "v2",
                ],
            ),
            ("db", &["primary"]),
        ]));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!([
                {"hostname": "web.test", "upstream": "web", "path": "/api", "rate_limit": 5, "to_https": true},
                {"hostname": "www.test", "upstream": "web", "path": "/api", "rate_limit": 5, "to_https": true},
            ])
        );
    }

    #[test]
    fn odd_values_reach_the_compiler_as_written() {
        let text = entries(&catalog(&[(
            "api",
            &[
                "aralez.host=api.test",
                "aralez.rate_limit=ten",
                "aralez.color=blue",
            ],
        )]));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["rate_limit"], "ten");
        assert_eq!(v[0]["aralez.color"], "blue");
        assert_eq!(entries(&BTreeMap::new()), "[]");
    }
}
