//! TLS: the certificate folder, the certificate set of a generation and its SNI resolver, cipher grades, TLS listeners (proxy and
//! admin), and upstream TLS / protocol detection.

pub mod certs;
pub mod certset;
pub mod grade;
pub mod listener;
pub mod sni;
pub mod upstream;
pub mod wiring;

use aralez_compiler::{codes, Diagnostic, Located, Severity};

use crate::config::LoadedMain;

/// Certificates expiring sooner than this are reported by `check` (W0801).
pub const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;

/// `aralez check --main`: loads the certificate folder and the admin certificate the way the
/// running proxy does and reports every pair that would be skipped (E0804, naming the file), a
/// folder without any usable pair (W0802), and certificates expiring within 14 days (W0801).
/// Missing paths are E0801/E0802, reported elsewhere.
pub fn check_main(main: &LoadedMain, file: &str) -> Vec<Diagnostic> {
    let cfg = &main.config;
    let now = certs::now_unix();
    let mut out = Vec::new();
    if let Some(loc) = &cfg.proxy_certificates {
        let dir = main.resolve(&loc.value);
        if dir.is_dir() {
            match certs::load_folder(&dir, now) {
                Ok(load) => {
                    for e in &load.errors {
                        out.push(diag(
                            file,
                            "proxy_certificates",
                            loc,
                            codes::TLS_PAIR_INVALID,
                            Severity::Error,
                            format!(
                                "certificate pair `{}` does not load: {e}; the proxy skips it",
                                e.name
                            ),
                        ));
                    }
                    // with `acme:` an empty folder is normal: placeholders serve until issuance
                    if load.pairs.is_empty() && cfg.acme.is_none() {
                        out.push(diag(
                            file,
                            "proxy_certificates",
                            loc,
                            codes::TLS_FOLDER_EMPTY,
                            Severity::Warning,
                            format!(
                                "`{}` holds no usable NAME.crt + NAME.key pair: TLS handshakes fail until one is added",
                                loc.value
                            ),
                        ));
                    }
                    for p in &load.pairs {
                        if p.not_after - now < EXPIRY_WARNING_SECS {
                            out.push(diag(
                                file,
                                "proxy_certificates",
                                loc,
                                codes::TLS_CERT_EXPIRING,
                                Severity::Warning,
                                format!(
                                    "certificate `{}.crt` expires on {} (within 14 days)",
                                    p.name,
                                    certs::utc_date(p.not_after)
                                ),
                            ));
                        }
                    }
                }
                Err(e) => out.push(diag(
                    file,
                    "proxy_certificates",
                    loc,
                    codes::TLS_PAIR_INVALID,
                    Severity::Error,
                    format!("cannot read the folder `{}`: {e}", loc.value),
                )),
            }
        }
    }
    if let (Some(crt), Some(key)) = (&cfg.config_tls_certificate, &cfg.config_tls_key_file) {
        let (crt_path, key_path) = (main.resolve(&crt.value), main.resolve(&key.value));
        if crt_path.is_file() && key_path.is_file() {
            match certs::load_pair("admin", &crt_path, &key_path, now) {
                Ok(p) if p.not_after - now < EXPIRY_WARNING_SECS => out.push(diag(
                    file,
                    "config_tls_certificate",
                    crt,
                    codes::TLS_CERT_EXPIRING,
                    Severity::Warning,
                    format!(
                        "the admin certificate expires on {} (within 14 days)",
                        certs::utc_date(p.not_after)
                    ),
                )),
                Ok(_) => {}
                Err(e) => out.push(diag(
                    file,
                    "config_tls_certificate",
                    crt,
                    codes::TLS_PAIR_INVALID,
                    Severity::Error,
                    format!("the admin TLS certificate does not load: {e}"),
                )),
            }
        }
    }
    out
}

fn diag(
    file: &str,
    key: &str,
    loc: &Located<String>,
    code: &'static str,
    severity: Severity,
    message: String,
) -> Diagnostic {
    Diagnostic {
        code,
        severity,
        file: file.to_string(),
        line: loc.line,
        col: loc.col,
        path: key.to_string(),
        message,
    }
}
