//! The ACME transport (RFC 8555 §6): the directory, a nonce, signed POSTs and POST-as-GETs over
//! one blocking HTTPS agent (ureq on rustls + ring), with `badNonce` retried and problem
//! documents turned into typed errors. Every request has a timeout and a bounded body.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use serde_json::Value;

use super::jws::{AccountKey, KeyError};

/// Connect timeout of every request to the CA.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request timeout of every request to the CA.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from the CA (a certificate chain is a few KiB).
const MAX_BODY: u64 = 1024 * 1024;
/// `badNonce` answers retried with a fresh nonce before giving up.
const BAD_NONCE_RETRIES: u32 = 5;

/// Why a request to the CA failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcmeError {
    /// The CA could not be reached or the answer not read.
    Transport(String),
    /// The CA answered with an error (an RFC 7807 problem document when it sent one).
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem `type` (e.g. `urn:ietf:params:acme:error:unauthorized`).
        kind: String,
        /// The problem `detail`.
        detail: String,
    },
    /// `rateLimited`: wait at least this many seconds (`Retry-After`, else an hour).
    RateLimited(u64),
    /// An answer that does not follow RFC 8555.
    Protocol(String),
    /// The account key cannot sign.
    Key(KeyError),
    /// `ca_file` or the local files cannot be used.
    Local(String),
    /// The authorization or order ended `invalid`, or did not finish in time.
    Failed(String),
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(m) => write!(f, "cannot reach the ACME CA: {m}"),
            Self::Problem {
                status,
                kind,
                detail,
            } => write!(f, "the ACME CA answered {status} {kind}: {detail}"),
            Self::RateLimited(s) => write!(f, "rate limited by the ACME CA; retry in {s} s"),
            Self::Protocol(m) => write!(f, "unexpected answer from the ACME CA: {m}"),
            Self::Key(e) => e.fmt(f),
            Self::Local(m) => f.write_str(m),
            Self::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for AcmeError {}

/// The URLs of the CA's directory that we use.
#[derive(Debug, Clone)]
pub struct Directory {
    /// `newNonce`.
    pub new_nonce: String,
    /// `newAccount`.
    pub new_account: String,
    /// `newOrder`.
    pub new_order: String,
}

/// One answer of the CA.
#[derive(Debug)]
pub struct Answer {
    /// `Location`, when sent.
    pub location: Option<String>,
    /// `Retry-After` in seconds, when sent as a number.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, AcmeError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| AcmeError::Protocol(format!("not JSON: {e}")))
    }
}

/// A connection to one CA for one account key.
pub struct Client {
    agent: ureq::Agent,
    /// The directory.
    pub directory: Directory,
    nonce: Option<String>,
    /// The account key.
    pub key: AccountKey,
    /// The account URL (`kid`), once registered.
    pub kid: Option<String>,
}

impl Client {
    /// Fetches the directory at `url`, trusting the CAs of `ca_file` (else the Mozilla roots).
    pub fn connect(url: &str, ca_file: Option<&Path>, key: AccountKey) -> Result<Self, AcmeError> {
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls_config(ca_file)?)
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirects(0)
            .user_agent(concat!("aralez/", env!("CARGO_PKG_VERSION")))
            .build();
        let answer = read(agent.get(url).call())?;
        let dir = answer.json()?;
        let field = |name: &str| {
            dir[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| AcmeError::Protocol(format!("the directory has no `{name}`")))
        };
        let directory = Directory {
            new_nonce: field("newNonce")?,
            new_account: field("newAccount")?,
            new_order: field("newOrder")?,
        };
        Ok(Self {
            agent,
            directory,
            nonce: None,
            key,
            kid: None,
        })
    }

    /// A signed POST of `payload` (`None`: POST-as-GET) to `url`; a `badNonce` answer is
    /// retried with the fresh nonce it carries (a few times at most).
    pub fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Answer, AcmeError> {
        self.post_accept(url, payload, "application/json")
    }

    /// [`Client::post`] with another `Accept` (the PEM certificate chain).
    pub fn post_accept(
        &mut self,
        url: &str,
        payload: Option<&Value>,
        accept: &str,
    ) -> Result<Answer, AcmeError> {
        let mut tries = 0;
        loop {
            let nonce = match self.nonce.take() {
                Some(n) => n,
                None => self.fresh_nonce()?,
            };
            let body = self
                .key
                .sign(url, &nonce, self.kid.as_deref(), payload)
                .map_err(AcmeError::Key)?;
            let result = self
                .agent
                .post(url)
                .set("Content-Type", "application/jose+json")
                .set("Accept", accept)
                .send_bytes(&body);
            let response = match &result {
                Ok(r) | Err(ureq::Error::Status(_, r)) => Some(r),
                Err(ureq::Error::Transport(_)) => None,
            };
            self.nonce = response
                .and_then(|r| r.header("Replay-Nonce"))
                .filter(|n| valid_nonce(n))
                .map(str::to_string);
            match read(result) {
                Err(AcmeError::Problem { kind, .. })
                    if kind.ends_with(":badNonce") && tries < BAD_NONCE_RETRIES =>
                {
                    tries += 1;
                    log::debug!("ACME: badNonce from {url}, retrying ({tries})");
                }
                other => return other,
            }
        }
    }

    fn fresh_nonce(&self) -> Result<String, AcmeError> {
        let response = self
            .agent
            .head(&self.directory.new_nonce)
            .call()
            .map_err(|e| AcmeError::Transport(e.to_string()))?;
        response
            .header("Replay-Nonce")
            .filter(|n| valid_nonce(n))
            .map(str::to_string)
            .ok_or_else(|| AcmeError::Protocol("newNonce sent no Replay-Nonce".into()))
    }
}

/// A nonce is base64url (RFC 8555 §6.5.1); anything else is not echoed back.
fn valid_nonce(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 256
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads an answer (bounded), turning error statuses into [`AcmeError`]s.
fn read(result: Result<ureq::Response, ureq::Error>) -> Result<Answer, AcmeError> {
    let (ok, response) = match result {
        Ok(r) => (true, r),
        Err(ureq::Error::Status(_, r)) => (false, r),
        Err(ureq::Error::Transport(t)) => return Err(AcmeError::Transport(t.to_string())),
    };
    let status = response.status();
    let location = response.header("Location").map(str::to_string);
    let retry_after = response
        .header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| AcmeError::Transport(format!("reading the answer: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(AcmeError::Protocol(format!(
            "an answer larger than {MAX_BODY} bytes"
        )));
    }
    if ok {
        return Ok(Answer {
            location,
            retry_after,
            body,
        });
    }
    let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind = problem["type"].as_str().unwrap_or("").to_string();
    if kind.ends_with(":rateLimited") {
        return Err(AcmeError::RateLimited(retry_after.unwrap_or(3600)));
    }
    let detail: String = problem["detail"]
        .as_str()
        .unwrap_or("(no detail)")
        .chars()
        .take(300)
        .collect();
    Err(AcmeError::Problem {
        status,
        kind,
        detail,
    })
}

/// rustls + ring, trusting the CAs of `ca_file` (a private or test CA) or the Mozilla roots.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, AcmeError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                AcmeError::Local(format!("cannot read acme.ca_file {}: {e}", path.display()))
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let added = cert
                    .map_err(|e| e.to_string())
                    .and_then(|c| roots.add(c).map_err(|e| e.to_string()));
                if let Err(e) = added {
                    return Err(AcmeError::Local(format!(
                        "acme.ca_file {}: {e}",
                        path.display()
                    )));
                }
            }
            if roots.is_empty() {
                return Err(AcmeError::Local(format!(
                    "acme.ca_file {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::Local(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
