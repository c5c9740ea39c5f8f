//! The Kubernetes API client of one `kubernetes:` section: where the API servers are, the bearer
//! token (re-read from its file for every request, so a rotated token is used at once), the CA
//! that verifies the API servers' certificates, and the list and watch requests of EndpointSlices.
//!
//! In-cluster defaults, as a Pod sees them: servers from `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT`, the token at [`DEFAULT_TOKEN`], and `ca.crt` and `namespace` beside
//! the token file (also beside a configured `tokenpath`: a projected service-account volume holds
//! all three).

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aralez_compiler::{ConsulTls, KubernetesConfig};

use super::slices::{ObjectList, WatchEvent};
use crate::sources::consul::client::tls_config;

/// The service-account token of a Pod.
pub const DEFAULT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The largest list answer read.
const MAX_BODY: u64 = 32 << 20;
/// The longest line (one event) of a watch stream.
pub const MAX_EVENT: usize = 4 << 20;
/// Connecting to an API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reading a whole list answer.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request gave nothing (the last good endpoints keep serving).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// No server configured and `KUBERNETES_SERVICE_HOST`/`_PORT` unset, or no namespace.
    Settings(String),
    /// The CA file cannot be used.
    Tls(String),
    /// The token file cannot be read, or the token is not a valid header value.
    Token(String),
    /// The server answered with a status other than 200 (401: the token was refused).
    Status {
        /// The server asked.
        server: String,
        /// Its status code.
        status: u16,
    },
    /// The server could not be reached, or the connection failed (TLS verification included).
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
            Self::Settings(m) => write!(f, "settings: {m}"),
            Self::Tls(m) => write!(f, "TLS settings: {m}"),
            Self::Token(m) => write!(f, "token: {m}"),
            Self::Status { server, status } if *status == 401 => {
                write!(f, "{server}: 401, the bearer token was refused")
            }
            Self::Status { server, status } if *status == 403 => {
                write!(
                    f,
                    "{server}: 403, the service account may not list/watch EndpointSlices"
                )
            }
            Self::Status { server, status } => write!(f, "{server}: status {status}"),
            Self::Transport { server, message } => write!(f, "{server}: {message}"),
            Self::Body { server, message } => write!(f, "{server}: bad answer: {message}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The client of one `kubernetes:` section.
pub struct Client {
    agent: Result<ureq::Agent, String>,
    /// `https://host:port` of each server, in failover order.
    pub servers: Vec<String>,
    /// The namespace of the Services.
    pub namespace: Result<String, String>,
    token_file: PathBuf,
}

/// The API servers of `config`: configured, else from the in-cluster environment.
fn servers(config: &KubernetesConfig) -> Vec<String> {
    if !config.servers.is_empty() {
        return config
            .servers
            .iter()
            .map(|b| format!("https://{b}"))
            .collect();
    }
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Vec::new();
    }
    if host.contains(':') {
        vec![format!("https://[{host}]:{port}")]
    } else {
        vec![format!("https://{host}:{port}")]
    }
}

impl Client {
    /// A client for `config`; a relative `tokenpath` is read from `base` (the folder of
    /// upstreams.yaml). Unusable settings fail every request (shown on `/config/status`).
    pub fn new(config: &KubernetesConfig, base: &Path) -> Self {
        let token_file = base.join(config.tokenpath.as_deref().unwrap_or(DEFAULT_TOKEN));
        let folder = token_file
            .parent()
            .map_or_else(PathBuf::new, Path::to_path_buf);
        let ca = folder.join("ca.crt");
        // ca.crt beside the token; without it, the built-in web roots (still verified)
        let tls = ConsulTls {
            ca_file: ca.exists().then(|| ca.to_string_lossy().into_owned()),
            server_name: None,
        };
        let idle = Duration::from_secs(config.watch_idle_seconds.max(1));
        let agent = tls_config(&tls, base).map(|tls| {
            ureq::AgentBuilder::new()
                .tls_config(tls)
                .timeout_connect(CONNECT_TIMEOUT)
                // every read of a watch stream: nothing for this long restarts the watch
                .timeout_read(idle)
                .redirects(0)
                .user_agent(concat!("aralez/", env!("CARGO_PKG_VERSION")))
                .build()
        });
        let namespace = match &config.namespace {
            Some(ns) => Ok(ns.clone()),
            None => {
                let file = folder.join("namespace");
                std::fs::read_to_string(&file)
                    .map(|s| s.trim().to_string())
                    .ok()
                    .filter(|s| url_safe(s))
                    .ok_or_else(|| {
                        format!(
                            "no `namespace` configured and {} is unreadable, empty or not a namespace name",
                            file.display()
                        )
                    })
            }
        };
        Self {
            agent,
            servers: servers(config),
            namespace,
            token_file,
        }
    }

    fn request(&self, url: &str) -> Result<ureq::Request, ClientError> {
        let agent = self
            .agent
            .as_ref()
            .map_err(|e| ClientError::Tls(e.clone()))?;
        let token = self.token()?;
        Ok(agent
            .get(url)
            .set("Authorization", &format!("Bearer {token}"))
            .set("Accept", "application/json"))
    }

    /// The path (with its query) of the EndpointSlices of `upstream` (`[NAMESPACE/]SERVICE[:PORT]`;
    /// without a namespace, the configured or service-account one).
    pub fn slices_path(&self, upstream: &str) -> Result<String, ClientError> {
        let (namespace, rest) = match upstream.split_once('/') {
            Some((ns, rest)) => (ns.to_string(), rest),
            None => (
                self.namespace.clone().map_err(ClientError::Settings)?,
                upstream,
            ),
        };
        let service = rest.split_once(':').map_or(rest, |(name, _)| name);
        Ok(format!(
            "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{service}"
        ))
    }

    /// Lists the objects at `path` (a list path with its query).
    pub fn list(&self, server: &str, path: &str) -> Result<ObjectList, ClientError> {
        let url = format!("{}{path}", server.trim_end_matches('/'));
        let response = call(self.request(&url)?.timeout(LIST_TIMEOUT), server)?;
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| transport(server, format!("reading the list: {e}")))?;
        if body.len() as u64 > MAX_BODY {
            return Err(bad(server, format!("larger than {MAX_BODY} bytes")));
        }
        serde_json::from_slice(&body).map_err(|e| bad(server, e.to_string()))
    }

    /// Opens a watch of the objects at `path` from `version` (the server ends it after
    /// `timeout`; each read waits at most `watch_idle_seconds`).
    pub fn watch(
        &self,
        server: &str,
        path: &str,
        version: &str,
        timeout: Duration,
    ) -> Result<Events, ClientError> {
        if !url_safe(version) {
            return Err(bad(
                server,
                format!("resourceVersion `{version}` is not an opaque token"),
            ));
        }
        let url = format!(
            "{}{path}{}watch=true&allowWatchBookmarks=true&resourceVersion={version}&timeoutSeconds={}",
            server.trim_end_matches('/'),
            if path.contains('?') { "&" } else { "?" },
            timeout.as_secs().max(1)
        );
        let response = call(self.request(&url)?, server)?;
        Ok(Events {
            reader: BufReader::new(response.into_reader()),
            server: server.to_string(),
        })
    }

    /// Replaces the object at `path` with `body` (`PUT`, as for a `/status` subresource).
    pub fn put(
        &self,
        server: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), ClientError> {
        let url = format!("{}{path}", server.trim_end_matches('/'));
        let agent = self
            .agent
            .as_ref()
            .map_err(|e| ClientError::Tls(e.clone()))?;
        let token = self.token()?;
        let request = agent
            .put(&url)
            .timeout(LIST_TIMEOUT)
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "application/json");
        match request.send_string(&body.to_string()) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, _)) => Err(ClientError::Status {
                server: server.to_string(),
                status,
            }),
            Err(ureq::Error::Transport(t)) => Err(transport(server, t.to_string())),
        }
    }

    /// The bearer token, read from its file now.
    fn token(&self) -> Result<String, ClientError> {
        crate::sources::read_token_file(&self.token_file).map_err(ClientError::Token)
    }
}

/// A namespace or `resourceVersion` that can go into a URL as it is (at most 253 letters, digits,
/// `-`, `.` and `_`).
fn url_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn call(request: ureq::Request, server: &str) -> Result<ureq::Response, ClientError> {
    match request.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(status, _)) => Err(ClientError::Status {
            server: server.to_string(),
            status,
        }),
        Err(ureq::Error::Transport(t)) => Err(transport(server, t.to_string())),
    }
}

fn transport(server: &str, message: String) -> ClientError {
    ClientError::Transport {
        server: server.to_string(),
        message,
    }
}

fn bad(server: &str, message: String) -> ClientError {
    ClientError::Body {
        server: server.to_string(),
        message,
    }
}

/// An open watch stream: one JSON event per line.
pub struct Events {
    reader: BufReader<Box<dyn Read + Send + Sync + 'static>>,
    server: String,
}

impl Events {
    /// The next event; `Ok(None)` when the server ended the stream. A read that waits longer than
    /// `watch_idle_seconds` is an error (the watch is restarted).
    pub fn next_event(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let limit = u64::try_from(MAX_EVENT).unwrap_or(u64::MAX) + 1;
            let n = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut line)
                .map_err(|e| transport(&self.server, format!("watch stream: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            if line.len() > MAX_EVENT {
                return Err(bad(
                    &self.server,
                    format!("watch event longer than {MAX_EVENT} bytes"),
                ));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice(&line)
                .map(Some)
                .map_err(|e| bad(&self.server, format!("watch event: {e}")));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(servers: &[&str], namespace: Option<&str>, tokenpath: &str) -> KubernetesConfig {
        KubernetesConfig {
            servers: servers
                .iter()
                .map(|s| {
                    let (host, port) = s.rsplit_once(':').unwrap();
                    aralez_compiler::Backend {
                        host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
                        port: port.parse().unwrap(),
                    }
                })
                .collect(),
            tokenpath: Some(tokenpath.to_string()),
            namespace: namespace.map(str::to_string),
            watch_idle_seconds: 5,
            ingress_class: None,
            ingress_status_address: None,
        }
    }

    #[test]
    fn urls_name_the_namespace_and_the_service_label() {
        let c = Client::new(
            &config(&["10.0.0.1:6443"], Some("shop"), "/nonexistent/token"),
            Path::new("/"),
        );
        assert_eq!(c.servers, ["https://10.0.0.1:6443"]);
        assert_eq!(
            c.slices_path("web:http").unwrap(),
            "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb"
        );
        assert_eq!(
            c.slices_path("other/api").unwrap(),
            "/apis/discovery.k8s.io/v1/namespaces/other/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dapi"
        );
    }

    #[test]
    fn a_missing_token_or_namespace_fails_the_request_not_the_proxy() {
        let c = Client::new(
            &config(&["10.0.0.1:6443"], None, "/nonexistent/token"),
            Path::new("/"),
        );
        assert!(matches!(
            c.slices_path("web"),
            Err(ClientError::Settings(_))
        ));
        let c = Client::new(
            &config(&["10.0.0.1:6443"], Some("shop"), "/nonexistent/token"),
            Path::new("/"),
        );
        assert!(matches!(
            c.list("https://127.0.0.1:1", "/apis"),
            Err(ClientError::Token(_))
        ));
    }

    #[test]
    fn only_plain_names_and_versions_go_into_urls() {
        assert!(url_safe("kube-system") && url_safe("123456") && url_safe("a.b_c"));
        for bad in ["", "a/b", "a?b", "a b", "../x", "a&watch=false", "ü"] {
            assert!(!url_safe(bad), "{bad}");
        }
    }
}
