//! RS256 session JWTs and the JWKS that lets the Stytch SDKs verify them locally.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, pkcs1::DecodeRsaPrivateKey};
use serde::Serialize;

use crate::crypto::sha256;

/// A public key in JWKS form, with the fields the contract lists.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub key_ops: Vec<&'static str>,
    pub alg: &'static str,
    pub kid: String,
    pub n: String,
    pub e: String,
    pub x5c: Vec<String>,
    #[serde(rename = "x5tS256")]
    pub x5t_s256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the JWT signing key is not a PEM RSA private key: {0}")]
    BadKey(String),
    #[error("signing failed")]
    Signing,
    #[error("the JWT does not verify")]
    Invalid,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtKeys(kid={})", self.jwk.kid)
    }
}

impl JwtKeys {
    /// From a PKCS#1 or PKCS#8 PEM RSA private key (2048 bits or more).
    pub fn from_pem(pem: &str) -> Result<Self, JwtError> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| JwtError::BadKey(e.to_string()))?;
        if key.size() < 256 {
            return Err(JwtError::BadKey(
                "the key must have at least 2048 bits".into(),
            ));
        }
        Self::from_key(&key)
    }

    /// A fresh 2048-bit key from the OS CSPRNG (the development server's choice).
    pub fn generate() -> Result<Self, JwtError> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| JwtError::BadKey(e.to_string()))?;
        Self::from_key(&key)
    }

    fn from_key(key: &RsaPrivateKey) -> Result<Self, JwtError> {
        let pem = key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| JwtError::BadKey(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| JwtError::BadKey(e.to_string()))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let decoding = DecodingKey::from_rsa_components(&n, &e)
            .map_err(|e| JwtError::BadKey(e.to_string()))?;
        // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
        let thumbprint = sha256(format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#).as_bytes());
        let jwk = Jwk {
            kty: "RSA",
            use_: "sig",
            key_ops: vec!["verify"],
            alg: "RS256",
            kid: format!("jwk-{}", URL_SAFE_NO_PAD.encode(&thumbprint[..16])),
            n,
            e,
            x5c: Vec::new(),
            x5t_s256: String::new(),
        };
        Ok(JwtKeys {
            encoding,
            decoding,
            jwk,
        })
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, JwtError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.jwk.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| JwtError::Signing)
    }

    /// Checks signature, audience and issuer. Expiry is not checked: an expired JWT of a live
    /// session is fine, because the session is looked up by its id.
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        issuer: &str,
    ) -> Result<serde_json::Value, JwtError> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["aud", "iss", "sub"]);
        jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| JwtError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signs_and_verifies_with_audience_and_issuer() {
        let keys = JwtKeys::generate().unwrap();
        let token = keys
            .sign(&json!({"aud": "app-1", "iss": "http://x", "sub": "user-1", "exp": 1}))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.jwk().kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert!(keys.verify(&token, "app-1", "http://x").is_ok());
        assert!(keys.verify(&token, "app-2", "http://x").is_err());
        assert!(keys.verify(&token, "app-1", "http://y").is_err());
        let other = JwtKeys::generate().unwrap();
        assert!(other.verify(&token, "app-1", "http://x").is_err());
        assert!(keys.verify("not.a.jwt", "app-1", "http://x").is_err());
    }
}
