//! Plan-load time: turns a plan's `authorization` settings into an [`AuthTable`] (inline secrets,
//! `creds_file` contents, the master key), so nothing is read or merged per request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aralez_compiler::{Auth, Creds, JwtClaims, Plan};

use super::{jwt, RouteAuth};

/// Largest secret file read (`creds_file`).
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Secrets shorter than this draw a warning in the log.
const SHORT_SECRET: usize = 16;

/// What [`resolve`] needs from main.yaml.
#[derive(Clone, Default)]
pub struct AuthSettings {
    /// The master key (`master_key`, `master_key_file` or `ARALEZ_MASTER_KEY`).
    pub master_key: Option<Arc<str>>,
    /// Folder that relative `creds_file` paths are resolved against (upstreams.yaml's folder).
    pub base_dir: PathBuf,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .field("base_dir", &self.base_dir)
            .finish()
    }
}

/// The authentication of every route of a plan with its secrets loaded.
#[derive(Debug, Clone, Default)]
pub struct AuthTable {
    /// Per route (same index as `plan.routes()`), its auth (`None`: open).
    pub routes: Vec<Option<RouteAuth>>,
    /// The secret files that were read.
    pub files: SecretFiles,
}

/// Every secret file read for a generation, with the bytes it held (to notice rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretFiles(Vec<(PathBuf, Vec<u8>)>);

impl SecretFiles {
    /// True when every secret file still holds what was loaded (a reload with unchanged config
    /// text but a rotated secret file must not be skipped).
    pub fn unchanged(&self) -> bool {
        self.0
            .iter()
            .all(|(path, bytes)| read_secret_file(path).is_ok_and(|b| &b == bytes))
    }

    /// The files' paths.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.0.iter().map(|(p, _)| p.as_path())
    }
}

/// A route whose secret cannot be resolved (the plan is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    /// The route's host as written.
    pub host: String,
    /// The route's path.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// [`SecretError`]s as E0803 diagnostics against `file` (upstreams.yaml; no line: the problem is
/// in the file system or main.yaml, not at a place in the text).
pub fn secret_diagnostics(
    errors: Vec<SecretError>,
    file: &str,
) -> Vec<aralez_compiler::Diagnostic> {
    errors
        .into_iter()
        .map(|e| {
            aralez_compiler::Diagnostic::new(
                aralez_compiler::codes::AUTH_SECRET_UNAVAILABLE,
                file,
                (0, 0),
                &format!("{:?}.paths.{:?}.authorization", e.host, e.path),
                e.message,
            )
        })
        .collect()
}

/// Resolves the auth of every route of `plan`. Returns the table and warnings (short secrets in
/// files), or every route whose secret cannot be loaded.
pub fn resolve(
    plan: &Plan,
    settings: &AuthSettings,
) -> Result<(AuthTable, Vec<String>), Vec<SecretError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut files: HashMap<PathBuf, Result<Vec<u8>, String>> = HashMap::new();
    let mut routes = Vec::with_capacity(plan.routes().len());
    for route in plan.routes() {
        let Some(auth) = &route.auth else {
            routes.push(None);
            continue;
        };
        let mut fail = |message: String| {
            errors.push(SecretError {
                host: route.host.clone(),
                path: route.path.clone(),
                message,
            });
        };
        if let Auth::Forward(f) = auth {
            match super::forward::ForwardAuthRuntime::new(f) {
                Ok(r) => routes.push(Some(RouteAuth::Forward(Arc::new(r)))),
                Err(message) => {
                    fail(format!("route `{}`: {message}", route.id));
                    routes.push(None);
                }
            }
            continue;
        }
        let secret: Option<Vec<u8>> = match auth.creds() {
            Some(Creds::Inline(s)) => Some(s.as_bytes().to_vec()),
            Some(Creds::File(written)) => {
                let path = settings.base_dir.join(written);
                let loaded = files
                    .entry(path.clone())
                    .or_insert_with(|| read_secret_file(&path));
                match loaded {
                    Ok(bytes) => {
                        if secret_part(auth, bytes).len() < SHORT_SECRET {
                            warnings.push(format!(
                                "route {}: the secret in creds_file {} is shorter than {SHORT_SECRET} bytes; use at least 32 random bytes",
                                route.id,
                                path.display()
                            ));
                        }
                        Some(bytes.clone())
                    }
                    Err(e) => {
                        fail(format!(
                            "route `{}`: creds_file {}: {e}",
                            route.id,
                            path.display()
                        ));
                        None
                    }
                }
            }
            None => match settings.master_key.as_deref() {
                Some(k) if !k.is_empty() => Some(k.as_bytes().to_vec()),
                _ => {
                    fail(format!(
                        "route `{}` uses `authorization: {{type: jwt}}` without `creds`, so its tokens are checked with the master key, but main.yaml configures none; set `master_key` or `master_key_file` (or ARALEZ_MASTER_KEY), or give the route its own `creds`",
                        route.id
                    ));
                    None
                }
            },
        };
        let Some(secret) = secret else {
            routes.push(None);
            continue;
        };
        let resolved = match auth {
            Auth::Basic { .. } if !secret.contains(&b':') => {
                fail(format!(
                    "route `{}`: the basic credentials from creds_file need `user:password` (no `:` found)",
                    route.id
                ));
                None
            }
            Auth::Basic { .. } => Some(RouteAuth::Basic { creds: secret }),
            Auth::Apikey { .. } => Some(RouteAuth::Apikey { key: secret }),
            Auth::Jwt { claims, .. } => jwt::key(&secret).map(|key| RouteAuth::Jwt {
                key,
                rules: Box::new(claim_rules(claims)),
            }),
            Auth::Forward(_) => None,
        };
        routes.push(resolved);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut files: Vec<(PathBuf, Vec<u8>)> = files
        .into_iter()
        .filter_map(|(p, r)| r.ok().map(|b| (p, b)))
        .collect();
    files.sort();
    Ok((
        AuthTable {
            routes,
            files: SecretFiles(files),
        },
        warnings,
    ))
}

/// The verifier's rules for a plan's jwt claim settings.
pub fn claim_rules(claims: &JwtClaims) -> jwt::ClaimRules {
    jwt::ClaimRules {
        issuer: claims.issuer.clone(),
        audience: claims.audience.clone(),
        leeway_secs: i64::from(claims.leeway_seconds),
    }
}

/// The part of a secret whose length matters (the password of `user:password`).
fn secret_part<'a>(auth: &Auth, bytes: &'a [u8]) -> &'a [u8] {
    match auth {
        Auth::Basic { .. } => bytes
            .iter()
            .position(|&c| c == b':')
            .and_then(|i| bytes.get(i + 1..))
            .unwrap_or(bytes),
        _ => bytes,
    }
}

/// Reads a secret file: at most 64 KiB, surrounding whitespace (a trailing newline) removed,
/// not empty.
fn read_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!("larger than {MAX_SECRET_FILE_BYTES} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err("the file is empty; an empty secret would accept forged credentials".into());
    }
    Ok(trimmed.to_vec())
}
