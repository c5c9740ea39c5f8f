//! Validators for the scalar values of the config language: server addresses, host keys, path
//! prefixes, headers, URLs, listener addresses. Each returns the typed value or `(code, message)`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::{HeaderName, HeaderValue};

use crate::codes;
use crate::plan::Backend;

/// A failed validation: the diagnostic code and a message that says how to fix it.
pub(crate) type Invalid = (&'static str, String);

/// A virtual host key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HostKey {
    /// An exact, lower-cased name (IPv6 literals without brackets).
    Exact(String),
    /// `*.suffix`: the lower-cased suffix.
    Wildcard(String),
    /// `DEFAULT`.
    Default,
}

impl HostKey {
    /// The host as it appears in route ids.
    pub fn display(&self) -> String {
        match self {
            HostKey::Exact(n) => n.clone(),
            HostKey::Wildcard(s) => format!("*.{s}"),
            HostKey::Default => "DEFAULT".into(),
        }
    }
}

/// True for a DNS name: labels of 1..=63 of `a-z0-9-_` (no leading/trailing `-`), <= 253 chars.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses a virtual host key: exact name, `*.example.com`, IP literal, or `DEFAULT`.
pub(crate) fn host_key(raw: &str) -> Result<HostKey, Invalid> {
    if raw == "DEFAULT" {
        return Ok(HostKey::Default);
    }
    let bad = |why: &str| {
        (
            codes::BAD_HOST,
            format!("`{raw}` is not a valid virtual host: {why}; use a DNS name like `api.example.com`, a wildcard like `*.example.com`, or `DEFAULT`"),
        )
    };
    let lower = raw.trim_end_matches('.').to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| HostKey::Exact(ip.to_string()))
            .map_err(|_| bad("not an IPv6 address"));
    }
    if let Ok(ip) = lower.parse::<Ipv6Addr>() {
        return Ok(HostKey::Exact(ip.to_string()));
    }
    if lower.contains(':') {
        return Err(bad("a host key has no port"));
    }
    if let Some(suffix) = lower.strip_prefix("*.") {
        return if is_dns_name(suffix) {
            Ok(HostKey::Wildcard(suffix.to_string()))
        } else {
            Err(bad("a wildcard is `*.` followed by a domain name"))
        };
    }
    if lower.contains('*') {
        return Err(bad(
            "`*` is only allowed as the whole first label (`*.example.com`)",
        ));
    }
    if is_dns_name(&lower) {
        Ok(HostKey::Exact(lower))
    } else {
        Err(bad(
            "only letters, digits, `-`, `_` and `.` are allowed, labels of 1 to 63 characters",
        ))
    }
}

/// Parses a server `host:port`: IPv4, `[IPv6]` or DNS name, port 1..=65535.
pub(crate) fn server(raw: &str) -> Result<Backend, Invalid> {
    let bad = |why: String| (codes::BAD_SERVER, format!("server `{raw}` {why}"));
    let s = raw.trim();
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(bad(format!(
            "has a scheme (`{scheme}://`); write only `host:port`, TLS is detected automatically"
        )));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return Err(bad("has no closing `]`; write `[::1]:8080`".into()));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(bad("has no port; write `[addr]:port`".into()));
        };
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| bad(format!("`{inner}` is not an IPv6 address")))?;
        (ip.to_string(), port)
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(bad(
                "has no port; write `host:port`, e.g. `127.0.0.1:8080`".into()
            ));
        };
        if host.contains(':') {
            return Err(bad(
                "looks like an IPv6 address without brackets; write `[addr]:port`".into(),
            ));
        }
        if host.parse::<Ipv4Addr>().is_err() {
            let looks_ipv4 = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if looks_ipv4 || !is_dns_name(&host.to_ascii_lowercase()) {
                return Err(bad(format!(
                    "has an invalid host `{host}`; use an IPv4 address, `[IPv6]` or a DNS name"
                )));
            }
        }
        (host.to_ascii_lowercase(), port)
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "has an invalid port `{port}`; use a number between 1 and 65535"
        )));
    }
    match port.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(Backend {
            host,
            port: u16::try_from(p).unwrap_or(u16::MAX),
        }),
        _ => Err((
            codes::BAD_PORT,
            format!("server `{raw}` has port {port}; use a port between 1 and 65535"),
        )),
    }
}

/// Validates a config path prefix and returns it normalised.
pub(crate) fn path_prefix(raw: &str) -> Result<String, Invalid> {
    let bad = |why: &str| (codes::BAD_PATH, format!("path `{raw}` {why}"));
    if !raw.starts_with('/') {
        return Err(bad("must start with `/`, e.g. `/api`"));
    }
    if raw.contains(['?', '#']) {
        return Err(bad(
            "must not contain `?` or `#`; routes match on the path only",
        ));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    crate::matcher::normalize_path(raw)
        .map(|p| p.into_owned())
        .map_err(|_| bad("is malformed (bad `%` escape, or `..` above the root)"))
}

/// Headers a config must never set: framing and hop-by-hop fields (request smuggling, loops).
const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Parses a `"Name:Value"` header entry; the name is lower-cased, the value trimmed.
pub(crate) fn header(raw: &str) -> Result<(HeaderName, HeaderValue), Invalid> {
    let Some((name, value)) = raw.split_once(':') else {
        return Err((
            codes::HEADER_NO_COLON,
            format!("header `{raw}` has no `:`; write it as `\"Name:Value\"`"),
        ));
    };
    let name = name.trim();
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        (
            codes::BAD_HEADER_NAME,
            format!("header name `{name}` is not a valid HTTP token; use letters, digits and `-`"),
        )
    })?;
    if FORBIDDEN_HEADERS.contains(&name.as_str()) {
        return Err((
            codes::FORBIDDEN_HEADER,
            format!(
                "header `{}` must not be set by the config (framing/hop-by-hop header); remove it",
                name.as_str()
            ),
        ));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.contains(['\r', '\n']) {
        return Err((
            codes::BAD_HEADER_VALUE,
            format!(
                "value of header `{}` contains CR or LF (header injection); remove the line break",
                name.as_str()
            ),
        ));
    }
    let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        (
            codes::BAD_HEADER_VALUE,
            format!(
                "value of header `{}` contains control characters; remove them",
                name.as_str()
            ),
        )
    })?;
    Ok((name, value))
}

/// True when a header name suggests that its value is a credential.
pub(crate) fn looks_secret(name: &HeaderName) -> bool {
    let n = name.as_str();
    [
        "authorization",
        "token",
        "secret",
        "key",
        "password",
        "passwd",
        "cookie",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Validates an absolute `http(s)://` URL.
pub(crate) fn http_url(raw: &str, code: &'static str, what: &str) -> Result<String, Invalid> {
    let bad = || {
        (
            code,
            format!(
                "{what} `{raw}` is not an absolute http(s) URL; write e.g. `https://example.com`"
            ),
        )
    };
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let uri: http::Uri = raw.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok {
        return Err(bad());
    }
    Ok(raw.to_string())
}

/// Parses a listener address: IP literal + port (`0.0.0.0:6193`, `[::]:6193`); never DNS.
pub(crate) fn listen(raw: &str) -> Result<SocketAddr, Invalid> {
    raw.trim().parse::<SocketAddr>().map_err(|_| {
        let hint = match raw.rsplit_once(':') {
            Some((host, _)) if host.parse::<IpAddr>().is_err() && !host.starts_with('[') => {
                " (host names are not resolved; use an IP address such as 127.0.0.1 or 0.0.0.0)"
            }
            None => " (the port is missing)",
            _ => "",
        };
        (
            codes::BAD_LISTEN,
            format!("`{raw}` is not an `IP:port` address{hint}; write e.g. `0.0.0.0:6193` or `[::]:6193`"),
        )
    })
}

/// W0013 for a listener on port 0: it would listen on a random port that nobody can reach.
pub(crate) fn port_zero_lint(addr: SocketAddr) -> Option<String> {
    (addr.port() == 0).then(|| {
        format!(
            "`{addr}` has port 0: the system would pick a random port that clients cannot know; write the port to listen on"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers() {
        let ok = |s: &str| server(s).map(|b| b.to_string());
        assert_eq!(ok("127.0.0.1:8000"), Ok("127.0.0.1:8000".into()));
        assert_eq!(ok("[::1]:8000"), Ok("[::1]:8000".into()));
        assert_eq!(ok("Backend.Local:80"), Ok("backend.local:80".into()));
        assert_eq!(
            server("127.0.0.1:0").err().map(|e| e.0),
            Some(codes::BAD_PORT)
        );
        assert_eq!(
            server("127.0.0.1:70000").err().map(|e| e.0),
            Some(codes::BAD_PORT)
        );
        assert_eq!(
            server("127.0.0.1").err().map(|e| e.0),
            Some(codes::BAD_SERVER)
        );
        assert_eq!(server("::1:80").err().map(|e| e.0), Some(codes::BAD_SERVER));
        assert_eq!(
            server("http://a:80").err().map(|e| e.0),
            Some(codes::BAD_SERVER)
        );
        assert_eq!(
            server("999.1.1.1:80").err().map(|e| e.0),
            Some(codes::BAD_SERVER)
        );
        assert_eq!(server("a b:80").err().map(|e| e.0), Some(codes::BAD_SERVER));
    }

    #[test]
    fn hosts() {
        assert_eq!(host_key("DEFAULT"), Ok(HostKey::Default));
        assert_eq!(host_key("My.Host."), Ok(HostKey::Exact("my.host".into())));
        assert_eq!(host_key("*.Ex.com"), Ok(HostKey::Wildcard("ex.com".into())));
        assert!(host_key("a.*.com").is_err());
        assert!(host_key("a..b").is_err());
        assert!(host_key("a:80").is_err());
        assert_eq!(host_key("[::1]"), Ok(HostKey::Exact("::1".into())));
    }

    #[test]
    fn headers() {
        let (n, v) = header("X-A: b, c ").unwrap_or_else(|_| unreachable!());
        assert_eq!((n.as_str(), v.as_bytes()), ("x-a", &b"b, c"[..]));
        assert_eq!(
            header("nocolon").err().map(|e| e.0),
            Some(codes::HEADER_NO_COLON)
        );
        assert_eq!(
            header("a b:c").err().map(|e| e.0),
            Some(codes::BAD_HEADER_NAME)
        );
        assert_eq!(
            header("a:b\r\nc:d").err().map(|e| e.0),
            Some(codes::BAD_HEADER_VALUE)
        );
        assert_eq!(
            header("Content-Length:1").err().map(|e| e.0),
            Some(codes::FORBIDDEN_HEADER)
        );
    }

    #[test]
    fn listeners_and_urls() {
        assert!(listen("[::]:6193").is_ok());
        assert!(listen("localhost:80").is_err());
        assert!(http_url("https://a.b/c", codes::BAD_REDIRECT, "x").is_ok());
        assert!(http_url("ftp://a.b", codes::BAD_REDIRECT, "x").is_err());
        assert!(http_url("/relative", codes::BAD_REDIRECT, "x").is_err());
    }
}
