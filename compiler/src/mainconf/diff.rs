//! Differences between two main.yaml configs, and which of them need a restart.

use super::MainConfig;

/// One changed main.yaml key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainChange {
    /// The main.yaml key.
    pub key: &'static str,
    /// Old value as text (secrets shown as `<redacted>`; `-` when unset).
    pub old: String,
    /// New value as text (secrets shown as `<redacted>`; `-` when unset).
    pub new: String,
    /// True when the change takes effect only after a restart or a `-u` upgrade.
    pub restart_required: bool,
}

/// Keys whose change the runtime can apply without a restart (when it reloads main.yaml):
/// logging, health checking, admin API access rules, client-IP trust and upstream timeouts.
/// Everything else (listeners, threads, user/group, daemon, files and folders, TLS grade,
/// keepalive pool, header limits, idle timeout) needs a restart or `-u` upgrade.
const LIVE: &[&str] = &[
    "log_level",
    "access_log",
    "hc_method",
    "hc_interval",
    "hc_rise",
    "hc_fall",
    "config_api_enabled",
    "admin_public_readonly",
    "master_key",
    "master_key_file",
    "trusted_proxies",
    "upstream_connect_timeout",
    "upstream_read_timeout",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

fn loc(v: &Option<super::Located<String>>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |l| l.value.clone())
}

fn fields(c: &MainConfig) -> Vec<(&'static str, String)> {
    vec![
        ("threads", c.threads.to_string()),
        ("user", opt(&c.user)),
        ("group", opt(&c.group)),
        ("daemon", c.daemon.to_string()),
        (
            "upstream_keepalive_pool_size",
            c.upstream_keepalive_pool_size.to_string(),
        ),
        ("pid_file", loc(&c.pid_file)),
        ("error_log", loc(&c.error_log)),
        ("upgrade_sock", c.upgrade_sock.value.clone()),
        ("config_address", c.config_address.to_string()),
        ("config_tls_address", opt(&c.config_tls_address)),
        ("config_tls_certificate", loc(&c.config_tls_certificate)),
        ("config_tls_key_file", loc(&c.config_tls_key_file)),
        ("config_api_enabled", c.config_api_enabled.to_string()),
        (
            "master_key",
            c.master_key
                .as_ref()
                .map_or("-".into(), |k| format!("<redacted:{}>", short_hash(k))),
        ),
        ("master_key_file", loc(&c.master_key_file)),
        ("admin_public_readonly", c.admin_public_readonly.to_string()),
        ("proxy_address_http", c.proxy_address_http.to_string()),
        ("proxy_address_tls", opt(&c.proxy_address_tls)),
        ("proxy_certificates", loc(&c.proxy_certificates)),
        ("proxy_tls_grade", c.proxy_tls_grade.as_str().to_string()),
        ("upstreams_conf", c.upstreams_conf.value.clone()),
        ("log_level", c.log_level.as_str().to_string()),
        ("hc_method", c.hc_method.as_str().to_string()),
        ("hc_interval", c.hc_interval.to_string()),
        ("hc_rise", c.hc_rise.to_string()),
        ("hc_fall", c.hc_fall.to_string()),
        ("file_server_folder", loc(&c.file_server_folder)),
        ("file_server_address", opt(&c.file_server_address)),
        ("access_log", c.access_log.as_str().to_string()),
        (
            "access_log_format",
            c.access_log_format.as_str().to_string(),
        ),
        ("access_log_file", loc(&c.access_log_file)),
        (
            "limits_store",
            c.limits_store.as_ref().map_or_else(
                || "-".to_string(),
                |l| {
                    format!(
                        "{} timeout_ms={} on_error={} key_prefix={} password_file={}",
                        l.url.value,
                        l.timeout_ms,
                        l.on_error.as_str(),
                        l.key_prefix,
                        loc(&l.password_file)
                    )
                },
            ),
        ),
        (
            "trusted_proxies",
            c.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "upstream_connect_timeout",
            c.upstream_connect_timeout.to_string(),
        ),
        ("upstream_read_timeout", c.upstream_read_timeout.to_string()),
        (
            "downstream_idle_timeout",
            c.downstream_idle_timeout.to_string(),
        ),
        (
            "max_request_header_bytes",
            c.max_request_header_bytes.to_string(),
        ),
        ("client_header_timeout", c.client_header_timeout.to_string()),
        ("client_body_timeout", c.client_body_timeout.to_string()),
        ("request_buffering", c.request_buffering.to_string()),
        (
            "client_body_buffer_size",
            c.client_body_buffer_size.to_string(),
        ),
        ("client_max_body_size", c.client_max_body_size.to_string()),
        ("max_connections", c.max_connections.to_string()),
        (
            "max_connections_per_ip",
            c.max_connections_per_ip.to_string(),
        ),
        ("escaped_slashes", c.escaped_slashes.as_str().to_string()),
        (
            "acme",
            c.acme.as_ref().map_or_else(
                || "-".to_string(),
                |a| {
                    format!(
                        "directory={} challenge={} renew_before_days={}",
                        a.directory,
                        a.challenge.as_str(),
                        a.renew_before_days
                    )
                },
            ),
        ),
    ]
}

/// A short, non-reversible fingerprint so a key change is visible without showing the key.
fn short_hash(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keys whose values differ, in main.yaml key order, each flagged restart-required or not.
pub fn diff_main(old: &MainConfig, new: &MainConfig) -> Vec<MainChange> {
    fields(old)
        .into_iter()
        .zip(fields(new))
        .filter(|((_, a), (_, b))| a != b)
        .map(|((key, old), (_, new))| {
            let (old, new) = if key == "master_key" {
                (redact(&old), redact(&new))
            } else {
                (old, new)
            };
            MainChange {
                key,
                old,
                new,
                restart_required: !LIVE.contains(&key),
            }
        })
        .collect()
}

fn redact(s: &str) -> String {
    if s == "-" {
        s.into()
    } else {
        "<redacted>".into()
    }
}
