//! Strict HTTP/1.x request heads (RFC 9112 sections 2 to 6, RFC 9110 section 5).
//!
//! Parsed before pingora sees a byte, so that every class of request that proxies and origins may
//! frame differently (request smuggling) is refused here with a 4xx/5xx of our own and never
//! forwarded. Pingora's own parser then only ever reads heads that passed this one.

use std::ops::Range;

use super::authority;
use super::Refusal;

/// Limits of one request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Request line plus header fields, in bytes (431 above it).
    pub max_head: usize,
    /// Request target, in bytes (414 above it).
    pub max_target: usize,
    /// Number of header field lines (431 above it).
    pub max_fields: usize,
}

/// How the body of a request is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, up to and including the empty line.
    pub len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// `HTTP/1.0`.
    pub http10: bool,
    /// An HTTP/1.1 request with an `Upgrade` field: after a 101 the connection is a tunnel.
    pub upgrade: bool,
    /// The byte range of an `Expect: 100-continue` line.
    pub expect_continue: Option<Range<usize>>,
}

/// `Ok(None)`: the head is not complete yet (and nothing seen so far is wrong).
pub fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Option<Head>, Refusal> {
    let mut lines = Lines { buf, pos: 0 };
    let Some(line) = lines.next()? else {
        // no complete request line yet: bound what an incomplete one may grow to
        if buf.len() > limits.max_target + 64 {
            return Err(too_long_line(buf, limits));
        }
        return Ok(None);
    };
    let request = request_line(line, limits)?;
    let mut fields = Fields::default();
    let mut count = 0usize;
    loop {
        let start = lines.pos;
        let Some(line) = lines.next()? else {
            if buf.len() > limits.max_head {
                return Err(Refusal::new(431, "request head too large"));
            }
            return Ok(None);
        };
        if lines.pos > limits.max_head {
            return Err(Refusal::new(431, "request head too large"));
        }
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > limits.max_fields {
            return Err(Refusal::new(431, "too many header fields"));
        }
        let (name, value) = field_line(line)?;
        fields.note(name, value, start..lines.pos)?;
    }
    let head = conclude(&request, &fields, lines.pos)?;
    Ok(Some(head))
}

/// A request line's parts.
struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    http10: bool,
}

fn request_line<'a>(line: &'a [u8], limits: &HeadLimits) -> Result<RequestLine<'a>, Refusal> {
    let mut parts = line.splitn(3, |b| *b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) {
        return Err(Refusal::new(400, "invalid request method"));
    }
    if target.len() > limits.max_target {
        return Err(Refusal::new(414, "request target too long"));
    }
    if target.is_empty()
        || !target
            .iter()
            .all(|b| (0x21..=0x7e).contains(b) && *b != b'#')
    {
        // a space, a control byte, a fragment or a non-ASCII byte in the target
        return Err(Refusal::new(400, "invalid request target"));
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Refusal::new(505, "HTTP version not supported"));
        }
        _ => return Err(Refusal::new(400, "invalid request line")),
    };
    match method {
        b"CONNECT" => return Err(Refusal::new(405, "CONNECT is not proxied")),
        b"TRACE" => return Err(Refusal::new(405, "TRACE is not allowed")),
        b"PRI" => return Err(Refusal::new(400, "invalid request method")),
        _ => {}
    }
    Ok(RequestLine {
        method,
        target,
        http10,
    })
}

/// `name: value` with the value's surrounding whitespace trimmed.
fn field_line(line: &[u8]) -> Result<(&[u8], &[u8]), Refusal> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Refusal::new(400, "obsolete line folding"));
    }
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return Err(Refusal::new(400, "header field without a colon"));
    };
    let (name, rest) = line.split_at(colon);
    if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
        // includes whitespace between the name and the colon (RFC 9112 section 5.1)
        return Err(Refusal::new(400, "invalid header field name"));
    }
    let value = trim_ows(rest.get(1..).unwrap_or_default());
    if !value.iter().all(|b| is_field_byte(*b)) {
        return Err(Refusal::new(400, "invalid byte in a header field value"));
    }
    Ok((name, value))
}

/// What the framing and routing decisions need from the header fields.
#[derive(Default)]
struct Fields<'a> {
    host: Option<&'a [u8]>,
    hosts: usize,
    content_length: Option<u64>,
    transfer_encoding: usize,
    chunked: bool,
    upgrade: bool,
    expect_continue: Option<Range<usize>>,
}

impl<'a> Fields<'a> {
    fn note(&mut self, name: &[u8], value: &'a [u8], line: Range<usize>) -> Result<(), Refusal> {
        if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
            self.host = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if self.content_length.is_some() {
                return Err(Refusal::new(400, "more than one Content-Length"));
            }
            self.content_length = Some(content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding += 1;
            if self.transfer_encoding > 1 {
                return Err(Refusal::new(400, "more than one Transfer-Encoding"));
            }
            if value.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else if value
                .split(|b| *b == b',')
                .any(|c| trim_ows(c).eq_ignore_ascii_case(b"chunked"))
            {
                return Err(Refusal::new(400, "invalid Transfer-Encoding"));
            } else {
                return Err(Refusal::new(501, "transfer coding not implemented"));
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") || self.expect_continue.is_some() {
                return Err(Refusal::new(417, "unsupported expectation"));
            }
            self.expect_continue = Some(line);
        }
        Ok(())
    }
}

fn conclude(request: &RequestLine<'_>, fields: &Fields<'_>, len: usize) -> Result<Head, Refusal> {
    match (fields.hosts, request.http10) {
        (0, false) => return Err(Refusal::new(400, "missing Host")),
        (0, true) | (1, _) => {}
        _ => return Err(Refusal::new(400, "more than one Host")),
    }
    if let Some(host) = fields.host {
        if !authority::is_valid(host) {
            return Err(Refusal::new(400, "invalid Host"));
        }
    }
    target_form(request, fields.host)?;
    let framing = match (fields.chunked, fields.content_length) {
        (true, Some(_)) => {
            return Err(Refusal::new(
                400,
                "both Transfer-Encoding and Content-Length",
            ))
        }
        (true, None) if request.http10 => {
            return Err(Refusal::new(
                400,
                "Transfer-Encoding in an HTTP/1.0 request",
            ))
        }
        (true, None) => Framing::Chunked,
        (false, Some(0) | None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    Ok(Head {
        len,
        framing,
        http10: request.http10,
        upgrade: fields.upgrade && !request.http10,
        expect_continue: fields.expect_continue.clone(),
    })
}

/// origin-form; absolute-form only with a `Host` naming the same authority; `*` only for OPTIONS.
fn target_form(request: &RequestLine<'_>, host: Option<&[u8]>) -> Result<(), Refusal> {
    let target = request.target;
    if target.first() == Some(&b'/') {
        return Ok(());
    }
    if target == b"*" {
        return match request.method {
            b"OPTIONS" => Ok(()),
            _ => Err(Refusal::new(400, "asterisk-form outside OPTIONS")),
        };
    }
    let rest = strip_prefix_ci(target, b"http://").or_else(|| strip_prefix_ci(target, b"https://"));
    let Some(rest) = rest else {
        return Err(Refusal::new(400, "invalid request target"));
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or_default();
    match host {
        Some(h) if h.eq_ignore_ascii_case(authority) => Ok(()),
        _ => Err(Refusal::new(
            400,
            "absolute-form target and Host do not agree",
        )),
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// `1*DIGIT`, at most 19 digits (fits a u64).
pub(super) fn content_length(value: &[u8]) -> Result<u64, Refusal> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(Refusal::new(400, "invalid Content-Length"));
    }
    Ok(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// An oversized request line: 414 when it is the target that is long.
fn too_long_line(buf: &[u8], limits: &HeadLimits) -> Refusal {
    let target_len = buf.splitn(3, |b| *b == b' ').nth(1).map_or(0, <[u8]>::len);
    if target_len > limits.max_target {
        Refusal::new(414, "request target too long")
    } else {
        Refusal::new(400, "request line too long")
    }
}

/// Lines ending in CRLF; a bare CR or a bare LF is refused.
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<Option<&'a [u8]>, Refusal> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(lf) = rest.iter().position(|b| *b == b'\n') else {
            if let Some(cr) = rest.iter().position(|b| *b == b'\r') {
                if cr + 1 < rest.len() {
                    return Err(Refusal::new(400, "bare CR in the request head"));
                }
            }
            return Ok(None);
        };
        let line = rest.get(..lf).unwrap_or_default();
        let Some((b'\r', line)) = line.split_last() else {
            return Err(Refusal::new(400, "bare LF in the request head"));
        };
        if line.contains(&b'\r') {
            return Err(Refusal::new(400, "bare CR in the request head"));
        }
        self.pos += lf + 1;
        Ok(Some(line))
    }
}

/// RFC 9110 `tchar`.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte allowed in a field value: HTAB, SP, VCHAR, obs-text.
pub(super) fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_head: 4096,
        max_target: 1024,
        max_fields: 20,
    };

    fn status(req: &str) -> u16 {
        match parse(req.as_bytes(), &LIMITS) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(r) => r.status,
        }
    }

    #[test]
    fn well_formed_heads_pass() {
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(
            status("GET http://a.example:8080/x HTTP/1.1\r\nHost: a.example:8080\r\n\r\n"),
            200
        );
        let h = parse(
            b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            &LIMITS,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
    }

    #[test]
    fn incomplete_heads_wait() {
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a"), 0);
        assert_eq!(status("GET / HTTP/1.1\r"), 0);
    }

    #[test]
    fn desync_classes_are_refused() {
        for (req, code) in [
            ("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
            ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: <script>\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: evil.example/path\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: localhost:abc\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
            ("GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417),
        ] {
            assert_eq!(status(req), code, "{req:?}");
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000));
        assert_eq!(status(&long), 414);
        let partial = format!("GET /{}", "a".repeat(2000));
        assert_eq!(status(&partial), 414);
        let many: String = (0..30).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            431
        );
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(5000)
        );
        assert_eq!(status(&big), 431);
    }
}
