//! One call of Consul's health API: `GET /v1/health/service/<name>?passing=true`, as a blocking
//! query (`index`, `wait`), with the ACL token and verified TLS. Blocking: runs on a provider
//! thread, never on a pingora runtime.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aralez_compiler::{Backend, ConsulConfig, ConsulTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

/// The largest answer read (a health answer of tens of thousands of instances fits).
const MAX_BODY: u64 = 32 << 20;
/// Connecting to a Consul server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one query gave no endpoints (the last good set keeps serving).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The TLS settings cannot be used (`tls.ca_file` unreadable or without certificates).
    Tls(String),
    /// `token_file` cannot be read, or the token is not a valid header value.
    Token(String),
    /// The server answered with a status other than 200 (403: the token was refused).
    Status {
        /// The server asked.
        server: String,
        /// Its status code.
        status: u16,
    },
    /// The server could not be reached, or the connection failed (includes TLS verification).
    Transport {
        /// The server asked.
        server: String,
        /// Why.
        message: String,
    },
    /// The answer is not the documented JSON, or too large.
    Body {
        /// The server asked.
        server: String,
        /// Why.
        message: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(m) => write!(f, "TLS settings: {m}"),
            Self::Token(m) => write!(f, "token: {m}"),
            Self::Status { server, status } if *status == 403 => {
                write!(f, "{server}: 403, the ACL token was refused")
            }
            Self::Status { server, status } => write!(f, "{server}: status {status}"),
            Self::Transport { server, message } => write!(f, "{server}: {message}"),
            Self::Body { server, message } => write!(f, "{server}: bad answer: {message}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One answer: its `X-Consul-Index` and the endpoints of the passing instances (sorted, unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `X-Consul-Index` (0 when missing or not a number).
    pub index: u64,
    /// `Service.Address` (else `Node.Address`) and `Service.Port` of each instance.
    pub endpoints: Vec<Backend>,
    /// Instances left out because their address or port is unusable.
    pub skipped: usize,
}

/// One catalog answer: its `X-Consul-Index` and every service's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// `X-Consul-Index` (0 when missing or not a number).
    pub index: u64,
    /// Service name to its tags.
    pub services: BTreeMap<String, Vec<String>>,
}

/// The client of one `consul:` section.
pub struct Client {
    agent: Result<ureq::Agent, String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    datacenter: Option<String>,
    wait: Duration,
}

impl Client {
    /// A client for `config`; relative `token_file` and `tls.ca_file` are read from `base` (the
    /// folder of upstreams.yaml). Unusable TLS settings fail every query (so they show on
    /// `/config/status`), they do not stop the proxy.
    pub fn new(config: &ConsulConfig, base: &Path) -> Self {
        let agent = tls_config(&config.tls, base).map(|tls| {
            ureq::AgentBuilder::new()
                .tls_config(tls)
                .timeout_connect(CONNECT_TIMEOUT)
                .redirects(0)
                .user_agent(concat!("aralez/", env!("CARGO_PKG_VERSION")))
                .build()
        });
        Self {
            agent,
            token: config.token.clone(),
            token_file: config.token_file.as_ref().map(|f| base.join(f)),
            datacenter: config.datacenter.clone(),
            wait: Duration::from_secs(config.wait_seconds),
        }
    }

    /// Asks `server` for the passing instances of `service`; with `index` > 0 a blocking query
    /// that Consul holds until the index moves past it or `wait` ends.
    pub fn query(&self, server: &str, service: &str, index: u64) -> Result<Answer, ClientError> {
        let path = format!("/v1/health/service/{service}?passing=true");
        let (index, body) = self.get(server, &path, index)?;
        let (endpoints, skipped) = parse(&body).map_err(|message| ClientError::Body {
            server: server.to_string(),
            message,
        })?;
        Ok(Answer {
            index,
            endpoints,
            skipped,
        })
    }

    /// Asks `server` for the catalog's services and their tags (`GET /v1/catalog/services`),
    /// blocking like [`Client::query`]. Returns `X-Consul-Index` and service name to tags.
    pub fn catalog(&self, server: &str, index: u64) -> Result<Catalog, ClientError> {
        let (index, body) = self.get(server, "/v1/catalog/services?", index)?;
        let services = serde_json::from_slice(&body).map_err(|e| ClientError::Body {
            server: server.to_string(),
            message: e.to_string(),
        })?;
        Ok(Catalog { index, services })
    }

    /// One GET of `path_query` (ending in `?` or holding a query already) with the datacenter,
    /// the blocking parameters and the token: `X-Consul-Index` and the body (at most
    /// [`MAX_BODY`]).
    fn get(
        &self,
        server: &str,
        path_query: &str,
        index: u64,
    ) -> Result<(u64, Vec<u8>), ClientError> {
        let agent = self
            .agent
            .as_ref()
            .map_err(|e| ClientError::Tls(e.clone()))?;
        let token = self.token()?;
        let mut url = format!("{}{path_query}", server.trim_end_matches('/'));
        if let Some(dc) = &self.datacenter {
            url.push_str(&format!("&dc={dc}"));
        }
        if index > 0 {
            url.push_str(&format!("&index={index}&wait={}s", self.wait.as_secs()));
        }
        // Consul adds up to wait/16 of jitter to the wait
        let timeout = self.wait + self.wait / 16 + Duration::from_secs(10);
        let mut request = agent.get(&url).timeout(timeout);
        if let Some(t) = &token {
            request = request.set("X-Consul-Token", t);
        }
        let server_name = server.to_string();
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, _)) => {
                return Err(ClientError::Status {
                    server: server_name,
                    status,
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(ClientError::Transport {
                    server: server_name,
                    message: t.to_string(),
                })
            }
        };
        let index = response
            .header("X-Consul-Index")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| ClientError::Transport {
                server: server_name.clone(),
                message: format!("reading the answer: {e}"),
            })?;
        if body.len() as u64 > MAX_BODY {
            return Err(ClientError::Body {
                server: server_name,
                message: format!("larger than {MAX_BODY} bytes"),
            });
        }
        Ok((index, body))
    }

    /// The token to send: `token_file` (read before every query, so a rotated file is used at
    /// once) or `token`.
    fn token(&self) -> Result<Option<String>, ClientError> {
        let Some(path) = &self.token_file else {
            return Ok(self.token.clone());
        };
        crate::sources::read_token_file(path)
            .map(Some)
            .map_err(ClientError::Token)
    }
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Node")]
    node: Option<Node>,
    #[serde(rename = "Service")]
    service: Option<Service>,
}

#[derive(Deserialize)]
struct Node {
    #[serde(rename = "Address", default)]
    address: String,
}

#[derive(Deserialize)]
struct Service {
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "Port", default)]
    port: u64,
}

/// Parses a health answer into endpoints (sorted, unique) and the count of unusable instances.
pub fn parse(body: &[u8]) -> Result<(Vec<Backend>, usize), String> {
    let entries: Vec<Entry> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut skipped = 0;
    let mut endpoints = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(service) = entry.service else {
            skipped += 1;
            continue;
        };
        let address = if service.address.is_empty() {
            entry.node.map(|n| n.address).unwrap_or_default()
        } else {
            service.address
        };
        match (endpoint_host(&address), u16::try_from(service.port)) {
            (Some(host), Ok(port)) if port != 0 => endpoints.push(Backend { host, port }),
            _ => skipped += 1,
        }
    }
    endpoints.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    endpoints.dedup();
    Ok((endpoints, skipped))
}

/// An address Consul reports, as a backend host: an IP literal (IPv6 unbracketed) or a DNS name.
pub(crate) fn endpoint_host(address: &str) -> Option<String> {
    let bare = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Some(ip.to_string());
    }
    let name_ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    name_ok.then(|| bare.to_ascii_lowercase())
}

/// The rustls configuration of the client: the CAs of `ca_file` (else the built-in web roots),
/// ring, certificates verified against `server_name` when set.
pub(crate) fn tls_config(
    tls: &ConsulTls,
    base: &Path,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(file) => {
            let path = base.join(file);
            let pem = std::fs::read(&path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {} holds no certificate", path.display()));
            }
        }
        None => {
            let (_, ignored) =
                roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec());
            log::debug!("consul: {ignored} built-in root certificates did not parse");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match &tls.server_name {
        None => webpki,
        Some(name) => Arc::new(NamedVerifier {
            inner: webpki,
            name: ServerName::try_from(name.clone()).map_err(|e| e.to_string())?,
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Full WebPKI verification, against a configured name instead of the URL's host (for servers
/// reached by IP whose certificates name the service).
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn service_address_else_node_address_sorted_and_unique() {
        let body = br#"[
            {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"a","Service":"s","Address":"","Port":8080},"Checks":[]},
            {"Node":{"Node":"n2","Address":"10.0.0.2"},"Service":{"ID":"b","Service":"s","Address":"10.0.0.9","Port":80}},
            {"Node":{"Node":"n3","Address":"10.0.0.3"},"Service":{"ID":"c","Service":"s","Address":"::1","Port":9000}},
            {"Node":{"Node":"n4","Address":"10.0.0.4"},"Service":{"ID":"d","Service":"s","Address":"10.0.0.9","Port":80}}
        ]"#;
        let (endpoints, skipped) = parse(body).unwrap();
        let ids: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
        assert_eq!(ids, ["10.0.0.1:8080", "10.0.0.9:80", "[::1]:9000"]);
        assert_eq!(skipped, 0);
    }

    #[test]
    fn unusable_instances_are_skipped_not_fatal() {
        let body = br#"[
            {"Node":{"Address":"10.0.0.1"},"Service":{"Address":"","Port":0}},
            {"Node":{"Address":"10.0.0.1"},"Service":{"Address":"bad host!","Port":80}},
            {"Node":{"Address":"10.0.0.1"},"Service":{"Address":"","Port":70000}},
            {"Node":{"Address":"10.0.0.1"}},
            {"Node":{"Address":"10.0.0.1"},"Service":{"Address":"Web-1.Consul","Port":81}}
        ]"#;
        let (endpoints, skipped) = parse(body).unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].to_string(), "web-1.consul:81");
        assert_eq!(skipped, 4);
    }

    #[test]
    fn malformed_answers_are_errors() {
        for body in [&b"{}"[..], b"not json", b"[{\"Service\":{\"Port\":\"x\"}}]"] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(parse(b"[]").unwrap(), (Vec::new(), 0));
    }

    #[test]
    fn bad_ca_file_fails_every_query_with_a_tls_error() {
        let config = ConsulConfig {
            servers: vec!["https://127.0.0.1:1".into()],
            token: None,
            token_file: None,
            datacenter: None,
            wait_seconds: 1,
            tag_mode: false,
            tls: ConsulTls {
                ca_file: Some("/nonexistent/ca.pem".into()),
                server_name: None,
            },
        };
        let client = Client::new(&config, Path::new("/"));
        let err = client.query("https://127.0.0.1:1", "web", 0).unwrap_err();
        assert!(matches!(err, ClientError::Tls(_)), "{err}");
    }
}
