//! What ACME keeps on disk: the account key (one per CA directory, mode 0600), the lock files
//! that let several Aralez processes share one storage folder without ordering the same
//! certificate twice, and the atomic write of an issued pair into the certificate folder.
//!
//! A lock file (`acme_NAME.lock`) holds its owner and the Unix time its lease ends. It is created
//! with `O_EXCL`; a lock whose lease ended (its owner died mid-order) is taken over. The lease is
//! longer than the longest issuance, so a live owner never loses it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::jws::AccountKey;

/// How long a lock holds without its owner (longer than [`super::order::ISSUE_DEADLINE`]).
pub const LEASE_SECS: i64 = 600;

/// Why a storage operation failed.
#[derive(Debug)]
pub enum StorageError {
    /// A file could not be read or written.
    Io(PathBuf, std::io::Error),
    /// The stored account key is unusable.
    BadAccount(PathBuf),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::BadAccount(p) => write!(
                f,
                "{}: not an ACME account key written by aralez; move it away to register a new account",
                p.display()
            ),
        }
    }
}

impl std::error::Error for StorageError {}

/// The storage folder.
#[derive(Debug, Clone)]
pub struct Storage {
    dir: PathBuf,
    owner: String,
}

impl Storage {
    /// The storage in `dir`; `owner` names this process in lock files.
    pub fn new(dir: PathBuf) -> Self {
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let mut nonce = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
        let owner = format!(
            "{}:{}:{}",
            host.trim(),
            std::process::id(),
            crate::tls::certset::hex(&nonce)
        );
        Self { dir, owner }
    }

    /// The account key for the CA at `directory`: the stored one, or a new one written with
    /// mode 0600.
    pub fn account_key(&self, directory: &str) -> Result<AccountKey, StorageError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, directory.as_bytes());
        let tag = crate::tls::certset::hex(digest.as_ref().get(..8).unwrap_or(&[]));
        let path = self.dir.join(format!("acme_account_{tag}.pk8"));
        match fs::read(&path) {
            Ok(der) => AccountKey::from_pkcs8(&der).map_err(|_| StorageError::BadAccount(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key =
                    AccountKey::generate().map_err(|_| StorageError::BadAccount(path.clone()))?;
                write_atomic(&path, key.pkcs8(), 0o600)?;
                log::info!("ACME: new account key {}", path.display());
                Ok(key)
            }
            Err(e) => Err(StorageError::Io(path, e)),
        }
    }

    /// Takes the lock of `name` (`Ok(None)`: another live process holds it, named in the
    /// result's place by the log).
    pub fn lock(&self, name: &str, now: i64) -> Result<Option<Lock>, StorageError> {
        let path = self.dir.join(format!("acme_{name}.lock"));
        for _ in 0..2 {
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match created {
                Ok(mut f) => {
                    let text = format!("owner={}\nexpires={}\n", self.owner, now + LEASE_SECS);
                    f.write_all(text.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| StorageError::Io(path.clone(), e))?;
                    return Ok(Some(Lock {
                        path,
                        owner: self.owner.clone(),
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(&path).unwrap_or_default();
                    // a lock without a readable lease is judged by its age: a process that died
                    // between creating and writing it must not block the name forever
                    let expires = field(&text, "expires")
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or_else(|| modified(&path).unwrap_or(now) + LEASE_SECS);
                    if expires > now {
                        log::info!(
                            "ACME: {name} is being ordered by {} (lock {}); waiting for its result",
                            field(&text, "owner").unwrap_or("another process"),
                            path.display()
                        );
                        return Ok(None);
                    }
                    log::warn!("ACME: the lock {} expired; taking it over", path.display());
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(StorageError::Io(path, e)),
            }
        }
        Ok(None)
    }
}

/// A held lock, released (if still ours) when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    owner: String,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let text = fs::read_to_string(&self.path).unwrap_or_default();
        if field(&text, "owner") == Some(self.owner.as_str()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Unix time of the last change of `path`.
fn modified(path: &Path) -> Option<i64> {
    let t = fs::metadata(path).ok()?.modified().ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

fn field<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .map(str::trim)
}

/// Writes `NAME.key` then `NAME.crt` into `folder`, each through a hidden temporary file and a
/// rename (the folder watch never sees half a file; hidden files are not pairs).
pub fn write_pair(
    folder: &Path,
    name: &str,
    chain_pem: &str,
    key_pem: &str,
) -> Result<(), StorageError> {
    write_atomic(
        &folder.join(format!("{name}.key")),
        key_pem.as_bytes(),
        0o600,
    )?;
    write_atomic(
        &folder.join(format!("{name}.crt")),
        chain_pem.as_bytes(),
        0o644,
    )
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StorageError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("acme");
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let io = |e| StorageError::Io(path.to_path_buf(), e);
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_a_second_owner_until_released_or_expired() {
        let dir = std::env::temp_dir().join(format!("aralez-acme-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let a = Storage::new(dir.clone());
        let b = Storage::new(dir.clone());
        let held = a.lock("x.example.com", 1000).unwrap().unwrap();
        assert!(b.lock("x.example.com", 1000).unwrap().is_none());
        // past the lease, the lock is taken over
        let taken = b.lock("x.example.com", 1000 + LEASE_SECS + 1).unwrap();
        assert!(taken.is_some());
        // the first owner's drop leaves the new owner's lock alone
        drop(held);
        assert!(a.lock("x.example.com", 1000).unwrap().is_none());
        drop(taken);
        let again = a.lock("x.example.com", 1000).unwrap();
        assert!(again.is_some());
        drop(again);
        // an empty lock (its owner died before writing it) expires with its file's age
        let now = modified(&dir).unwrap();
        fs::write(dir.join("acme_y.example.com.lock"), "").unwrap();
        assert!(a.lock("y.example.com", now).unwrap().is_none());
        assert!(a
            .lock("y.example.com", now + LEASE_SECS + 5)
            .unwrap()
            .is_some());
        let key = a.account_key("https://ca/dir").unwrap();
        let again = b.account_key("https://ca/dir").unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint());
        let _ = fs::remove_dir_all(&dir);
    }
}
