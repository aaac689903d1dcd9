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
