//! Request-path checks that apply to every protocol (HTTP/1.x and HTTP/2 alike), before routing.

use aralez_compiler::EscapedSlashes;

use super::Refusal;

/// Refuses control bytes (raw or percent-encoded), malformed escapes and, under
/// `escaped_slashes: reject`, an encoded `/` or `\` in the path (not the query): each could make
/// the origin see a different path than the one routing and auth decided on.
pub fn check(path: &[u8], escaped_slashes: EscapedSlashes) -> Result<(), Refusal> {
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        if b < 0x20 || b == 0x7f {
            return Err(Refusal::new(400, "control byte in the path"));
        }
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                path.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                path.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            ) else {
                return Err(Refusal::new(400, "malformed percent-escape in the path"));
            };
            let v = hi * 16 + lo;
            if v < 0x20 || v == 0x7f {
                return Err(Refusal::new(400, "encoded control byte in the path"));
            }
            if escaped_slashes == EscapedSlashes::Reject && (v == 0x2f || v == 0x5c) {
                return Err(Refusal::new(400, "encoded slash in the path"));
            }
            i += 3;
            continue;
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let r = EscapedSlashes::Reject;
        assert!(check(b"/a/b%20c", r).is_ok());
        for bad in [
            &b"/x/..%2fprivate"[..],
            b"/%2Fprivate",
            b"/private%5c",
            b"/private%00",
            b"/a%zz",
            b"/a%4",
            b"/a\x01",
        ] {
            assert!(check(bad, r).is_err(), "{bad:?}");
        }
        assert!(check(b"/x/..%2fprivate", EscapedSlashes::Keep).is_ok());
        assert!(check(b"/private%00", EscapedSlashes::Keep).is_err());
    }
}
