//! Request ids and W3C trace context for one request.
//!
//! Every proxied request gets an `X-Request-Id`: the one a trusted proxy sent (a peer in
//! `trusted_proxies`), when it is a sane token, else a new random UUID. The W3C `traceparent`
//! keeps the caller's trace id and flags and gets a new span id for this hop; without a valid one,
//! a new trace starts here. Ids come from a per-thread generator seeded from the system's
//! randomness once per thread: no lock and no system call per request.

use std::cell::Cell;

use http::{HeaderMap, HeaderValue};

/// `x-request-id`, as a ready header name.
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
/// `traceparent`, as a ready header name.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The longest `X-Request-Id` kept from a trusted client, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The ids of one request.
#[derive(Debug, Clone)]
pub struct RequestIds {
    /// `X-Request-Id`, sent upstream and back to the client.
    pub request_id: HeaderValue,
    /// The `traceparent` sent upstream: the trace id kept, this hop's span id.
    pub traceparent: HeaderValue,
}

impl RequestIds {
    /// The ids of a request with `headers`; `trusted` when its TCP peer is a trusted proxy (only
    /// then is its `X-Request-Id` kept).
    pub fn of(headers: &HeaderMap, trusted: bool) -> Self {
        let kept = headers
            .get(&X_REQUEST_ID)
            .filter(|v| trusted && is_sane_request_id(v.as_bytes()))
            .cloned();
        let request_id = kept.unwrap_or_else(new_request_id);
        let parent = headers
            .get(&TRACEPARENT)
            .and_then(|v| parse_traceparent(v.as_bytes()));
        let (trace_id, flags) = match parent {
            Some(p) => (p.trace_id, p.flags),
            None => (random_hex::<32>(), *b"00"),
        };
        let span_id = random_hex::<16>();
        let mut value = [0u8; 55];
        value[..3].copy_from_slice(b"00-");
        value[3..35].copy_from_slice(&trace_id);
        value[35] = b'-';
        value[36..52].copy_from_slice(&span_id);
        value[52] = b'-';
        value[53..55].copy_from_slice(&flags);
        let traceparent = HeaderValue::from_bytes(&value).unwrap_or_else(|_| {
            HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-00")
        });
        Self {
            request_id,
            traceparent,
        }
    }

    /// The request id as text (`-` if it is not UTF-8, which a kept id never is).
    pub fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or("-")
    }

    /// The 32 hex digits of the trace id.
    pub fn trace_id(&self) -> &str {
        self.traceparent
            .to_str()
            .ok()
            .and_then(|s| s.get(3..35))
            .unwrap_or("-")
    }
}

/// A kept request id: 1 to [`MAX_REQUEST_ID_LEN`] bytes of letters, digits and `-_.:/+=@`
/// (nothing that could break a log line or a header).
pub fn is_sane_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

/// The parts of a valid `traceparent` this hop keeps.
#[derive(Debug, PartialEq, Eq)]
pub struct Parent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: [u8; 32],
    /// The two hex digits of the trace flags.
    pub flags: [u8; 2],
}

/// Parses `version-traceid-parentid-flags` (W3C Trace Context): version `00` exactly 55 bytes;
/// a later version at least that, its extra fields ignored; version `ff`, upper-case hex and
/// all-zero ids are invalid.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    let v = v.trim_ascii();
    if v.len() < 55 || (v.starts_with(b"00") && v.len() != 55) {
        return None;
    }
    let field = |from: usize, len: usize| -> Option<&[u8]> {
        let f = v.get(from..from + len)?;
        f.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .then_some(f)
    };
    let version = field(0, 2)?;
    let trace = field(3, 32)?;
    let parent = field(36, 16)?;
    let flags = field(53, 2)?;
    let dashes = [2, 35, 52].iter().all(|&i| v.get(i) == Some(&b'-'));
    let later_ok = v.len() == 55 || v.get(55) == Some(&b'-');
    if !dashes || !later_ok || version == b"ff" {
        return None;
    }
    if trace.iter().all(|&b| b == b'0') || parent.iter().all(|&b| b == b'0') {
        return None;
    }
    let mut trace_id = [0u8; 32];
    trace_id.copy_from_slice(trace);
    Some(Parent {
        trace_id,
        flags: [flags[0], flags[1]],
    })
}

/// A new random UUID (version 4) as a header value.
fn new_request_id() -> HeaderValue {
    let hex = random_hex::<32>();
    let mut out = [0u8; 36];
    let mut j = 0;
    for (i, &h) in hex.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = h;
        j += 1;
    }
    out[14] = b'4';
    // variant 10xx: 8, 9, a or b
    out[19] = HEX[8 + (usize::from(out[19]) & 3)];
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `N` random lowercase hex digits, never all zero.
fn random_hex<const N: usize>() -> [u8; N] {
    let mut out = [b'0'; N];
    let mut bits = 0u64;
    for (i, slot) in out.iter_mut().enumerate() {
        if i % 16 == 0 {
            bits = next_random();
        }
        *slot = HEX[(bits & 15) as usize];
        bits >>= 4;
    }
    if out.iter().all(|&b| b == b'0') {
        out[N - 1] = b'1';
    }
    out
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// One 64-bit value of this thread's SplitMix64 sequence.
fn next_random() -> u64 {
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A thread's seed: system randomness, else std's per-process random hasher keys and the time.
fn seed() -> u64 {
    let mut buf = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).is_ok() {
        return u64::from_le_bytes(buf);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_keeps_trace_and_flags_with_a_new_span() {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(TP));
        let ids = RequestIds::of(&h, false);
        let out = ids.traceparent.to_str().unwrap();
        assert_eq!(out.len(), 55);
        assert_eq!(&out[..36], &TP[..36]);
        assert_ne!(&out[36..52], &TP[36..52]);
        assert_eq!(&out[52..], "-01");
        assert_eq!(ids.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473",
            "",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
        // a later version may carry more fields
        assert!(parse_traceparent(format!("01{}-extra", &TP[2..]).as_bytes()).is_some());
    }

    #[test]
    fn request_ids_are_kept_only_from_trusted_peers_and_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(RequestIds::of(&h, true).request_id_str(), "abc-123");
        assert_ne!(RequestIds::of(&h, false).request_id_str(), "abc-123");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("a\"b"));
        assert_ne!(RequestIds::of(&h, true).request_id_str(), "a\"b");
        let generated = RequestIds::of(&HeaderMap::new(), true);
        let id = generated.request_id_str();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]));
        assert_ne!(id, RequestIds::of(&HeaderMap::new(), true).request_id_str());
        assert_eq!(generated.trace_id().len(), 32);
    }
}
