//! TLS listeners: our SNI resolver plugged into pingora's `TlsSettings`, for the TLS library this
//! build uses (rustls by default, OpenSSL with the `openssl` feature).
//!
//! rustls: `TlsSettings::set_cert_resolver` with our `ResolvesServerCert`; the cipher policy comes
//! from the process-default provider (see [`super::grade`]). OpenSSL: a certificate callback that
//! sets the chosen chain and key on the handshake, and the grade's cipher list on the acceptor.
//! Either way the certificates live in an [`SniStore`] that a reload replaces whole.

use std::sync::Arc;

use aralez_compiler::TlsGrade;
use pingora::listeners::tls::TlsSettings;

use super::certs::{CertPair, PairError};
use super::sni::{SniIndex, SniStore};

#[cfg(all(feature = "rustls", feature = "openssl"))]
compile_error!("choose one TLS library: `--no-default-features --features openssl` for OpenSSL");
#[cfg(not(any(feature = "rustls", feature = "openssl")))]
compile_error!("a TLS library is required: the `rustls` (default) or the `openssl` feature");

/// The certificates one listener serves, selected by SNI.
#[derive(Debug, Default)]
pub struct CertResolver {
    store: SniStore<Served>,
}

impl CertResolver {
    /// A resolver with no certificate yet (handshakes fail until [`Self::install`]).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Replaces the served set with `pairs` (one atomic swap). Pairs that the TLS library refuses
    /// are returned as errors and left out; with no usable pair the previous set stays and
    /// `Ok(0)` is returned.
    pub fn install(&self, pairs: &[CertPair]) -> (usize, Vec<PairError>) {
        let mut errors = Vec::new();
        let mut entries = Vec::with_capacity(pairs.len());
        for p in pairs {
            match served(p) {
                Ok(s) => entries.push((p.name.clone(), p.names.clone(), s)),
                Err(reason) => errors.push(PairError {
                    name: p.name.clone(),
                    file: format!("{}.crt", p.name).into(),
                    reason,
                }),
            }
        }
        match SniIndex::build(entries) {
            Some(index) => {
                let n = index.len();
                self.store.store(index);
                (n, errors)
            }
            None => (0, errors),
        }
    }

    /// True once a usable set is installed.
    pub fn has_certs(&self) -> bool {
        self.store.load().is_some()
    }

    /// The pair name that would serve `sni` (for logs and tests).
    pub fn pick_name(&self, sni: Option<&str>) -> Option<String> {
        let index = self.store.load()?;
        index.pick(sni).map(|(n, _)| n.to_string())
    }
}

#[cfg(feature = "rustls")]
mod backend {
    use super::*;
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;

    pub(super) type Served = Arc<CertifiedKey>;

    pub(super) fn served(p: &CertPair) -> Result<Served, String> {
        Ok(p.certified.clone())
    }

    impl ResolvesServerCert for CertResolver {
        fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            let index = self.store.load()?;
            index.pick(hello.server_name()).map(|(_, k)| k.clone())
        }
    }

    /// Listener settings: h2 + http/1.1 by ALPN, certificates from `resolver`. The grade is the
    /// process-default provider's business (installed at startup).
    pub fn tls_settings(
        resolver: Arc<CertResolver>,
        _grade: TlsGrade,
        h2: bool,
    ) -> pingora::Result<TlsSettings> {
        let mut settings = TlsSettings::intermediate("", "")?;
        settings.set_cert_resolver(resolver);
        if h2 {
            settings.enable_h2();
        }
        Ok(settings)
    }
}

#[cfg(feature = "openssl")]
mod backend {
    use super::*;
    use async_trait::async_trait;
    use pingora::listeners::TlsAccept;
    use pingora::protocols::tls::TlsRef;
    use pingora::tls::pkey::{PKey, Private};
    use pingora::tls::ssl::{NameType, SslOptions, SslVersion};
    use pingora::tls::x509::X509;

    /// A chain and key in OpenSSL's form.
    #[derive(Debug)]
    pub(super) struct Served {
        chain: Vec<X509>,
        key: PKey<Private>,
    }

    pub(super) fn served(p: &CertPair) -> Result<Served, String> {
        let chain = p
            .chain
            .iter()
            .map(|c| X509::from_der(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("OpenSSL refused the certificate: {e}"))?;
        let key = PKey::private_key_from_der(p.key.secret_der())
            .map_err(|e| format!("OpenSSL refused the key: {e}"))?;
        Ok(Served { chain, key })
    }

    struct Callbacks(Arc<CertResolver>);

    #[async_trait]
    impl TlsAccept for Callbacks {
        async fn certificate_callback(&self, ssl: &mut TlsRef) {
            let Some(index) = self.0.store.load() else {
                return;
            };
            let sni = ssl.servername(NameType::HOST_NAME).map(str::to_string);
            let Some((_, served)) = index.pick(sni.as_deref()) else {
                return;
            };
            let mut certs = served.chain.iter();
            let Some(leaf) = certs.next() else { return };
            let ok = pingora::tls::ext::ssl_use_certificate(ssl, leaf).is_ok()
                && pingora::tls::ext::ssl_use_private_key(ssl, &served.key).is_ok()
                && certs.all(|c| pingora::tls::ext::ssl_add_chain_cert(ssl, c).is_ok());
            if !ok {
                log::error!("TLS: OpenSSL refused the selected certificate");
            }
        }
    }

    /// Listener settings: h2 + http/1.1 by ALPN, certificates from `resolver`, the grade's suites.
    pub fn tls_settings(
        resolver: Arc<CertResolver>,
        grade: TlsGrade,
        h2: bool,
    ) -> pingora::Result<TlsSettings> {
        use pingora::{ErrorType, OrErr};
        let mut settings = TlsSettings::with_callbacks(Box::new(Callbacks(resolver)))?;
        settings
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .or_err(ErrorType::InternalError, "TLS minimum version")?;
        settings
            .set_cipher_list(super::super::grade::openssl_cipher_list(grade))
            .or_err(ErrorType::InternalError, "TLS cipher list")?;
        settings
            .set_groups_list(super::super::grade::OPENSSL_GROUPS)
            .or_err(ErrorType::InternalError, "TLS groups")?;
        settings.set_options(SslOptions::NO_RENEGOTIATION | SslOptions::CIPHER_SERVER_PREFERENCE);
        if h2 {
            settings.enable_h2();
        }
        Ok(settings)
    }
}

pub use backend::tls_settings;
use backend::{served, Served};
