//! Who the client of a request is: the TCP peer, whether it is a trusted proxy, and the address
//! the request is attributed to (behind trusted proxies, from `X-Forwarded-For`). The one place
//! that reads `trusted_proxies`; the limits, the forwarded headers and the logs all use it.

use std::net::IpAddr;

use aralez_compiler::Cidr;
use http::HeaderMap;

/// The client of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The TCP peer.
    pub peer: IpAddr,
    /// The peer is in `trusted_proxies` (its `X-Forwarded-For` is believed and extended).
    pub trusted_peer: bool,
    /// The address the request is attributed to (what the limits count).
    pub real: IpAddr,
}

impl Client {
    /// The client of a request from `peer` with `headers`.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> Self {
        Self {
            peer,
            trusted_peer: is_trusted(peer, trusted),
            real: client_ip(peer, headers, trusted),
        }
    }
}

fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// The address a client is counted under by the limits and the connection limits: an IPv4
/// address (IPv4-mapped IPv6 included) as it is, an IPv6 address as its /64, the block an end
/// site is usually given.
pub fn client_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// The client a request is attributed to: the TCP peer, or, when the peer is a trusted proxy, the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy. Walking stops at an
/// entry that is not an IP address (the last trusted hop is then the client).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    // several X-Forwarded-For headers form one list, in order
    let values: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    for value in values.iter().rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return client;
        };
        for entry in text.rsplit(',') {
            let Some(ip) = parse_forwarded_ip(entry.trim()) else {
                return client;
            };
            client = ip;
            if !is_trusted(ip, trusted) {
                return ip;
            }
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an IP, optionally `[v6]` or `v4:port`.
fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_trusts_only_configured_proxies() {
        let trusted = vec![Cidr::parse("10.0.0.0/8").unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.1.1.1, 203.0.113.9, 10.0.0.2".parse().unwrap(),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "right-most untrusted entry"
        );
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            client_ip(stranger, &h, &trusted),
            stranger,
            "spoofed XFF ignored"
        );
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", "junk, 10.0.0.3".parse().unwrap());
        assert_eq!(
            client_ip(peer, &bad, &trusted),
            "10.0.0.3".parse::<IpAddr>().unwrap()
        );
        let mut ported = HeaderMap::new();
        ported.insert("x-forwarded-for", "203.0.113.5:4711".parse().unwrap());
        assert_eq!(
            client_ip(peer, &ported, &trusted),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
    }
}
