//! API key authentication: the `x-api-key` request header.

use crate::secret::ct_eq;

/// The header that carries the key.
pub const HEADER: &str = "x-api-key";

/// Checks an `x-api-key` value against the configured key in constant time (for a given length).
/// The value is compared byte for byte: no trimming, no case folding.
pub fn verify(given: &[u8], expected: &[u8]) -> bool {
    !expected.is_empty() && ct_eq(given, expected)
}

#[cfg(test)]
mod tests {
    use super::verify;

    #[test]
    fn exact_match_only() {
        assert!(verify(b"k-0123456789abcdef", b"k-0123456789abcdef"));
        assert!(!verify(b"K-0123456789ABCDEF", b"k-0123456789abcdef"));
        assert!(!verify(b"k-0123456789abcde", b"k-0123456789abcdef"));
        assert!(!verify(b"", b"k"));
        assert!(!verify(b"", b""));
    }
}
