//! `aralez run`: wires the generation store, the pingora services, hot reload and process basics.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use aralez_compiler::render::{render, Format};
use aralez_compiler::Source;

use crate::admin::Admin;
use crate::cli::Exit;
use crate::config::{LoadedMain, MainError, UpstreamSources};
use crate::edge::{head::HeadLimits, ConnLimits, EdgeApp, EdgeSettings};
use crate::generation::{CompileSettings, GenerationStore, Inputs};
use crate::proxy::{AccessLog, Proxy, ProxySettings};

/// Options of `aralez run` from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Fork to the background.
    pub daemon: bool,
    /// Take the listeners over from a running instance (`upgrade_sock`).
    pub upgrade: bool,
}

/// Runs the proxy until SIGTERM/SIGINT; returns how the process ends (every failure is logged, or
/// printed before logging is set up, where it happens).
pub fn run(main_path: &Path, opts: &RunOptions) -> Exit {
    let main = match LoadedMain::read(main_path) {
        Ok(m) => m,
        Err(MainError::Io(p, e)) => {
            eprintln!("aralez: cannot read {}: {e}", p.display());
            return Exit::Usage;
        }
        Err(MainError::Invalid {
            name,
            text,
            diagnostics,
        }) => {
            eprint!(
                "{}",
                render(
                    &diagnostics,
                    Format::Human,
                    &[Source {
                        name: &name,
                        text: &text
                    }]
                )
            );
            return Exit::Invalid;
        }
    };
    let cfg = &main.config;
    let error_log = cfg.error_log.as_ref().map(|p| main.resolve(&p.value));
    if let Err(e) = crate::log::init(level_filter(cfg), error_log.as_deref()) {
        let shown = error_log.as_deref().unwrap_or(Path::new("")).display();
        eprintln!("aralez: cannot open error_log {shown}: {e}");
        return Exit::Usage;
    }
    if !main.warnings.is_empty() {
        log::warn!(
            "main.yaml:\n{}",
            render(
                &main.warnings,
                Format::Short,
                &[Source {
                    name: &main.path.display().to_string(),
                    text: &main.text
                }]
            )
        );
    }
    // before anything builds a TLS config: the grade is the process-default rustls provider
    #[cfg(feature = "rustls")]
    crate::tls::grade::install_process_default(cfg.proxy_tls_grade);
    let upstreams = main.upstreams_path();
    let sources = match UpstreamSources::read(&upstreams) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot read {}: {e}", upstreams.display());
            return Exit::Usage;
        }
    };
    let master_key = match master_key(&main) {
        Ok(k) => k,
        Err(e) => {
            log::error!("{e}");
            return Exit::Usage;
        }
    };
    let settings = CompileSettings {
        tls_listener: cfg.proxy_address_tls.is_some(),
        auth: crate::auth::AuthSettings {
            master_key: master_key.as_deref().map(Into::into),
            base_dir: upstreams
                .parent()
                .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf),
        },
    };
    let metrics = match crate::metrics::Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            log::error!("metrics: {e}");
            return Exit::Usage;
        }
    };
    // runtime state of the plans; sticky tokens are keyed from the master key when there is one
    let registry = Arc::new(crate::balance::Registry::new(
        &crate::balance::sticky_secret(master_key.as_deref()),
        Some(metrics.clone()),
    ));
    if let Err(e) = crate::tls::upstream::preflight() {
        log::error!("upstream TLS: {e}");
        return Exit::Usage;
    }
    let detector = Arc::new(crate::tls::upstream::Detector::new(Duration::from_secs(
        cfg.upstream_connect_timeout,
    )));
    let cert_dir = match crate::tls::wiring::cert_folder(&main) {
        Ok(dir) => dir,
        Err(e) => {
            log::error!("{e}");
            return Exit::Usage;
        }
    };
    let acme = match crate::acme::Acme::from_main(&main, cert_dir.as_deref()) {
        Ok(acme) => acme,
        Err(e) => {
            log::error!("{e}");
            return Exit::Usage;
        }
    };
    let certs = match &cert_dir {
        None => None,
        Some(dir) => match crate::tls::certset::CertInput::read(dir, crate::tls::certs::now_unix())
        {
            Ok(input) => Some(input),
            Err(e) => {
                log::error!("proxy_certificates: cannot read {}: {e}", dir.display());
                return Exit::Usage;
            }
        },
    };
    let inputs = Inputs {
        upstreams: sources.clone(),
        certs,
        discovered: Default::default(),
        generated: Vec::new(),
    };
    let store = match GenerationStore::start(
        inputs,
        settings,
        metrics.clone(),
        registry,
        Some(detector.clone()),
    ) {
        Ok(s) => Arc::new(s),
        Err(diags) => {
            eprint!("{}", render(&diags, Format::Human, &sources.as_sources()));
            return Exit::Invalid;
        }
    };
    log::info!("generation {} active", store.load().hash());
    crate::acme::warn_if_unmanaged(acme.is_some(), &store.load());
    let privileges = match crate::privilege::target(cfg.user.as_deref(), cfg.group.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            log::error!("{e}");
            return Exit::Usage;
        }
    };
    // without a privilege drop pingora binds the listeners itself: check them first
    if privileges.is_none() {
        if let Err(errors) = crate::listen_check::preflight(cfg, opts.upgrade) {
            for e in errors {
                log::error!("{e}");
            }
            return Exit::Usage;
        }
    }

    let daemon = opts.daemon || cfg.daemon;
    let pid_path = cfg.pid_file.as_ref().map(|p| main.resolve(&p.value));
    if let Some(path) = &pid_path {
        // Daemonized, pingora writes the PID of the forked process itself.
        let written = if daemon {
            refuse_symlink(path)
        } else {
            write_pid_file(path)
        };
        if let Err(e) = written {
            log::error!("pid_file {}: {e}", path.display());
            return Exit::Usage;
        }
    }

    let upgrade_sock = main.resolve(&cfg.upgrade_sock.value).display().to_string();
    if upgrade_sock.len() > crate::process::MAX_SOCKET_PATH {
        // pingora binds it for `-u` and would panic on a path a Unix socket cannot hold
        log::error!(
            "upgrade_sock: {upgrade_sock} is longer than {} bytes, the most a Unix socket path holds",
            crate::process::MAX_SOCKET_PATH
        );
        return Exit::Usage;
    }
    let conf = || {
        let mut conf = ServerConf {
            threads: cfg.threads,
            daemon,
            upgrade_sock: upgrade_sock.clone(),
            upstream_keepalive_pool_size: cfg.upstream_keepalive_pool_size,
            grace_period_seconds: Some(1),
            graceful_shutdown_timeout_seconds: Some(10),
            work_stealing: false,
            ..ServerConf::default()
        };
        if let (true, Some(path)) = (daemon, &pid_path) {
            conf.pid_file = path.display().to_string();
        }
        conf
    };
    let started = match &privileges {
        None => Ok(crate::process::bootstrap(conf(), opts.upgrade, daemon)),
        Some(target) => {
            crate::process::bootstrap_and_drop(&conf, opts.upgrade, daemon, cfg, target)
        }
    };
    let mut server = match started {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return Exit::Usage;
        }
    };
    let conf = server.configuration.clone();

    let proxy_settings = ProxySettings {
        connect_timeout: Duration::from_secs(cfg.upstream_connect_timeout),
        read_timeout: Duration::from_secs(cfg.upstream_read_timeout),
        trusted_proxies: cfg.trusted_proxies.clone(),
        access_log: match cfg.access_log {
            aralez_compiler::AccessLogMode::Off => AccessLog::Off,
            aralez_compiler::AccessLogMode::All => AccessLog::All,
            aralez_compiler::AccessLogMode::Errors => AccessLog::Errors,
        },
        max_request_header_bytes: cfg.max_request_header_bytes,
        downstream_idle_timeout: cfg.downstream_idle_timeout,
        https_port: cfg.proxy_address_tls.map(|a| a.port()),
        via_token: via_token(),
        escaped_slashes: cfg.escaped_slashes,
        body: crate::edge::h2_body::BodyLimits {
            request_buffering: cfg.request_buffering,
            body_buffer: cfg.client_body_buffer_size,
            max_body: cfg.client_max_body_size,
            body_timeout: Duration::from_secs(cfg.client_body_timeout),
        },
    };
    let mut proxy_app = Proxy::new(store.clone(), proxy_settings, metrics.clone())
        .with_detector(detector.clone())
        .with_acme(acme.as_ref().map(crate::acme::Acme::challenges));
    // SIGUSR1 (logrotate's reopen) must never terminate the process, with or without a file
    let usr1 = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGUSR1, usr1) {
        log::warn!("cannot handle SIGUSR1: {e}");
    }
    if cfg.access_log_format == aralez_compiler::AccessLogFormat::Json
        || cfg.access_log_file.is_some()
    {
        let file = cfg.access_log_file.as_ref().map(|p| main.resolve(&p.value));
        let dropped = metrics.access_log_dropped.clone();
        match crate::access_log::AccessLogWriter::new(file, cfg.access_log_format, dropped) {
            Ok((w, thread)) => {
                proxy_app = proxy_app.with_access_writer(Arc::new(w));
                server.add_service(background_service("access log", thread));
            }
            Err(e) => {
                log::error!("{e}");
                return Exit::Usage;
            }
        }
    }
    if let Some(store) = &cfg.limits_store {
        match crate::limits_store::prepare(&main, store, metrics.clone()) {
            Ok((counts, sync)) => {
                proxy_app = proxy_app.with_limits_store(counts);
                server.add_service(background_service("limits store", sync));
            }
            Err(e) => {
                log::error!("{e}");
                return Exit::Usage;
            }
        }
    }
    let mut http = pingora::proxy::http_proxy(&conf, proxy_app);
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2c = true;
    // CONNECT reaches `request_filter`, which refuses it with our own 405 (pingora's names itself)
    options.allow_connect_method_proxying = true;
    options.h2_idle_timeout = Some(Duration::from_secs(cfg.downstream_idle_timeout));
    http.server_options = Some(options);
    let edge = edge_settings(cfg);
    let conn_limits = ConnLimits::new(cfg.max_connections, cfg.max_connections_per_ip);
    let mut proxy = Service::new(
        "proxy".to_string(),
        EdgeApp::new(
            http,
            EdgeSettings {
                h2c: true,
                ..edge.clone()
            },
            Some(conn_limits),
            Some(metrics.clone()),
        ),
    );
    proxy.add_listener(crate::edge::listener(&cfg.proxy_address_http.to_string()));
    if let Some(addr) = cfg.proxy_address_tls {
        let certs: Arc<dyn crate::tls::listener::CertSource> = store.clone();
        let placeholders = acme.as_ref().map(crate::acme::Acme::placeholders);
        if let Err(e) = crate::tls::wiring::proxy_tls(
            &mut proxy,
            addr,
            cfg.proxy_tls_grade,
            certs,
            placeholders,
        ) {
            log::error!("{e}");
            return Exit::Usage;
        }
    }
    let proxy_handle = server.add_service(proxy);

    let ready = Arc::new(AtomicBool::new(false));
    // the same admin API on the plain listener and, when configured, on the TLS one
    let admin_app = || {
        let admin = Admin::new(
            store.clone(),
            metrics.clone(),
            master_key.clone(),
            cfg.admin_public_readonly,
            ready.clone(),
        )
        .with_config_api(upstreams.clone(), cfg.config_api_enabled);
        EdgeApp::new(admin, edge.clone(), None, Some(metrics.clone()))
    };
    let mut admin = Service::new("admin".to_string(), admin_app());
    admin.threads = Some(1);
    admin.add_listener(crate::edge::listener(&cfg.config_address.to_string()));
    let admin_handle = server.add_service(admin);
    if let Some(addr) = cfg.config_tls_address {
        let mut admin_tls = Service::new("admin-tls".to_string(), admin_app());
        admin_tls.threads = Some(1);
        if let Err(e) = crate::tls::wiring::admin_tls(&mut admin_tls, addr, &main) {
            log::error!("{e}");
            return Exit::Usage;
        }
        server.add_service(admin_tls);
    }

    let mut listening = vec![proxy_handle, admin_handle];
    if let (Some(folder), Some(addr)) = (&cfg.file_server_folder, cfg.file_server_address) {
        match crate::files::FileServer::new(&main.resolve(&folder.value)) {
            Ok(files) => {
                let gated = EdgeApp::new(files, edge.clone(), None, Some(metrics.clone()));
                let mut files = Service::new(crate::files::SERVICE_NAME.to_owned(), gated);
                files.add_listener(crate::edge::listener(&addr.to_string()));
                files.threads = Some(1);
                listening.push(server.add_service(files));
            }
            Err(e) => {
                log::error!("file_server_folder {}: {e}", folder.value);
                return Exit::Usage;
            }
        }
    }
    // ready once every listener is bound and serving
    let readiness = server.add_service(background_service(
        "readiness",
        Readiness {
            ready: ready.clone(),
            store: store.clone(),
        },
    ));
    readiness.add_dependencies(listening.iter());
    // the first health round runs once our own listeners serve (a route to the built-in file
    // server must not be marked down because it was probed before it listened)
    let health = server.add_service(background_service(
        "health checks",
        crate::health::HealthChecker::new(
            store.clone(),
            crate::health::HealthSettings {
                method: cfg.hc_method.as_str(),
                interval: Duration::from_secs(cfg.hc_interval),
                rise: cfg.hc_rise,
                fall: cfg.hc_fall,
            },
        )
        .with_detector(detector),
    ));
    health.add_dependencies(listening.iter());

    let mut sources: Vec<Box<dyn crate::sources::reload::Source>> = vec![Box::new(
        crate::sources::reload::UpstreamFiles(upstreams.clone()),
    )];
    if let Some(dir) = cert_dir {
        sources.push(Box::new(crate::sources::reload::CertFolder(dir)));
    }
    let base = upstreams
        .parent()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    sources.push(Box::new(crate::sources::reload::SecretFiles::new(
        store.clone(),
        base.clone(),
    )));
    // follows the plan: idle unless it says `provider: consul`
    sources.push(Box::new(crate::sources::consul::ConsulSource::new(
        store.clone(),
        base.clone(),
    )));
    // follows the plan: idle unless it says `provider: kubernetes`
    sources.push(Box::new(crate::sources::kubernetes::KubernetesSource::new(
        store.clone(),
        base,
    )));
    if let Some(Err(e)) = acme.map(|a| a.spawn(store.clone(), metrics.clone(), ready)) {
        log::error!("{e}");
        return Exit::Usage;
    }
    if let Err(e) = crate::sources::reload::spawn(store, sources) {
        log::error!("cannot start the reload thread: {e}");
        return Exit::Usage;
    }
    server.run(RunArgs::default());
    if let Some(path) = &pid_path {
        let _ = std::fs::remove_file(path);
    }
    Exit::Success
}

/// How long readiness waits for discovered services to sync once the listeners serve (a
/// provider that cannot be reached must not keep the static routes out of rotation).
const DISCOVERY_READY_WAIT: Duration = Duration::from_secs(5);

/// Flips `/readyz` (and tells systemd `READY=1`) once the listeners it depends on serve and the
/// services of the serving plan that a provider discovers have synced (at most
/// [`DISCOVERY_READY_WAIT`]), so no load balancer sends traffic to routes without backends yet;
/// tells systemd `STOPPING=1` when the graceful shutdown starts.
struct Readiness {
    ready: Arc<AtomicBool>,
    store: Arc<GenerationStore>,
}

#[async_trait]
impl BackgroundService for Readiness {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let deadline = tokio::time::Instant::now() + DISCOVERY_READY_WAIT;
        loop {
            let waiting = self.store.load().unsynced().to_vec();
            if waiting.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                log::warn!(
                    "ready without discovered service(s) {}: not synced after {}s; their routes answer 503 until they are",
                    waiting.join(", "),
                    DISCOVERY_READY_WAIT.as_secs()
                );
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        self.ready.store(true, Ordering::Release);
        crate::notify::notify("READY=1");
        let _ = shutdown.changed().await;
        crate::notify::notify("STOPPING=1");
    }
}

/// The connection gate's settings from main.yaml (h2c is switched on for the proxy's plain
/// listener only).
fn edge_settings(cfg: &aralez_compiler::MainConfig) -> EdgeSettings {
    EdgeSettings {
        header_timeout: Duration::from_secs(cfg.client_header_timeout),
        body_timeout: Duration::from_secs(cfg.client_body_timeout),
        idle_timeout: Duration::from_secs(cfg.downstream_idle_timeout),
        request_buffering: cfg.request_buffering,
        body_buffer: cfg.client_body_buffer_size,
        max_body: cfg.client_max_body_size,
        head: HeadLimits {
            max_head: cfg.max_request_header_bytes,
            max_target: crate::edge::MAX_TARGET,
            max_fields: crate::edge::MAX_FIELDS,
        },
        h2c: false,
    }
}

fn level_filter(cfg: &aralez_compiler::MainConfig) -> log::LevelFilter {
    use aralez_compiler::LogLevel;
    match cfg.log_level {
        LogLevel::Off => log::LevelFilter::Off,
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    }
}

/// The master key: `master_key`, else `master_key_file`, else env `ARALEZ_MASTER_KEY`.
pub(crate) fn master_key(main: &LoadedMain) -> Result<Option<String>, String> {
    if let Some(k) = &main.config.master_key {
        return Ok(Some(k.clone()));
    }
    if let Some(f) = &main.config.master_key_file {
        let path = main.resolve(&f.value);
        return std::fs::read_to_string(&path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("master_key_file {}: {e}", path.display()));
    }
    Ok(std::env::var("ARALEZ_MASTER_KEY")
        .ok()
        .filter(|k| !k.is_empty()))
}

/// Writes the PID; refuses to follow a symlink at that path.
fn write_pid_file(path: &Path) -> std::io::Result<()> {
    refuse_symlink(path)?;
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// Errors when `path` is a symlink (a PID file must not be redirected elsewhere).
fn refuse_symlink(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(std::io::Error::other(format!(
            "{} is a symlink; refusing to write",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// A token that identifies this process in `Via` headers (hop guard).
fn via_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("1.1 aralez-{:016x}", h.finish())
}
