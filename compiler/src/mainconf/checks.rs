//! The checks of main.yaml that span several keys: required keys, settings that need each other,
//! the master key given twice.

use super::parse::Seen;
use crate::codes;
use crate::diag::Sink;
use crate::walk::{pos, Entry};
use crate::yaml::Node;

/// Reports missing required keys and settings that need each other.
pub(super) fn cross_checks(
    sink: &mut Sink<'_>,
    root: &Node,
    entries: &[Entry<'_>],
    seen: &Seen,
    have_http: bool,
    have_upstreams: bool,
) {
    for (have, key, example) in [
        (have_http, "proxy_address_http", "0.0.0.0:6193"),
        (have_upstreams, "upstreams_conf", "etc/upstreams.yaml"),
    ] {
        if !have {
            sink.report(
                codes::MISSING_KEY,
                pos(root),
                "",
                format!("`{key}` is required; add e.g. `{key}: {example}`"),
            );
        }
    }
    let has = |k: &str| entries.iter().any(|e| e.key == k);
    if let Some(at) = seen.proxy_tls {
        if !has("proxy_certificates") {
            sink.report(
                codes::TLS_WITHOUT_CERTS,
                at,
                "proxy_address_tls",
                "`proxy_address_tls` needs `proxy_certificates` (a folder of NAME.crt + NAME.key pairs)",
            );
        }
    }
    if !seen.admin_tls.is_empty() && seen.admin_tls.len() < 3 {
        for (at, key) in &seen.admin_tls {
            let missing: Vec<&str> = [
                "config_tls_address",
                "config_tls_certificate",
                "config_tls_key_file",
            ]
            .into_iter()
            .filter(|k| !seen.admin_tls.iter().any(|(_, s)| s == k))
            .collect();
            sink.report(
                codes::ADMIN_TLS_INCOMPLETE,
                *at,
                key,
                format!(
                    "the admin TLS listener needs `config_tls_address`, `config_tls_certificate` and `config_tls_key_file` together; add {}",
                    missing.join(", ")
                ),
            );
        }
    }
    if seen.file_server.len() == 1 {
        if let Some((at, key)) = seen.file_server.first() {
            let other = if *key == "file_server_folder" {
                "file_server_address"
            } else {
                "file_server_folder"
            };
            sink.report(
                codes::FILE_SERVER_PAIR,
                *at,
                key,
                format!(
                    "`{key}` needs `{other}` too (set both to enable the file server, or neither)"
                ),
            );
        }
    }
    if let Some(at) = seen.acme {
        if seen.proxy_tls.is_none() {
            sink.report(
                codes::ACME_WITHOUT_TLS,
                at,
                "acme",
                "`acme` needs `proxy_address_tls` and `proxy_certificates`: the certificates it obtains are served by the TLS listener and stored in its folder",
            );
        }
    }
    if let (Some(_), Some(at)) = (seen.master_key, seen.master_key_file) {
        sink.report(
            codes::MASTER_KEY_TWICE,
            at,
            "master_key_file",
            "both `master_key` and `master_key_file` are set; keep one (prefer `master_key_file`)",
        );
    }
}
