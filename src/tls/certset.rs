//! The certificate part of a generation: what the certificate folder held when it was read
//! ([`CertInput`]), and the set the TLS listener serves from it ([`CertSet`]).
//!
//! Both are immutable. A [`CertSet`] lives inside a generation and is swapped with it; the
//! listener's resolver reads the serving generation's set on every handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::certs::{load_folder, FolderLoad, PairError};
use super::listener::{served, Served};
use super::sni::SniIndex;

/// The certificate folder as read: its loaded pairs and the files that did not load, with a
/// digest of both (two reads of an unchanged folder compare equal).
#[derive(Debug, Clone)]
pub struct CertInput {
    /// The folder.
    pub dir: PathBuf,
    /// What loaded and what did not.
    pub load: Arc<FolderLoad>,
    digest: [u8; 32],
}

impl PartialEq for CertInput {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir && self.digest == other.digest
    }
}

impl CertInput {
    /// Reads the folder (`now`: Unix time of the expiry check). `Err` only when the folder
    /// itself cannot be read.
    pub fn read(dir: &Path, now: i64) -> std::io::Result<Self> {
        Ok(Self::new(dir.to_path_buf(), load_folder(dir, now)?))
    }

    /// Wraps a folder load, computing its digest.
    pub fn new(dir: PathBuf, load: FolderLoad) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut field = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_le_bytes());
            ctx.update(bytes);
        };
        for p in &load.pairs {
            field(p.name.as_bytes());
            for c in &p.chain {
                field(c.as_ref());
            }
            field(p.key.secret_der());
        }
        for e in &load.errors {
            field(e.to_string().as_bytes());
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        Self {
            dir,
            load: Arc::new(load),
            digest,
        }
    }
}

/// One served certificate, as `/config/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// The pair's name (`NAME.crt` + `NAME.key`).
    pub name: String,
    /// Host names it serves.
    pub hosts: Vec<String>,
    /// Expiry of the leaf (Unix seconds).
    pub not_after: i64,
    /// It answers handshakes without SNI or with an unknown name.
    pub default: bool,
}

/// The certificates a TLS listener serves, selected by SNI. Built whole, never changed.
#[derive(Debug)]
pub struct CertSet {
    index: SniIndex<Served>,
    infos: Vec<CertInfo>,
    fingerprint: String,
}

impl CertSet {
    /// Builds the set from the pairs of `input`. Pairs the TLS library refuses are left out and
    /// returned; with no usable pair there is no set (`None`).
    pub fn build(input: &CertInput) -> (Option<Self>, Vec<PairError>) {
        let mut refused = Vec::new();
        let mut entries = Vec::with_capacity(input.load.pairs.len());
        let mut infos = Vec::with_capacity(input.load.pairs.len());
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for p in &input.load.pairs {
            match served(p) {
                Ok(s) => {
                    entries.push((p.name.clone(), p.names.clone(), s));
                    infos.push(CertInfo {
                        name: p.name.clone(),
                        hosts: p.names.clone(),
                        not_after: p.not_after,
                        default: false,
                    });
                    ctx.update(&(p.name.len() as u64).to_le_bytes());
                    ctx.update(p.name.as_bytes());
                    for c in &p.chain {
                        ctx.update(&(c.len() as u64).to_le_bytes());
                        ctx.update(c.as_ref());
                    }
                }
                Err(reason) => refused.push(PairError {
                    name: p.name.clone(),
                    file: input.dir.join(format!("{}.crt", p.name)),
                    reason,
                }),
            }
        }
        let Some(index) = SniIndex::build(entries) else {
            return (None, refused);
        };
        let default = index.default_name().to_string();
        for info in &mut infos {
            info.default = info.name == default;
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        let fingerprint = hex(ctx.finish().as_ref());
        let set = Self {
            index,
            infos,
            fingerprint,
        };
        (Some(set), refused)
    }

    /// The pair serving `sni` (`None`: no SNI sent): its name and TLS-library form.
    pub(super) fn pick(&self, sni: Option<&str>) -> Option<(&str, &Served)> {
        self.index.pick(sni)
    }

    /// The pair name that would serve `sni` (for logs and tests).
    pub fn pick_name(&self, sni: Option<&str>) -> Option<&str> {
        self.index.pick(sni).map(|(n, _)| n)
    }

    /// The served certificates, by name.
    pub fn infos(&self) -> &[CertInfo] {
        &self.infos
    }

    /// Hex SHA-256 over the served chains (names and DER), in name order.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
