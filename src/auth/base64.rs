//! Strict base64 (RFC 4648) for credentials: the standard alphabet with padding (HTTP Basic) and
//! the URL-safe alphabet without padding (JWT, RFC 7515 section 2).
//!
//! Strict means one encoding per byte string: the other alphabet's characters, whitespace,
//! misplaced or missing padding and non-zero trailing bits are all refused, so two different
//! strings can never decode to the same credentials.

/// Why a string is not strict base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Base64Error {
    /// A character outside the alphabet (including the other alphabet's `+`/`/` or `-`/`_`).
    BadChar,
    /// A length no encoding produces.
    BadLength,
    /// Padding where none is allowed, in the wrong place, or missing.
    BadPadding,
    /// The unused low bits of the last character are not zero (a non-canonical encoding).
    NonCanonical,
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn value(c: u8, url: bool) -> Option<u8> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' if !url => 62,
        b'/' if !url => 63,
        b'-' if url => 62,
        b'_' if url => 63,
        _ => return None,
    };
    Some(v)
}

/// Decodes unpadded characters of one alphabet; `s.len() % 4 != 1` must already hold.
fn decode_unpadded(s: &[u8], url: bool) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &c in s {
        let v = value(c, url).ok_or(Base64Error::BadChar)?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    // 2 or 4 bits are left over after a partial group; they must be zero.
    if bits > 0 && acc & ((1 << bits) - 1) != 0 {
        return Err(Base64Error::NonCanonical);
    }
    Ok(out)
}

/// Decodes base64url without padding (the JWT encoding).
pub fn decode_url_nopad(s: &[u8]) -> Result<Vec<u8>, Base64Error> {
    if s.contains(&b'=') {
        return Err(Base64Error::BadPadding);
    }
    if s.len() % 4 == 1 {
        return Err(Base64Error::BadLength);
    }
    decode_unpadded(s, true)
}

/// Decodes standard base64 with the mandatory `=` padding (HTTP Basic credentials).
pub fn decode_std_padded(s: &[u8]) -> Result<Vec<u8>, Base64Error> {
    if s.len() % 4 != 0 {
        return Err(Base64Error::BadLength);
    }
    let body_len = s.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let (body, pad) = s.split_at(body_len);
    let expected_pad = match body.len() % 4 {
        0 => 0,
        2 => 2,
        3 => 1,
        _ => return Err(Base64Error::BadPadding),
    };
    if pad.len() != expected_pad {
        return Err(Base64Error::BadPadding);
    }
    if body.contains(&b'=') {
        return Err(Base64Error::BadPadding);
    }
    decode_unpadded(body, false)
}

fn encode(data: &[u8], table: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    let sym = |i: u32| char::from(table.get((i & 63) as usize).copied().unwrap_or(b'A'));
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        if chunk.len() > 1 {
            out.push(sym(n >> 6));
        } else if pad {
            out.push('=');
        }
        if chunk.len() > 2 {
            out.push(sym(n));
        } else if pad {
            out.push('=');
        }
    }
    out
}

/// Encodes as base64url without padding.
pub fn encode_url_nopad(data: &[u8]) -> String {
    encode(data, URL, false)
}

/// Encodes as standard base64 with padding.
pub fn encode_std(data: &[u8]) -> String {
    encode(data, STD, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc4648_vectors_round_trip() {
        for (plain, std) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_std(plain.as_bytes()), std);
            assert_eq!(decode_std_padded(std.as_bytes()).unwrap(), plain.as_bytes());
            let url = std.trim_end_matches('=');
            assert_eq!(encode_url_nopad(plain.as_bytes()), url);
            assert_eq!(decode_url_nopad(url.as_bytes()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn alphabets_do_not_mix() {
        assert_eq!(encode_std(&[0xfb, 0xff]), "+/8=");
        assert_eq!(encode_url_nopad(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode_url_nopad(b"+/8"), Err(Base64Error::BadChar));
        assert_eq!(decode_std_padded(b"-_8="), Err(Base64Error::BadChar));
    }

    #[test]
    fn strictness() {
        assert_eq!(decode_url_nopad(b"Zg=="), Err(Base64Error::BadPadding));
        assert_eq!(decode_url_nopad(b"Zm9vY"), Err(Base64Error::BadLength));
        assert_eq!(decode_url_nopad(b"Zh"), Err(Base64Error::NonCanonical));
        assert_eq!(decode_url_nopad(b"Zm8"), Ok(b"fo".to_vec()));
        assert_eq!(decode_url_nopad(b"Zm9"), Err(Base64Error::NonCanonical));
        assert_eq!(decode_url_nopad(b"Zm-"), Err(Base64Error::NonCanonical));
        assert_eq!(decode_url_nopad(b"Zm 9"), Err(Base64Error::BadChar));
        assert_eq!(decode_std_padded(b"Zg"), Err(Base64Error::BadLength));
        assert_eq!(decode_std_padded(b"Zg=a"), Err(Base64Error::BadPadding));
        assert_eq!(decode_std_padded(b"Z==="), Err(Base64Error::BadPadding));
        assert_eq!(decode_std_padded(b"Zh=="), Err(Base64Error::NonCanonical));
        assert_eq!(decode_std_padded(b"Zm8=Zm8="), Err(Base64Error::BadPadding));
        assert_eq!(decode_std_padded(b"===="), Err(Base64Error::BadPadding));
    }
}
