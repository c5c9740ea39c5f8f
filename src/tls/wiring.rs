//! Wiring of the TLS listeners into pingora services (called from `server::run`).

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::services::listening::Service;

use std::path::{Path, PathBuf};

use super::certs::{load_pair, now_unix, FolderLoad};
use super::certset::{CertInput, CertSet};
use super::listener::{tls_settings, CertResolver, CertSource, FixedCerts};
use crate::config::LoadedMain;

/// Why a TLS listener cannot be set up (the process does not start).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A setting that another one needs is missing.
    Missing(&'static str),
    /// A certificate, key or folder does not load.
    Certificate(String),
    /// The TLS library refused the listener settings.
    Listener(String),
}

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(what) => f.write_str(what),
            Self::Certificate(why) | Self::Listener(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// The certificate folder of the proxy's TLS listener: `None` without `proxy_address_tls`.
pub fn cert_folder(main: &LoadedMain) -> Result<Option<PathBuf>, TlsSetupError> {
    let cfg = &main.config;
    if cfg.proxy_address_tls.is_none() {
        return Ok(None);
    }
    let Some(folder) = &cfg.proxy_certificates else {
        return Err(TlsSetupError::Missing(
            "proxy_address_tls needs proxy_certificates",
        ));
    };
    let dir = main.resolve(&folder.value);
    if !dir.is_dir() {
        let why = crate::config::not_a_folder(&dir);
        return Err(TlsSetupError::Certificate(format!(
            "proxy_certificates: {} {why}",
            dir.display()
        )));
    }
    Ok(Some(dir))
}

/// The proxy's TLS listener on `addr` (h2 + http/1.1 by ALPN), serving the certificates of
/// `certs` (the serving generation's), and ACME's `placeholders` when given.
pub fn proxy_tls<A: pingora::apps::ServerApp + Send + Sync + 'static>(
    service: &mut Service<A>,
    addr: SocketAddr,
    grade: aralez_compiler::TlsGrade,
    certs: Arc<dyn CertSource>,
    placeholders: Option<Arc<crate::acme::Placeholders>>,
) -> Result<(), TlsSetupError> {
    let resolver = match placeholders {
        Some(p) => CertResolver::with_placeholders(certs, p),
        None => CertResolver::new(certs),
    };
    match tls_settings(resolver, grade, true) {
        Ok(settings) => {
            service.add_listener(crate::edge::listener(&addr.to_string()).tls(settings));
            Ok(())
        }
        Err(e) => Err(TlsSetupError::Listener(format!("TLS listener {addr}: {e}"))),
    }
}

/// The admin API over TLS on `addr` with `config_tls_certificate` + `config_tls_key_file`
/// (validated here, so that pingora never sees bad input; loaded at start only).
pub fn admin_tls<A: pingora::apps::ServerApp + Send + Sync + 'static>(
    service: &mut Service<A>,
    addr: SocketAddr,
    main: &LoadedMain,
) -> Result<(), TlsSetupError> {
    let cfg = &main.config;
    let (Some(crt), Some(key)) = (&cfg.config_tls_certificate, &cfg.config_tls_key_file) else {
        return Err(TlsSetupError::Missing(
            "config_tls_address needs config_tls_certificate and config_tls_key_file",
        ));
    };
    let crt_path = main.resolve(&crt.value);
    let pair = match load_pair("admin", &crt_path, &main.resolve(&key.value), now_unix()) {
        Ok(p) => p,
        Err(e) => {
            return Err(TlsSetupError::Certificate(format!(
                "admin TLS certificate: {e}"
            )));
        }
    };
    let dir = crt_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let load = FolderLoad {
        pairs: vec![pair],
        errors: Vec::new(),
    };
    let (set, refused) = CertSet::build(&CertInput::new(dir, load));
    let Some(set) = set else {
        let why: Vec<String> = refused.iter().map(ToString::to_string).collect();
        return Err(TlsSetupError::Certificate(format!(
            "admin TLS certificate: {}",
            why.join("; ")
        )));
    };
    let resolver = CertResolver::new(Arc::new(FixedCerts(Arc::new(set))));
    match tls_settings(resolver, cfg.proxy_tls_grade, false) {
        Ok(settings) => {
            service.add_listener(crate::edge::listener(&addr.to_string()).tls(settings));
            Ok(())
        }
        Err(e) => Err(TlsSetupError::Listener(format!(
            "admin TLS listener {addr}: {e}"
        ))),
    }
}
