//! Aralez's own short responses: the status texts every error answer carries, and the raw bytes
//! the connection gate writes itself before pingora is involved.

/// The short body of one of our own answers.
pub fn status_text(code: u16) -> &'static str {
    match code {
        301 => "moved permanently\n",
        400 => "bad request\n",
        401 => "authentication required\n",
        404 => "no route for this host and path\n",
        405 => "method not allowed\n",
        408 => "request timeout: the request did not arrive in time\n",
        413 => "request body too large\n",
        414 => "request target too long\n",
        417 => "expectation failed\n",
        429 => "too many requests\n",
        431 => "request header fields too large\n",
        501 => "not implemented\n",
        502 => "bad gateway: the upstream failed\n",
        503 => "service unavailable: no usable backend\n",
        504 => "gateway timeout\n",
        505 => "HTTP version not supported\n",
        508 => "loop detected: this request already passed through this proxy\n",
        _ => "error\n",
    }
}

fn reason(code: u16) -> &'static str {
    http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// A complete HTTP/1.1 response that closes the connection (`Connection: close`).
pub fn closing_response(code: u16) -> Vec<u8> {
    let body = if code == 503 {
        "service unavailable: too many connections\n"
    } else {
        status_text(code)
    };
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        reason(code),
        body.len()
    );
    if code == 503 {
        out.push_str("Retry-After: 1\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// `HTTP/1.1 100 Continue`, sent when the gate reads a body the client holds back for it.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The server's HTTP/2 preface (an empty SETTINGS frame) followed by GOAWAY (last stream 0) with
/// the given error code: how an HTTP/2 connection is refused before pingora takes it.
pub fn h2_goaway(error_code: u32) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    out.extend_from_slice(&[0, 0, 8, 0x7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&error_code.to_be_bytes());
    out
}

/// HTTP/2 `NO_ERROR`.
pub const H2_NO_ERROR: u32 = 0;
/// HTTP/2 `PROTOCOL_ERROR`.
pub const H2_PROTOCOL_ERROR: u32 = 1;
