//! Request paths: percent-decoding once, refusing what could escape or hide, and encoding
//! validated segments back for redirects.

use super::*;

/// A request path that passed decoding and sanitising.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CleanPath {
    /// Decoded, validated, non-empty segments.
    pub(super) segments: Vec<String>,
    /// Whether the raw path ended with `/`.
    pub(super) trailing_slash: bool,
}

/// Why a request path was refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum PathError {
    /// Malformed or dangerous: `400`.
    BadRequest,
    /// Hidden (dot) segment: `404`.
    Hidden,
}

/// Percent-encodes a decoded segment so that it is a valid `pchar*` again.
pub(super) fn encode_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in segment.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0x0f] {
                out.push(char::from(
                    HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
}

/// Decodes and validates the raw request path.
pub(super) fn clean_path(raw: &str) -> Result<CleanPath, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::BadRequest);
    };
    let mut segments = Vec::new();
    let mut hidden = false;
    for raw_segment in rest.split('/') {
        if raw_segment.is_empty() {
            continue;
        }
        let segment = decode_segment(raw_segment)?;
        if segment == "." || segment == ".." || segment.contains('\\') {
            return Err(PathError::BadRequest);
        }
        if segment.starts_with('.') && !(segments.is_empty() && segment == WELL_KNOWN) {
            // Keep validating: a later malformed segment is still a 400.
            hidden = true;
        }
        segments.push(segment);
    }
    if hidden {
        return Err(PathError::Hidden);
    }
    Ok(CleanPath {
        segments,
        trailing_slash: raw.ends_with('/'),
    })
}

/// Percent-decodes one segment once, refusing bad escapes and dangerous bytes.
pub(super) fn decode_segment(raw: &str) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        let decoded = if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    let v = (hi << 4) | lo;
                    if v == b'/' || v == b'\\' || v == 0 {
                        return Err(PathError::BadRequest);
                    }
                    v
                }
                _ => return Err(PathError::BadRequest),
            }
        } else {
            b
        };
        if decoded < 0x20 || decoded == 0x7f {
            return Err(PathError::BadRequest);
        }
        out.push(decoded);
    }
    String::from_utf8(out).map_err(|_| PathError::BadRequest)
}

pub(super) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
