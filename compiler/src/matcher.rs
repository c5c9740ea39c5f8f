//! Request-time matching: host normalisation, path normalisation and lookup in a [`Plan`](crate::Plan).
//!
//! This is the data plane's hot path: it takes no locks and allocates only for paths that are not
//! already in normal form.

use std::borrow::Cow;

use crate::plan::{HostTable, PathTable};

/// Why a request matched no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMiss {
    /// No exact, wildcard or `DEFAULT` host matched: 404.
    UnknownHost,
    /// The host has no route for the path (no `/` fallback): 404.
    NoRoute,
    /// The path is malformed or escapes the root: 400.
    BadPath,
}

/// Longest host name we accept (RFC 1035: 253 characters without the trailing dot).
const MAX_HOST: usize = 253;

/// Finds the virtual host for a raw `Host` header value.
pub fn find_host<'a>(table: &'a HostTable, raw: &str) -> Result<&'a PathTable, RouteMiss> {
    let mut buf = [0u8; MAX_HOST];
    let Some(host) = host_key(raw, &mut buf) else {
        return table.default.as_ref().ok_or(RouteMiss::UnknownHost);
    };
    if let Some(t) = table.exact.get(host) {
        return Ok(t);
    }
    if let Some((_, parent)) = host.split_once('.') {
        if let Some(t) = table.wildcard.get(parent) {
            return Ok(t);
        }
    }
    table.default.as_ref().ok_or(RouteMiss::UnknownHost)
}

/// Normalises a raw host value into `buf`: port stripped (IPv6 literals keep no brackets),
/// trailing dot removed, ASCII lower-cased. `None` when it is empty, too long or not ASCII.
pub fn host_key<'b>(raw: &str, buf: &'b mut [u8; MAX_HOST]) -> Option<&'b str> {
    let raw = raw.trim();
    let name = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port or [v6]
        rest.split_once(']').map(|(inner, _)| inner)?
    } else {
        match raw.rsplit_once(':') {
            // more than one ':' without brackets is not a valid Host; keep it whole so it misses
            Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_HOST || !name.is_ascii() {
        return None;
    }
    let out = buf.get_mut(..name.len())?;
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

/// Normalises a config path prefix: leading `/` kept, trailing `/` dropped (except for the root),
/// `//` collapsed.
pub fn normalize_prefix(prefix: &str) -> String {
    match normalize_path(prefix) {
        Ok(p) => p.into_owned(),
        Err(_) => prefix.to_string(),
    }
}

/// Normalises a request path for matching only: percent-encoded unreserved characters decoded,
/// `;` parameters cut from each segment (as servlet containers read `/admin;x`), `.` and `..`
/// segments resolved, `//` collapsed, trailing `/` dropped. A path that does not start with `/`
/// (other than `*`), carries a control byte (raw or percent-encoded) or a bad escape, or climbs
/// above the root is [`RouteMiss::BadPath`].
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, RouteMiss> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(RouteMiss::BadPath);
    }
    if is_normal(bytes) {
        let trimmed = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        return Ok(Cow::Borrowed(if trimmed.is_empty() {
            "/"
        } else {
            trimmed
        }));
    }
    let decoded = decode_unreserved(bytes)?;
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(RouteMiss::BadPath);
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// True when the path needs no work: no `%`, no `;`, no control bytes, no `//`, no `.` segments.
fn is_normal(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' || b == b';' || b < 0x20 || b == 0x7f || (b == b'/' && prev == b'/') {
            return false;
        }
        if b == b'.' && prev == b'/' {
            let next = bytes.get(i + 1).copied();
            let dotdot = next == Some(b'.') && matches!(bytes.get(i + 2), None | Some(b'/'));
            if matches!(next, None | Some(b'/')) || dotdot {
                return false;
            }
        }
        prev = b;
    }
    true
}

/// Decodes `%XX` escapes of unreserved characters (ALPHA / DIGIT / `-._~`); other escapes stay
/// encoded (upper-cased). Bad escapes and control bytes are refused.
fn decode_unreserved(bytes: &[u8]) -> Result<String, RouteMiss> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b < 0x20 || b == 0x7f {
            return Err(RouteMiss::BadPath);
        }
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(RouteMiss::BadPath);
            };
            let v = (hi * 16 + lo) as u8;
            if v < 0x20 || v == 0x7f {
                return Err(RouteMiss::BadPath);
            }
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&format!("{v:02X}"));
            }
            i += 3;
            continue;
        }
        // non-ASCII bytes arrive here only from a &str, so push the whole char
        let ch_len = utf8_len(b);
        let end = (i + ch_len).min(bytes.len());
        let chunk = bytes.get(i..end).ok_or(RouteMiss::BadPath)?;
        out.push_str(std::str::from_utf8(chunk).map_err(|_| RouteMiss::BadPath)?);
        i = end;
    }
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys() {
        let mut b = [0u8; MAX_HOST];
        assert_eq!(host_key("Example.COM:8080", &mut b), Some("example.com"));
        assert_eq!(host_key("example.com.", &mut b), Some("example.com"));
        assert_eq!(host_key("[::1]:80", &mut b), Some("::1"));
        assert_eq!(host_key("", &mut b), None);
        assert_eq!(host_key("ünï", &mut b), None);
    }

    #[test]
    fn paths() {
        let n = |p| normalize_path(p).map(|c| c.into_owned());
        assert_eq!(n("/"), Ok("/".into()));
        assert_eq!(n("/foo/"), Ok("/foo".into()));
        assert_eq!(n("/foo//bar"), Ok("/foo/bar".into()));
        assert_eq!(n("/a/./b/../c"), Ok("/a/c".into()));
        assert_eq!(n("/%66oo"), Ok("/foo".into()));
        assert_eq!(n("/%2e%2e/x"), Err(RouteMiss::BadPath));
        assert_eq!(n("/../x"), Err(RouteMiss::BadPath));
        assert_eq!(n("/a%2fb"), Ok("/a%2Fb".into()));
        assert_eq!(n("/a%zz"), Err(RouteMiss::BadPath));
        assert_eq!(n("foo"), Err(RouteMiss::BadPath));
        assert_eq!(n("/.hidden"), Ok("/.hidden".into()));
        assert_eq!(n("/.."), Err(RouteMiss::BadPath));
        assert_eq!(n("/private%00"), Err(RouteMiss::BadPath));
        assert_eq!(n("/private%7f"), Err(RouteMiss::BadPath));
        assert_eq!(n("/private;x"), Ok("/private".into()));
        assert_eq!(n("/a/..;/private"), Ok("/private".into()));
        assert_eq!(n("/a;x/b;y=1"), Ok("/a/b".into()));
    }

    #[test]
    fn longest_segment_prefix() {
        let t = PathTable::new([("/".into(), 0), ("/foo".into(), 1), ("/foo/bar/".into(), 2)]);
        assert_eq!(t.longest_match("/"), Some(0));
        assert_eq!(t.longest_match("/foo"), Some(1));
        assert_eq!(t.longest_match("/foobar"), Some(0));
        assert_eq!(t.longest_match("/foo/x"), Some(1));
        assert_eq!(t.longest_match("/foo/bar/baz"), Some(2));
        let no_root = PathTable::new([("/api".into(), 0)]);
        assert_eq!(no_root.longest_match("/x"), None);
    }
}
