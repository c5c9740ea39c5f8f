//! Wiring of the TLS listeners into pingora services (called from `server::run`).

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::services::listening::Service;

use std::path::{Path, PathBuf};

use super::certs::{load_pair, now_unix, FolderLoad};
use super::certset::{CertInput, CertSet};
use super::listener::{tls_settings, CertResolver, CertSource, FixedCerts};
use crate::config::LoadedMain;

/// The certificate folder of the proxy's TLS listener: `None` without `proxy_address_tls`.
/// `Err` holds the process exit code after logging why.
pub fn cert_folder(main: &LoadedMain) -> Result<Option<PathBuf>, i32> {
    let cfg = &main.config;
    if cfg.proxy_address_tls.is_none() {
        return Ok(None);
    }
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
    Ok(Some(dir))
}

/// The proxy's TLS listener on `addr` (h2 + http/1.1 by ALPN), serving the certificates of
/// `certs` (the serving generation's). `Err` holds the process exit code after logging why.
pub fn proxy_tls<A: pingora::apps::ServerApp + Send + Sync + 'static>(
    service: &mut Service<A>,
    addr: SocketAddr,
    grade: aralez_compiler::TlsGrade,
    certs: Arc<dyn CertSource>,
) -> Result<(), i32> {
    match tls_settings(CertResolver::new(certs), grade, true) {
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
    let crt_path = main.resolve(&crt.value);
    let pair = match load_pair("admin", &crt_path, &main.resolve(&key.value), now_unix()) {
        Ok(p) => p,
        Err(e) => {
            log::error!("admin TLS certificate: {e}");
            return Err(2);
        }
    };
    let dir = crt_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let load = FolderLoad {
        pairs: vec![pair],
        errors: Vec::new(),
    };
    let (set, refused) = CertSet::build(&CertInput::new(dir, load));
    let Some(set) = set else {
        for e in refused {
            log::error!("admin TLS certificate: {e}");
        }
        return Err(2);
    };
    let resolver = CertResolver::new(Arc::new(FixedCerts(Arc::new(set))));
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
