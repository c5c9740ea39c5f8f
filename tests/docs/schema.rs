//! `docs/schema/*.schema.json` against the compiler: the same keys in both directions (the
//! compiler's own tables, `aralez_compiler::keys`), the same main.yaml defaults, every key named in
//! `docs/configuration.md`, and the example and fixture configs valid under the schemas.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aralez_compiler::{codes, compile_main, compile_upstreams, keys, Context, MainConfig, Source};
use serde_json::{json, Value};

use crate::validator::{unknown_keywords, validate};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema(name: &str) -> Value {
    let path = repo().join("docs/schema").join(name);
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The property names of the object schema at `pointer`.
fn props(schema: &Value, pointer: &str) -> BTreeSet<String> {
    schema
        .pointer(&format!("{pointer}/properties"))
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no properties at {pointer}"))
        .keys()
        .cloned()
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_string()).collect()
}

fn same_keys(what: &str, schema: &BTreeSet<String>, compiler: &BTreeSet<String>) {
    let only_schema: Vec<_> = schema.difference(compiler).collect();
    let only_compiler: Vec<_> = compiler.difference(schema).collect();
    assert!(
        only_schema.is_empty() && only_compiler.is_empty(),
        "{what}: keys in the schema but not the compiler: {only_schema:?}; \
         keys the compiler accepts but the schema lacks: {only_compiler:?}"
    );
}

#[test]
fn main_schema_names_exactly_the_compiler_keys() {
    let s = schema("main.schema.json");
    same_keys("main.yaml", &props(&s, ""), &set(keys::MAIN));
    same_keys("acme", &props(&s, "/properties/acme"), &set(keys::ACME));
    same_keys(
        "main.yaml limits_store",
        &props(&s, "/properties/limits_store"),
        &set(keys::LIMITS_STORE),
    );
}

#[test]
fn upstreams_schema_names_exactly_the_compiler_keys() {
    let s = schema("upstreams.schema.json");
    let places: [(&str, &str, Vec<&str>); 7] = [
        ("upstreams.yaml globals", "", keys::upstreams_global()),
        ("a virtual host", "/$defs/host", keys::upstreams_host()),
        ("a path", "/$defs/path", keys::upstreams_path()),
        (
            "a provider service",
            "/$defs/service",
            keys::provider_service(),
        ),
        ("consul", "/$defs/consul", keys::CONSUL.to_vec()),
        (
            "consul tls",
            "/$defs/consul/properties/tls",
            keys::CONSUL_TLS.to_vec(),
        ),
        ("kubernetes", "/$defs/kubernetes", keys::KUBERNETES.to_vec()),
    ];
    for (what, pointer, compiler) in places {
        same_keys(what, &props(&s, pointer), &set(&compiler));
    }
    // `authorization` also has the Aralez 0.92 spelling `data`, outside the did-you-mean table
    let auth = props(&s, "/$defs/authorization");
    let extra: BTreeSet<String> = auth
        .difference(&set(keys::AUTHORIZATION))
        .cloned()
        .collect();
    same_keys(
        "authorization",
        &auth
            .intersection(&set(keys::AUTHORIZATION))
            .cloned()
            .collect(),
        &set(keys::AUTHORIZATION),
    );
    for key in &extra {
        assert_eq!(
            s.pointer(&format!("/$defs/authorization/properties/{key}/deprecated")),
            Some(&json!(true)),
            "authorization.{key} is not a compiler key, so it must be a deprecated spelling"
        );
        let text = format!(
            "provider: file\nauthorization: {{type: basic, {key}: \"alice:a-long-password-here\"}}\n"
        );
        let diags = upstreams_diagnostics(&text);
        assert!(
            diags.contains(&codes::DEPRECATED) && !diags.contains(&codes::UNKNOWN_KEY),
            "authorization.{key}: the compiler should accept it as deprecated, got {diags:?}"
        );
    }
}

/// Every diagnostic code of one upstreams document.
fn upstreams_diagnostics(text: &str) -> Vec<&'static str> {
    let src = [Source {
        name: "upstreams.yaml",
        text,
    }];
    let ctx = Context {
        tls_listener: true,
        unsupported: &[],
    };
    match compile_upstreams(&src, &ctx) {
        Ok(c) => c.warnings.iter().map(|d| d.code).collect(),
        Err(d) => d.iter().map(|d| d.code).collect(),
    }
}

/// The compiler's default of each main.yaml key that has one, in the schema's spelling.
fn compiler_default(key: &str, c: &MainConfig) -> Option<Value> {
    let grade = format!("{:?}", c.proxy_tls_grade).to_lowercase();
    let level = format!("{:?}", c.log_level).to_lowercase();
    let access = format!("{:?}", c.access_log).to_lowercase();
    let slashes = format!("{:?}", c.escaped_slashes).to_lowercase();
    let method = format!("{:?}", c.hc_method).to_uppercase();
    Some(match key {
        "proxy_tls_grade" => json!(grade),
        "config_address" => json!(c.config_address.to_string()),
        "config_api_enabled" => json!(c.config_api_enabled),
        "admin_public_readonly" => json!(c.admin_public_readonly),
        "threads" => json!(c.threads),
        "daemon" => json!(c.daemon),
        "upgrade_sock" => json!(c.upgrade_sock.value),
        "log_level" => json!(level),
        "access_log" => json!(access),
        "access_log_format" => json!(c.access_log_format.as_str()),
        "upstream_keepalive_pool_size" => json!(c.upstream_keepalive_pool_size),
        "upstream_connect_timeout" => json!(c.upstream_connect_timeout),
        "upstream_read_timeout" => json!(c.upstream_read_timeout),
        "downstream_idle_timeout" => json!(c.downstream_idle_timeout),
        "client_header_timeout" => json!(c.client_header_timeout),
        "client_body_timeout" => json!(c.client_body_timeout),
        "request_buffering" => json!(if c.request_buffering { "on" } else { "off" }),
        "client_body_buffer_size" => json!(c.client_body_buffer_size),
        "client_max_body_size" => json!(c.client_max_body_size),
        "max_request_header_bytes" => json!(c.max_request_header_bytes),
        "max_connections" => json!(c.max_connections),
        "max_connections_per_ip" => json!(c.max_connections_per_ip),
        "escaped_slashes" => json!(slashes),
        "hc_method" => json!(method),
        "hc_interval" => json!(c.hc_interval),
        "hc_rise" => json!(c.hc_rise),
        "hc_fall" => json!(c.hc_fall),
        _ => return None,
    })
}

#[test]
fn main_schema_defaults_are_the_compiler_defaults() {
    let text = "proxy_address_http: \"0.0.0.0:6193\"\nupstreams_conf: upstreams.yaml\n";
    let src = Source {
        name: "main.yaml",
        text,
    };
    let config = compile_main(&src, &[])
        .expect("minimal main.yaml compiles")
        .value;
    let s = schema("main.schema.json");
    for key in keys::MAIN {
        let documented = s.pointer(&format!("/properties/{key}/default"));
        let actual = compiler_default(key, &config);
        assert_eq!(
            documented,
            actual.as_ref(),
            "main.yaml `{key}`: schema default vs the compiler's (a key with a default in either \
             must be listed in compiler_default)"
        );
    }
}

#[test]
fn configuration_reference_names_every_key() {
    let doc = read(&repo().join("docs/configuration.md"));
    let mut all: BTreeSet<&str> = BTreeSet::new();
    all.extend(keys::MAIN);
    all.extend(keys::upstreams_global());
    all.extend(keys::upstreams_host());
    all.extend(keys::upstreams_path());
    all.extend(keys::provider_service());
    all.extend(keys::AUTHORIZATION);
    all.extend(keys::CONSUL);
    all.extend(keys::CONSUL_TLS);
    all.extend(keys::KUBERNETES);
    all.extend(keys::ACME);
    all.extend(keys::LIMITS_STORE);
    // named in a code span (`key`, `key: value`) or as a key in a YAML example
    let missing: Vec<&str> = all
        .into_iter()
        .filter(|k| {
            let named = regex::Regex::new(&format!(r"(?m)`{k}(`|:)|^\s*{k}:")).unwrap();
            !named.is_match(&doc)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not name these keys: {missing:?}"
    );
}

/// The YAML of a config as JSON, parsed the way the compiler parses it (serde-saphyr).
fn yaml_as_json(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_valid(schema: &Value, path: &Path) {
    let errors = validate(schema, &yaml_as_json(path));
    assert!(
        errors.is_empty(),
        "{} does not validate against its schema:\n{}",
        path.display(),
        errors.join("\n")
    );
}

#[test]
fn examples_validate() {
    assert_valid(
        &schema("main.schema.json"),
        &repo().join("examples/main.yaml"),
    );
    assert_valid(
        &schema("upstreams.schema.json"),
        &repo().join("examples/upstreams.yaml"),
    );
}

/// Every compiler fixture that the compiler accepts (all features allowed) is valid under the
/// schema: the schema is never stricter than the compiler on that corpus.
#[test]
fn accepted_fixtures_validate() {
    let main_schema = schema("main.schema.json");
    let up_schema = schema("upstreams.schema.json");
    let dir = repo().join("compiler/tests/fixtures");
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = read(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let src = Source {
            name: &name,
            text: &text,
        };
        if name.starts_with("main") {
            if compile_main(&src, &[]).is_ok() {
                assert_valid(&main_schema, &path);
                checked += 1;
            }
        } else if upstreams_compiles(&path, &text) {
            assert_valid(&up_schema, &path);
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} fixtures compiled");
}

fn upstreams_compiles(path: &Path, text: &str) -> bool {
    let confd = path.with_extension("d");
    let mut extra: Vec<(String, String)> = Vec::new();
    if confd.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&confd)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            extra.push((f.display().to_string(), read(&f)));
        }
    }
    let mut sources = vec![Source {
        name: "upstreams.yaml",
        text,
    }];
    sources.extend(extra.iter().map(|(name, text)| Source { name, text }));
    let ctx = Context {
        tls_listener: true,
        unsupported: &[],
    };
    compile_upstreams(&sources, &ctx).is_ok()
}

/// The validator is not vacuous: what the compiler refuses for a key or a type, it refuses too.
#[test]
fn schemas_reject_unknown_keys_and_wrong_types() {
    let main_schema = schema("main.schema.json");
    let up_schema = schema("upstreams.schema.json");
    let base = json!({"proxy_address_http": "0.0.0.0:80", "upstreams_conf": "u.yaml"});
    assert!(validate(&main_schema, &base).is_empty());
    for bad in [
        json!({"thread": 2}),
        json!({"threads": "2"}),
        json!({"threads": 0}),
        json!({"log_level": "loud"}),
        json!({"request_buffering": "maybe"}),
    ] {
        let mut doc = base.clone();
        doc.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        assert!(!validate(&main_schema, &doc).is_empty(), "accepted {bad}");
    }
    let host = |path: Value| json!({"provider": "file", "a.example": {"paths": {"/": path}}});
    assert!(validate(&up_schema, &host(json!({"servers": ["127.0.0.1:1"]}))).is_empty());
    for bad in [
        json!({"server": ["127.0.0.1:1"]}),
        json!({"servers": []}),
        json!({"servers": ["127.0.0.1:1"], "rate_limit": 0}),
        json!({"servers": ["127.0.0.1:1"], "authorization": {"type": "digest"}}),
        json!({"servers": ["127.0.0.1:1"], "headers": ["no colon"]}),
    ] {
        assert!(
            !validate(&up_schema, &host(bad.clone())).is_empty(),
            "accepted {bad}"
        );
    }
}

#[test]
fn schemas_use_only_enforced_keywords() {
    for name in ["main.schema.json", "upstreams.schema.json"] {
        let s = schema(name);
        assert_eq!(
            s["$schema"],
            json!("https://json-schema.org/draft/2020-12/schema"),
            "{name}: draft 2020-12"
        );
        let unknown = unknown_keywords(&s, "");
        assert!(
            unknown.is_empty(),
            "{name} uses keywords tests/docs/validator.rs does not enforce: {unknown:?}"
        );
    }
}
