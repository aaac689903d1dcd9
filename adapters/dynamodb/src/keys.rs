//! The key design (see `DESIGN.md`): every item has string keys `pk` and `sk`; sessions also
//! carry `gsi1pk`/`gsi1sk` for the per-user listing. Ids never contain `#`, and where a
//! free-form value (an email address) is part of a key it is the last component.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::crypto::Hash32;
use shared::identifiers::{EmailAddress, Identifier, PhoneNumber};
use shared::ids::{
    AppId, ConfigId, MethodId, SecretId, SessionId, TemplateId, TestIdentifierId, UserId,
};
use shared::model::Channel;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const GSI1: &str = "gsi1";
pub(crate) const GSI1PK: &str = "gsi1pk";
pub(crate) const GSI1SK: &str = "gsi1sk";
pub(crate) const TTL: &str = "ttl";

/// The partition of an app's own records: the app, its secrets, configs, templates, test
/// identifiers and SMS countries (a handful of items per app, read by `Query` on a prefix).
pub(crate) fn app(app_id: &AppId) -> String {
    format!("APP#{app_id}")
}

pub(crate) const APP_SK: &str = "APP";
/// Under the app item's sort key, so that one `Query begins_with(sk, "APP")` can read the app
/// with its secrets (what authenticating an app needs) should a port ask for both at once.
pub(crate) const SECRET_PREFIX: &str = "APP#SECRET#";
pub(crate) const CONFIG_PREFIX: &str = "CONFIG#";
pub(crate) const DEFAULT_PREFIX: &str = "DEFAULT#";
pub(crate) const TEMPLATE_PREFIX: &str = "TEMPLATE#";
pub(crate) const TEST_IDENT_PREFIX: &str = "TESTID#IDENT#";
pub(crate) const TEST_ID_PREFIX: &str = "TESTID#ID#";
pub(crate) const SMS_COUNTRIES_SK: &str = "SMS_COUNTRIES";

pub(crate) fn secret_sk(id: &SecretId) -> String {
    format!("{SECRET_PREFIX}{id}")
}

pub(crate) fn config_sk(id: &ConfigId) -> String {
    format!("{CONFIG_PREFIX}{id}")
}

/// The per-(app, channel) default pointer: which config is the default.
pub(crate) fn default_sk(channel: Channel) -> String {
    format!("{DEFAULT_PREFIX}{}", channel.as_str())
}

pub(crate) fn template_sk(id: &TemplateId) -> String {
    format!("{TEMPLATE_PREFIX}{id}")
}

/// A test identifier is stored under its identifier (unique per app, looked up on every send).
pub(crate) fn test_ident_sk(identifier: &Identifier) -> String {
    format!("{TEST_IDENT_PREFIX}{}", identifier_key(identifier))
}

/// Pointer from a test identifier's id to the sort key of its record.
pub(crate) fn test_id_sk(id: &TestIdentifierId) -> String {
    format!("{TEST_ID_PREFIX}{id}")
}

pub(crate) const USER_SK: &str = "USER";
pub(crate) const IDENT_SK: &str = "IDENT";
pub(crate) const METHOD_SK: &str = "METHOD";
pub(crate) const CHALLENGE_SK: &str = "CHALLENGE";
pub(crate) const SESSION_SK: &str = "SESSION";
pub(crate) const TOKEN_SK: &str = "TOKEN";

pub(crate) fn user(app_id: &AppId, user_id: &UserId) -> String {
    format!("APP#{app_id}#USER#{user_id}")
}

pub(crate) fn ident(app_id: &AppId, identifier: &Identifier) -> String {
    format!("APP#{app_id}#IDENT#{}", identifier_key(identifier))
}

/// The partition of one method: its owner (`METHOD`) and its current code (`CHALLENGE`).
pub(crate) fn method(app_id: &AppId, method_id: &MethodId) -> String {
    format!("APP#{app_id}#METHOD#{method_id}")
}

pub(crate) fn session(app_id: &AppId, session_id: &SessionId) -> String {
    format!("APP#{app_id}#SESSION#{session_id}")
}

pub(crate) fn token(app_id: &AppId, token_hash: &Hash32) -> String {
    format!("APP#{app_id}#TOKEN#{}", hex(token_hash))
}

/// A rate-limit counter (the domain's counter key, e.g. `cooldown#<app>#<identifier>`).
pub(crate) fn rate(counter_key: &str) -> String {
    format!("RATE#{counter_key}")
}

/// `gsi1pk` of a session: its user, so that a user's sessions are one `Query` on `gsi1`.
pub(crate) fn user_sessions_gsi1pk(app_id: &AppId, user_id: &UserId) -> String {
    user(app_id, user_id)
}

pub(crate) const SESSION_GSI1SK_PREFIX: &str = "SESSION#";

pub(crate) fn session_gsi1sk(started_at: i64, session_id: &SessionId) -> String {
    format!("{SESSION_GSI1SK_PREFIX}{started_at:020}#{session_id}")
}

/// An identifier as it appears in keys and attributes: `phone#+12025550100`, `email#ann@example.com`.
pub(crate) fn identifier_key(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Phone(number) => format!("phone#{}", number.as_str()),
        Identifier::Email(email) => format!("email#{}", email.as_str()),
    }
}

pub(crate) fn parse_identifier_key(text: &str) -> Option<Identifier> {
    match text.split_once('#')? {
        ("phone", number) => PhoneNumber::parse(number).map(Identifier::Phone),
        ("email", email) => EmailAddress::parse(email).map(Identifier::Email),
        _ => None,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The primary key of an item.
pub(crate) fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_keys_round_trip() {
        for text in ["+12025550100", "ann.lee@example.com", "a#b@example.com"] {
            let identifier = Identifier::parse(text).expect("valid fixture");
            let key = identifier_key(&identifier);
            assert_eq!(parse_identifier_key(&key), Some(identifier));
        }
        assert_eq!(parse_identifier_key("fax#123"), None);
        assert_eq!(parse_identifier_key("phone#not-a-number"), None);
        assert_eq!(parse_identifier_key("nothing"), None);
    }

    #[test]
    fn kinds_do_not_collide_and_hex_is_lowercase() {
        let phone = Identifier::parse("+12025550100").expect("valid");
        let email = Identifier::parse("x@example.com").expect("valid");
        assert!(identifier_key(&phone).starts_with("phone#"));
        assert!(identifier_key(&email).starts_with("email#"));
        assert_eq!(hex(&[0x00, 0xab, 0xff, 0x10]), "00abff10");
    }

    #[test]
    fn session_sort_keys_sort_by_start() {
        let id = SessionId::parse("session-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f").expect("valid");
        assert!(session_gsi1sk(9, &id) < session_gsi1sk(10, &id));
        assert!(session_gsi1sk(1_800_000_000, &id).starts_with(SESSION_GSI1SK_PREFIX));
    }

    #[test]
    fn config_and_pointer_prefixes_are_disjoint() {
        assert!(!default_sk(Channel::Sms).starts_with(CONFIG_PREFIX));
        assert!(!TEST_ID_PREFIX.starts_with(TEST_IDENT_PREFIX));
        assert!(!TEST_IDENT_PREFIX.starts_with(TEST_ID_PREFIX));
    }
}
