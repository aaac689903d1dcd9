//! RS256 session JWTs and the JWKS that lets the Stytch SDKs verify them locally.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;

use crate::crypto::sha256;

/// A public key in JWKS form, with the fields the contract lists.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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

impl Jwk {
    /// The JWK of an RS256 verification key from its modulus and exponent (base64url).
    pub fn rsa(kid: &str, n: &str, e: &str) -> Jwk {
        Jwk {
            kty: "RSA",
            use_: "sig",
            key_ops: vec!["verify"],
            alg: "RS256",
            kid: kid.to_owned(),
            n: n.to_owned(),
            e: e.to_owned(),
            x5c: Vec::new(),
            x5t_s256: String::new(),
        }
    }
}

/// The `kid` of a JWT's header, read without verifying anything.
pub fn header_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Checks an RS256 JWT against the public key (`n`, `e`, base64url), its audience and issuer,
/// as `JwtKeys::verify` does.
pub fn verify_with_public_key(
    n: &str,
    e: &str,
    token: &str,
    audience: &str,
    issuer: &str,
) -> Result<serde_json::Value, JwtError> {
    let key = DecodingKey::from_rsa_components(n, e).map_err(|_| JwtError::Invalid)?;
    verify_with(&key, token, audience, issuer)
}

fn verify_with(
    key: &DecodingKey,
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
    jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| JwtError::Invalid)
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

/// The deployment's RSA key, parsed once. Signing is aws-lc's (constant-time, blinded), not the
/// `rsa` crate's, which has an open timing advisory (RUSTSEC-2023-0071).
pub struct JwtKeys {
    signing: KeyPair,
    /// `{"alg":"RS256","kid":...,"typ":"JWT"}` base64url-encoded: the same for every token.
    header: String,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtKeys(kid={})", self.jwk.kid)
    }
}

/// The DER inside a PEM block, and the block's label.
fn pem_to_der(pem: &str) -> Result<(String, Vec<u8>), JwtError> {
    let bad = |why: &str| JwtError::BadKey(why.to_owned());
    let begin = pem
        .find("-----BEGIN ")
        .ok_or_else(|| bad("no PEM BEGIN line"))?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let (label, rest) = rest
        .split_once("-----")
        .ok_or_else(|| bad("a malformed PEM BEGIN line"))?;
    let end_line = format!("-----END {label}-----");
    let body = rest
        .split(end_line.as_str())
        .next()
        .filter(|_| rest.contains(end_line.as_str()))
        .ok_or_else(|| bad("no matching PEM END line"))?;
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(base64)
        .map_err(|_| bad("the PEM body is not base64"))?;
    Ok((label.to_owned(), der))
}

impl JwtKeys {
    /// From a PKCS#1 or PKCS#8 PEM RSA private key (2048 bits or more).
    pub fn from_pem(pem: &str) -> Result<Self, JwtError> {
        let (label, der) = pem_to_der(pem)?;
        let key = match label.as_str() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => KeyPair::from_der(&der),
            other => {
                return Err(JwtError::BadKey(format!(
                    "a PEM {other:?} block, not PRIVATE KEY or RSA PRIVATE KEY"
                )));
            }
        }
        .map_err(|e| JwtError::BadKey(e.to_string()))?;
        if key.public_modulus_len() < 256 {
            return Err(JwtError::BadKey(
                "the key must have at least 2048 bits".into(),
            ));
        }
        Self::from_key(key)
    }

    /// A fresh 2048-bit key (the development server's choice).
    pub fn generate() -> Result<Self, JwtError> {
        Ok(Self::generate_with_pkcs8()?.0)
    }

    /// A fresh 2048-bit key, and its private key as PKCS#8 DER (to be sealed and stored).
    pub fn generate_with_pkcs8() -> Result<(Self, Vec<u8>), JwtError> {
        let key =
            KeyPair::generate(KeySize::Rsa2048).map_err(|e| JwtError::BadKey(e.to_string()))?;
        let pkcs8: Pkcs8V1Der<'static> = key
            .as_der()
            .map_err(|_| JwtError::BadKey("the new key does not encode".into()))?;
        let pkcs8 = pkcs8.as_ref().to_vec();
        Ok((Self::from_key(key)?, pkcs8))
    }

    /// From a PKCS#8 DER private key, as `generate_with_pkcs8` gives it.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, JwtError> {
        Self::from_key(KeyPair::from_pkcs8(der).map_err(|e| JwtError::BadKey(e.to_string()))?)
    }

    fn from_key(key: KeyPair) -> Result<Self, JwtError> {
        let public = key.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let decoding = DecodingKey::from_rsa_components(&n, &e)
            .map_err(|e| JwtError::BadKey(e.to_string()))?;
        // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
        let thumbprint = sha256(format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#).as_bytes());
        let kid = format!("jwk-{}", URL_SAFE_NO_PAD.encode(&thumbprint[..16]));
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": kid});
        let jwk = Jwk::rsa(&kid, &n, &e);
        Ok(JwtKeys {
            signing: key,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            decoding,
            jwk,
        })
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// An RS256 JWT of `claims`, with `typ` and the key's `kid` in its header.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, JwtError> {
        let payload = serde_json::to_vec(claims).map_err(|_| JwtError::Signing)?;
        let mut token = format!("{}.{}", self.header, URL_SAFE_NO_PAD.encode(payload));
        let mut signature = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| JwtError::Signing)?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }

    /// Checks signature, audience and issuer. Expiry is not checked: an expired JWT of a live
    /// session is fine, because the session is looked up by its id.
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        issuer: &str,
    ) -> Result<serde_json::Value, JwtError> {
        verify_with(&self.decoding, token, audience, issuer)
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

    /// PKCS#1 and PKCS#8 PEMs of one key give one JWK, whose `n` and `e` are the key's (as the
    /// `rsa` crate, which signed before aws-lc, reads them) and whose `kid` is its thumbprint.
    #[test]
    fn the_jwk_is_the_keys_whichever_pem_form() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        let pkcs8 = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::CRLF).unwrap();
        let from_pkcs1 = JwtKeys::from_pem(&pkcs1).unwrap();
        let from_pkcs8 = JwtKeys::from_pem(&pkcs8).unwrap();
        assert_eq!(from_pkcs1.jwk(), from_pkcs8.jwk());
        let jwk = from_pkcs1.jwk();
        assert_eq!(jwk.n, URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()));
        assert_eq!(jwk.e, URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()));
        let thumbprint =
            sha256(format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, jwk.e, jwk.n).as_bytes());
        assert_eq!(
            jwk.kid,
            format!("jwk-{}", URL_SAFE_NO_PAD.encode(&thumbprint[..16]))
        );
        let token = from_pkcs8
            .sign(&json!({"aud": "a", "iss": "i", "sub": "s"}))
            .unwrap();
        assert!(from_pkcs1.verify(&token, "a", "i").is_ok());
    }

    #[test]
    fn refuses_short_keys_and_what_is_not_a_pem_rsa_key() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let short = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        let short = short.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        assert!(JwtKeys::from_pem(&short).is_err());
        assert!(JwtKeys::from_pem("").is_err());
        assert!(
            JwtKeys::from_pem(
                "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----"
            )
            .is_err()
        );
        assert!(
            JwtKeys::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
                .is_err()
        );
        assert!(
            JwtKeys::from_pem(
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"
            )
            .is_err()
        );
    }
}
