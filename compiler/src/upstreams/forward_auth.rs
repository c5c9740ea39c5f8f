//! `authorization: {type: forward, url, timeout_ms, request_headers, response_headers,
//! trust_forward_header, cache_seconds}`: the settings of forward authentication.

use crate::codes;
use crate::diag::Sink;
use crate::plan::{Auth, ForwardAuth, DEFAULT_FORWARD_AUTH_TIMEOUT_MS};
use crate::walk::{self, pos, Entry};
use crate::yaml::Node;
use crate::ypath;

/// Keys that only mean something for `type: forward`.
pub const FORWARD_ONLY: &[&str] = &[
    "cache_seconds",
    "request_headers",
    "response_headers",
    "timeout_ms",
    "trust_forward_header",
    "url",
];

/// Largest `timeout_ms`.
const MAX_TIMEOUT_MS: i64 = 60_000;

/// Largest `cache_seconds`.
const MAX_CACHE_SECONDS: i64 = 300;

/// Most headers in `request_headers` or `response_headers`.
const MAX_HEADERS: usize = 32;

/// Headers the proxy itself writes on the auth request or that frame a message: never listed.
const RESERVED: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-method",
    "x-forwarded-proto",
    "x-forwarded-uri",
];

/// A forward authorization from its keys; `None` (with diagnostics) when one is invalid.
pub(crate) fn forward(
    sink: &mut Sink<'_>,
    entries: &[&Entry<'_>],
    node: &Node,
    path: &str,
) -> Option<Auth> {
    let mut ok = true;
    let mut url = None;
    let mut f = ForwardAuth {
        url: String::new(),
        host: String::new(),
        port: 80,
        target: "/".into(),
        timeout_ms: DEFAULT_FORWARD_AUTH_TIMEOUT_MS,
        request_headers: Vec::new(),
        response_headers: Vec::new(),
        trust_forward_header: false,
        cache_seconds: 0,
    };
    for e in entries {
        let p = ypath::key(path, e.key);
        match e.key {
            "url" => url = walk::str_of(sink, e.value, &p).map(|s| (s, e.value, p)),
            "timeout_ms" => {
                match walk::int_of(sink, e.value, &p, 1, MAX_TIMEOUT_MS, "timeout_ms") {
                    Some(n) => f.timeout_ms = n.unsigned_abs(),
                    None => ok = false,
                }
            }
            "cache_seconds" => {
                let n = walk::int_of(sink, e.value, &p, 0, MAX_CACHE_SECONDS, "cache_seconds");
                match n.and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => f.cache_seconds = n,
                    None => ok = false,
                }
            }
            "trust_forward_header" => match walk::bool_of(sink, e.value, &p) {
                Some(b) => f.trust_forward_header = b,
                None => ok = false,
            },
            "request_headers" => match names(sink, e.value, &p) {
                Some(n) => f.request_headers = n,
                None => ok = false,
            },
            _ => match names(sink, e.value, &p) {
                Some(n) => f.response_headers = n,
                None => ok = false,
            },
        }
    }
    let Some((written, url_node, url_path)) = url else {
        if !entries.iter().any(|e| e.key == "url") {
            sink.report(
                codes::BAD_FORWARD_AUTH_URL,
                pos(node),
                path,
                "`type: forward` needs `url` (e.g. `http://127.0.0.1:9091/verify`)",
            );
        }
        return None;
    };
    match parse_url(written) {
        Ok((host, port, target)) => {
            (f.host, f.port, f.target) = (host, port, target);
            f.url = written.to_string();
        }
        Err(msg) => {
            sink.report(codes::BAD_FORWARD_AUTH_URL, pos(url_node), &url_path, msg);
            return None;
        }
    }
    if f.cache_seconds > 0 && f.request_headers.is_empty() {
        let at = entries
            .iter()
            .find(|e| e.key == "cache_seconds")
            .map_or(pos(node), |e| pos(e.key_node));
        sink.report(
            codes::FORWARD_AUTH_CACHE_KEYLESS,
            at,
            &ypath::key(path, "cache_seconds"),
            "`cache_seconds` caches answers by the `request_headers` values, and none are listed: every client would share one answer; list the credential headers or remove `cache_seconds`",
        );
        return None;
    }
    ok.then(|| Auth::Forward(Box::new(f)))
}

/// `http://host[:port][/path[?query]]` → host, port, target. A host is an IPv4 address, a
/// bracketed IPv6 address or a DNS name.
pub(crate) fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    if url.len() >= 8 && url[..8].eq_ignore_ascii_case("https://") {
        return Err(format!(
            "`{url}`: https is not supported yet for forward authentication; reach the auth service over http:// (on loopback or a private network)"
        ));
    }
    let rest = match url.get(..7) {
        Some(s) if s.eq_ignore_ascii_case("http://") => &url[7..],
        _ => return Err(format!("`{url}` is not an http:// URL")),
    };
    if rest
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'#')
    {
        return Err(format!(
            "`{url}` contains spaces, control characters or a fragment"
        ));
    }
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes().get(i) == Some(&b'?') => {
            (&rest[..i], format!("/{}", &rest[i..]))
        }
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(format!("`{url}`: credentials in the URL are not supported"));
    }
    let (host, port) = split_authority(authority).ok_or_else(|| {
        format!("`{url}` has no valid host and port (write `http://127.0.0.1:9091/verify`)")
    })?;
    Ok((host, port, target))
}

/// `host[:port]` or `[v6][:port]`; the port defaults to 80 and must not be 0.
fn split_authority(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (v6.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !name_ok {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => 80,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0)?,
    };
    Some((host, port))
}

/// A list of header names: lower-cased, valid HTTP tokens, none reserved, at most [`MAX_HEADERS`].
fn names(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<Vec<String>> {
    let items = walk::seq_of(sink, node, path)?;
    if items.len() > MAX_HEADERS {
        sink.report(
            codes::BAD_HEADER_NAME,
            pos(node),
            path,
            format!("at most {MAX_HEADERS} header names"),
        );
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = ypath::index(path, i);
        let Some(raw) = walk::str_of(sink, item, &p) else {
            ok = false;
            continue;
        };
        let Ok(name) = http::HeaderName::from_bytes(raw.trim().as_bytes()) else {
            sink.report(
                codes::BAD_HEADER_NAME,
                pos(item),
                &p,
                format!("`{raw}` is not a valid header name; use letters, digits and `-`"),
            );
            ok = false;
            continue;
        };
        if RESERVED.contains(&name.as_str()) {
            sink.report(
                codes::FORBIDDEN_HEADER,
                pos(item),
                &p,
                format!(
                    "`{}` is written by the proxy (framing, hop-by-hop or X-Forwarded-*); remove it",
                    name.as_str()
                ),
            );
            ok = false;
            continue;
        }
        if !out.iter().any(|n| n == name.as_str()) {
            out.push(name.as_str().to_string());
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        let ok = |u: &str| parse_url(u).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:9091/verify"),
            ("127.0.0.1".into(), 9091, "/verify".into())
        );
        assert_eq!(
            ok("http://Auth.local"),
            ("auth.local".into(), 80, "/".into())
        );
        assert_eq!(
            ok("http://[::1]:81/a?b=c"),
            ("::1".into(), 81, "/a?b=c".into())
        );
        assert_eq!(ok("http://a:1?x"), ("a".into(), 1, "/?x".into()));
        for bad in [
            "https://a/verify",
            "ftp://a",
            "http://",
            "http://a:0/",
            "http://a:b/",
            "http://u:p@a/",
            "http://a/ b",
            "http://[zz]/",
            "http://a_b/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
