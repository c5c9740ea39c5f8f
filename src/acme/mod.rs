//! Automatic HTTPS: certificates obtained and renewed over ACME (RFC 8555) with the HTTP-01
//! challenge, by a small client of our own on ring (ES256 JWS), ureq (rustls) and rcgen (CSR,
//! placeholder certificates).
//!
//! The ACME thread ([`manager`]) is a producer of the certificate folder: an issued pair is
//! written there atomically and the folder source builds the generation that serves it, like any
//! other certificate change. The only other state is [`state`]: the HTTP-01 answers the plain
//! listener publishes and the placeholders the TLS resolver serves until a name's first
//! certificate exists; neither is part of a generation.
//!
//! - [`jws`]: the account key, JWS signing, the JWK thumbprint.
//! - [`client`]: directory, nonces, signed requests, problem documents.
//! - [`order`]: account, order, authorization, finalize, download.
//! - [`storage`]: the account key file, lock files with a lease, atomic writes.

pub mod client;
pub mod jws;
mod manager;
pub mod order;
pub mod state;
pub mod storage;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::generation::GenerationStore;
use crate::metrics::Metrics;
pub use state::{Challenges, Placeholders, CHALLENGE_PREFIX};

/// The `acme:` settings with paths resolved.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory: String,
    /// Contact address.
    pub email: Option<String>,
    /// CA certificates trusted for the directory's HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Renewal window in days.
    pub renew_before_days: u32,
    /// Folder of the account key and lock files.
    pub storage: PathBuf,
    /// The certificate folder (`proxy_certificates`) where issued pairs are written.
    pub cert_folder: PathBuf,
}

/// Why ACME cannot start (the process does not start).
#[derive(Debug)]
pub enum AcmeStartError {
    /// The storage folder cannot be created.
    Storage(PathBuf, std::io::Error),
    /// The thread cannot be spawned.
    Thread(std::io::Error),
}

impl std::fmt::Display for AcmeStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(p, e) => write!(f, "acme.storage {}: {e}", p.display()),
            Self::Thread(e) => write!(f, "cannot start the ACME thread: {e}"),
        }
    }
}

impl std::error::Error for AcmeStartError {}

/// What request handling shares with the ACME thread.
#[derive(Debug, Default)]
struct AcmeShared {
    /// HTTP-01 answers, read by the plain listener.
    challenges: Arc<Challenges>,
    /// Placeholder certificates, read by the TLS resolver.
    placeholders: Arc<Placeholders>,
}

/// ACME as configured, before its thread starts: the settings and the state that request
/// handling shares with the thread.
#[derive(Debug)]
pub struct Acme {
    settings: AcmeSettings,
    shared: AcmeShared,
}

impl Acme {
    /// ACME for `main` (`None` without an `acme:` section); see [`settings`].
    pub fn from_main(
        main: &crate::config::LoadedMain,
        cert_dir: Option<&std::path::Path>,
    ) -> Result<Option<Self>, String> {
        Ok(settings(main, cert_dir)?.map(|settings| {
            let shared = AcmeShared {
                // answers are also shared through the storage folder (fleets)
                challenges: Arc::new(Challenges::shared(settings.storage.clone())),
                placeholders: Arc::default(),
            };
            Self { settings, shared }
        }))
    }

    /// The HTTP-01 answers, for the plain listener.
    pub fn challenges(&self) -> Arc<Challenges> {
        self.shared.challenges.clone()
    }

    /// The placeholder certificates, for the TLS resolver.
    pub fn placeholders(&self) -> Arc<Placeholders> {
        self.shared.placeholders.clone()
    }

    /// Starts the ACME thread for what `store` serves, once `listening` is set (the CA validates
    /// through our listeners). Every generation swap wakes it (the plan's names may have
    /// changed, a certificate may have arrived) and withdraws the placeholders of names the new
    /// generation has a certificate for.
    pub fn spawn(
        self,
        store: Arc<GenerationStore>,
        metrics: Arc<Metrics>,
        listening: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<(), AcmeStartError> {
        let Self { settings, shared } = self;
        create_private_dir(&settings.storage)
            .map_err(|e| AcmeStartError::Storage(settings.storage.clone(), e))?;
        let (tx, rx) = manager::wake_channel();
        let tx = Mutex::new(tx);
        let placeholders = shared.placeholders.clone();
        store.on_swap(Box::new(move |generation| {
            placeholders.retain(|name| !manager::covered(generation, name));
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(());
            }
        }));
        let m = manager::Manager::new(
            settings,
            store,
            metrics,
            shared.challenges,
            shared.placeholders,
        );
        std::thread::Builder::new()
            .name("aralez-acme".into())
            .spawn(move || {
                // order nothing before the listeners serve (bounded: ACME starts anyway after a
                // minute, and fails and retries if they still do not)
                for _ in 0..600 {
                    if listening.load(std::sync::atomic::Ordering::Acquire) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                m.run(rx)
            })
            .map_err(AcmeStartError::Thread)?;
        Ok(())
    }
}

/// Creates `dir` (mode 0700) when it does not exist.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The `acme:` settings of `main` with paths resolved (`None`: no `acme:` section). `cert_dir`
/// is the certificate folder of the TLS listener (the compiler makes `acme` require it).
pub fn settings(
    main: &crate::config::LoadedMain,
    cert_dir: Option<&std::path::Path>,
) -> Result<Option<AcmeSettings>, String> {
    let Some(acme) = &main.config.acme else {
        return Ok(None);
    };
    if cfg!(not(feature = "rustls")) {
        return Err("acme: needs the rustls build of aralez (the OpenSSL build has no placeholder certificates)".into());
    }
    let Some(cert_dir) = cert_dir else {
        return Err("acme: needs proxy_address_tls and proxy_certificates".into());
    };
    Ok(Some(AcmeSettings {
        directory: acme.directory.clone(),
        email: acme.email.clone(),
        ca_file: acme.ca_file.as_ref().map(|f| main.resolve(&f.value)),
        renew_before_days: acme.renew_before_days,
        storage: acme
            .storage
            .as_ref()
            .map_or_else(|| cert_dir.to_path_buf(), |s| main.resolve(&s.value)),
        cert_folder: cert_dir.to_path_buf(),
    }))
}

/// Logs a warning when the plan marks ACME names but main.yaml has no `acme:` section (nothing
/// would order their certificates).
pub fn warn_if_unmanaged(acme_configured: bool, generation: &crate::generation::Generation) {
    let names = generation.plan().acme_hosts();
    if !acme_configured && !names.is_empty() {
        log::warn!(
            "upstreams mark {} for ACME, but main.yaml has no `acme:` section: no certificate is ordered",
            names.join(", ")
        );
    }
}
