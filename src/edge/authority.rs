//! `Host` / `:authority` syntax (RFC 9110 section 7.2, RFC 3986 section 3.2.2), stricter than the
//! RFC: a name is letters, digits, `-`, `_` and `.`; an IP literal must parse; a port is 1 to 5
//! digits up to 65535. Anything else (spaces, `<`, `/`, `@`, escapes, an open bracket) is refused
//! before it can reach routing, an upstream or `X-Forwarded-Host`.

/// Longest accepted host name (DNS limit).
const MAX_NAME: usize = 253;

/// True when `value` is `host[:port]` with a well-formed host.
pub fn is_valid(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => {
            let Some(close) = value.iter().position(|b| *b == b']') else {
                return false;
            };
            let literal = value.get(1..close).unwrap_or_default();
            let ok = std::str::from_utf8(literal)
                .ok()
                .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
            if !ok {
                return false;
            }
            match value.get(close + 1..).unwrap_or_default() {
                [] => return true,
                [b':', port @ ..] => (literal, Some(port)),
                _ => return false,
            }
        }
        _ => match value.iter().rposition(|b| *b == b':') {
            Some(colon) => (
                value.get(..colon).unwrap_or_default(),
                value.get(colon + 1..),
            ),
            None => (value, None),
        },
    };
    if let Some(port) = port {
        if !valid_port(port) {
            return false;
        }
    }
    if value.first() == Some(&b'[') {
        return true;
    }
    !host.is_empty()
        && host.len() <= MAX_NAME
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_port(port: &[u8]) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65_535
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "a",
            "a.example",
            "A-b_c.example.:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[2001:db8::1]",
        ] {
            assert!(is_valid(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "<script>",
            "evil.example/path",
            "localhost:abc",
            "[::1",
            "[::1]x",
            "[zz]",
            "a:",
            "a:65536",
            "a:123456",
            "user@a",
            "a%2eb",
            "::1",
            ":80",
        ] {
            assert!(!is_valid(bad.as_bytes()), "{bad}");
        }
    }
}
