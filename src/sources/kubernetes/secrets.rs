//! TLS Secrets (`kubernetes.io/tls`) of the Ingress controller: one watch of the TLS Secrets of
//! every namespace keeps their `tls.crt`/`tls.key`; the reload adds those that a served
//! Ingress's `tls:` names to the generation's certificate input, beside the certificate folder, so
//! SNI serving and the generation hash follow them (a rotated Secret is served in the next swap).
//! A Secret that does not load is a certificate error like a bad folder pair: named, counted, and
//! the other certificates serve.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::client::{Client, ClientError};
use super::watch::{Objects, Watcher};
use super::Shared;
use crate::tls::certs::{parse_pair, CertPair, FolderLoad, PairError};
use crate::tls::certset::CertInput;

/// The list path of the TLS Secrets of every namespace.
const SECRETS: &str = "/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Ftls";
/// The prefix of the certificate pairs that come from Secrets (`kubernetes:NAMESPACE/NAME`).
pub const PAIR_PREFIX: &str = "kubernetes:";

/// `tls.crt` and `tls.key` (PEM) of each TLS Secret, by `NAMESPACE/NAME`.
pub type TlsSecrets = BTreeMap<String, (Vec<u8>, Vec<u8>)>;

/// The watch of the TLS Secrets.
pub(super) struct SecretWatch {
    pub shared: Arc<Shared>,
    pub epoch: u64,
}

impl Watcher for SecretWatch {
    fn label(&self) -> &str {
        "TLS secrets"
    }

    fn path(&self, _client: &Client) -> Result<String, ClientError> {
        Ok(SECRETS.to_string())
    }

    fn changed(&self, server: &str, objects: &Objects, _version: &str) -> bool {
        let secrets: TlsSecrets = objects
            .iter()
            .filter_map(|(key, object)| Some((key.clone(), pem_pair(object)?)))
            .collect();
        self.shared.secrets_synced(self.epoch, server, secrets)
    }

    fn failed(&self, server: &str, e: &ClientError) -> bool {
        self.shared.secrets_failed(self.epoch, server, e)
    }
}

/// The decoded `data."tls.crt"` and `data."tls.key"` of a Secret (`None`: missing or not
/// base64; the pair then does not load and says so).
fn pem_pair(secret: &Value) -> Option<(Vec<u8>, Vec<u8>)> {
    let field = |name: &str| {
        let text = secret.get("data")?.get(name)?.as_str()?;
        crate::auth::base64::decode_std_padded(text.as_bytes()).ok()
    };
    Some((field("tls.crt")?, field("tls.key")?))
}

/// The same pair again (a [`CertPair`] is not `Clone`: its key is copied explicitly).
fn copy(p: &CertPair) -> CertPair {
    CertPair {
        name: p.name.clone(),
        names: p.names.clone(),
        not_after: p.not_after,
        chain: p.chain.clone(),
        key: p.key.clone_key(),
        certified: p.certified.clone(),
    }
}

/// `input` with the pairs of the `referenced` Secrets in place of those of the previous read.
pub fn with_secrets(
    input: &CertInput,
    secrets: &TlsSecrets,
    referenced: &BTreeSet<String>,
    now: i64,
) -> CertInput {
    let mut load = FolderLoad::default();
    load.pairs.extend(
        input
            .load
            .pairs
            .iter()
            .filter(|p| !p.name.starts_with(PAIR_PREFIX))
            .map(copy),
    );
    load.errors.extend(
        input
            .load
            .errors
            .iter()
            .filter(|e| !e.name.starts_with(PAIR_PREFIX))
            .cloned(),
    );
    for key in referenced {
        let name = format!("{PAIR_PREFIX}{key}");
        let parsed = match secrets.get(key) {
            Some((crt, pem_key)) => parse_pair(&name, crt, pem_key, now).map_err(|(_, why)| why),
            None => {
                Err("no such TLS Secret (type kubernetes.io/tls with tls.crt and tls.key)".into())
            }
        };
        match parsed {
            Ok(pair) => load.pairs.push(pair),
            Err(reason) => load.errors.push(PairError {
                name: name.clone(),
                file: PathBuf::from(format!("Secret {key}")),
                reason,
            }),
        }
    }
    load.pairs.sort_by(|a, b| a.name.cmp(&b.name));
    CertInput::new(input.dir.clone(), load)
}
