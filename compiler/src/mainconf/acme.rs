//! The `acme:` section of main.yaml: automatic certificates over ACME (RFC 8555).
//!
//! Which names get a certificate is upstreams.yaml's business (`acme: true` on a host, or the
//! global `acme_hosts: all`); this section says where to get them and how to keep them.

use super::Located;
use crate::codes;
use crate::diag::Sink;
use crate::walk::{self, pos};
use crate::yaml::Node;
use crate::ypath;

/// Let's Encrypt's production directory: the default `acme.directory`.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Default `acme.renew_before_days`.
pub const DEFAULT_RENEW_BEFORE_DAYS: u32 = 30;

/// Every key of the `acme:` section.
pub const ACME_KEYS: &[&str] = &[
    "ca_file",
    "challenge",
    "directory",
    "email",
    "renew_before_days",
    "storage",
];

/// `acme.challenge`: how the CA checks that we control a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `http-01` (default): the proxy answers `/.well-known/acme-challenge/<token>` on its plain
    /// listener.
    Http01,
}

impl AcmeChallenge {
    /// The word as written in main.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// The typed `acme:` section, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The CA's directory URL (https; default Let's Encrypt production).
    pub directory: String,
    /// Contact address given to the CA (`mailto:`), if any.
    pub email: Option<String>,
    /// PEM file of the CA certificates trusted for the directory's HTTPS (a private or test
    /// CA); without it, the Mozilla roots.
    pub ca_file: Option<Located<String>>,
    /// The challenge type.
    pub challenge: AcmeChallenge,
    /// A certificate is renewed this many days before it expires (default 30).
    pub renew_before_days: u32,
    /// Folder of the account key, the order state and the lock files (default: the certificate
    /// folder).
    pub storage: Option<Located<String>>,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: LETS_ENCRYPT_DIRECTORY.into(),
            email: None,
            ca_file: None,
            challenge: AcmeChallenge::Http01,
            renew_before_days: DEFAULT_RENEW_BEFORE_DAYS,
            storage: None,
        }
    }
}

/// Walks the `acme:` mapping at `path`.
pub(super) fn section(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<AcmeConfig> {
    let entries = walk::entries(sink, node, path, "of ACME settings")?;
    let mut c = AcmeConfig::default();
    for e in &entries {
        let p = ypath::key(path, e.key);
        let v = e.value;
        match e.key {
            "directory" => {
                if let Some(url) = walk::nonempty_str_of(sink, v, &p) {
                    if https_url(url) {
                        c.directory = url.to_string();
                    } else {
                        sink.report(
                            codes::ACME_BAD_VALUE,
                            pos(v),
                            &p,
                            format!("`{url}` is not an https:// URL; ACME directories are served over HTTPS (e.g. `{LETS_ENCRYPT_DIRECTORY}`)"),
                        );
                    }
                }
            }
            "email" => {
                if let Some(mail) = walk::nonempty_str_of(sink, v, &p) {
                    if email(mail) {
                        c.email = Some(mail.to_string());
                    } else {
                        sink.report(
                            codes::ACME_BAD_VALUE,
                            pos(v),
                            &p,
                            format!("`{mail}` is not an e-mail address (`name@domain`, no spaces or commas)"),
                        );
                    }
                }
            }
            "ca_file" => c.ca_file = located(sink, v, &p),
            "storage" => c.storage = located(sink, v, &p),
            "renew_before_days" => {
                if let Some(d) = walk::int_of(sink, v, &p, 1, 3650, e.key) {
                    c.renew_before_days = u32::try_from(d).unwrap_or(DEFAULT_RENEW_BEFORE_DAYS);
                }
            }
            "challenge" => match walk::str_of(sink, v, &p) {
                Some("http-01") => c.challenge = AcmeChallenge::Http01,
                Some("tls-alpn-01") => sink.report(
                    codes::UNSUPPORTED,
                    pos(v),
                    &p,
                    "`challenge: tls-alpn-01` is not supported by this build of aralez: pingora 0.9.1's TLS listener cannot offer the `acme-tls/1` protocol next to h2 and http/1.1; use `http-01` (port 80 must reach `proxy_address_http`)",
                ),
                Some("dns-01") => sink.report(
                    codes::UNSUPPORTED,
                    pos(v),
                    &p,
                    "`challenge: dns-01` is not supported (it needs a DNS provider API); use `http-01`",
                ),
                Some(other) => sink.report(
                    codes::BAD_ENUM,
                    pos(v),
                    &p,
                    format!("`{other}` is not one of http-01, tls-alpn-01"),
                ),
                None => {}
            },
            _ => walk::unknown_key(sink, e, path, ACME_KEYS),
        }
    }
    Some(c)
}

fn located(sink: &mut Sink<'_>, v: &Node, path: &str) -> Option<Located<String>> {
    walk::nonempty_str_of(sink, v, path).map(|s| Located {
        value: s.to_string(),
        line: v.line,
        col: v.col,
    })
}

fn https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && url.bytes().all(|b| b.is_ascii_graphic())
}

fn email(mail: &str) -> bool {
    let Some((local, domain)) = mail.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && mail
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'<' | b'>' | b'"' | b'\\'))
        && !domain.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_mails() {
        assert!(https_url("https://127.0.0.1:14000/dir"));
        assert!(!https_url("http://127.0.0.1:14000/dir"));
        assert!(!https_url("https:///dir"));
        assert!(email("ops@example.com"));
        assert!(!email("ops@localhost"));
        assert!(!email("a b@example.com"));
        assert!(!email("a@b@example.com"));
    }
}
