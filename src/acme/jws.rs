//! The account key and the JSON Web Signatures of ACME requests (RFC 8555 §6.2, RFC 7515):
//! ES256 over P-256 with ring, the JWK of the public key and its RFC 7638 thumbprint.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::auth::base64::encode_url_nopad as b64;

/// Why an account key cannot be made or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The stored PKCS#8 document is not a P-256 key.
    Invalid,
    /// The system's random source failed.
    Random,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid => f.write_str("the stored ACME account key is not an ECDSA P-256 key"),
            Self::Random => f.write_str("the system random source failed"),
        }
    }
}

impl std::error::Error for KeyError {}

/// An ACME account key (ECDSA P-256), with its PKCS#8 form for storage.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKey(<secret>)")
    }
}

impl AccountKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Random)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// The key stored as PKCS#8 DER.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| KeyError::Invalid)?;
        Ok(Self {
            pair,
            pkcs8: pkcs8.to_vec(),
            rng,
        })
    }

    /// PKCS#8 DER of the private key (for the account file).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK (members in the RFC 7638 order).
    pub fn jwk(&self) -> Value {
        let (x, y) = self.coordinates();
        json!({ "crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y) })
    }

    /// The RFC 7638 thumbprint of the JWK (base64url of its SHA-256), the second half of every
    /// key authorization.
    pub fn thumbprint(&self) -> String {
        let (x, y) = self.coordinates();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64(x),
            b64(y)
        );
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// A flattened JWS of `payload` (`None`: the empty payload of POST-as-GET) for `url`, signed
    /// with `kid` (the account URL) or, before there is one, with the JWK itself.
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<Vec<u8>, KeyError> {
        let mut protected = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match kid {
            Some(k) => protected["kid"] = json!(k),
            None => protected["jwk"] = self.jwk(),
        }
        let protected = b64(protected.to_string().as_bytes());
        let payload = payload.map_or_else(String::new, |p| b64(p.to_string().as_bytes()));
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| KeyError::Random)?;
        let body = json!({
            "protected": protected,
            "payload": payload,
            "signature": b64(signature.as_ref()),
        });
        Ok(body.to_string().into_bytes())
    }

    /// The x and y coordinates of the public key (uncompressed point `04 || x || y`).
    fn coordinates(&self) -> (&[u8], &[u8]) {
        let point = self.pair.public_key().as_ref();
        let xy = point.get(1..).unwrap_or(&[]);
        xy.split_at(xy.len() / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn signature_verifies_and_key_round_trips() {
        let key = AccountKey::generate().unwrap();
        let again = AccountKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint());
        let body = key
            .sign("https://ca/new", "n1", None, Some(&json!({"a": 1})))
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let input = format!(
            "{}.{}",
            v["protected"].as_str().unwrap(),
            v["payload"].as_str().unwrap()
        );
        let sig =
            crate::auth::base64::decode_url_nopad(v["signature"].as_str().unwrap().as_bytes())
                .unwrap();
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.pair.public_key().as_ref());
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
        let protected =
            crate::auth::base64::decode_url_nopad(v["protected"].as_str().unwrap().as_bytes())
                .unwrap();
        let protected: Value = serde_json::from_slice(&protected).unwrap();
        assert_eq!(protected["jwk"]["crv"], "P-256");
        assert_eq!(key.thumbprint().len(), 43);
        assert!(AccountKey::from_pkcs8(b"junk").is_err());
    }
}
