//! HTTP Basic authentication (RFC 7617): `Authorization: Basic base64(user:password)`.

use crate::secret::ct_eq;

use super::base64::decode_std_padded;

/// Why a Basic `Authorization` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BasicError {
    /// The scheme is not `Basic`.
    WrongScheme,
    /// The credentials are not strict standard base64 (padding included).
    BadEncoding,
    /// The decoded credentials have no `:` between user and password.
    NoColon,
    /// Well formed, but not the configured credentials.
    Mismatch,
}

/// Splits `Scheme credentials` (scheme case-insensitive, one or more spaces) and returns the
/// credentials when the scheme is `scheme`.
pub fn strip_scheme<'a>(value: &'a [u8], scheme: &str) -> Option<&'a [u8]> {
    let space = value.iter().position(|&c| c == b' ')?;
    let (name, rest) = value.split_at(space);
    if !name.eq_ignore_ascii_case(scheme.as_bytes()) {
        return None;
    }
    let start = rest.iter().position(|&c| c != b' ')?;
    let creds = rest.get(start..)?;
    let end = creds
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(0, |i| i + 1);
    creds.get(..end).filter(|c| !c.is_empty())
}

/// Decodes a Basic `Authorization` header value into `user:password` bytes (checked for a `:`).
pub fn parse(value: &[u8]) -> Result<Vec<u8>, BasicError> {
    let b64 = strip_scheme(value, "basic").ok_or(BasicError::WrongScheme)?;
    let creds = decode_std_padded(b64).map_err(|_| BasicError::BadEncoding)?;
    if !creds.contains(&b':') {
        return Err(BasicError::NoColon);
    }
    Ok(creds)
}

/// Checks a Basic `Authorization` header value against the configured `user:password`, in time
/// independent of where the credentials differ.
pub fn verify(value: &[u8], expected: &[u8]) -> Result<(), BasicError> {
    let given = parse(value)?;
    if ct_eq(&given, expected) {
        Ok(())
    } else {
        Err(BasicError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::base64::encode_std;

    fn header(creds: &str) -> Vec<u8> {
        format!("Basic {}", encode_std(creds.as_bytes())).into_bytes()
    }

    #[test]
    fn accepts_the_configured_credentials_any_scheme_case() {
        assert_eq!(verify(&header("alice:s3cret"), b"alice:s3cret"), Ok(()));
        let v = format!("bAsIc   {}  ", encode_std(b"alice:s3cret"));
        assert_eq!(verify(v.as_bytes(), b"alice:s3cret"), Ok(()));
        // a password may contain ':'
        assert_eq!(verify(&header("a:b:c"), b"a:b:c"), Ok(()));
    }

    #[test]
    fn refuses_everything_else() {
        let want = b"alice:s3cret".as_slice();
        assert_eq!(
            verify(&header("alice:wrong"), want),
            Err(BasicError::Mismatch)
        );
        assert_eq!(
            verify(&header("alice:s3cre"), want),
            Err(BasicError::Mismatch)
        );
        assert_eq!(
            verify(&header("alices3cret"), want),
            Err(BasicError::NoColon)
        );
        assert_eq!(verify(b"Bearer abc", want), Err(BasicError::WrongScheme));
        assert_eq!(verify(b"Basic", want), Err(BasicError::WrongScheme));
        assert_eq!(verify(b"Basic ", want), Err(BasicError::WrongScheme));
        assert_eq!(
            verify(b"Basicx YWxpY2U6czNjcmV0", want),
            Err(BasicError::WrongScheme)
        );
        assert_eq!(
            verify(b"Basic YWxpY2U6czNjcmV0!", want),
            Err(BasicError::BadEncoding)
        );
        // unpadded and URL-safe forms are not accepted
        let unpadded = encode_std(b"alice:s3cre");
        let unpadded = format!("Basic {}", unpadded.trim_end_matches('='));
        assert_eq!(
            verify(unpadded.as_bytes(), want),
            Err(BasicError::BadEncoding)
        );
        assert_eq!(verify(b"Basic YW Jj", want), Err(BasicError::BadEncoding));
    }
}
