//! The one build function: inputs (upstreams files, certificate folder) to a [`Generation`].
//!
//! Start, file and SIGHUP reloads and `POST /conf` all build through [`build`]; `aralez check
//! --main` validates through [`compile`], the same first step, so it accepts and refuses the same
//! upstreams inputs as the running proxy.

use std::collections::BTreeMap;
use std::sync::Arc;

use aralez_compiler::{Backend, Diagnostic, Plan};

use super::runtime::{self, RouteRuntime};
use crate::auth::{AuthSettings, AuthTable, SecretFiles};
use crate::balance::Registry;
use crate::config::UpstreamSources;
use crate::tls::certs::PairError;
use crate::tls::certset::{hex, CertInput, CertSet};

/// Endpoints found by service discovery: service name to its endpoints, sorted and unique. A
/// service that is absent has not been synced yet; one with an empty list has no passing instance.
pub type Discovered = BTreeMap<String, Vec<Backend>>;

/// Everything a generation is built from, as read from its sources.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// upstreams.yaml and `conf.d/` (or a pushed config).
    pub upstreams: UpstreamSources,
    /// The certificate folder, when a TLS listener is configured.
    pub certs: Option<CertInput>,
    /// The endpoints of discovered services (Consul), as last synced.
    pub discovered: Discovered,
    /// Service lists a provider generated (`(name, JSON list of service entries)`, e.g. from
    /// Consul's `aralez.*` tags), compiled beside the files' routes.
    pub generated: Vec<(String, String)>,
}

/// Settings from main.yaml that the build needs on every reload.
#[derive(Debug, Clone, Default)]
pub struct CompileSettings {
    /// A TLS listener is configured.
    pub tls_listener: bool,
    /// The master key and the folder of secret files, to resolve route auth.
    pub auth: AuthSettings,
}

/// One immutable serving state: the compiled plan, each route's runtime (peers, auth), and the
/// certificates, with one content hash. Swapped whole.
#[derive(Debug)]
pub struct Generation {
    plan: Plan,
    routes: Vec<RouteRuntime>,
    certs: Option<Arc<CertSet>>,
    secret_files: SecretFiles,
    hash: String,
    /// Discovered services of the plan that no provider sync had brought when it was built.
    unsynced: Vec<String>,
    /// Unix time (seconds) when this generation was built.
    pub since: u64,
    /// What built it (`start`, `file`, `sighup`, `api`).
    pub trigger: String,
}

/// A built generation and what the build has to say about it.
pub struct Built {
    /// The generation.
    pub generation: Generation,
    /// Compiler warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// Runtime warnings (backends that do not resolve, short secrets, certificates left out).
    pub warnings: Vec<String>,
    /// Certificate pairs that did not load or that the TLS library refused.
    pub cert_errors: Vec<PairError>,
}

/// A validated upstreams input: the compiled plan, its resolved route secrets, and the warnings
/// of the secret resolution.
pub type Loaded = (aralez_compiler::Compiled<Plan>, AuthTable, Vec<String>);

/// The one validator of an upstreams input: compiles it and resolves its route secrets.
pub fn compile(
    sources: &UpstreamSources,
    generated: &[(String, String)],
    settings: &CompileSettings,
) -> Result<Loaded, Vec<Diagnostic>> {
    let ctx = aralez_compiler::Context {
        tls_listener: settings.tls_listener,
        unsupported: crate::UNSUPPORTED_UPSTREAM_KEYS,
    };
    let generated: Vec<aralez_compiler::Source<'_>> = generated
        .iter()
        .map(|(name, text)| aralez_compiler::Source { name, text })
        .collect();
    let compiled =
        aralez_compiler::compile_upstreams_with(&sources.as_sources(), &generated, &ctx)?;
    match crate::auth::resolve(&compiled.value, &settings.auth) {
        Ok((auth, warnings)) => Ok((compiled, auth, warnings)),
        Err(errors) => {
            let file = sources
                .files
                .first()
                .map_or("upstreams.yaml", |(n, _)| n.as_str());
            Err(crate::auth::secret_diagnostics(errors, file))
        }
    }
}

/// Builds a generation from `inputs`: compile, resolve secrets, resolve peers (blocking DNS),
/// build the certificate set. A certificate folder without any usable pair keeps `previous`'s
/// certificates (a warning says so); only the upstreams can make a build fail.
pub fn build(
    inputs: &Inputs,
    settings: &CompileSettings,
    registry: &Registry,
    previous: Option<&Generation>,
    trigger: &str,
) -> Result<Built, Vec<Diagnostic>> {
    let (compiled, auth, mut warnings) = compile(&inputs.upstreams, &inputs.generated, settings)?;
    let plan = compiled.value;
    let (routes, peer_warnings) = runtime::routes(&plan, auth.routes, registry, &inputs.discovered);
    warnings.extend(peer_warnings);
    let mut cert_errors = Vec::new();
    let certs = match &inputs.certs {
        None => None,
        Some(input) => {
            cert_errors.extend(input.load.errors.iter().cloned());
            let (set, refused) = CertSet::build(input);
            cert_errors.extend(refused);
            match set {
                Some(set) => Some(Arc::new(set)),
                None => {
                    let kept = previous.and_then(|p| p.certs.clone());
                    warnings.push(format!(
                        "TLS certificates: no usable NAME.crt + NAME.key pair in {}; {}",
                        input.dir.display(),
                        if kept.is_some() {
                            "previous certificates keep serving"
                        } else {
                            "TLS handshakes fail until one is added"
                        }
                    ));
                    kept
                }
            }
        }
    };
    let hash = generation_hash(&plan, certs.as_deref(), &inputs.discovered);
    let mut unsynced: Vec<String> = plan
        .routes()
        .iter()
        .filter_map(|r| r.discovery.as_ref())
        .filter(|d| !inputs.discovered.contains_key(&d.service))
        .map(|d| d.service.clone())
        .collect();
    unsynced.sort();
    unsynced.dedup();
    let generation = Generation {
        unsynced,
        plan,
        routes,
        certs,
        secret_files: auth.files,
        hash,
        since: super::unix_now(),
        trigger: trigger.to_string(),
    };
    Ok(Built {
        generation,
        diagnostics: compiled.warnings,
        warnings,
        cert_errors,
    })
}

/// The hash of a generation: the plan hash alone when it serves no certificates and discovers
/// nothing; else a SHA-256 over the plan hash, the certificate fingerprint and the endpoints of
/// the services its routes discover (only those: endpoints of services no route uses do not count).
fn generation_hash(plan: &Plan, certs: Option<&CertSet>, discovered: &Discovered) -> String {
    let services: std::collections::BTreeSet<&str> = plan
        .routes()
        .iter()
        .filter_map(|r| r.discovery.as_ref().map(|d| d.service.as_str()))
        .collect();
    if certs.is_none() && services.is_empty() {
        return plan.hash().to_string();
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(plan.hash().as_bytes());
    if let Some(set) = certs {
        ctx.update(b"\0");
        ctx.update(set.fingerprint().as_bytes());
    }
    if !services.is_empty() {
        ctx.update(b"\0discovered");
        for service in services {
            let mut field = |bytes: &[u8]| {
                ctx.update(&(bytes.len() as u64).to_le_bytes());
                ctx.update(bytes);
            };
            field(service.as_bytes());
            match discovered.get(service) {
                None => field(b"-"),
                Some(endpoints) => {
                    field(b"+");
                    for e in endpoints {
                        field(e.to_string().as_bytes());
                    }
                }
            }
        }
    }
    hex(ctx.finish().as_ref())
}

impl Generation {
    /// The content hash: the plan hash when no certificates are served, else a SHA-256 over the
    /// plan hash and the certificate fingerprint.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The compiled plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The services its routes discover that had not synced when it was built: their routes
    /// have no backend yet (readiness waits for them, for a bounded time).
    pub fn unsynced(&self) -> &[String] {
        &self.unsynced
    }

    /// Every route's runtime, in plan order.
    pub fn routes(&self) -> &[RouteRuntime] {
        &self.routes
    }

    /// One route.
    pub fn route(&self, idx: super::RouteIdx) -> &RouteRuntime {
        // a RouteIdx is only made by `lookup` on this generation's plan, whose routes are these
        &self.routes[idx.0]
    }

    /// Routes a request (raw `Host` and path) to a route of this generation.
    pub fn lookup(
        &self,
        host: &str,
        path: &str,
    ) -> Result<super::RouteIdx, aralez_compiler::matcher::RouteMiss> {
        let idx = self.plan.route(host, path)?;
        if idx < self.routes.len() {
            Ok(super::RouteIdx(idx))
        } else {
            Err(aralez_compiler::matcher::RouteMiss::NoRoute)
        }
    }

    /// The certificates the TLS listener serves (`None`: no TLS listener, or none usable yet).
    pub fn certs(&self) -> Option<&Arc<CertSet>> {
        self.certs.as_ref()
    }

    /// The secret files this generation read.
    pub fn secret_files(&self) -> impl Iterator<Item = &std::path::Path> {
        self.secret_files.paths()
    }

    /// True when every secret file still holds what this generation loaded.
    pub fn secrets_unchanged(&self) -> bool {
        self.secret_files.unchanged()
    }
}
