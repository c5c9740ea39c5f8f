//! The certificate folder: every `NAME.crt` (PEM chain, leaf first) with its `NAME.key` (PEM
//! private key: PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, ECDSA P-256/P-384 or Ed25519).
//!
//! Loading never panics and never gives up on the whole folder because of one file: each pair
//! either loads completely (parsed, key matches the leaf, not expired) or is reported as a
//! [`PairError`] naming the file at fault. The same code serves `aralez check --main` and the
//! running proxy, so both say the same thing about a folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest certificate or key file read (a chain of a few certificates is a few KiB).
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// One loaded, validated certificate pair.
#[derive(Debug)]
pub struct CertPair {
    /// The pair's name: the file name without `.crt`/`.key`.
    pub name: String,
    /// Host names it serves (DNS SANs, else the subject CN), lower-cased, `*.` wildcards kept.
    pub names: Vec<String>,
    /// Expiry of the leaf certificate (Unix seconds).
    pub not_after: i64,
    /// The chain as DER, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key as DER.
    pub key: PrivateKeyDer<'static>,
    /// The rustls signing form of chain + key (ring provider).
    pub certified: Arc<CertifiedKey>,
}

/// A pair (or a lone file) that did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    /// The pair's name (metric label).
    pub name: String,
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong, for people.
    pub reason: String,
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

/// Everything found in a folder.
#[derive(Debug, Default)]
pub struct FolderLoad {
    /// Pairs that loaded, sorted by name.
    pub pairs: Vec<CertPair>,
    /// Pairs and lone files that did not, sorted by file.
    pub errors: Vec<PairError>,
}

/// Loads every pair in `dir`. Only an unreadable folder is an `Err`; bad pairs are in `errors`.
/// `now` is the Unix time used for the expiry check.
pub fn load_folder(dir: &Path, now: i64) -> std::io::Result<FolderLoad> {
    let mut crts = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    let mut out = FolderLoad::default();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            if let Some(e) = non_utf8_pair_file(&path) {
                out.errors.push(e);
            }
            continue;
        };
        // editors' and tools' temporary files (`.NAME.crt.tmp`, `.swp`) are not pairs
        if file_name.starts_with('.') || !path.is_file() {
            continue;
        }
        if let Some(stem) = file_name.strip_suffix(".crt") {
            crts.insert(stem.to_string());
        } else if let Some(stem) = file_name.strip_suffix(".key") {
            keys.insert(stem.to_string());
        }
    }
    for name in &crts {
        let crt = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        if !keys.contains(name) {
            out.errors.push(PairError {
                name: name.clone(),
                file: crt,
                reason: format!("no matching `{name}.key` in the folder"),
            });
            continue;
        }
        match load_pair(name, &crt, &key, now) {
            Ok(pair) => out.pairs.push(pair),
            Err(e) => out.errors.push(e),
        }
    }
    for name in keys.difference(&crts) {
        out.errors.push(PairError {
            name: name.clone(),
            file: dir.join(format!("{name}.key")),
            reason: format!("no matching `{name}.crt` in the folder"),
        });
    }
    out.errors.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// A `.crt`/`.key` file whose name is not UTF-8 cannot name a pair (nor a metric label): it is
/// reported instead of skipped silently. Other non-UTF-8 names (and dotfiles) are ignored.
fn non_utf8_pair_file(path: &Path) -> Option<PairError> {
    use std::os::unix::ffi::OsStrExt;
    let raw = path.file_name()?.as_bytes();
    let is_pair_file = raw.ends_with(b".crt") || raw.ends_with(b".key");
    if !is_pair_file || raw.starts_with(b".") {
        return None;
    }
    let lossy = String::from_utf8_lossy(raw);
    let name = lossy
        .strip_suffix(".crt")
        .or_else(|| lossy.strip_suffix(".key"))
        .unwrap_or(&lossy)
        .to_string();
    Some(PairError {
        name,
        file: path.to_path_buf(),
        reason: "the file name is not valid UTF-8, so it cannot name a certificate pair; rename the file".into(),
    })
}

/// Loads and validates one pair (`name` labels it in errors and metrics).
pub fn load_pair(name: &str, crt: &Path, key: &Path, now: i64) -> Result<CertPair, PairError> {
    let err = |file: &Path, reason: String| PairError {
        name: name.to_string(),
        file: file.to_path_buf(),
        reason,
    };
    let crt_bytes = read_limited(crt).map_err(|e| err(crt, e))?;
    let key_bytes = read_limited(key).map_err(|e| err(key, e))?;
    parse_pair(name, &crt_bytes, &key_bytes, now).map_err(|(which, reason)| match which {
        PairFile::Crt => err(crt, reason),
        PairFile::Key => err(key, reason),
    })
}

/// Which file of a pair a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairFile {
    /// The `.crt`.
    Crt,
    /// The `.key`.
    Key,
}

/// Parses and validates a pair from the files' bytes (no I/O; what the fuzz-style tests drive).
pub fn parse_pair(
    name: &str,
    crt_bytes: &[u8],
    key_bytes: &[u8],
    now: i64,
) -> Result<CertPair, (PairFile, String)> {
    let crt = PairFile::Crt;
    let key = PairFile::Key;
    let err = |which: PairFile, reason: String| (which, reason);
    let chain = CertificateDer::pem_slice_iter(crt_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(crt, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(err(crt, "no `BEGIN CERTIFICATE` block (not PEM?)".into()));
    };
    let info = leaf_info(leaf).map_err(|e| err(crt, e))?;
    if info.not_after < now {
        return Err(err(
            crt,
            format!("expired (notAfter {} UTC)", utc_date(info.not_after)),
        ));
    }
    if info.names.is_empty() {
        return Err(err(
            crt,
            "the certificate names no DNS host (no DNS subjectAltName and no CN)".into(),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_bytes)
        .map_err(|e| err(key, format!("no PEM private key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|e| {
            err(
                key,
                format!(
                    "unsupported private key (RSA, ECDSA P-256/P-384 or Ed25519 expected): {e}"
                ),
            )
        })?;
    let certified = CertifiedKey::new(chain.clone(), signing);
    certified.keys_match().map_err(|e| {
        err(
            key,
            format!("the key does not belong to the certificate `{name}.crt` ({e})"),
        )
    })?;
    Ok(CertPair {
        name: name.to_string(),
        names: info.names,
        not_after: info.not_after,
        chain,
        key: key_der,
        certified: Arc::new(certified),
    })
}

fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(format!("larger than {MAX_PEM_BYTES} bytes"));
    }
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

struct LeafInfo {
    names: Vec<String>,
    not_after: i64,
}

fn leaf_info(leaf: &CertificateDer<'_>) -> Result<LeafInfo, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(dns) = n {
                push_name(&mut names, dns);
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                push_name(&mut names, s);
            }
        }
    }
    Ok(LeafInfo {
        names,
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn push_name(names: &mut Vec<String>, raw: &str) {
    let n = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'_'));
    if valid && !names.contains(&n) {
        names.push(n);
    }
}

/// `YYYY-MM-DD` of a Unix time (UTC), for messages.
pub fn utc_date(unix: i64) -> String {
    let (y, m, d) = crate::calendar::civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds since the Unix epoch, as the signed type X.509 times use.
pub fn now_unix() -> i64 {
    i64::try_from(crate::generation::unix_now()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31");
    }

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        (p.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn pairs_parse_and_mismatches_are_named() {
        let (crt, key) = pair(&["A.Example.com", "*.wild.test"]);
        let p = parse_pair("a", crt.as_bytes(), key.as_bytes(), 0).unwrap();
        assert_eq!(p.names, vec!["a.example.com", "*.wild.test"]);
        let (_, other_key) = pair(&["b.test"]);
        let e = parse_pair("a", crt.as_bytes(), other_key.as_bytes(), 0).unwrap_err();
        assert_eq!(e.0, PairFile::Key);
        assert!(e.1.contains("does not belong"), "{}", e.1);
        let e = parse_pair("a", crt.as_bytes(), key.as_bytes(), i64::MAX).unwrap_err();
        assert_eq!(e.0, PairFile::Crt);
        assert!(e.1.contains("expired"), "{}", e.1);
        let e = parse_pair("a", b"", key.as_bytes(), 0).unwrap_err();
        assert_eq!(e.0, PairFile::Crt);
    }

    /// Truncated and corrupted files never panic: they load or are refused.
    #[test]
    fn garbage_never_panics() {
        let (crt, key) = pair(&["a.test"]);
        let (crt, key) = (crt.into_bytes(), key.into_bytes());
        for i in (0..crt.len()).step_by(7) {
            let _ = parse_pair("a", crt.get(..i).unwrap_or_default(), &key, 0);
            let mut c = crt.clone();
            if let Some(b) = c.get_mut(i) {
                *b ^= 0x5a;
            }
            let _ = parse_pair("a", &c, &key, 0);
        }
        for i in (0..key.len()).step_by(5) {
            let _ = parse_pair("a", &crt, key.get(..i).unwrap_or_default(), 0);
            let mut k = key.clone();
            if let Some(b) = k.get_mut(i) {
                *b ^= 0xa5;
            }
            let _ = parse_pair("a", &crt, &k, 0);
        }
    }

    #[test]
    fn names_are_normalised_and_filtered() {
        let mut v = Vec::new();
        push_name(&mut v, "WWW.Example.COM.");
        push_name(&mut v, "www.example.com");
        push_name(&mut v, "bad name");
        push_name(&mut v, "*.example.com");
        assert_eq!(v, vec!["www.example.com", "*.example.com"]);
    }
}
