//! `proxy_tls_grade`: which protocol versions, cipher suites and key exchange groups are offered.
//!
//! rustls: pingora builds its listener and connector configs from the *process-default*
//! `CryptoProvider`, so the grade is applied by installing a restricted ring provider before
//! pingora builds anything (pingora's own install call then finds ours and leaves it in place).
//! This also restricts upstream TLS to the same suites. OpenSSL: the same lists as OpenSSL names,
//! set on the listener's acceptor.
//!
//! - `high`: TLS 1.3 (all its suites) + TLS 1.2 ECDHE with AES-256-GCM or ChaCha20-Poly1305;
//!   key exchange X25519, P-256, P-384.
//! - `medium`: the rustls defaults: TLS 1.2 + 1.3, every suite ECDHE + AEAD (no RSA key exchange,
//!   no CBC, no RC4/3DES); the same groups.
//! - `unsafe`: rustls has no legacy suites, so it is `medium` (with a warning at config time).

use aralez_compiler::TlsGrade;
use rustls::crypto::{ring, CryptoProvider};
use rustls::CipherSuite;

/// TLS 1.2 suites allowed under `high`.
const HIGH_TLS12: &[CipherSuite] = &[
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The ring provider restricted to `grade`.
pub fn provider(grade: TlsGrade) -> CryptoProvider {
    let mut p = ring::default_provider();
    if grade == TlsGrade::High {
        p.cipher_suites.retain(|s| match s {
            rustls::SupportedCipherSuite::Tls13(_) => true,
            rustls::SupportedCipherSuite::Tls12(_) => HIGH_TLS12.contains(&s.suite()),
        });
    }
    // identical for both grades today, stated so that a provider update cannot widen it silently
    p.kx_groups = vec![
        ring::kx_group::X25519,
        ring::kx_group::SECP256R1,
        ring::kx_group::SECP384R1,
    ];
    p
}

/// Installs the graded provider as the process default. Returns false when a provider was
/// already installed (then the grade could not be applied: a startup-order bug, logged).
pub fn install_process_default(grade: TlsGrade) -> bool {
    let ok = provider(grade).install_default().is_ok();
    if !ok {
        log::error!(
            "a TLS crypto provider was installed before proxy_tls_grade could be applied; \
             the rustls defaults stay in force"
        );
    }
    ok
}

/// OpenSSL cipher list (TLS 1.2) for a grade.
pub fn openssl_cipher_list(grade: TlsGrade) -> &'static str {
    match grade {
        TlsGrade::High => {
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
             ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
        }
        TlsGrade::Medium | TlsGrade::Unsafe => {
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
             ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
             ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
        }
    }
}

/// OpenSSL key exchange groups for every grade.
pub const OPENSSL_GROUPS: &str = "X25519:P-256:P-384";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_drops_aes128_tls12_only() {
        let high = provider(TlsGrade::High);
        let names: Vec<_> = high.cipher_suites.iter().map(|s| s.suite()).collect();
        assert!(names.contains(&CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(!names.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(names.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384));
        let medium = provider(TlsGrade::Medium);
        assert!(medium
            .cipher_suites
            .iter()
            .any(|s| s.suite() == CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        // no grade has a non-ECDHE or CBC suite
        for p in [&high, &medium] {
            for s in &p.cipher_suites {
                let name = format!("{:?}", s.suite());
                assert!(
                    name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                    "{name}"
                );
                assert!(!name.contains("CBC"), "{name}");
            }
        }
    }
}
