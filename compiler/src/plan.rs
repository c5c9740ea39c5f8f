//! The frozen routing plan: everything the data plane needs, pre-computed.
//!
//! A [`Plan`] is immutable once built. The runtime stores it whole in an `ArcSwap` and every request
//! reads exactly one plan. Globals are already folded into each [`Route`].

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde::Serialize;

/// Validated headers, in config order.
pub type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// Index of a route in [`Plan::routes`].
pub type RouteIdx = usize;

/// The compiled routing plan. Frozen: built only by the compiler, read through accessors.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Hex SHA-256 of the canonical JSON of everything below (the plan without this field).
    pub(crate) hash: String,
    /// Which provider feeds this plan.
    pub(crate) provider: Provider,
    /// Virtual hosts by name; lookup through [`Plan::route`].
    pub(crate) hosts: HostTable,
    /// All routes, sorted by id; [`RouteIdx`] indexes this.
    pub(crate) routes: Vec<Arc<Route>>,
    /// Consul settings when `provider: consul`.
    pub(crate) consul: Option<ConsulConfig>,
    /// Kubernetes settings when `provider: kubernetes`.
    pub(crate) kubernetes: Option<KubernetesConfig>,
    /// The claim settings of the global `authorization` when it is `type: jwt` (`None`
    /// otherwise): the `iss`/`aud` that the admin API's `POST /jwt` writes into the tokens it
    /// issues. Per-path settings never reach issued tokens.
    pub(crate) global_jwt: Option<JwtClaims>,
    /// Exact host names whose certificates are obtained over ACME (`acme: true` on the host, or
    /// `acme_hosts: all`), sorted.
    pub(crate) acme_hosts: Vec<String>,
}

/// Consul discovery settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsulConfig {
    /// Consul HTTP API base URLs, e.g. `http://127.0.0.1:8500`.
    pub servers: Vec<String>,
    /// `X-Consul-Token` value (secret: redacted in plan JSON, included in the hash).
    #[serde(skip)]
    pub token: Option<String>,
    /// File to read the token from (resolved by the runtime, re-read when it changes); wins over
    /// `token` when both are set.
    pub token_file: Option<String>,
    /// Datacenter to query (`&dc=`); `None`: the agent's own.
    pub datacenter: Option<String>,
    /// Longest time one blocking query is held by Consul (`wait`), in seconds (default 300).
    pub wait_seconds: u64,
    /// TLS settings for `https://` servers.
    pub tls: ConsulTls,
    /// Tag mode: every catalog service tagged `aralez.host=<vhost>` is routed too (its other
    /// `aralez.*` tags set path, rate limit and `to_https`).
    pub tag_mode: bool,
}

/// TLS settings of the Consul client (verification is always on for `https://` servers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsulTls {
    /// PEM file of the CA certificates to trust instead of the built-in web roots.
    pub ca_file: Option<String>,
    /// Name to verify the servers' certificates against instead of the URL's host.
    pub server_name: Option<String>,
}

/// Kubernetes discovery settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubernetesConfig {
    /// API servers (`host:port`); empty: from `KUBERNETES_SERVICE_HOST`/`_PORT`.
    pub servers: Vec<Backend>,
    /// Service-account token file (re-read when it changes); `None`: the in-cluster default.
    pub tokenpath: Option<String>,
    /// Namespace; `None`: the service account's namespace.
    pub namespace: Option<String>,
    /// A watch that sends nothing (not even a bookmark) for this long is restarted.
    pub watch_idle_seconds: u64,
    /// Ingress controller mode: the Ingresses of this class (in every namespace) are routed.
    pub ingress_class: Option<String>,
    /// The address written to the served Ingresses' `status.loadBalancer.ingress` (an IP, else a
    /// hostname); `None`: the status is not written.
    pub ingress_status_address: Option<String>,
}

/// Where a route's backends come from when a provider discovers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// Consul or Kubernetes.
    pub provider: Provider,
    /// The Consul service or Kubernetes Service name.
    pub service: String,
}

/// The source of upstream sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Upstreams come from the YAML file (and the push API).
    File,
    /// Upstreams come from Consul.
    Consul,
    /// Upstreams come from Kubernetes EndpointSlices.
    Kubernetes,
}

/// Host name to virtual host: exact names, single-label wildcards, then `DEFAULT`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostTable {
    /// Lower-case exact names, without trailing dot.
    pub exact: std::collections::BTreeMap<String, PathTable>,
    /// `*.example.com` stored under `example.com`: matches exactly one more label.
    pub wildcard: std::collections::BTreeMap<String, PathTable>,
    /// The `DEFAULT` catch-all host.
    pub default: Option<PathTable>,
}

/// Segment-prefix path matcher of one virtual host: longest match wins.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathTable {
    /// Prefix (starts with `/`, no trailing `/` except the root itself) to route index.
    pub prefixes: std::collections::BTreeMap<String, RouteIdx>,
    #[serde(skip)]
    lookup: HashMap<String, RouteIdx>,
}

impl PathTable {
    /// Builds the matcher from `(prefix, route)` pairs; prefixes are normalised with
    /// [`crate::matcher::normalize_prefix`].
    pub fn new(entries: impl IntoIterator<Item = (String, RouteIdx)>) -> Self {
        let prefixes: std::collections::BTreeMap<String, RouteIdx> = entries
            .into_iter()
            .map(|(p, r)| (crate::matcher::normalize_prefix(&p), r))
            .collect();
        let lookup = prefixes.iter().map(|(p, r)| (p.clone(), *r)).collect();
        Self { prefixes, lookup }
    }

    /// Longest segment-prefix match of an already normalised path (see [`crate::matcher`]).
    pub fn longest_match(&self, path: &str) -> Option<RouteIdx> {
        let mut candidate = path;
        loop {
            if let Some(idx) = self.lookup.get(candidate) {
                return Some(*idx);
            }
            if candidate == "/" || candidate.is_empty() {
                return None;
            }
            candidate = match candidate.rfind('/') {
                Some(0) | None => "/",
                Some(cut) => candidate.get(..cut).unwrap_or("/"),
            };
        }
    }
}

impl Plan {
    /// Hex SHA-256 of the plan's canonical JSON (what `aralez compile --print-hash` prints).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Which provider feeds this plan.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The virtual hosts.
    pub fn hosts(&self) -> &HostTable {
        &self.hosts
    }

    /// All routes, sorted by id; a [`RouteIdx`] from [`Plan::route`] indexes this.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Consul settings when `provider: consul`.
    pub fn consul(&self) -> Option<&ConsulConfig> {
        self.consul.as_ref()
    }

    /// Kubernetes settings when `provider: kubernetes`.
    pub fn kubernetes(&self) -> Option<&KubernetesConfig> {
        self.kubernetes.as_ref()
    }

    /// The claim settings of the global `authorization` when it is `type: jwt`.
    pub fn global_jwt(&self) -> Option<&JwtClaims> {
        self.global_jwt.as_ref()
    }

    /// Exact host names whose certificates are obtained over ACME, sorted.
    pub fn acme_hosts(&self) -> &[String] {
        &self.acme_hosts
    }

    /// Routes a request: `host` is the raw `Host`/`:authority` value, `path` the raw request path
    /// (query already removed). No allocation unless the path needs normalising.
    pub fn route(&self, host: &str, path: &str) -> Result<RouteIdx, crate::matcher::RouteMiss> {
        let table = crate::matcher::find_host(&self.hosts, host)?;
        let path = crate::matcher::normalize_path(path)?;
        table
            .longest_match(&path)
            .ok_or(crate::matcher::RouteMiss::NoRoute)
    }
}

/// A route: one `host` + `path` with its resolved policy.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// Stable identifier used in metrics and logs: `host` + `path` as written (`DEFAULT/` for the catch-all).
    pub id: String,
    /// Virtual host as written (lower-cased).
    pub host: String,
    /// Path prefix, normalised (`/a/` is stored as `/a`).
    pub path: String,
    /// Upstream servers, in config order (empty for discovered routes until the provider fills
    /// them, and for pure `redirect_to` routes).
    pub backends: Vec<Backend>,
    /// Set when the backends come from Consul/Kubernetes.
    pub discovery: Option<Discovery>,
    /// HTTP -> HTTPS 301 on plain connections.
    pub to_https: bool,
    /// 301 to this URL + the request path.
    pub redirect_to: Option<String>,
    /// Headers added to the request towards the upstream.
    #[serde(serialize_with = "ser_headers")]
    pub request_headers: HeaderList,
    /// Headers added to the response towards the client (globals folded in).
    #[serde(serialize_with = "ser_headers")]
    pub response_headers: HeaderList,
    /// Authentication required on this route (per path, else global).
    pub auth: Option<Auth>,
    /// Forward the credentials used for auth to the upstream.
    pub forward_auth_header: bool,
    /// Requests per second per client IP and virtual host.
    pub rate_limit: Option<u32>,
    /// 4xx responses per second per client before 429.
    pub x4xx_limit: Option<u32>,
    /// Sticky sessions.
    pub sticky: Option<Sticky>,
    /// Whether the backends of this route are health checked.
    pub healthcheck: bool,
    /// Require a valid certificate chain and name from TLS upstreams.
    pub verify_upstream_tls: bool,
}

/// An upstream server as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Backend {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (never 0).
    pub port: u16,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Authentication policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Auth {
    /// `Authorization: Basic` with these credentials.
    Basic {
        /// `user:pass`.
        #[serde(skip)]
        creds: Creds,
    },
    /// `x-api-key` header equal to this key.
    Apikey {
        /// The key.
        #[serde(skip)]
        key: Creds,
    },
    /// HS256 JWT; `None` means the master key is the secret.
    Jwt {
        /// The HMAC secret.
        #[serde(skip)]
        secret: Option<Creds>,
        /// What the token's `iss`, `aud`, `exp` and `nbf` claims must satisfy.
        claims: JwtClaims,
    },
    /// Ask an external auth service (`type: forward`).
    Forward(Box<ForwardAuth>),
}

/// `type: forward`: every request is first sent (as a GET with `X-Forwarded-*` headers) to an
/// auth service; a 2xx lets it through, anything else is the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardAuth {
    /// `url` as written.
    pub url: String,
    /// The auth service's host (a name is resolved when the plan is loaded).
    pub host: String,
    /// Its port (80 when the URL names none).
    pub port: u16,
    /// The request target sent (path and query of `url`).
    pub target: String,
    /// Whole-exchange timeout in milliseconds (connect, request, answer).
    pub timeout_ms: u64,
    /// Client request headers copied to the auth request (lower-case names).
    pub request_headers: Vec<String>,
    /// Auth answer headers copied onto the upstream request on a 2xx (lower-case names).
    pub response_headers: Vec<String>,
    /// Keep the `X-Forwarded-*` headers a trusted proxy sent instead of writing our own.
    pub trust_forward_header: bool,
    /// Seconds a positive answer is reused for the same listed request headers (0: never).
    pub cache_seconds: u32,
}

/// Default `timeout_ms` of forward authentication.
pub const DEFAULT_FORWARD_AUTH_TIMEOUT_MS: u64 = 2000;

/// Default clock skew tolerated on a JWT's `exp` and `nbf`, in seconds.
pub const DEFAULT_JWT_LEEWAY_SECONDS: u32 = 30;

/// Largest `leeway_seconds` accepted.
pub const MAX_JWT_LEEWAY_SECONDS: u32 = 300;

/// The claim checks of a `jwt` authorization (`issuer`, `audience`, `leeway_seconds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JwtClaims {
    /// `iss` must be a string equal to this, when set (never empty).
    pub issuer: Option<String>,
    /// `aud` (a string or an array of strings) must contain at least one of these; empty: `aud`
    /// is not checked. In config order, never holding an empty string.
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, `0..=MAX_JWT_LEEWAY_SECONDS`.
    pub leeway_seconds: u32,
}

impl Default for JwtClaims {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: Vec::new(),
            leeway_seconds: DEFAULT_JWT_LEEWAY_SECONDS,
        }
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creds {
    /// Written in the config (`creds`).
    Inline(String),
    /// Read by the runtime from this file when it loads the plan (`creds_file`); the path is as
    /// written (relative paths are resolved by the runtime against upstreams.yaml's folder). The
    /// compiler never reads it.
    File(String),
}

/// Sticky-session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sticky {
    /// Cookie `Max-Age` in seconds; `None` for a session cookie.
    pub max_age: Option<u64>,
}

fn ser_headers<S: serde::Serializer>(
    headers: &[(HeaderName, HeaderValue)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(headers.len()))?;
    for (name, value) in headers {
        let text = format!(
            "{}:{}",
            name.as_str(),
            String::from_utf8_lossy(value.as_bytes())
        );
        seq.serialize_element(&text)?;
    }
    seq.end()
}

impl Provider {
    /// The provider's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::File => "file",
            Provider::Consul => "consul",
            Provider::Kubernetes => "kubernetes",
        }
    }
}

impl Auth {
    /// `basic`, `apikey` or `jwt`.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "basic",
            Auth::Apikey { .. } => "apikey",
            Auth::Jwt { .. } => "jwt",
            Auth::Forward(_) => "forward",
        }
    }

    /// The secret material written inline (credentials, key or HMAC secret), if any.
    pub fn secret(&self) -> Option<&str> {
        match self.creds()? {
            Creds::Inline(s) => Some(s),
            Creds::File(_) => None,
        }
    }

    /// The `creds_file` the secret is to be read from, if any.
    pub fn creds_file(&self) -> Option<&str> {
        match self.creds()? {
            Creds::File(p) => Some(p),
            Creds::Inline(_) => None,
        }
    }

    /// Where the secret comes from; `None` for a jwt route that uses the master key.
    pub fn creds(&self) -> Option<&Creds> {
        match self {
            Auth::Basic { creds } => Some(creds),
            Auth::Apikey { key } => Some(key),
            Auth::Jwt { secret, .. } => secret.as_ref(),
            Auth::Forward(_) => None,
        }
    }

    /// The claim settings of a `jwt` authorization; `None` for the other types.
    pub fn jwt_claims(&self) -> Option<&JwtClaims> {
        match self {
            Auth::Jwt { claims, .. } => Some(claims),
            Auth::Basic { .. } | Auth::Apikey { .. } | Auth::Forward(_) => None,
        }
    }
}
