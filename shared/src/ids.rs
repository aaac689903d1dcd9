//! Identifiers of the contract: a fixed prefix and a UUIDv4 or a ULID. `parse` accepts only the
//! exact form, so a malformed ID from a path or body is simply never found.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::random::Random;

fn new_uuid_v4(random: &dyn Random) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    random.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A UUIDv4 whose first six bytes are `home` (the version and variant bits lie after them).
fn new_uuid_v4_in(random: &dyn Random, home: Home) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    random.fill_bytes(&mut bytes);
    bytes[..HOME_BYTES].copy_from_slice(&home.0);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

const HOME_BYTES: usize = 6;

/// Stytch's public-token shapes: a prefix naming the environment, then a UUIDv4.
pub const PUBLIC_TOKEN_LIVE_PREFIX: &str = "public-token-live-";
pub const PUBLIC_TOKEN_TEST_PREFIX: &str = "public-token-test-";

/// A new public token (`public-token-test-<uuid>` when `test`, else `-live-`).
pub fn new_public_token(random: &dyn Random, test: bool) -> String {
    let prefix = if test {
        PUBLIC_TOKEN_TEST_PREFIX
    } else {
        PUBLIC_TOKEN_LIVE_PREFIX
    };
    format!("{prefix}{}", new_uuid_v4(random))
}

/// Whether `text` has a public token's shape (what a lookup is worth trying for).
pub fn is_public_token(text: &str) -> bool {
    text.strip_prefix(PUBLIC_TOKEN_LIVE_PREFIX)
        .or_else(|| text.strip_prefix(PUBLIC_TOKEN_TEST_PREFIX))
        .is_some_and(is_uuid_v4)
}

/// Where a user's records live: its user record, codes and sessions share one partition named
/// by 48 random bits drawn when the user is made. The user id, the method ids and the session
/// ids of the user begin with them (the first 12 hex digits of the UUID), and so do its session
/// tokens (their first 6 bytes), so that any of them names the partition without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Home([u8; HOME_BYTES]);

impl Home {
    pub fn generate(random: &dyn Random) -> Home {
        let mut bytes = [0u8; HOME_BYTES];
        random.fill_bytes(&mut bytes);
        Home(bytes)
    }

    pub fn from_bytes(bytes: [u8; HOME_BYTES]) -> Home {
        Home(bytes)
    }

    pub fn bytes(&self) -> [u8; HOME_BYTES] {
        self.0
    }

    /// 12 lowercase hex digits, as in the ids.
    pub fn to_hex(self) -> String {
        crate::crypto::to_hex(&self.0)
    }

    pub fn parse_hex(text: &str) -> Option<Home> {
        if text.len() != 2 * HOME_BYTES || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; HOME_BYTES];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Home(bytes))
    }

    /// The home named by an id of the form `<prefix><uuid>` (already checked by `parse`).
    fn of_uuid_id(id: &str, prefix: &str) -> Home {
        let uuid = id.get(prefix.len()..).unwrap_or_default();
        // `xxxxxxxx-xxxx-...`: the first 8 and the next 4 hex digits.
        let hex: String = uuid.chars().filter(|c| *c != '-').take(12).collect();
        Home::parse_hex(&hex).unwrap_or(Home([0; HOME_BYTES]))
    }

    /// The home a session token names (its first 6 bytes), if the token has the token's form.
    pub fn of_session_token(token: &str) -> Option<Home> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        if bytes.len() != 32 {
            return None;
        }
        let mut home = [0u8; HOME_BYTES];
        home.copy_from_slice(&bytes[..HOME_BYTES]);
        Some(Home(home))
    }
}

impl fmt::Display for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn new_ulid(random: &dyn Random, now: Timestamp) -> ulid::Ulid {
    let mut bytes = [0u8; 16];
    random.fill_bytes(&mut bytes);
    let millis = u64::try_from(now.seconds())
        .unwrap_or(0)
        .saturating_mul(1000);
    ulid::Ulid::from_parts(millis, u128::from_le_bytes(bytes))
}

fn is_uuid_v4(text: &str) -> bool {
    // Hyphenated lowercase form only, so each ID has exactly one spelling.
    text.len() == 36
        && text == text.to_ascii_lowercase()
        && uuid::Uuid::try_parse(text).is_ok_and(|u| u.get_version_num() == 4)
}

fn is_ulid(text: &str) -> bool {
    text.len() == 26 && ulid::Ulid::from_string(text).is_ok_and(|u| u.to_string() == text)
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate(random: &dyn Random) -> Self {
                $name(format!("{}{}", $prefix, new_uuid_v4(random)))
            }

            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                is_uuid_v4(rest).then(|| $name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Ids of a user's own things, which name the user's home.
macro_rules! homed_id {
    ($name:ident) => {
        impl $name {
            /// A new id in `home` (the user's), otherwise random.
            pub fn generate_in(random: &dyn Random, home: Home) -> Self {
                $name(format!("{}{}", Self::PREFIX, new_uuid_v4_in(random, home)))
            }

            /// The home this id names.
            pub fn home(&self) -> Home {
                Home::of_uuid_id(&self.0, Self::PREFIX)
            }
        }
    };
}

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate(random: &dyn Random, now: Timestamp) -> Self {
                $name(format!("{}{}", $prefix, new_ulid(random, now)))
            }

            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                is_ulid(rest).then(|| $name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(AppId, "app-");
uuid_id!(UserId, "user-");
uuid_id!(PhoneId, "phone-number-");
uuid_id!(EmailId, "email-");
uuid_id!(SessionId, "session-");
uuid_id!(RequestId, "request-id-");
homed_id!(UserId);
homed_id!(PhoneId);
homed_id!(EmailId);
homed_id!(SessionId);
uuid_id!(
    /// Identifies one code sent to a method, so that a replaced code can be told from the current one.
    ChallengeId,
    "challenge-"
);
ulid_id!(SecretId, "sec_");
ulid_id!(ConfigId, "lcfg_");
ulid_id!(TemplateId, "tpl_");
ulid_id!(TestIdentifierId, "tid_");

/// A phone or email method of a user: the `method_id` of authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MethodId {
    Phone(PhoneId),
    Email(EmailId),
}

impl MethodId {
    pub fn parse(text: &str) -> Option<Self> {
        PhoneId::parse(text)
            .map(MethodId::Phone)
            .or_else(|| EmailId::parse(text).map(MethodId::Email))
    }

    pub fn as_str(&self) -> &str {
        match self {
            MethodId::Phone(id) => id.as_str(),
            MethodId::Email(id) => id.as_str(),
        }
    }

    /// The home of the user the method belongs to.
    pub fn home(&self) -> Home {
        match self {
            MethodId::Phone(id) => id.home(),
            MethodId::Email(id) => id.home(),
        }
    }
}

impl fmt::Display for MethodId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn generated_ids_parse_back() {
        let random = SeededRandom::new(1);
        let app = AppId::generate(&random);
        assert!(app.as_str().starts_with("app-"));
        assert_eq!(AppId::parse(app.as_str()), Some(app.clone()));
        let config = ConfigId::generate(&random, Timestamp(1_800_000_000));
        assert_eq!(config.as_str().len(), "lcfg_".len() + 26);
        assert_eq!(ConfigId::parse(config.as_str()), Some(config));
        let phone = PhoneId::generate(&random);
        assert_eq!(
            MethodId::parse(phone.as_str()),
            Some(MethodId::Phone(phone))
        );
    }

    #[test]
    fn ids_made_in_a_home_name_it_and_stay_uuid_v4() {
        let random = SeededRandom::new(2);
        let user = UserId::generate(&random);
        let home = user.home();
        let phone = PhoneId::generate_in(&random, home);
        let email = EmailId::generate_in(&random, home);
        let session = SessionId::generate_in(&random, home);
        assert_eq!(PhoneId::parse(phone.as_str()), Some(phone.clone()));
        assert_eq!(EmailId::parse(email.as_str()), Some(email.clone()));
        assert_eq!(SessionId::parse(session.as_str()), Some(session.clone()));
        assert_eq!(phone.home(), home);
        assert_eq!(MethodId::Email(email).home(), home);
        assert_eq!(session.home(), home);
        assert_eq!(
            &user.as_str()["user-".len().."user-".len() + 8],
            &home.to_hex()[..8]
        );
        assert_ne!(PhoneId::generate_in(&random, home), phone);
        assert_ne!(UserId::generate(&random).home(), home);
        assert_eq!(Home::parse_hex(&home.to_hex()), Some(home));
        assert_eq!(Home::parse_hex("00112233445g"), None);
        assert_eq!(Home::of_session_token("short"), None);
    }

    #[test]
    fn malformed_ids_do_not_parse() {
        for text in [
            "",
            "app-",
            "app-123",
            "user-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
            "app-0F8C2F1E-5A6B-4C3D-8E9F-0A1B2C3D4E5F",
            "app-0f8c2f1e-5a6b-1c3d-8e9f-0a1b2c3d4e5f",
        ] {
            assert_eq!(AppId::parse(text), None, "{text}");
        }
        assert!(AppId::parse("app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f").is_some());
        assert_eq!(ConfigId::parse("lcfg_not-a-ulid"), None);
        assert_eq!(
            MethodId::parse("session-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f"),
            None
        );
    }
}
