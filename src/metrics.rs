//! Prometheus metrics. Labels come from plan identifiers only (route ids, backend ids, config
//! hashes, certificate names): never a raw path, Host header, client IP or token.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric Aralez exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// `aralez_http_requests_total{route,method,code}`.
    pub requests: IntCounterVec,
    /// `aralez_http_request_duration_seconds{route}`.
    pub duration: HistogramVec,
    /// `aralez_http_requests_in_flight`.
    pub in_flight: IntGauge,
    /// `aralez_upstream_requests_total{route,backend,outcome}` (outcome: ok, error, connect_error).
    pub upstream_requests: IntCounterVec,
    /// `aralez_upstream_retries_total{route}`.
    pub retries: IntCounterVec,
    /// `aralez_upstream_healthy{route,backend}` (1 healthy, 0 not).
    pub upstream_healthy: IntGaugeVec,
    /// `aralez_auth_rejected_total{route,scheme}`.
    pub auth_rejected: IntCounterVec,
    /// `aralez_ratelimit_rejected_total{route,kind}` (kind: rate, x4xx).
    pub ratelimit_rejected: IntCounterVec,
    /// `aralez_config_reloads_total{result,trigger}`.
    pub config_reloads: IntCounterVec,
    /// `aralez_config_last_reload_successful`.
    pub config_last_reload_successful: IntGauge,
    /// `aralez_config_last_reload_success_timestamp_seconds`.
    pub config_last_reload_success_ts: IntGauge,
    /// `aralez_config_info{hash}` (1 for the active plan).
    pub config_info: IntGaugeVec,
    /// `aralez_tls_certificate_not_after_timestamp_seconds{name}`.
    pub tls_not_after: IntGaugeVec,
    /// `aralez_tls_certificate_load_errors_total{name}`.
    pub tls_load_errors: IntCounterVec,
    /// `aralez_downstream_refused_total{reason}`: connections and requests the gate refused
    /// before pingora (reason: a status code, `header_timeout`, `body_timeout`,
    /// `max_connections`, `max_connections_per_ip`, `bad_h2_preface`, ...).
    pub downstream_refused: IntCounterVec,
    /// `aralez_config_watch_active{source}` (1: file changes are seen; 0: only SIGHUP reloads).
    pub config_watch_active: IntGaugeVec,
    /// `aralez_config_watch_errors_total{source}`: watches that could not be set up.
    pub config_watch_errors: IntCounterVec,
    /// `aralez_provider_up{provider}` (1: every service watch of the provider synced on its last
    /// query; 0: at least one fails and its last good endpoints keep serving).
    pub provider_up: IntGaugeVec,
    /// `aralez_provider_updates_total{provider,result}` (result: changed, unchanged, error).
    pub provider_updates: IntCounterVec,
    /// `aralez_provider_last_sync_timestamp_seconds{provider}`: Unix time of the last answer.
    pub provider_last_sync: IntGaugeVec,
    /// `aralez_acme_certificate_renewals_total{name,result}` (result: issued, renewed, failed).
    pub acme_renewals: IntCounterVec,
    /// `aralez_forward_auth_errors_total{route,reason}` (reason: timeout, io, protocol): forward
    /// authentication that could not be asked (the client got 503).
    pub forward_auth_errors: IntCounterVec,
    /// `aralez_limits_store_up`: 1 while the shared limits store answers its round trips.
    pub limits_store_up: IntGauge,
    /// `aralez_limits_store_errors_total`: failed or late round trips to the limits store.
    pub limits_store_errors: prometheus::IntCounter,
    /// The limits store as `/config/status` shows it (`None`: not configured).
    limits_store_state: Mutex<Option<serde_json::Value>>,
    /// `aralez_access_log_dropped_total`: access lines dropped because the writer fell behind.
    pub access_log_dropped: prometheus::IntCounter,
    /// Per watched source, the last watch error (`None`: armed), for `/config/status`.
    watch_state: Mutex<BTreeMap<String, Option<String>>>,
    /// Per provider, its state as `/config/status` shows it.
    provider_state: Mutex<BTreeMap<String, serde_json::Value>>,
}

/// One watched source as `/config/status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchState {
    /// File changes are applied without SIGHUP.
    pub active: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Bounded method label: the standard methods, else `OTHER`.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Errors from creating the registry (only on duplicate or invalid metric definitions: a bug).
pub type MetricsError = prometheus::Error;

impl Metrics {
    /// Creates and registers every metric; `aralez_build_info{version}` is set to 1.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, MetricsError> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let build = gauge_vec("aralez_build_info", "Build information.", &["version"])?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "aralez_http_request_duration_seconds",
                "Time from request head to the end of the response, by route.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self {
            requests: counter(
                "aralez_http_requests_total",
                "Requests answered, by route, method and status code.",
                &["route", "method", "code"],
            )?,
            duration,
            in_flight: gauge("aralez_http_requests_in_flight", "Requests being served now.")?,
            upstream_requests: counter(
                "aralez_upstream_requests_total",
                "Requests sent to upstream backends, by outcome.",
                &["route", "backend", "outcome"],
            )?,
            retries: counter(
                "aralez_upstream_retries_total",
                "Requests retried on another backend after a connection failure.",
                &["route"],
            )?,
            upstream_healthy: gauge_vec(
                "aralez_upstream_healthy",
                "1 when the backend passes its health check.",
                &["route", "backend"],
            )?,
            auth_rejected: counter(
                "aralez_auth_rejected_total",
                "Requests refused by authentication.",
                &["route", "scheme"],
            )?,
            ratelimit_rejected: counter(
                "aralez_ratelimit_rejected_total",
                "Requests refused with 429 by a rate or 4xx limit.",
                &["route", "kind"],
            )?,
            config_reloads: counter(
                "aralez_config_reloads_total",
                "Config reload attempts, by result and trigger.",
                &["result", "trigger"],
            )?,
            config_last_reload_successful: gauge(
                "aralez_config_last_reload_successful",
                "1 when the last reload attempt applied (or was unchanged), 0 when it was rejected.",
            )?,
            config_last_reload_success_ts: gauge(
                "aralez_config_last_reload_success_timestamp_seconds",
                "Unix time of the last applied config.",
            )?,
            config_info: gauge_vec("aralez_config_info", "The active plan's hash (value 1).", &["hash"])?,
            tls_not_after: gauge_vec(
                "aralez_tls_certificate_not_after_timestamp_seconds",
                "Expiry of each loaded certificate.",
                &["name"],
            )?,
            tls_load_errors: counter(
                "aralez_tls_certificate_load_errors_total",
                "Certificate pairs skipped because they did not load.",
                &["name"],
            )?,
            downstream_refused: counter(
                "aralez_downstream_refused_total",
                "Client connections or requests refused before they reached pingora, by reason.",
                &["reason"],
            )?,
            config_watch_active: gauge_vec(
                "aralez_config_watch_active",
                "1 when the file watch of a config source is armed, 0 when only SIGHUP reloads it.",
                &["source"],
            )?,
            config_watch_errors: counter(
                "aralez_config_watch_errors_total",
                "File watches that could not be set up, by source.",
                &["source"],
            )?,
            provider_up: gauge_vec(
                "aralez_provider_up",
                "1 when every service watch of a discovery provider synced on its last query.",
                &["provider"],
            )?,
            provider_updates: counter(
                "aralez_provider_updates_total",
                "Answers of a discovery provider, by result (changed, unchanged, error).",
                &["provider", "result"],
            )?,
            provider_last_sync: gauge_vec(
                "aralez_provider_last_sync_timestamp_seconds",
                "Unix time of the last successful answer of a discovery provider.",
                &["provider"],
            )?,
            acme_renewals: counter(
                "aralez_acme_certificate_renewals_total",
                "Certificates ordered over ACME, by name and result (issued, renewed, failed).",
                &["name", "result"],
            )?,
            forward_auth_errors: counter(
                "aralez_forward_auth_errors_total",
                "Forward authentication requests that failed (the client got 503), by route and reason.",
                &["route", "reason"],
            )?,
            limits_store_up: gauge(
                "aralez_limits_store_up",
                "1 while the shared limits store (Redis) answers its synchronisation round trips.",
            )?,
            limits_store_errors: {
                let c = prometheus::IntCounter::new(
                    "aralez_limits_store_errors_total",
                    "Synchronisation round trips to the limits store that failed or timed out.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            limits_store_state: Mutex::new(None),
            access_log_dropped: {
                let c = prometheus::IntCounter::new(
                    "aralez_access_log_dropped_total",
                    "Access lines dropped because the access log writer fell behind.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            watch_state: Mutex::new(BTreeMap::new()),
            provider_state: Mutex::new(BTreeMap::new()),
            registry,
        })
    }

    /// Sets what `/config/status` shows of the limits store.
    pub fn set_limits_store_state(&self, state: Option<serde_json::Value>) {
        if let Ok(mut s) = self.limits_store_state.lock() {
            *s = state;
        }
    }

    /// The limits store as `/config/status` shows it.
    pub fn limits_store_state(&self) -> Option<serde_json::Value> {
        self.limits_store_state.lock().ok().and_then(|s| s.clone())
    }

    /// Records that the file watch of `source` (`upstreams`, `certificates`) is armed.
    pub fn watch_armed(&self, source: &str) {
        self.config_watch_active.with_label_values(&[source]).set(1);
        self.watch_states_mut().insert(source.to_string(), None);
    }

    /// Records that the file watch of `source` could not be set up (changes need SIGHUP).
    pub fn watch_failed(&self, source: &str, error: &str) {
        self.config_watch_active.with_label_values(&[source]).set(0);
        self.config_watch_errors.with_label_values(&[source]).inc();
        self.watch_states_mut()
            .insert(source.to_string(), Some(error.to_string()));
    }

    /// Every watched source and its state.
    pub fn watch_states(&self) -> BTreeMap<String, WatchState> {
        self.watch_states_mut()
            .iter()
            .map(|(k, e)| {
                let state = WatchState {
                    active: e.is_none(),
                    error: e.clone(),
                };
                (k.clone(), state)
            })
            .collect()
    }

    fn watch_states_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<String>>> {
        self.watch_state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the state of a discovery provider for `/config/status` (`None`: it stopped).
    pub fn set_provider_state(&self, provider: &str, state: Option<serde_json::Value>) {
        let mut map = self
            .provider_state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match state {
            Some(s) => {
                map.insert(provider.to_string(), s);
            }
            None => {
                map.remove(provider);
            }
        }
    }

    /// Every running discovery provider and its state.
    pub fn provider_states(&self) -> BTreeMap<String, serde_json::Value> {
        self.provider_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a new active plan hash (the previous one's series is removed).
    pub fn set_active_hash(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
