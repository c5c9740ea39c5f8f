//! The ACME thread: for every name the serving plan marks, checks the certificate in the
//! certificate folder at start and every 12 hours (with jitter), and orders a new one when there
//! is none or it expires within `renew_before_days`. An issued pair is written into the folder,
//! and the folder watch builds the generation that serves it (one way in). A failure keeps the
//! current certificate serving and is retried with exponential backoff (at least the CA's
//! `Retry-After` when it is rate limiting).

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::client::{AcmeError, Client};
use super::order;
use super::state::{Challenges, Placeholders};
use super::storage::{write_pair, Storage};
use super::AcmeSettings;
use crate::generation::{Generation, GenerationStore};
use crate::metrics::Metrics;
use crate::tls::certs::{load_pair, now_unix};

/// Interval of the routine check of every certificate.
const CHECK_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// Jitter added to the routine check (up to one hour), so a fleet does not check in step.
const CHECK_JITTER_SECS: u64 = 3600;
/// First retry after a failure; doubles per failure up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);
/// Re-check of a name whose lock another process holds (its result arrives through the folder).
const LOCKED_RECHECK: Duration = Duration::from_secs(3);
/// Least time between two certificates of one name, whatever `renew_before_days` says (a
/// certificate shorter-lived than the renewal window would otherwise be renewed in a loop).
const MIN_RENEW_GAP: Duration = Duration::from_secs(3600);

/// Where one name stands.
#[derive(Debug)]
struct NameState {
    next: Instant,
    next_unix: i64,
    failures: u32,
    last_result: Option<&'static str>,
    last_error: Option<String>,
    not_after: Option<i64>,
}

/// The ACME thread's state.
pub(super) struct Manager {
    pub(super) settings: AcmeSettings,
    pub(super) store: Arc<GenerationStore>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) challenges: Arc<Challenges>,
    pub(super) placeholders: Arc<Placeholders>,
    pub(super) storage: Storage,
    client: Option<Client>,
    names: HashMap<String, NameState>,
}

impl Manager {
    pub(super) fn new(
        settings: AcmeSettings,
        store: Arc<GenerationStore>,
        metrics: Arc<Metrics>,
        challenges: Arc<Challenges>,
        placeholders: Arc<Placeholders>,
    ) -> Self {
        let storage = Storage::new(settings.storage.clone());
        Self {
            settings,
            store,
            metrics,
            challenges,
            placeholders,
            storage,
            client: None,
            names: HashMap::new(),
        }
    }

    /// Runs until `wake` disconnects (the process ends).
    pub(super) fn run(mut self, wake: Receiver<()>) {
        loop {
            let generation = self.store.load();
            let wanted: Vec<String> = generation.plan().acme_hosts().to_vec();
            self.names.retain(|n, _| wanted.contains(n));
            for name in &wanted {
                let due = self
                    .names
                    .get(name)
                    .is_none_or(|s| Instant::now() >= s.next);
                if due {
                    self.check(name);
                }
            }
            let generation = self.store.load();
            self.placeholders
                .retain(|n| wanted.iter().any(|w| w == n) && !covered(&generation, n));
            self.publish();
            let pause = self
                .names
                .values()
                .map(|s| s.next.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(CHECK_INTERVAL)
                .max(Duration::from_millis(200));
            match wake.recv_timeout(pause) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Checks one name and orders its certificate when it needs one.
    fn check(&mut self, name: &str) {
        let now = now_unix();
        let renew_before = i64::from(self.settings.renew_before_days) * 86_400;
        let current = self.not_after(name, now);
        if let Some(na) = current {
            if na - now > renew_before {
                let until_due = u64::try_from(na - renew_before - now).unwrap_or(0);
                self.schedule(name, routine().min(Duration::from_secs(until_due)), current);
                self.good(name, None);
                return;
            }
        } else {
            // no certificate yet: handshakes for the name get a placeholder meanwhile
            self.placeholders.ensure(name);
        }
        let lock = match self.storage.lock(name, now) {
            Ok(Some(l)) => l,
            Ok(None) => {
                self.schedule(name, LOCKED_RECHECK, current);
                return;
            }
            Err(e) => {
                self.failed(name, &AcmeError::Local(e.to_string()), current);
                return;
            }
        };
        // another process may have finished this name while we waited for the lock
        let current = self.not_after(name, now);
        if current.is_some_and(|na| na - now > renew_before) {
            // checked again at once, which schedules the routine check
            self.schedule(name, Duration::ZERO, current);
            self.good(name, None);
            return;
        }
        let result = self.order(name);
        drop(lock);
        match result {
            Ok(not_after) => {
                let label = if current.is_some() {
                    "renewed"
                } else {
                    "issued"
                };
                self.metrics
                    .acme_renewals
                    .with_label_values(&[name, label])
                    .inc();
                log::info!(
                    "ACME: certificate for {name} {label}, valid until {}",
                    crate::tls::certs::utc_date(not_after)
                );
                let until_due = u64::try_from(not_after - renew_before - now_unix()).unwrap_or(0);
                let next = routine()
                    .min(Duration::from_secs(until_due))
                    .max(MIN_RENEW_GAP);
                self.schedule(name, next, Some(not_after));
                self.good(name, Some(label));
            }
            Err(e) => self.failed(name, &e, current),
        }
    }

    /// Orders the certificate of `name` and writes it into the certificate folder; returns its
    /// expiry.
    fn order(&mut self, name: &str) -> Result<i64, AcmeError> {
        if self.client.is_none() {
            let key = self
                .storage
                .account_key(&self.settings.directory)
                .map_err(|e| AcmeError::Local(e.to_string()))?;
            let mut client = Client::connect(
                &self.settings.directory,
                self.settings.ca_file.as_deref(),
                key,
            )?;
            let kid = order::account(&mut client, self.settings.email.as_deref())?;
            log::info!("ACME: account {kid} at {}", self.settings.directory);
            self.client = Some(client);
        }
        let Some(client) = self.client.as_mut() else {
            return Err(AcmeError::Local("no ACME client".into()));
        };
        let issued = match order::issue(client, name, &self.challenges) {
            Ok(i) => i,
            Err(e) => {
                // the CA may have restarted, forgotten the account or moved its directory: the
                // retry (after the backoff) starts from the directory and the account again
                self.client = None;
                return Err(e);
            }
        };
        let parsed = crate::tls::certs::parse_pair(
            name,
            issued.chain_pem.as_bytes(),
            issued.key_pem.as_bytes(),
            now_unix(),
        )
        .map_err(|(_, why)| {
            AcmeError::Protocol(format!("the issued certificate does not load: {why}"))
        })?;
        write_pair(
            &self.settings.cert_folder,
            name,
            &issued.chain_pem,
            &issued.key_pem,
        )
        .map_err(|e| AcmeError::Local(format!("cannot store the certificate: {e}")))?;
        Ok(parsed.not_after)
    }

    /// Expiry of the certificate of `name` in the folder, when it loads and is not expired.
    fn not_after(&self, name: &str, now: i64) -> Option<i64> {
        let dir = &self.settings.cert_folder;
        let crt = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let pair = load_pair(name, &crt, &key, now).ok()?;
        pair.names
            .iter()
            .any(|n| n == name)
            .then_some(pair.not_after)
    }

    /// Sets when `name` is checked next and what the folder holds for it.
    fn schedule(&mut self, name: &str, after: Duration, not_after: Option<i64>) {
        let state = self.names.entry(name.to_string()).or_insert(NameState {
            next: Instant::now(),
            next_unix: 0,
            failures: 0,
            last_result: None,
            last_error: None,
            not_after: None,
        });
        state.next = Instant::now() + after;
        state.next_unix = now_unix().saturating_add(i64::try_from(after.as_secs()).unwrap_or(0));
        state.not_after = not_after;
    }

    /// `name` has a good certificate: its failures are over.
    fn good(&mut self, name: &str, result: Option<&'static str>) {
        if let Some(s) = self.names.get_mut(name) {
            s.failures = 0;
            s.last_error = None;
            if result.is_some() {
                s.last_result = result;
            }
        }
    }

    fn failed(&mut self, name: &str, e: &AcmeError, current: Option<i64>) {
        let failures = self.names.get(name).map_or(0, |s| s.failures) + 1;
        let pause = retry_pause(failures, e);
        let keeps = match current {
            Some(na) => format!(
                "the current certificate (valid until {}) keeps serving",
                crate::tls::certs::utc_date(na)
            ),
            None => "handshakes get the self-signed placeholder".to_string(),
        };
        log::error!(
            "ACME: certificate for {name} failed: {e}; {keeps}; retry in {} s",
            pause.as_secs()
        );
        self.metrics
            .acme_renewals
            .with_label_values(&[name, "failed"])
            .inc();
        self.schedule(name, pause, current);
        if let Some(s) = self.names.get_mut(name) {
            s.failures = failures;
            s.last_result = Some("failed");
            s.last_error = Some(e.to_string());
        }
    }

    /// Shows every name's state on `/config/status` (under `providers.acme`).
    fn publish(&self) {
        let mut names: Vec<(&String, &NameState)> = self.names.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        let names: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .map(|(n, s)| {
                let v = json!({
                    "not_after": s.not_after,
                    "next_check_at": s.next_unix,
                    "failures": s.failures,
                    "last_result": s.last_result,
                    "last_error": s.last_error,
                    "placeholder": self.placeholders.has(n),
                });
                (n.clone(), v)
            })
            .collect();
        self.metrics.set_provider_state(
            "acme",
            Some(json!({
                "directory": self.settings.directory,
                "challenge": "http-01",
                "renew_before_days": self.settings.renew_before_days,
                "names": names,
            })),
        );
    }
}

/// The wait before retrying after the `failures`-th failure in a row: 10 s doubling up to 6 h,
/// and at least the CA's `Retry-After` when it is rate limiting.
fn retry_pause(failures: u32, e: &AcmeError) -> Duration {
    let pause = BACKOFF_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    match e {
        AcmeError::RateLimited(secs) => pause.max(Duration::from_secs(*secs)),
        _ => pause,
    }
}

/// The routine check interval with its jitter.
fn routine() -> Duration {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    CHECK_INTERVAL + Duration::from_secs(u64::from_le_bytes(b) % CHECK_JITTER_SECS)
}

/// Whether the certificates `generation` serves include one for `name`.
pub(super) fn covered(generation: &Generation, name: &str) -> bool {
    generation
        .certs()
        .is_some_and(|c| c.infos().iter().any(|i| i.hosts.iter().any(|h| h == name)))
}

/// A channel whose sender wakes the thread.
pub(super) fn wake_channel() -> (std::sync::mpsc::Sender<()>, Receiver<()>) {
    channel()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_respect_rate_limits() {
        let down = AcmeError::Transport("refused".into());
        assert_eq!(retry_pause(1, &down), Duration::from_secs(10));
        assert_eq!(retry_pause(2, &down), Duration::from_secs(20));
        assert_eq!(retry_pause(5, &down), Duration::from_secs(160));
        assert_eq!(retry_pause(40, &down), BACKOFF_MAX);
        assert_eq!(
            retry_pause(1, &AcmeError::RateLimited(3600)),
            Duration::from_secs(3600)
        );
        assert_eq!(retry_pause(40, &AcmeError::RateLimited(60)), BACKOFF_MAX);
        let r = routine();
        assert!(r >= CHECK_INTERVAL && r < CHECK_INTERVAL + Duration::from_secs(CHECK_JITTER_SECS));
    }
}
