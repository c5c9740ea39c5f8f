//! Request-path checks that apply to every protocol (HTTP/1.x and HTTP/2 alike), before routing.

use aralez_compiler::EscapedSlashes;

use super::Refusal;

/// Under `escaped_slashes: reject`, refuses an encoded `/` or `\` in the path (not the query):
/// routing would see one segment where the origin may see two (`/x/..%2fprivate`). Control
/// bytes, raw or encoded, and malformed escapes are refused for every setting by the route
/// matcher's normalisation (`aralez_compiler::matcher::normalize_path`), which every routed
/// request goes through.
pub fn check(path: &[u8], escaped_slashes: EscapedSlashes) -> Result<(), Refusal> {
    if escaped_slashes == EscapedSlashes::Keep {
        return Ok(());
    }
    let encoded_slash = path
        .windows(3)
        .any(|w| matches!(w, [b'%', b'2', b'f' | b'F'] | [b'%', b'5', b'c' | b'C']));
    match encoded_slash {
        true => Err(Refusal::new(400, "encoded slash in the path")),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a routed request meets: this check, then the matcher's normalisation.
    fn refused(path: &[u8], setting: EscapedSlashes) -> bool {
        check(path, setting).is_err()
            || std::str::from_utf8(path).map_or(true, |p| {
                aralez_compiler::matcher::normalize_path(p).is_err()
            })
    }

    #[test]
    fn paths() {
        let r = EscapedSlashes::Reject;
        assert!(!refused(b"/a/b%20c", r));
        for bad in [
            &b"/x/..%2fprivate"[..],
            b"/%2Fprivate",
            b"/private%5c",
            b"/private%00",
            b"/a%zz",
            b"/a%4",
            b"/a\x01",
        ] {
            assert!(refused(bad, r), "{bad:?}");
        }
        assert!(!refused(b"/x/..%2fprivate", EscapedSlashes::Keep));
        assert!(refused(b"/private%00", EscapedSlashes::Keep));
    }
}
