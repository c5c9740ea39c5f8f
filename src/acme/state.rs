//! The ACME state that request handling reads, kept apart from the serving generation (it is
//! not configuration): the HTTP-01 key authorizations being validated right now, and the
//! self-signed placeholder certificates of names that have no issued certificate yet.
//!
//! Both are small maps behind an `RwLock`, written only by the ACME thread and read by the
//! plain listener (`/.well-known/acme-challenge/<token>`) and the TLS resolver.
//!
//! A published answer is also written to the storage folder (`acme_challenge_TOKEN`), so that in
//! a fleet sharing that folder, whichever process the CA's request reaches can answer for the
//! process that holds the order (the Caddy storage model).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;

use super::client::AcmeError;

/// The path prefix of HTTP-01 answers.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// Most challenges published at once (one per name being validated).
const MAX_CHALLENGES: usize = 256;

/// Largest key authorization read back from the storage folder (a token and a thumbprint).
const MAX_ANSWER: u64 = 512;

/// The HTTP-01 answers being published.
#[derive(Debug, Default)]
pub struct Challenges {
    tokens: RwLock<HashMap<String, String>>,
    /// The storage folder shared with other processes (`None`: answers stay in memory).
    shared: Option<std::path::PathBuf>,
}

/// Withdraws a published token when dropped.
pub struct Published<'a> {
    challenges: &'a Challenges,
    token: String,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        if let Some(file) = self.challenges.shared_file(&self.token) {
            let _ = std::fs::remove_file(file);
        }
        self.challenges
            .tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
    }
}

impl Challenges {
    /// Answers kept in memory and in `shared` (the storage folder).
    pub fn shared(shared: std::path::PathBuf) -> Self {
        Self {
            tokens: RwLock::default(),
            shared: Some(shared),
        }
    }

    fn shared_file(&self, token: &str) -> Option<std::path::PathBuf> {
        let dir = self.shared.as_ref()?;
        token_ok(token).then(|| dir.join(format!("acme_challenge_{token}")))
    }

    /// Publishes `key_authorization` under `token` until the guard is dropped.
    pub fn publish(
        &self,
        token: &str,
        key_authorization: String,
    ) -> Result<Published<'_>, AcmeError> {
        if !token_ok(token) {
            return Err(AcmeError::Protocol(
                "a challenge token that is not base64url".into(),
            ));
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= MAX_CHALLENGES {
            return Err(AcmeError::Local("too many challenges in flight".into()));
        }
        if let Some(file) = self.shared_file(token) {
            if let Err(e) = std::fs::write(&file, key_authorization.as_bytes()) {
                log::warn!(
                    "ACME: cannot share the challenge in {}: {e}; only this process answers it",
                    file.display()
                );
            }
        }
        tokens.insert(token.to_string(), key_authorization);
        Ok(Published {
            challenges: self,
            token: token.to_string(),
        })
    }

    /// The answer to `GET path` when `path` is a challenge published by this process, or by
    /// another one sharing the storage folder (a small file read, only for this path).
    pub fn answer(&self, path: &str) -> Option<String> {
        use std::io::Read;
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        let own = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        if own.is_some() {
            return own;
        }
        let file = std::fs::File::open(self.shared_file(token)?).ok()?;
        let mut text = String::new();
        file.take(MAX_ANSWER).read_to_string(&mut text).ok()?;
        let answer = text.trim();
        let valid = answer
            .split_once('.')
            .is_some_and(|(t, thumb)| t == token && token_ok(thumb));
        valid.then(|| answer.to_string())
    }
}

fn token_ok(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Self-signed certificates served for ACME names until their first certificate is issued, so
/// that the TLS listener answers (with a certificate no client trusts) instead of failing.
#[derive(Debug, Default)]
pub struct Placeholders {
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Placeholders {
    /// The placeholder of `sni`, if it has one.
    pub fn get(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        // the usual case on every handshake: no name is waiting, nothing to allocate
        if by_name.is_empty() {
            return None;
        }
        by_name
            .get(&sni?.trim_end_matches('.').to_ascii_lowercase())
            .cloned()
    }

    /// Makes a placeholder for `name` unless it has one.
    pub fn ensure(&self, name: &str) {
        if self.has(name) {
            return;
        }
        match self_signed(name) {
            Ok(k) => {
                self.by_name
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_string(), Arc::new(k));
            }
            Err(e) => log::error!("ACME: cannot make the placeholder certificate of {name}: {e}"),
        }
    }

    /// Whether `name` has a placeholder.
    pub fn has(&self, name: &str) -> bool {
        self.by_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    /// Keeps only the placeholders for which `keep` holds.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| keep(name));
    }
}

/// A self-signed ECDSA P-256 certificate for `name` (rcgen's default validity: it is trusted by
/// nobody anyway, and is withdrawn once the real certificate serves).
fn self_signed(name: &str) -> Result<CertifiedKey, String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("aralez placeholder for {name}"),
    );
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_published_and_withdrawn() {
        let c = Challenges::default();
        {
            let _g = c.publish("abc_-1", "abc_-1.thumb".into()).unwrap();
            assert_eq!(
                c.answer("/.well-known/acme-challenge/abc_-1").as_deref(),
                Some("abc_-1.thumb")
            );
            assert_eq!(c.answer("/.well-known/acme-challenge/other"), None);
        }
        assert_eq!(c.answer("/.well-known/acme-challenge/abc_-1"), None);
        assert!(c.publish("../x", "y".into()).is_err());
    }

    #[test]
    fn placeholders_serve_their_name_only() {
        let p = Placeholders::default();
        p.ensure("a.example.com");
        assert!(p.get(Some("A.example.com.")).is_some());
        assert!(p.get(Some("b.example.com")).is_none());
        assert!(p.get(None).is_none());
        p.retain(|n| n != "a.example.com");
        assert!(p.get(Some("a.example.com")).is_none());
    }
}
