//! `max_connections` and `max_connections_per_ip`: counters of open client connections, with a
//! permit that gives its place back when the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_connections` of the listener service.
    Total,
    /// `max_connections_per_ip` of this client.
    PerClient,
}

impl Full {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Full::Total => "max_connections",
            Full::PerClient => "max_connections_per_ip",
        }
    }
}

/// Open-connection counters of one listener service.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_client: usize,
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnLimits>,
    client: Option<IpAddr>,
}

impl ConnLimits {
    /// Limits of `max_total` connections and `max_per_client` per client address (0: no limit;
    /// IPv6 clients are counted per /64, like the rate limits).
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_client,
            total: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Admits a connection from `client`, or says which limit is reached.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Permit, Full> {
        let before = self.total.fetch_add(1, Ordering::AcqRel);
        // from here on the permit gives the place back, whatever happens
        let mut permit = Permit {
            limits: self.clone(),
            client: None,
        };
        if self.max_total > 0 && before >= self.max_total {
            return Err(Full::Total);
        }
        if let (true, Some(ip)) = (self.max_per_client > 0, client) {
            let key = crate::client::client_block(ip);
            let mut map = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(key).or_insert(0);
            if *n >= self.max_per_client {
                return Err(Full::PerClient);
            }
            *n += 1;
            permit.client = Some(key);
        }
        Ok(permit)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(key) = self.client {
            let mut map = self
                .limits
                .per_client
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let l = ConnLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = l.admit(Some(a)).unwrap();
        let _p2 = l.admit(Some(a)).unwrap();
        assert_eq!(l.admit(Some(a)).unwrap_err(), Full::PerClient);
        let _p3 = l.admit(Some(b)).unwrap();
        assert_eq!(l.admit(Some(b)).unwrap_err(), Full::Total);
        assert_eq!(l.open(), 3);
        drop(p1);
        assert_eq!(l.open(), 2);
        let _p4 = l.admit(Some(a)).unwrap();
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(
            crate::client::client_block(v6a),
            crate::client::client_block(v6b)
        );
    }
}
