//! Randomness as a port: production draws from the OS CSPRNG, tests from a seeded generator.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::{OsRng, StdRng};
use rand::{RngCore, SeedableRng};

pub trait Random: Send + Sync {
    fn fill_bytes(&self, dest: &mut [u8]);
}

/// The operating system's CSPRNG (getrandom).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill_bytes(&self, dest: &mut [u8]) {
        OsRng.fill_bytes(dest);
    }
}

/// Deterministic randomness for tests.
#[derive(Debug)]
pub struct SeededRandom(Mutex<StdRng>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Random for SeededRandom {
    fn fill_bytes(&self, dest: &mut [u8]) {
        match self.0.lock() {
            Ok(mut rng) => rng.fill_bytes(dest),
            Err(poisoned) => poisoned.into_inner().fill_bytes(dest),
        }
    }
}

pub fn random_u64(random: &dyn Random) -> u64 {
    let mut bytes = [0u8; 8];
    random.fill_bytes(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// A number drawn uniformly from `0..bound` by rejection sampling (no modulo bias).
pub fn uniform_below(random: &dyn Random, bound: u64) -> u64 {
    assert!(bound > 0, "bound must be positive");
    // The largest multiple of `bound` that fits; draws at or above it are rejected.
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let draw = random_u64(random);
        if draw < zone {
            return draw % bound;
        }
    }
}

/// `digits` decimal digits, each combination equally likely (leading zeros kept).
pub fn random_digits(random: &dyn Random, digits: u32) -> String {
    let bound = 10u64.pow(digits);
    format!(
        "{:0width$}",
        uniform_below(random, bound),
        width = digits as usize
    )
}

/// 32 random bytes as 43 unpadded base64url characters.
pub fn random_token(random: &dyn Random) -> String {
    let mut bytes = [0u8; 32];
    random.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_keep_leading_zeros_and_length() {
        let random = SeededRandom::new(7);
        for _ in 0..1000 {
            let code = random_digits(&random, 6);
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn digits_are_roughly_uniform() {
        let random = SeededRandom::new(11);
        let mut counts = [0u32; 10];
        for _ in 0..20_000 {
            let code = random_digits(&random, 6);
            for b in code.bytes() {
                counts[(b - b'0') as usize] += 1;
            }
        }
        // 120 000 digits: each value expects 12 000; 5 sigma is about 520.
        for count in counts {
            assert!((11_400..=12_600).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn tokens_are_43_base64url_chars() {
        let token = random_token(&OsRandom);
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}
