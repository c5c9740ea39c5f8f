//! Wiring of the TLS listeners into pingora services (called from `server::run`).

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::services::listening::Service;

use super::certs::{load_pair, now_unix};
use super::folder::CertFolder;
use super::listener::{tls_settings, CertResolver};
use crate::config::LoadedMain;
use crate::metrics::Metrics;

/// The proxy's TLS side: when `proxy_address_tls` is set, the TLS listener (h2 + http/1.1 by
/// ALPN) serving the hot-reloaded certificate folder. `Err` holds the process exit code after
/// logging why.
pub fn proxy_tls<A: pingora::apps::ServerApp + Send + Sync + 'static>(
    service: &mut Service<A>,
    main: &LoadedMain,
    metrics: &Arc<Metrics>,
) -> Result<(), i32> {
    let cfg = &main.config;
    let Some(addr) = cfg.proxy_address_tls else {
        return Ok(());
    };
    let Some(folder) = &cfg.proxy_certificates else {
        log::error!("proxy_address_tls needs proxy_certificates");
        return Err(2);
    };
    let dir = main.resolve(&folder.value);
    if !dir.is_dir() {
        log::error!(
            "proxy_certificates: {} {}",
            dir.display(),
            crate::config::not_a_folder(&dir)
        );
        return Err(2);
    }
    let resolver = CertResolver::new();
    let folder = CertFolder::new(dir, resolver.clone(), metrics.clone());
    folder.reload("start");
    if let Err(e) = folder.spawn_watch() {
        log::error!(
            "cannot start the certificate reload for {}: {e}",
            folder.dir().display()
        );
        return Err(2);
    }
    match tls_settings(resolver, cfg.proxy_tls_grade, true) {
        Ok(settings) => {
            service.add_listener(crate::edge::listener(&addr.to_string()).tls(settings));
            Ok(())
        }
        Err(e) => {
            log::error!("TLS listener {addr}: {e}");
            Err(2)
        }
    }
}

/// The admin API over TLS on `addr` with `config_tls_certificate` + `config_tls_key_file`
/// (validated here, so that pingora never sees bad input; loaded at start only).
pub fn admin_tls<A: pingora::apps::ServerApp + Send + Sync + 'static>(
    service: &mut Service<A>,
    addr: SocketAddr,
    main: &LoadedMain,
) -> Result<(), i32> {
    let cfg = &main.config;
    let (Some(crt), Some(key)) = (&cfg.config_tls_certificate, &cfg.config_tls_key_file) else {
        log::error!("config_tls_address needs config_tls_certificate and config_tls_key_file");
        return Err(2);
    };
    let pair = match load_pair(
        "admin",
        &main.resolve(&crt.value),
        &main.resolve(&key.value),
        now_unix(),
    ) {
        Ok(p) => p,
        Err(e) => {
            log::error!("admin TLS certificate: {e}");
            return Err(2);
        }
    };
    let resolver = CertResolver::new();
    let (n, errors) = resolver.install(std::slice::from_ref(&pair));
    if n == 0 {
        for e in errors {
            log::error!("admin TLS certificate: {e}");
        }
        return Err(2);
    }
    match tls_settings(resolver, cfg.proxy_tls_grade, false) {
        Ok(settings) => {
            service.add_listener(crate::edge::listener(&addr.to_string()).tls(settings));
            Ok(())
        }
        Err(e) => {
            log::error!("admin TLS listener {addr}: {e}");
            Err(2)
        }
    }
}
