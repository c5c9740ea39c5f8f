//! The blocking-query loop of one watch: one thread per watched service (health), plus one for
//! the catalog in tag mode.
//!
//! - `index` follows `X-Consul-Index`; it is reset to 0 when it goes backwards (a server
//!   restored from a snapshot, or another server) and after every error, so the next query
//!   answers at once with the full set.
//! - Two identical answers are at least [`MIN_INTERVAL`] apart (an index that moves without the
//!   passing set changing, or a server that ignores blocking, cannot make the loop spin).
//! - An error moves to the next server at once; once every server failed in a row, the loop waits
//!   a jittered exponential backoff ([`backoff`]) before the next round.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aralez_compiler::Backend;

use super::client::{Answer, Catalog, Client, ClientError};
use super::Shared;

/// Least time between the starts of two queries that gave the same endpoints.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// First backoff after every server failed once.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a watch thread needs: the client, the servers in failover order, and where to report.
pub(super) struct Ctx {
    pub client: Client,
    pub servers: Vec<String>,
    pub shared: Arc<Shared>,
    /// The configuration epoch the thread belongs to (a newer one retires it).
    pub epoch: u64,
}

/// What one watch asks Consul and where it reports the answers.
pub(super) trait Query {
    /// The part of an answer compared between two answers (same: the loop slows down).
    type Out: PartialEq + Clone;
    /// One (blocking when `index` > 0) query: `X-Consul-Index` and the answer.
    fn ask(
        &self,
        client: &Client,
        server: &str,
        index: u64,
    ) -> Result<(u64, Self::Out), ClientError>;
    /// Records an answer; false when the watch is retired.
    fn synced(&self, ctx: &Ctx, server: &str, index: u64, out: Self::Out) -> bool;
    /// Records a failed query; false when the watch is retired.
    fn failed(&self, ctx: &Ctx, server: &str, e: &ClientError) -> bool;
}

/// The passing instances of one service (`/v1/health/service/<name>`).
pub(super) struct Health(pub String);

impl Query for Health {
    type Out = (Vec<Backend>, usize);

    fn ask(
        &self,
        client: &Client,
        server: &str,
        index: u64,
    ) -> Result<(u64, Self::Out), ClientError> {
        let a = client.query(server, &self.0, index)?;
        Ok((a.index, (a.endpoints, a.skipped)))
    }

    fn synced(&self, ctx: &Ctx, server: &str, index: u64, out: Self::Out) -> bool {
        let (endpoints, skipped) = out;
        let answer = Answer {
            index,
            endpoints,
            skipped,
        };
        ctx.shared.synced(ctx.epoch, &self.0, server, answer)
    }

    fn failed(&self, ctx: &Ctx, server: &str, e: &ClientError) -> bool {
        ctx.shared.failed(ctx.epoch, &self.0, server, e)
    }
}

/// The catalog's services and tags (`/v1/catalog/services`), in tag mode.
pub(super) struct CatalogTags;

impl Query for CatalogTags {
    type Out = std::collections::BTreeMap<String, Vec<String>>;

    fn ask(
        &self,
        client: &Client,
        server: &str,
        index: u64,
    ) -> Result<(u64, Self::Out), ClientError> {
        let Catalog { index, services } = client.catalog(server, index)?;
        Ok((index, services))
    }

    fn synced(&self, ctx: &Ctx, server: &str, index: u64, out: Self::Out) -> bool {
        ctx.shared.catalog_synced(ctx.epoch, server, index, &out)
    }

    fn failed(&self, ctx: &Ctx, server: &str, e: &ClientError) -> bool {
        ctx.shared.catalog_failed(ctx.epoch, server, e)
    }
}

/// Runs the loop of `query` until `stop` is set or its epoch is retired.
pub(super) fn run<Q: Query>(ctx: &Ctx, query: &Q, stop: &AtomicBool) {
    let servers = ctx.servers.len().max(1);
    let mut current = 0usize;
    let mut index = 0u64;
    let mut failures = 0u32;
    let mut last: Option<Q::Out> = None;
    while !stop.load(Ordering::SeqCst) {
        let Some(server) = ctx.servers.get(current) else {
            return;
        };
        let started = Instant::now();
        let result = query.ask(&ctx.client, server, index);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match result {
            Ok((answer_index, out)) => {
                failures = 0;
                index = if answer_index < index {
                    0
                } else {
                    answer_index
                };
                let same = last.as_ref() == Some(&out);
                last = Some(out.clone());
                if !query.synced(ctx, server, answer_index, out) {
                    return;
                }
                if same {
                    sleep(MIN_INTERVAL.saturating_sub(started.elapsed()), stop);
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                index = 0;
                if !query.failed(ctx, server, &e) {
                    return;
                }
                current = (current + 1) % servers;
                let rounds = failures / u32::try_from(servers).unwrap_or(u32::MAX);
                if failures % u32::try_from(servers).unwrap_or(u32::MAX) == 0 {
                    sleep(backoff(rounds, random_unit()), stop);
                }
            }
        }
    }
}

/// The wait after `rounds` (>= 1) rounds in which every server failed: 250 ms doubling up to
/// 30 s, scaled by `unit` in [0, 1) into its upper half (jitter keeps many proxies from
/// retrying in step).
pub fn backoff(rounds: u32, unit: f64) -> Duration {
    let exp = rounds.saturating_sub(1).min(16);
    let full = BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_MAX);
    full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A random number in [0, 1) from the system's randomness (0.5 if it is unavailable).
fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Sleeps `d`, waking early when `stop` is set.
fn sleep(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(50, 1.0), BACKOFF_MAX);
        assert_eq!(backoff(50, 0.0), BACKOFF_MAX / 2);
        assert_eq!(backoff(0, 1.0), Duration::from_millis(250));
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
