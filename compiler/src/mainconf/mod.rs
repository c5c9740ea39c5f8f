//! main.yaml: the process settings (listeners, threads, admin API, TLS, health checks, logs).

pub(crate) mod acme;
mod checks;
mod cidr;
mod diff;
pub(crate) mod parse;
pub(crate) mod store;

use std::net::SocketAddr;

pub use acme::{AcmeChallenge, AcmeConfig, DEFAULT_RENEW_BEFORE_DAYS, LETS_ENCRYPT_DIRECTORY};
pub use cidr::Cidr;
pub use diff::{diff_main, MainChange};
pub use parse::compile_main;

/// A value with the 1-based position where it was written (line 0 for a default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// 1-based line; 0 when the value is a default.
    pub line: u32,
    /// 1-based column; 0 when the value is a default.
    pub col: u32,
}

/// `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info` (default).
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
    /// `off`.
    Off,
}

/// `hc_method`: the HTTP method of health probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HcMethod {
    /// `HEAD` (default).
    Head,
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

/// `proxy_tls_grade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsGrade {
    /// TLS 1.3 + TLS 1.2 ECDHE with AES-256-GCM or ChaCha20-Poly1305 only.
    High,
    /// rustls defaults (default).
    Medium,
    /// Accepted as `Medium` with a warning (rustls has no legacy suites).
    Unsafe,
}

/// `access_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogMode {
    /// No access log.
    Off,
    /// One line per request (default).
    All,
    /// Only responses with status >= 400.
    Errors,
}

/// `access_log_format`: how an access line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One human-readable line through the process logger (default).
    Text,
    /// One JSON object per line, written by the access log writer thread.
    Json,
}

impl AccessLogFormat {
    /// The word as written in main.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLogFormat::Text => "text",
            AccessLogFormat::Json => "json",
        }
    }
}

/// `limits_store.on_error`: what the limits do while the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOnError {
    /// Each process enforces the limits alone (default).
    Open,
    /// Every request on a limited route gets 429.
    Closed,
}

impl StoreOnError {
    /// The word as written in main.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOnError::Open => "open",
            StoreOnError::Closed => "closed",
        }
    }
}

/// `limits_store`: the Redis that counts `rate_limit` and `x4xx_limit` fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsStore {
    /// `redis://host[:port][/db]` or `rediss://...` (no password inside: see `password_file`).
    pub url: Located<String>,
    /// Bound on each synchronisation round trip, in milliseconds (default 50).
    pub timeout_ms: u64,
    /// Behaviour while the store is unreachable (default open).
    pub on_error: StoreOnError,
    /// Prefix of every key (default `aralez:`).
    pub key_prefix: String,
    /// File holding the Redis password (AUTH).
    pub password_file: Option<Located<String>>,
}

/// The typed main.yaml, defaults applied. Paths are as written (the runtime resolves them
/// relative to main.yaml's directory).
#[derive(Clone, PartialEq, Eq)]
pub struct MainConfig {
    /// Worker threads per service (default 1).
    pub threads: usize,
    /// Drop to this user after binding.
    pub user: Option<String>,
    /// Drop to this group after binding.
    pub group: Option<String>,
    /// Fork to background.
    pub daemon: bool,
    /// Pooled upstream connections (default 128).
    pub upstream_keepalive_pool_size: usize,
    /// PID file.
    pub pid_file: Option<Located<String>>,
    /// Log file (default stderr).
    pub error_log: Option<Located<String>>,
    /// Socket for zero-downtime upgrade (default `/tmp/aralez.sock`).
    pub upgrade_sock: Located<String>,
    /// Admin API, plain (default `127.0.0.1:3000`).
    pub config_address: SocketAddr,
    /// Admin API over TLS.
    pub config_tls_address: Option<SocketAddr>,
    /// Certificate of the admin TLS listener.
    pub config_tls_certificate: Option<Located<String>>,
    /// Key of the admin TLS listener.
    pub config_tls_key_file: Option<Located<String>>,
    /// Enables the mutating admin endpoints (default true).
    pub config_api_enabled: bool,
    /// Admin API / JWT secret written inline.
    pub master_key: Option<String>,
    /// File holding the master key.
    pub master_key_file: Option<Located<String>>,
    /// Read-only admin endpoints without the key (default false).
    pub admin_public_readonly: bool,
    /// HTTP listener (required).
    pub proxy_address_http: SocketAddr,
    /// HTTPS listener.
    pub proxy_address_tls: Option<SocketAddr>,
    /// Folder of `NAME.crt` + `NAME.key` pairs (required with TLS).
    pub proxy_certificates: Option<Located<String>>,
    /// Cipher-suite policy (default medium).
    pub proxy_tls_grade: TlsGrade,
    /// Path of upstreams.yaml (required).
    pub upstreams_conf: Located<String>,
    /// Log level (default info).
    pub log_level: LogLevel,
    /// Health-check method (default HEAD).
    pub hc_method: HcMethod,
    /// Seconds between health checks (default 2, >= 1).
    pub hc_interval: u64,
    /// Consecutive passed probes that bring an unhealthy backend back (default 1).
    pub hc_rise: u32,
    /// Consecutive failed probes that take a healthy backend out (default 1).
    pub hc_fall: u32,
    /// Static file server folder (with `file_server_address`).
    pub file_server_folder: Option<Located<String>>,
    /// Static file server listener (with `file_server_folder`).
    pub file_server_address: Option<SocketAddr>,
    /// Access log (default all).
    pub access_log: AccessLogMode,
    /// Access line format (default text).
    pub access_log_format: AccessLogFormat,
    /// File the access lines are appended to (default: stderr; text lines without it go to
    /// `error_log` as before).
    pub access_log_file: Option<Located<String>>,
    /// Shared limit counters on Redis (`None`: limits are local to the process).
    pub limits_store: Option<LimitsStore>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Upstream connect timeout in seconds (default 5).
    pub upstream_connect_timeout: u64,
    /// Upstream read timeout in seconds (default 60).
    pub upstream_read_timeout: u64,
    /// Idle timeout of client connections in seconds (default 60).
    pub downstream_idle_timeout: u64,
    /// Largest accepted request header block in bytes (default 32768).
    pub max_request_header_bytes: usize,
    /// Seconds a client has to send a whole request head, and to send its first byte on a new
    /// connection (default 10).
    pub client_header_timeout: u64,
    /// Seconds allowed between two reads of a request body (default 60).
    pub client_body_timeout: u64,
    /// Read and validate request bodies up to `client_body_buffer_size` before the upstream is
    /// contacted (default on).
    pub request_buffering: bool,
    /// Largest request body held before the upstream is contacted, in bytes (default 64 KiB).
    pub client_body_buffer_size: usize,
    /// Largest request body accepted, in bytes; 0 = unlimited (default 16 MiB).
    pub client_max_body_size: u64,
    /// Open client connections per proxy listener service; 0 = unlimited (default 10000).
    pub max_connections: usize,
    /// Open client connections per client IP address; 0 = unlimited (default 0).
    pub max_connections_per_ip: usize,
    /// `%2F` / `%5C` in request paths (default reject).
    pub escaped_slashes: EscapedSlashes,
    /// `acme`: certificates obtained and renewed over ACME (`None`: not configured).
    pub acme: Option<AcmeConfig>,
}

/// `escaped_slashes`: what to do with an encoded `/` or `\\` in a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// 400 Bad Request (default): the path could otherwise bypass path routes.
    Reject,
    /// Forward as is; routing sees the encoded byte as an ordinary character.
    Keep,
}

impl EscapedSlashes {
    /// The word as written in main.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            EscapedSlashes::Reject => "reject",
            EscapedSlashes::Keep => "keep",
        }
    }
}

impl std::fmt::Debug for MainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything except the inline master key, which is redacted.
        f.debug_struct("MainConfig")
            .field("threads", &self.threads)
            .field("proxy_address_http", &self.proxy_address_http)
            .field("proxy_address_tls", &self.proxy_address_tls)
            .field("config_address", &self.config_address)
            .field("upstreams_conf", &self.upstreams_conf)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl LogLevel {
    /// The word as written in main.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

impl HcMethod {
    /// The HTTP method.
    pub fn as_str(self) -> &'static str {
        match self {
            HcMethod::Head => "HEAD",
            HcMethod::Get => "GET",
            HcMethod::Post => "POST",
        }
    }
}

impl TlsGrade {
    /// The word as written in main.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsGrade::High => "high",
            TlsGrade::Medium => "medium",
            TlsGrade::Unsafe => "unsafe",
        }
    }
}

impl AccessLogMode {
    /// The word as written in main.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLogMode::Off => "off",
            AccessLogMode::All => "all",
            AccessLogMode::Errors => "errors",
        }
    }
}
