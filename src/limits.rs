//! Rate limits and 4xx limits: per client IP and virtual host, over a sliding one-second window.
//!
//! Each limit kind is a fixed-size, set-associative table of [`SETS`] x [`WAYS`] entries (about
//! 1 MiB, allocated the first time a plan uses that kind), so memory is bounded whatever the number
//! of client addresses. An entry is tagged with the full 64-bit keyed hash of its client (no two
//! clients share a count) and keeps counts for the last five quarter-second slices; the estimate
//! over the last second is the four newest slices plus the overlapping part of the fifth.
//!
//! When more clients are active than a set holds, the least recently active entry is forgotten, so
//! under a flood of distinct addresses the limiter fails open (forgotten clients start a fresh
//! budget) rather than refusing innocent clients, as a count-min sketch would. IPv6 clients are
//! counted per /64, the block an end site is usually given, so rotating addresses inside one
//! network neither escapes the limit nor floods the table.
//!
//! The key is the client plus the route's virtual host: one client's traffic to host A does not
//! eat its budget on host B. A path with its own `rate_limit` compares the client's rate on the
//! whole virtual host with its own limit.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use aralez_compiler::Route;

/// Sets of each table (a power of two).
pub const SETS: usize = 8192;
/// Entries per set.
pub const WAYS: usize = 4;
/// Length of one slice of the window, in milliseconds.
const SLICE_MS: u64 = 250;
/// Slices kept per entry: four for the window, one for the part of the window that is leaving.
const KEPT: usize = 5;

/// Which limit refused a request (the `kind` label of `aralez_ratelimit_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// `rate_limit`: too many requests in the last second.
    Rate,
    /// `x4xx_limit`: too many 4xx responses in the last second.
    X4xx,
}

impl LimitKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Rate => "rate",
            LimitKind::X4xx => "x4xx",
        }
    }
}

/// Counts of the kept slices of one client; `newest` is the slice index of the latest count.
#[derive(Debug, Default, Clone, Copy)]
struct Slices {
    newest: u32,
    counts: [u32; KEPT],
}

impl Slices {
    /// Moves the window to `slice`, zeroing slices that fell out.
    fn advance(&mut self, slice: u32) {
        if slice <= self.newest {
            return;
        }
        let gap = slice - self.newest;
        if gap >= KEPT as u32 {
            self.counts = [0; KEPT];
        } else {
            for s in self.newest + 1..=slice {
                if let Some(c) = self.counts.get_mut(slot(s)) {
                    *c = 0;
                }
            }
        }
        self.newest = slice;
    }

    /// Events in the last second; `frac` is the elapsed part of the current slice (0..1).
    fn estimate(&self, frac: f64) -> f64 {
        let mut sum = 0.0;
        for age in 0..KEPT as u32 {
            let Some(s) = self.newest.checked_sub(age) else {
                break;
            };
            let c = f64::from(self.counts.get(slot(s)).copied().unwrap_or(0));
            sum += if age + 1 == KEPT as u32 {
                c * (1.0 - frac)
            } else {
                c
            };
        }
        sum
    }

    fn add(&mut self) {
        if let Some(c) = self.counts.get_mut(slot(self.newest)) {
            *c = c.saturating_add(1);
        }
    }
}

fn slot(slice: u32) -> usize {
    (slice % KEPT as u32) as usize
}

/// One client's window, tagged with its hash (0: empty).
#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    tag: u64,
    window: Slices,
}

/// A bounded table of sliding one-second windows, keyed by 64-bit hashes.
pub struct Table {
    sets: Box<[Mutex<[Entry; WAYS]>]>,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    /// An empty table of `SETS * WAYS` entries.
    pub fn new() -> Self {
        let sets = (0..SETS)
            .map(|_| Mutex::new([Entry::default(); WAYS]))
            .collect();
        Self { sets }
    }

    /// Bytes held by the entries (fixed).
    pub fn memory_bytes(&self) -> usize {
        self.sets.len() * std::mem::size_of::<Mutex<[Entry; WAYS]>>()
    }

    /// Runs `f` on the window of `hash`, created (evicting the least recently active entry of its
    /// set) when `insert` is true; `None` when absent and not inserted.
    fn with<T>(
        &self,
        hash: u64,
        now: Tick,
        insert: bool,
        f: impl FnOnce(&mut Slices) -> T,
    ) -> Option<T> {
        let tag = hash.max(1);
        let set = self.sets.get((hash >> 40) as usize & (SETS - 1))?;
        // A poisoned set only means a panic while holding it; its counts are still usable.
        let mut ways = set.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = ways.iter_mut().find(|e| e.tag == tag) {
            e.window.advance(now.slice);
            return Some(f(&mut e.window));
        }
        if !insert {
            return None;
        }
        let victim = ways
            .iter_mut()
            .min_by_key(|e| (e.tag != 0, e.window.newest))?;
        *victim = Entry {
            tag,
            window: Slices {
                newest: now.slice,
                counts: [0; KEPT],
            },
        };
        Some(f(&mut victim.window))
    }

    /// The number of events of `hash` in the second before `now`.
    pub fn estimate(&self, hash: u64, now: Tick) -> f64 {
        self.with(hash, now, false, |w| w.estimate(now.frac))
            .unwrap_or(0.0)
    }

    /// Records one event of `hash`.
    pub fn add(&self, hash: u64, now: Tick) {
        self.with(hash, now, true, Slices::add);
    }

    /// Admits one event of `hash` when fewer than `limit` happened in the last second, and counts
    /// it; refused events are not counted (a flooding client gets `limit` requests per second).
    pub fn admit(&self, hash: u64, limit: u32, now: Tick) -> bool {
        self.with(hash, now, true, |w| {
            if w.estimate(now.frac) >= f64::from(limit) {
                return false;
            }
            w.add();
            true
        })
        .unwrap_or(true)
    }
}

/// A point in time, as a slice index and the elapsed part of that slice.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    slice: u32,
    frac: f64,
}

impl Tick {
    /// The tick `ms` milliseconds after the limiter's start.
    pub fn from_millis(ms: u64) -> Self {
        Self {
            // wraps after 34 years of uptime, which at worst forgets the windows once
            slice: (ms / SLICE_MS) as u32,
            frac: (ms % SLICE_MS) as f64 / SLICE_MS as f64,
        }
    }
}

/// The limiters of the proxy: runtime state that outlives plan swaps.
pub struct Limits {
    /// Fleet-wide counts on the limits store (`limits_store`), when configured.
    shared: Option<std::sync::Arc<crate::limits_store::SharedCounts>>,
    rate: OnceLock<Table>,
    x4xx: OnceLock<Table>,
    keys: std::collections::hash_map::RandomState,
    start: Instant,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

impl Limits {
    /// Empty limiters; the tables are allocated when a route first uses them.
    pub fn new() -> Self {
        Self {
            shared: None,
            rate: OnceLock::new(),
            x4xx: OnceLock::new(),
            // randomly keyed SipHash: clients cannot choose addresses that collide on purpose
            keys: std::collections::hash_map::RandomState::new(),
            start: Instant::now(),
        }
    }

    /// Counts fleet-wide through `shared` (the local tables stay the fallback).
    pub fn with_shared(
        mut self,
        shared: std::sync::Arc<crate::limits_store::SharedCounts>,
    ) -> Self {
        self.shared = Some(shared);
        self
    }

    fn now(&self) -> Tick {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Tick::from_millis(ms)
    }

    fn key(&self, route: &Route, client: IpAddr) -> u64 {
        let mut h = self.keys.build_hasher();
        crate::client::client_block(client).hash(&mut h);
        route.host.hash(&mut h);
        h.finish()
    }

    /// Step 4 of the pipeline: the 4xx limit, then the rate limit, for `client` on `route`.
    /// Counts the request towards the rate limit when it is admitted.
    pub fn check(&self, route: &Route, client: IpAddr) -> Option<LimitKind> {
        if route.x4xx_limit.is_none() && route.rate_limit.is_none() {
            return None;
        }
        let key = self.key(route, client);
        let now = self.now();
        if let Some(shared) = &self.shared {
            return self.check_shared(shared, route, client, key, now);
        }
        if let Some(n) = route.x4xx_limit {
            let table = self.x4xx.get_or_init(Table::new);
            if table.estimate(key, now) > f64::from(n) {
                return Some(LimitKind::X4xx);
            }
        }
        if let Some(n) = route.rate_limit {
            let table = self.rate.get_or_init(Table::new);
            if !table.admit(key, n, now) {
                return Some(LimitKind::Rate);
            }
        }
        None
    }

    /// [`Limits::check`] on the fleet's counts; the local tables decide while the store is down
    /// with `on_error: open` (and keep counting, so that they are ready).
    fn check_shared(
        &self,
        shared: &crate::limits_store::SharedCounts,
        route: &Route,
        client: IpAddr,
        key: u64,
        now: Tick,
    ) -> Option<LimitKind> {
        use crate::limits_store::Shared;
        let block = crate::client::client_block(client);
        if shared.refuses_all() {
            return Some(if route.rate_limit.is_some() {
                LimitKind::Rate
            } else {
                LimitKind::X4xx
            });
        }
        if let Some(n) = route.x4xx_limit {
            let table = self.x4xx.get_or_init(Table::new);
            let estimate = shared
                .estimate(LimitKind::X4xx, block, &route.host)
                .unwrap_or_else(|| table.estimate(key, now));
            if estimate > f64::from(n) {
                return Some(LimitKind::X4xx);
            }
        }
        if let Some(n) = route.rate_limit {
            let table = self.rate.get_or_init(Table::new);
            match shared.admit(LimitKind::Rate, block, &route.host, n) {
                Shared::Admit => table.add(key, now),
                Shared::Refuse | Shared::Closed => return Some(LimitKind::Rate),
                Shared::Local => {
                    if !table.admit(key, n, now) {
                        return Some(LimitKind::Rate);
                    }
                }
            }
        }
        None
    }

    /// Counts one 4xx response that `client` produced on `route` (when the route has a 4xx limit).
    pub fn count_4xx(&self, route: &Route, client: IpAddr) {
        if route.x4xx_limit.is_none() {
            return;
        }
        let key = self.key(route, client);
        let now = self.now();
        self.x4xx.get_or_init(Table::new).add(key, now);
        if let Some(shared) = &self.shared {
            let block = crate::client::client_block(client);
            shared.add(LimitKind::X4xx, block, &route.host);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ms(t: u64) -> Tick {
        Tick::from_millis(t)
    }

    #[test]
    fn forty_requests_in_half_a_second_admit_ten() {
        // whatever the phase of the slices, a burst admits exactly the limit
        for offset in [0u64, 1, 100, 240, 249, 250, 999, 1234] {
            let s = Table::new();
            let admitted = (0..40)
                .filter(|i| s.admit(42, 10, ms(10_000 + offset + i * 12)))
                .count();
            assert!((9..=11).contains(&admitted), "offset {offset}: {admitted}");
            assert_eq!(admitted, 10, "offset {offset}");
        }
    }

    #[test]
    fn a_steady_flood_gets_the_limit_per_second() {
        let s = Table::new();
        // 100 requests per second for 5 seconds, limit 10
        let admitted = (0..500).filter(|i| s.admit(7, 10, ms(i * 10))).count();
        assert!((45..=56).contains(&admitted), "{admitted}");
        // and after a quiet second the full budget is back
        let again = (0..10).filter(|i| s.admit(7, 10, ms(7_000 + i))).count();
        assert_eq!(again, 10);
    }

    #[test]
    fn keys_do_not_share_budgets() {
        let s = Table::new();
        for i in 0..10 {
            assert!(s.admit(1, 10, ms(i)));
        }
        assert!(!s.admit(1, 10, ms(20)));
        assert!(s.admit(2, 10, ms(20)), "another key has its own budget");
    }

    #[test]
    fn memory_is_fixed_whatever_the_number_of_clients() {
        let s = Table::new();
        let before = s.memory_bytes();
        assert!(before <= 2 * 1024 * 1024, "{before}");
        let limits = Limits::new();
        // a client at its limit
        let victim = limits.keys.hash_one(u64::MAX);
        for i in 0..10 {
            assert!(s.admit(victim, 10, ms(i)));
        }
        assert!(!s.admit(victim, 10, ms(11)));
        // 200k distinct clients (six times the table), five requests each, within the second
        for k in 0..200_000u64 {
            let h = limits.keys.hash_one(k);
            for _ in 0..5 {
                s.admit(h, 10, ms(20 + k / 400));
            }
        }
        assert_eq!(s.memory_bytes(), before, "no growth");
        // fails open: fresh clients are admitted, nobody is refused for someone else's traffic
        let fresh = (0..1000u64)
            .filter(|k| s.admit(limits.keys.hash_one(2_000_000 + k), 10, ms(600)))
            .count();
        assert_eq!(fresh, 1000);
    }

    #[test]
    fn four_xx_window_forgets_after_a_second() {
        let s = Table::new();
        for i in 0..5 {
            s.add(9, ms(100 + i));
        }
        assert!(s.estimate(9, ms(200)) > 4.0);
        assert!(s.estimate(9, ms(1400)) < 1.0);
    }

    fn route(yaml: &str) -> Route {
        let src = [aralez_compiler::Source {
            name: "t.yaml",
            text: yaml,
        }];
        let plan = aralez_compiler::compile_upstreams(&src, &aralez_compiler::Context::default())
            .unwrap()
            .value;
        (*plan.routes()[0]).clone()
    }

    #[test]
    fn check_applies_the_4xx_limit_then_the_rate_limit() {
        let r = route(
            "provider: file\na.example:\n  paths:\n    \"/\":\n      rate_limit: 5\n      x4xx_limit: 2\n      servers: [\"127.0.0.1:1\"]\n",
        );
        let l = Limits::new();
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(l.check(&r, me), None);
        // three 4xx responses is more than 2: refused with the 4xx kind
        for _ in 0..3 {
            l.count_4xx(&r, me);
        }
        assert_eq!(l.check(&r, me), Some(LimitKind::X4xx));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let passed = (0..8).filter(|_| l.check(&r, other).is_none()).count();
        assert_eq!(passed, 5, "rate limit for another client");
        assert_eq!(l.check(&r, other), Some(LimitKind::Rate));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let r = route(
            "provider: file\na.example:\n  paths:\n    \"/\":\n      rate_limit: 3\n      servers: [\"127.0.0.1:1\"]\n",
        );
        let l = Limits::new();
        let passed = (1..=6u16)
            .filter(|i| {
                let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
                l.check(&r, ip).is_none()
            })
            .count();
        assert_eq!(passed, 3, "one /64 shares one budget");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(l.check(&r, elsewhere), None);
    }
}
