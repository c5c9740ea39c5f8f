//! `limits_store`: `rate_limit` and `x4xx_limit` counted fleet-wide on Redis.
//!
//! The request path never talks to Redis. Each process counts locally, per key (limit kind,
//! virtual host, client block), the events it admitted since the last synchronisation; every
//! [`SYNC_INTERVAL`] one task pushes those counts to Redis and reads back the fleet's counts, in
//! one pipelined round trip bounded by `timeout_ms`:
//!
//! - Redis holds one counter per key and quarter-second slice (`INCRBY`, expiring after two
//!   seconds); the fleet estimate over the last second is the four newest slices plus the
//!   overlapping part of the fifth (the same sliding window as the local limiter).
//! - A request is admitted when `fleet estimate at the last sync + this process's events since`
//!   is below the limit.
//!
//! Accuracy: a process sees the other processes' events at most one sync interval plus one round
//! trip late, so over one second the fleet admits at most `limit + (processes - 1) x (requests a
//! process admits in one sync interval)`; never fewer than `limit` (a refused request is not
//! counted). Slices are cut on the Unix clock: the hosts' clocks must agree (NTP) to well under a
//! slice (250 ms).
//!
//! While the store cannot be reached (a failed round trip, or one without an answer within
//! `timeout_ms`; or no successful one for `timeout_ms` plus one second, should the task stall), `on_error: open` lets each process enforce the limits
//! alone (the local limiter), `on_error: closed` answers 429 on every limited route. Recovery is
//! automatic: the next successful round trip.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::limits::LimitKind;

/// Time between two synchronisations.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(20);
/// With no successful round trip for `timeout_ms` plus this long (a stalled task), the store
/// counts as down too.
const STUCK_AFTER: Duration = Duration::from_millis(1000);
/// Length of one Redis slice, in milliseconds (the local limiter's too).
const SLICE_MS: u64 = 250;
/// Slices read per key: four for the window, one for the part that is leaving.
const KEPT: u64 = 5;
/// Lifetime of a slice counter in Redis, in milliseconds.
const SLICE_TTL_MS: u64 = 2000;
/// Shards of the key table (a power of two).
const SHARDS: usize = 64;
/// Keys per shard; further keys are limited locally only until older ones expire.
const MAX_KEYS_PER_SHARD: usize = 1024;
/// Keys synchronised per round trip (the most recently used first are not preferred: a key not
/// synchronised this round is next round).
const MAX_KEYS_PER_ROUND: usize = 4096;
/// A key unused this long is forgotten, in milliseconds.
const FORGET_AFTER_MS: u64 = 2000;

/// What the shared counts say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// Admitted (and counted).
    Admit,
    /// Over the fleet's limit.
    Refuse,
    /// The store is down with `on_error: open`, or the table is full: the local limiter decides.
    Local,
    /// The store is down with `on_error: closed`: 429.
    Closed,
}

/// One key's synchronisation state.
#[derive(Debug)]
struct KeyState {
    /// The Redis key without its slice suffix.
    name: Arc<str>,
    /// Events admitted here since the last push.
    unsynced: u32,
    /// Events taken by the round trip in flight (counted until it answers).
    pushing: u32,
    /// The fleet's estimate over the last second at the last sync.
    fleet: f64,
    last_used_ms: u64,
}

/// One key of a round trip: where it lives, its name and the events pushed.
struct Batched {
    shard: usize,
    hash: u64,
    name: Arc<str>,
    delta: u32,
}

/// The shared counters of this process, read and written by the request path (one short lock of
/// one shard per limited request) and by the synchronisation task.
pub struct SharedCounts {
    shards: Box<[Mutex<HashMap<u64, KeyState>>]>,
    /// Unix milliseconds of the last successful round trip (0: none yet).
    last_ok_ms: AtomicU64,
    /// The last round trip failed (set by the task at once: within `timeout_ms`).
    failing: AtomicBool,
    /// The store counts as down when the last success is older than this, in milliseconds.
    stale_ms: u64,
    closed: bool,
    prefix: String,
    hasher: std::collections::hash_map::RandomState,
}

impl SharedCounts {
    /// Empty counts; `timeout` bounds a round trip, `closed` is `on_error: closed`, `prefix` is
    /// `key_prefix`.
    pub fn new(timeout: Duration, closed: bool, prefix: &str) -> Self {
        // a guard against a task that stopped running; failures are flagged by the task itself
        let stale = timeout + STUCK_AFTER;
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            last_ok_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            stale_ms: u64::try_from(stale.as_millis()).unwrap_or(u64::MAX),
            closed,
            prefix: prefix.to_string(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// True when the last round trip succeeded, recently enough.
    pub fn is_up(&self, now_ms: u64) -> bool {
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        !self.failing.load(Ordering::Relaxed)
            && last != 0
            && now_ms.saturating_sub(last) <= self.stale_ms
    }

    fn hash(&self, kind: LimitKind, client: IpAddr, host: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        kind.as_str().hash(&mut h);
        client.hash(&mut h);
        host.hash(&mut h);
        h.finish()
    }

    /// The state of a key, created if there is room.
    fn with_key<T>(
        &self,
        kind: LimitKind,
        client: IpAddr,
        host: &str,
        now_ms: u64,
        f: impl FnOnce(&mut KeyState) -> T,
    ) -> Option<T> {
        let hash = self.hash(kind, client, host);
        let shard = self.shards.get(hash as usize & (SHARDS - 1))?;
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&hash) && map.len() >= MAX_KEYS_PER_SHARD {
            return None;
        }
        let state = map.entry(hash).or_insert_with(|| KeyState {
            name: format!("{}{}:{}:{}", self.prefix, kind.as_str(), host, client).into(),
            unsynced: 0,
            pushing: 0,
            fleet: 0.0,
            last_used_ms: now_ms,
        });
        state.last_used_ms = now_ms;
        Some(f(state))
    }

    /// Admits one event of `kind` for `client` (its block) on `host` under `limit`, counting it.
    pub fn admit(&self, kind: LimitKind, client: IpAddr, host: &str, limit: u32) -> Shared {
        let now = unix_ms();
        if !self.is_up(now) {
            return if self.closed {
                Shared::Closed
            } else {
                Shared::Local
            };
        }
        self.with_key(kind, client, host, now, |k| {
            let estimate = k.fleet + f64::from(k.unsynced) + f64::from(k.pushing);
            if estimate >= f64::from(limit) {
                return Shared::Refuse;
            }
            k.unsynced = k.unsynced.saturating_add(1);
            Shared::Admit
        })
        .unwrap_or(Shared::Local)
    }

    /// The fleet's events of `kind` for `client` on `host` over the last second (`None`: the
    /// store is down or the table full; the local limiter decides).
    pub fn estimate(&self, kind: LimitKind, client: IpAddr, host: &str) -> Option<f64> {
        let now = unix_ms();
        if !self.is_up(now) {
            return None;
        }
        self.with_key(kind, client, host, now, |k| {
            k.fleet + f64::from(k.unsynced) + f64::from(k.pushing)
        })
    }

    /// Counts one event (a 4xx answer) without a limit check.
    pub fn add(&self, kind: LimitKind, client: IpAddr, host: &str) {
        let now = unix_ms();
        if self.is_up(now) {
            self.with_key(kind, client, host, now, |k| {
                k.unsynced = k.unsynced.saturating_add(1);
            });
        }
    }

    /// On store failure with `on_error: closed`, whether requests must be refused now.
    pub fn refuses_all(&self) -> bool {
        self.closed && !self.is_up(unix_ms())
    }

    /// Takes the keys to synchronise (used within the window), moving their unsynced counts to
    /// `pushing`; forgets keys unused for [`FORGET_AFTER_MS`].
    fn take_batch(&self, now_ms: u64) -> Vec<Batched> {
        let mut batch = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, k| now_ms.saturating_sub(k.last_used_ms) < FORGET_AFTER_MS);
            for (hash, k) in map.iter_mut() {
                if batch.len() >= MAX_KEYS_PER_ROUND {
                    break;
                }
                k.pushing = k.unsynced;
                k.unsynced = 0;
                batch.push(Batched {
                    shard: i,
                    hash: *hash,
                    name: k.name.clone(),
                    delta: k.pushing,
                });
            }
        }
        batch
    }

    /// Applies a round trip's answer (`None`: it failed; the pushed counts are dropped).
    fn settle(&self, batch: &[Batched], fleet: Option<&[f64]>) {
        for (i, b) in batch.iter().enumerate() {
            let Some(shard) = self.shards.get(b.shard) else {
                continue;
            };
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = map.get_mut(&b.hash) {
                k.pushing = 0;
                if let Some(v) = fleet.and_then(|f| f.get(i)) {
                    k.fleet = *v;
                }
            }
        }
    }
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Errors preparing the store client.
#[derive(Debug)]
pub enum StoreError {
    /// The URL is not one the Redis client accepts.
    Url(String),
    /// `password_file` cannot be read or is empty.
    Password(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Url(e) => write!(f, "limits_store.url: {e}"),
            StoreError::Password(e) => write!(f, "limits_store.password_file: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The synchronisation task, as a pingora background service.
pub struct StoreSync {
    counts: Arc<SharedCounts>,
    client: redis::Client,
    timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    /// The URL without credentials, for `/config/status`.
    shown_url: String,
}

impl StoreSync {
    /// The task for `store` (its password already read from `password_file`).
    pub fn new(
        store: &aralez_compiler::LimitsStore,
        password: Option<String>,
        counts: Arc<SharedCounts>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, StoreError> {
        use redis::IntoConnectionInfo;
        let url = store.url.value.as_str();
        let mut info = url
            .into_connection_info()
            .map_err(|e| StoreError::Url(e.to_string()))?;
        if let Some(pw) = password {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| StoreError::Url(e.to_string()))?;
        Ok(Self {
            counts,
            client,
            timeout: Duration::from_millis(store.timeout_ms),
            metrics,
            shown_url: url.to_string(),
        })
    }

    /// One round trip: push the batch, read the fleet's slices.
    async fn round(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        batch: &[Batched],
        now_ms: u64,
    ) -> Result<Vec<f64>, String> {
        let slice = now_ms / SLICE_MS;
        let frac = (now_ms % SLICE_MS) as f64 / SLICE_MS as f64;
        let mut pipe = redis::pipe();
        if batch.is_empty() {
            pipe.cmd("PING").ignore();
        }
        for b in batch {
            if b.delta > 0 {
                let key = format!("{}:{slice}", b.name);
                pipe.cmd("INCRBY").arg(&key).arg(b.delta).ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(SLICE_TTL_MS).ignore();
            }
            let keys: Vec<String> = (0..KEPT)
                .map(|age| format!("{}:{}", b.name, slice.saturating_sub(age)))
                .collect();
            pipe.cmd("MGET").arg(keys);
        }
        let answer = tokio::time::timeout(self.timeout, pipe.query_async(conn)).await;
        let slices: Vec<Vec<Option<u64>>> = match answer {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {:?}", self.timeout)),
        };
        Ok(slices
            .iter()
            .map(|counts| {
                counts
                    .iter()
                    .enumerate()
                    .map(|(age, c)| {
                        let c = c.unwrap_or(0) as f64;
                        if age as u64 + 1 == KEPT {
                            c * (1.0 - frac)
                        } else {
                            c
                        }
                    })
                    .sum()
            })
            .collect())
    }

    fn publish(&self, up: bool, error: Option<&str>) {
        self.metrics.limits_store_up.set(i64::from(up));
        let last_ok = self.counts.last_ok_ms.load(Ordering::Relaxed);
        self.metrics.set_limits_store_state(Some(serde_json::json!({
            "url": self.shown_url,
            "up": up,
            "on_error": if self.counts.closed { "closed" } else { "open" },
            "last_success_unix_ms": (last_ok != 0).then_some(last_ok),
            "error": error,
        })));
    }
}

#[async_trait]
impl BackgroundService for StoreSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let mut conn = match redis::aio::ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            config,
        ) {
            Ok(c) => c,
            Err(e) => {
                log::error!("limits_store: {e}; limits stay local");
                self.publish(false, Some(&e.to_string()));
                return;
            }
        };
        self.publish(false, Some("not synchronised yet"));
        let mut ticks = tokio::time::interval(SYNC_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_up = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = unix_ms();
            let batch = self.counts.take_batch(now);
            match self.round(&mut conn, &batch, now).await {
                Ok(fleet) => {
                    self.counts.settle(&batch, Some(&fleet));
                    self.counts.last_ok_ms.store(unix_ms(), Ordering::Relaxed);
                    self.counts.failing.store(false, Ordering::Relaxed);
                    if !was_up {
                        log::info!("limits_store {}: synchronised", self.shown_url);
                        self.publish(true, None);
                        was_up = true;
                    }
                }
                Err(e) => {
                    self.counts.failing.store(true, Ordering::Relaxed);
                    self.counts.settle(&batch, None);
                    self.metrics.limits_store_errors.inc();
                    if was_up || self.metrics.limits_store_errors.get() == 1 {
                        log::warn!(
                            "limits_store {}: {e}; on_error: {}",
                            self.shown_url,
                            if self.counts.closed { "closed" } else { "open" }
                        );
                    }
                    self.publish(false, Some(&e));
                    was_up = false;
                }
            }
        }
    }
}

/// The shared counters and their synchronisation task for `store` (its `password_file` read,
/// relative to main.yaml's folder).
pub fn prepare(
    main: &crate::config::LoadedMain,
    store: &aralez_compiler::LimitsStore,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(Arc<SharedCounts>, StoreSync), StoreError> {
    let password = match &store.password_file {
        Some(file) => {
            let path = main.resolve(&file.value);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| StoreError::Password(format!("{}: {e}", path.display())))?;
            let password = text.trim();
            if password.is_empty() {
                return Err(StoreError::Password(format!("{} is empty", path.display())));
            }
            Some(password.to_string())
        }
        None => None,
    };
    let closed = store.on_error == aralez_compiler::StoreOnError::Closed;
    let counts = Arc::new(SharedCounts::new(
        Duration::from_millis(store.timeout_ms),
        closed,
        &store.key_prefix,
    ));
    let sync = StoreSync::new(store, password, counts.clone(), metrics)?;
    Ok((counts, sync))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn admits_under_the_fleet_estimate_and_goes_local_or_closed_when_down() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let open = SharedCounts::new(Duration::from_millis(50), false, "t:");
        assert_eq!(open.admit(LimitKind::Rate, ip, "h", 3), Shared::Local);
        open.last_ok_ms.store(unix_ms(), Ordering::Relaxed);
        let admitted = (0..5)
            .filter(|_| open.admit(LimitKind::Rate, ip, "h", 3) == Shared::Admit)
            .count();
        assert_eq!(admitted, 3);
        // a sync that reports the other processes' events leaves no room
        let batch = open.take_batch(unix_ms());
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].delta, 3);
        assert_eq!(&*batch[0].name, "t:rate:h:192.0.2.1");
        open.settle(&batch, Some(&[1.0]));
        assert_eq!(open.admit(LimitKind::Rate, ip, "h", 3), Shared::Admit);
        assert_eq!(open.admit(LimitKind::Rate, ip, "h", 3), Shared::Admit);
        assert_eq!(open.admit(LimitKind::Rate, ip, "h", 3), Shared::Refuse);
        let closed = SharedCounts::new(Duration::from_millis(50), true, "t:");
        assert_eq!(closed.admit(LimitKind::Rate, ip, "h", 3), Shared::Closed);
        assert!(closed.refuses_all());
    }

    #[test]
    fn redis_and_rediss_urls_make_a_client() {
        let metrics = Arc::new(crate::metrics::Metrics::new().unwrap());
        for url in [
            "redis://127.0.0.1:6379/0",
            "rediss://redis.example.com:6380/1",
        ] {
            let store = aralez_compiler::LimitsStore {
                url: aralez_compiler::Located {
                    value: url.into(),
                    line: 1,
                    col: 1,
                },
                timeout_ms: 50,
                on_error: aralez_compiler::StoreOnError::Open,
                key_prefix: "p:".into(),
                password_file: None,
            };
            let counts = Arc::new(SharedCounts::new(Duration::from_millis(50), false, "p:"));
            let made = StoreSync::new(&store, Some("pw".into()), counts, metrics.clone());
            assert!(made.is_ok(), "{url}: {:?}", made.err());
        }
    }
}
