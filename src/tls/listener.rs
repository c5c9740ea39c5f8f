//! TLS listeners: our SNI resolver plugged into pingora's `TlsSettings`, for the TLS library this
//! build uses (rustls by default, OpenSSL with the `openssl` feature).
//!
//! rustls: `TlsSettings::set_cert_resolver` with our `ResolvesServerCert`; the cipher policy comes
//! from the process-default provider (see [`super::grade`]). OpenSSL: a certificate callback that
//! sets the chosen chain and key on the handshake, and the grade's cipher list on the acceptor.
//! Either way the certificates come from a [`CertSource`]: for the proxy listener, the serving
//! generation, so a certificate change is swapped in with everything else.

use std::sync::Arc;

use aralez_compiler::TlsGrade;
use pingora::listeners::tls::TlsSettings;

use super::certs::CertPair;
use super::certset::CertSet;

#[cfg(all(feature = "rustls", feature = "openssl"))]
compile_error!("choose one TLS library: `--no-default-features --features openssl` for OpenSSL");
#[cfg(not(any(feature = "rustls", feature = "openssl")))]
compile_error!("a TLS library is required: the `rustls` (default) or the `openssl` feature");

/// Where a listener's certificates come from: the serving generation (the proxy listener), or a
/// set loaded once (the admin listener).
pub trait CertSource: Send + Sync + std::fmt::Debug {
    /// The set in force (`None`: none usable yet; handshakes fail).
    fn current(&self) -> Option<Arc<CertSet>>;
}

/// A set that never changes.
#[derive(Debug)]
pub struct FixedCerts(pub Arc<CertSet>);

impl CertSource for FixedCerts {
    fn current(&self) -> Option<Arc<CertSet>> {
        Some(self.0.clone())
    }
}

/// The certificates one listener serves, selected by SNI from its [`CertSource`], with ACME's
/// self-signed placeholders first (names waiting for their first certificate; rustls build).
#[derive(Debug)]
pub struct CertResolver {
    source: Arc<dyn CertSource>,
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    placeholders: Option<Arc<crate::acme::Placeholders>>,
}

impl CertResolver {
    /// A resolver reading `source` on every handshake.
    pub fn new(source: Arc<dyn CertSource>) -> Arc<Self> {
        Arc::new(Self {
            source,
            placeholders: None,
        })
    }

    /// A resolver that serves ACME's `placeholders` before reading `source`.
    pub fn with_placeholders(
        source: Arc<dyn CertSource>,
        placeholders: Arc<crate::acme::Placeholders>,
    ) -> Arc<Self> {
        Arc::new(Self {
            source,
            placeholders: Some(placeholders),
        })
    }
}

#[cfg(feature = "rustls")]
mod backend {
    use super::*;
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;

    /// A chain and key in rustls' form.
    pub type Served = Arc<CertifiedKey>;

    pub(in crate::tls) fn served(p: &CertPair) -> Result<Served, String> {
        Ok(p.certified.clone())
    }

    impl ResolvesServerCert for CertResolver {
        fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            if let Some(placeholder) = self
                .placeholders
                .as_ref()
                .and_then(|p| p.get(hello.server_name()))
            {
                return Some(placeholder);
            }
            let set = self.source.current()?;
            set.pick(hello.server_name()).map(|(_, k)| k.clone())
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
    pub struct Served {
        chain: Vec<X509>,
        key: PKey<Private>,
    }

    pub(in crate::tls) fn served(p: &CertPair) -> Result<Served, String> {
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
            let Some(set) = self.0.source.current() else {
                return;
            };
            let sni = ssl.servername(NameType::HOST_NAME).map(str::to_string);
            let Some((_, served)) = set.pick(sni.as_deref()) else {
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

pub(super) use backend::served;
pub use backend::{tls_settings, Served};
