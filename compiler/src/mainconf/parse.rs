//! Walks main.yaml into a [`MainConfig`], applying defaults and the policy lints.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{
    AccessLogFormat, AccessLogMode, Cidr, EscapedSlashes, HcMethod, Located, LogLevel, MainConfig,
    TlsGrade,
};
use crate::codes;
use crate::diag::{self, Diagnostic, Sink};
use crate::document;
use crate::input::{conclude, Compiled, Source};
use crate::suggest;
use crate::values;
use crate::walk::{self, pos};
use crate::yaml::{Node, Value};
use crate::ypath;

/// Every key of main.yaml: the parser refuses any other (E0005 with a did-you-mean), and
/// [`crate::keys::MAIN`] exposes this table to tools.
pub const KEYS: &[&str] = &[
    "access_log",
    "access_log_file",
    "access_log_format",
    "acme",
    "admin_public_readonly",
    "client_body_buffer_size",
    "client_body_timeout",
    "client_header_timeout",
    "client_max_body_size",
    "config_address",
    "config_api_enabled",
    "config_tls_address",
    "config_tls_certificate",
    "config_tls_key_file",
    "daemon",
    "downstream_idle_timeout",
    "error_log",
    "escaped_slashes",
    "file_server_address",
    "file_server_folder",
    "group",
    "hc_fall",
    "hc_interval",
    "hc_method",
    "hc_rise",
    "limits_store",
    "log_level",
    "master_key",
    "master_key_file",
    "max_connections",
    "max_connections_per_ip",
    "max_request_header_bytes",
    "pid_file",
    "proxy_address_http",
    "proxy_address_tls",
    "proxy_certificates",
    "proxy_tls_grade",
    "request_buffering",
    "threads",
    "trusted_proxies",
    "upgrade_sock",
    "upstream_connect_timeout",
    "upstream_keepalive_pool_size",
    "upstream_read_timeout",
    "upstreams_conf",
    "user",
];

/// Compiles main.yaml. Keys listed in `unsupported` are refused with E0900.
pub fn compile_main(
    source: &Source<'_>,
    unsupported: &[&str],
) -> Result<Compiled<MainConfig>, Vec<Diagnostic>> {
    let mut sink = Sink::new(source.name);
    let value = document::load_root(&mut sink, source.text)
        .and_then(|root| walk_root(&mut sink, &root, unsupported));
    conclude(value, diag::finish(sink.diags, &[source.name]))
}

/// Positions of the keys that drive cross-key checks.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) proxy_tls: Option<(u32, u32)>,
    pub(super) admin_tls: Vec<((u32, u32), &'static str)>,
    pub(super) file_server: Vec<((u32, u32), &'static str)>,
    pub(super) master_key: Option<(u32, u32)>,
    pub(super) master_key_file: Option<(u32, u32)>,
    pub(super) acme: Option<(u32, u32)>,
}

fn default_config() -> MainConfig {
    MainConfig {
        threads: 1,
        user: None,
        group: None,
        daemon: false,
        upstream_keepalive_pool_size: 128,
        pid_file: None,
        error_log: None,
        upgrade_sock: Located {
            value: "/tmp/aralez.sock".into(),
            line: 0,
            col: 0,
        },
        config_address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3000),
        config_tls_address: None,
        config_tls_certificate: None,
        config_tls_key_file: None,
        config_api_enabled: true,
        master_key: None,
        master_key_file: None,
        admin_public_readonly: false,
        proxy_address_http: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6193),
        proxy_address_tls: None,
        proxy_certificates: None,
        proxy_tls_grade: TlsGrade::Medium,
        upstreams_conf: Located {
            value: String::new(),
            line: 0,
            col: 0,
        },
        log_level: LogLevel::Info,
        hc_method: HcMethod::Head,
        hc_interval: 2,
        hc_rise: 1,
        hc_fall: 1,
        file_server_folder: None,
        file_server_address: None,
        access_log: AccessLogMode::All,
        access_log_format: AccessLogFormat::Text,
        access_log_file: None,
        limits_store: None,
        trusted_proxies: Vec::new(),
        upstream_connect_timeout: 5,
        upstream_read_timeout: 60,
        downstream_idle_timeout: 60,
        max_request_header_bytes: 32 * 1024,
        client_header_timeout: 10,
        client_body_timeout: 60,
        request_buffering: true,
        client_body_buffer_size: 64 * 1024,
        client_max_body_size: 16 * 1024 * 1024,
        max_connections: 10_000,
        max_connections_per_ip: 0,
        escaped_slashes: EscapedSlashes::Reject,
        acme: None,
    }
}

fn walk_root(sink: &mut Sink<'_>, root: &Node, unsupported: &[&str]) -> Option<MainConfig> {
    let entries = walk::entries(sink, root, "", "of main settings")?;
    let mut c = default_config();
    let mut seen = Seen::default();
    let mut have_http = false;
    let mut have_upstreams = false;
    for e in &entries {
        let path = ypath::key("", e.key);
        if !KEYS.contains(&e.key) {
            walk::unknown_key(sink, e, "", KEYS);
            continue;
        }
        if unsupported.contains(&e.key) {
            sink.report(
                codes::UNSUPPORTED,
                pos(e.key_node),
                &path,
                format!(
                    "`{}` is not supported yet by this build of aralez; remove it",
                    e.key
                ),
            );
            continue;
        }
        let v = e.value;
        let s = &mut *sink;
        match e.key {
            "threads" => set(&mut c.threads, uint(s, v, &path, 1, 1024, e.key)),
            "user" => c.user = name(s, v, &path),
            "group" => c.group = name(s, v, &path),
            "daemon" => set(&mut c.daemon, walk::bool_of(s, v, &path)),
            "upstream_keepalive_pool_size" => set(
                &mut c.upstream_keepalive_pool_size,
                uint(s, v, &path, 0, 1_000_000, e.key),
            ),
            "pid_file" => c.pid_file = file(s, v, &path),
            "error_log" => c.error_log = file(s, v, &path),
            "upgrade_sock" => set(&mut c.upgrade_sock, file(s, v, &path)),
            "config_address" => {
                if let Some(a) = listen(s, v, &path) {
                    c.config_address = a;
                    admin_lint(s, v, &path, a);
                }
            }
            "config_tls_address" => {
                seen.admin_tls.push((pos(e.key_node), "config_tls_address"));
                c.config_tls_address = listen(s, v, &path);
                if let Some(a) = c.config_tls_address {
                    admin_lint(s, v, &path, a);
                }
            }
            "config_tls_certificate" => {
                seen.admin_tls
                    .push((pos(e.key_node), "config_tls_certificate"));
                c.config_tls_certificate = file(s, v, &path);
            }
            "config_tls_key_file" => {
                seen.admin_tls
                    .push((pos(e.key_node), "config_tls_key_file"));
                c.config_tls_key_file = file(s, v, &path);
            }
            "config_api_enabled" => set(&mut c.config_api_enabled, walk::bool_of(s, v, &path)),
            "master_key" => {
                seen.master_key = Some(pos(e.key_node));
                c.master_key = walk::nonempty_str_of(s, v, &path).map(str::to_string);
                if let Some(k) = &c.master_key {
                    if k.len() < 32 {
                        s.report(
                            codes::SHORT_MASTER_KEY,
                            pos(v),
                            &path,
                            format!(
                                "`master_key` is {} bytes long; use at least 32 random bytes (e.g. `openssl rand -hex 32`)",
                                k.len()
                            ),
                        );
                    }
                }
            }
            "master_key_file" => {
                seen.master_key_file = Some(pos(e.key_node));
                c.master_key_file = file(s, v, &path);
            }
            "admin_public_readonly" => {
                set(&mut c.admin_public_readonly, walk::bool_of(s, v, &path))
            }
            "proxy_address_http" => {
                have_http = true;
                set(&mut c.proxy_address_http, listen(s, v, &path));
            }
            "proxy_address_tls" => {
                seen.proxy_tls = Some(pos(e.key_node));
                c.proxy_address_tls = listen(s, v, &path);
            }
            "proxy_certificates" => c.proxy_certificates = file(s, v, &path),
            "proxy_tls_grade" => {
                const W: &[&str] = &["high", "medium", "unsafe"];
                let g = word(s, v, &path, W).and_then(|w| match w {
                    "high" => Some(TlsGrade::High),
                    "medium" => Some(TlsGrade::Medium),
                    "unsafe" => Some(TlsGrade::Unsafe),
                    _ => None,
                });
                if g == Some(TlsGrade::Unsafe) {
                    s.report(
                        codes::TLS_GRADE_UNSAFE,
                        pos(v),
                        &path,
                        "`proxy_tls_grade: unsafe` is served as `medium` (rustls has no legacy cipher suites); write `medium` or `high`",
                    );
                }
                set(&mut c.proxy_tls_grade, g);
            }
            "upstreams_conf" => {
                have_upstreams = true;
                set(&mut c.upstreams_conf, file(s, v, &path));
            }
            "log_level" => {
                const W: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
                let l = word(s, v, &path, W).and_then(|w| match w {
                    "trace" => Some(LogLevel::Trace),
                    "debug" => Some(LogLevel::Debug),
                    "info" => Some(LogLevel::Info),
                    "warn" => Some(LogLevel::Warn),
                    "error" => Some(LogLevel::Error),
                    "off" => Some(LogLevel::Off),
                    _ => None,
                });
                set(&mut c.log_level, l);
            }
            "hc_method" => {
                const W: &[&str] = &["HEAD", "GET", "POST"];
                let m = word(s, v, &path, W).and_then(|w| match w {
                    "HEAD" => Some(HcMethod::Head),
                    "GET" => Some(HcMethod::Get),
                    "POST" => Some(HcMethod::Post),
                    _ => None,
                });
                set(&mut c.hc_method, m);
            }
            "hc_interval" => set(&mut c.hc_interval, uint(s, v, &path, 1, 86_400, e.key)),
            "hc_rise" => set(&mut c.hc_rise, uint(s, v, &path, 1, 100, e.key)),
            "hc_fall" => set(&mut c.hc_fall, uint(s, v, &path, 1, 100, e.key)),
            "file_server_folder" => {
                seen.file_server
                    .push((pos(e.key_node), "file_server_folder"));
                c.file_server_folder = file(s, v, &path);
            }
            "file_server_address" => {
                seen.file_server
                    .push((pos(e.key_node), "file_server_address"));
                c.file_server_address = listen(s, v, &path);
            }
            "access_log" => {
                const W: &[&str] = &["off", "all", "errors"];
                let a = word(s, v, &path, W).and_then(|w| match w {
                    "off" => Some(AccessLogMode::Off),
                    "all" => Some(AccessLogMode::All),
                    "errors" => Some(AccessLogMode::Errors),
                    _ => None,
                });
                set(&mut c.access_log, a);
            }
            "access_log_format" => {
                let f = word(s, v, &path, &["text", "json"]).map(|w| match w {
                    "json" => AccessLogFormat::Json,
                    _ => AccessLogFormat::Text,
                });
                set(&mut c.access_log_format, f);
            }
            "access_log_file" => c.access_log_file = file(s, v, &path),
            "limits_store" => c.limits_store = super::store::limits_store(s, v, &path),
            "trusted_proxies" => c.trusted_proxies = cidrs(s, v, &path),
            "upstream_connect_timeout" => set(
                &mut c.upstream_connect_timeout,
                uint(s, v, &path, 1, 3600, e.key),
            ),
            "upstream_read_timeout" => set(
                &mut c.upstream_read_timeout,
                uint(s, v, &path, 1, 86_400, e.key),
            ),
            "downstream_idle_timeout" => set(
                &mut c.downstream_idle_timeout,
                uint(s, v, &path, 1, 86_400, e.key),
            ),
            "max_request_header_bytes" => set(
                &mut c.max_request_header_bytes,
                uint(s, v, &path, 1024, 1024 * 1024, e.key),
            ),
            "client_header_timeout" => set(
                &mut c.client_header_timeout,
                uint(s, v, &path, 1, 3600, e.key),
            ),
            "client_body_timeout" => set(
                &mut c.client_body_timeout,
                uint(s, v, &path, 1, 86_400, e.key),
            ),
            "request_buffering" => set(&mut c.request_buffering, on_off(s, v, &path)),
            "client_body_buffer_size" => set(
                &mut c.client_body_buffer_size,
                uint(s, v, &path, 0, 64 * 1024 * 1024, e.key),
            ),
            "client_max_body_size" => set(
                &mut c.client_max_body_size,
                uint(s, v, &path, 0, i64::MAX, e.key),
            ),
            "max_connections" => set(
                &mut c.max_connections,
                uint(s, v, &path, 0, 10_000_000, e.key),
            ),
            "max_connections_per_ip" => set(
                &mut c.max_connections_per_ip,
                uint(s, v, &path, 0, 10_000_000, e.key),
            ),
            "acme" => {
                seen.acme = Some(pos(e.key_node));
                c.acme = super::acme::section(s, v, &path);
            }
            "escaped_slashes" => {
                let w = word(s, v, &path, &["reject", "keep"]).map(|w| match w {
                    "keep" => EscapedSlashes::Keep,
                    _ => EscapedSlashes::Reject,
                });
                set(&mut c.escaped_slashes, w);
            }
            _ => walk::unknown_key(s, e, "", KEYS),
        }
    }
    super::checks::cross_checks(sink, root, &entries, &seen, have_http, have_upstreams);
    (sink.error_count() == 0).then_some(c)
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn uint<T: TryFrom<i64>>(
    sink: &mut Sink<'_>,
    v: &Node,
    path: &str,
    min: i64,
    max: i64,
    key: &str,
) -> Option<T> {
    walk::int_of(sink, v, path, min, max, key).and_then(|i| T::try_from(i).ok())
}

/// A switch written as a boolean or as `on` / `off`.
fn on_off(sink: &mut Sink<'_>, v: &Node, path: &str) -> Option<bool> {
    match &v.value {
        Value::Str(w) if w == "on" || w == "off" => Some(w == "on"),
        Value::Bool(b) => Some(*b),
        _ => {
            walk::wrong_type(sink, v, path, "on or off (or true or false)");
            None
        }
    }
}

fn name(sink: &mut Sink<'_>, v: &Node, path: &str) -> Option<String> {
    walk::nonempty_str_of(sink, v, path).map(str::to_string)
}

fn file(sink: &mut Sink<'_>, v: &Node, path: &str) -> Option<Located<String>> {
    walk::nonempty_str_of(sink, v, path).map(|s| Located {
        value: s.to_string(),
        line: v.line,
        col: v.col,
    })
}

fn listen(sink: &mut Sink<'_>, v: &Node, path: &str) -> Option<SocketAddr> {
    let s = walk::str_of(sink, v, path)?;
    let addr = values::listen(s)
        .map_err(|(code, msg)| sink.report(code, pos(v), path, msg))
        .ok()?;
    if let Some(msg) = values::port_zero_lint(addr) {
        sink.report(codes::LISTEN_PORT_ZERO, pos(v), path, msg);
    }
    Some(addr)
}

fn admin_lint(sink: &mut Sink<'_>, v: &Node, path: &str, a: SocketAddr) {
    if !a.ip().is_loopback() {
        sink.report(
            codes::ADMIN_PUBLIC,
            pos(v),
            path,
            format!(
                "the admin API listens on {a}, which is reachable from other hosts; bind it to 127.0.0.1 or protect it with a firewall"
            ),
        );
    }
}

fn word<'w>(sink: &mut Sink<'_>, v: &Node, path: &str, allowed: &[&'w str]) -> Option<&'w str> {
    let s = walk::str_of(sink, v, path)?;
    if let Some(w) = allowed.iter().find(|w| **w == s) {
        return Some(w);
    }
    let hint = match allowed.iter().find(|w| w.eq_ignore_ascii_case(s)) {
        Some(w) => format!(" (write `{w}`)"),
        None => suggest::closest(s, allowed)
            .map(|w| format!(" (did you mean `{w}`?)"))
            .unwrap_or_default(),
    };
    sink.report(
        codes::BAD_ENUM,
        pos(v),
        path,
        format!("`{s}` is not one of {}{hint}", allowed.join(", ")),
    );
    None
}

fn cidrs(sink: &mut Sink<'_>, v: &Node, path: &str) -> Vec<Cidr> {
    let Some(items) = walk::seq_of(sink, v, path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = ypath::index(path, i);
        let Some(s) = walk::str_of(sink, item, &p) else {
            continue;
        };
        match Cidr::parse(s) {
            Some(c) => out.push(c),
            None => sink.report(
                codes::BAD_CIDR,
                pos(item),
                &p,
                format!(
                    "`{s}` is not an IP address or CIDR; write e.g. `10.0.0.0/8` or `fd00::/8`"
                ),
            ),
        }
    }
    out
}
