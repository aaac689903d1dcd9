//! Hashing of codes, secrets and tokens. Codes are short, so they are hashed with a key the store
//! never sees (HMAC-SHA256); secrets and tokens carry 256 random bits, so SHA-256 suffices.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ids::Home;
use crate::random::{Random, random_token};

pub type Hash32 = [u8; 32];

pub fn sha256(bytes: &[u8]) -> Hash32 {
    Sha256::digest(bytes).into()
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Hashes OTP codes under the deployment's code key (a secret held outside the store).
#[derive(Clone)]
pub struct CodeHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    /// The key must be at least 32 bytes; anything shorter is a deployment mistake.
    pub fn new(key: &[u8]) -> Result<Self, String> {
        if key.len() < 32 {
            return Err("the code-hashing key must be at least 32 bytes".to_owned());
        }
        Ok(CodeHasher { key: key.to_vec() })
    }

    /// The hash binds the code to the challenge it was issued for, so equal codes never share a hash.
    pub fn hash(&self, challenge_id: &str, code: &str) -> Hash32 {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length; this arm cannot be reached.
            Err(_) => return [0u8; 32],
        };
        mac.update(challenge_id.as_bytes());
        mac.update(&[0u8]);
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn matches(&self, challenge_id: &str, code: &str, stored: &Hash32) -> bool {
        constant_time_eq(&self.hash(challenge_id, code), stored)
    }
}

/// A new app secret (`secret-` + 43 base64url chars) and the hash that is stored.
pub fn new_app_secret(random: &dyn Random) -> (String, Hash32) {
    let secret = format!("secret-{}", random_token(random));
    let hash = sha256(secret.as_bytes());
    (secret, hash)
}

/// A new session token of a user whose home is `home`, and the hash that is stored: 43
/// base64url characters of 32 bytes, the home's 6 then 26 fresh random bytes (208 bits), so
/// that the token names the partition its session is in.
pub fn new_session_token(random: &dyn Random, home: Home) -> (String, Hash32) {
    let mut bytes = [0u8; 32];
    random.fill_bytes(&mut bytes);
    bytes[..6].copy_from_slice(&home.bytes());
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = sha256(token.as_bytes());
    (token, hash)
}

/// The management key check: the deployment holds only the SHA-256 of the key.
#[derive(Clone)]
pub struct ManagementKeyHash(Hash32);

impl std::fmt::Debug for ManagementKeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagementKeyHash(..)")
    }
}

impl ManagementKeyHash {
    pub fn of_key(key: &str) -> Self {
        ManagementKeyHash(sha256(key.as_bytes()))
    }

    /// From 64 hex digits, as the deploy parameter gives it.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ManagementKeyHash(out))
    }

    pub fn verify(&self, presented: &str) -> bool {
        constant_time_eq(&sha256(presented.as_bytes()), &self.0)
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The deployment's key-encryption key: seals each app's JWT signing key for the table
/// (AES-256-GCM). Derived from a secret string (at least 32 characters; Secrets Manager
/// generates it) so that any well-made random string will do.
pub struct KeyEncryptionKey {
    key: aws_lc_rs::aead::LessSafeKey,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

/// What `seal` puts first: the format of what follows (nonce, ciphertext, tag).
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 12;

impl KeyEncryptionKey {
    pub fn from_secret(secret: &str) -> Result<Self, String> {
        if secret.chars().count() < 32 {
            return Err("the key-encryption key must be at least 32 characters".to_owned());
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| "the key-encryption key is unusable".to_owned())?;
        mac.update(b"otp-login/key-encryption-key/v1");
        let derived: [u8; 32] = mac.finalize().into_bytes().into();
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &derived)
            .map_err(|_| "the key-encryption key is unusable".to_owned())?;
        Ok(KeyEncryptionKey {
            key: aws_lc_rs::aead::LessSafeKey::new(unbound),
        })
    }

    /// `plaintext` sealed with a fresh `nonce` (never reuse one), bound to `binding`: it opens
    /// only with the same binding.
    pub fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        binding: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, String> {
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                aws_lc_rs::aead::Aad::from(binding),
                &mut in_out,
            )
            .map_err(|_| "sealing failed".to_owned())?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// The plaintext of `sealed`, if this key sealed it with this binding and nothing changed.
    pub fn open(&self, binding: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, aws_lc_rs::aead::Aad::from(binding), &mut in_out)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn code_hash_depends_on_key_challenge_and_code() {
        let a = CodeHasher::new(&[1u8; 32]).unwrap();
        let b = CodeHasher::new(&[2u8; 32]).unwrap();
        let h = a.hash("challenge-1", "123456");
        assert!(a.matches("challenge-1", "123456", &h));
        assert!(!a.matches("challenge-1", "123457", &h));
        assert!(!a.matches("challenge-2", "123456", &h));
        assert!(!b.matches("challenge-1", "123456", &h));
    }

    #[test]
    fn short_code_keys_are_refused() {
        assert!(CodeHasher::new(b"short").is_err());
    }

    #[test]
    fn management_key_hash_round_trips_through_hex() {
        let hash = ManagementKeyHash::of_key("dev-management-key");
        let hex = to_hex(&hash.0);
        let parsed = ManagementKeyHash::from_hex(&hex).unwrap();
        assert!(parsed.verify("dev-management-key"));
        assert!(!parsed.verify("dev-management-kez"));
        assert!(ManagementKeyHash::from_hex("zz").is_none());
    }

    #[test]
    fn session_tokens_name_their_home() {
        let random = SeededRandom::new(4);
        let home = Home::generate(&random);
        let (token, hash) = new_session_token(&random, home);
        assert_eq!(token.len(), 43);
        assert_eq!(hash, sha256(token.as_bytes()));
        assert_eq!(Home::of_session_token(&token), Some(home));
        let (other, _) = new_session_token(&random, home);
        assert_ne!(token, other);
    }

    #[test]
    fn secrets_have_the_contract_form() {
        let (secret, hash) = new_app_secret(&SeededRandom::new(3));
        assert!(secret.starts_with("secret-"));
        assert_eq!(secret.len(), "secret-".len() + 43);
        assert_eq!(hash, sha256(secret.as_bytes()));
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_binding_and_unchanged() {
        let kek = KeyEncryptionKey::from_secret(&"k".repeat(40)).unwrap();
        let sealed = kek.seal([1; 12], b"app-1/kid-1", b"private key").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"private key"));
        assert_eq!(
            kek.open(b"app-1/kid-1", &sealed).as_deref(),
            Some(&b"private key"[..])
        );
        // Another app's binding, another deployment's key, one flipped bit: nothing.
        assert_eq!(kek.open(b"app-2/kid-1", &sealed), None);
        let other = KeyEncryptionKey::from_secret(&"j".repeat(40)).unwrap();
        assert_eq!(other.open(b"app-1/kid-1", &sealed), None);
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(kek.open(b"app-1/kid-1", &tampered), None);
        assert_eq!(kek.open(b"app-1/kid-1", &sealed[..10]), None);
        // Fresh nonces: the same plaintext seals differently.
        assert_ne!(
            kek.seal([2; 12], b"app-1/kid-1", b"private key").unwrap(),
            sealed
        );
        assert!(KeyEncryptionKey::from_secret("too short").is_err());
    }
}
