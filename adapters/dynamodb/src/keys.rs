//! The key design (see `DESIGN.md`): every item has string keys `pk` and `sk`, and there is no
//! secondary index. Ids never contain `#`, and where a free-form value (an email address, a
//! counter key) is part of a key it is the last component.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::crypto::Hash32;
use shared::identifiers::{EmailAddress, Identifier, PhoneNumber};
use shared::ids::{AppId, ConfigId, Home, MethodId, SecretId, TemplateId, TestIdentifierId};
use shared::model::Channel;
use shared::ports::Key;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const TTL: &str = "ttl";
/// The revision attribute of the login path's records (users, codes, sessions, owners,
/// counters) and of login configs.
pub(crate) const REV: &str = "rev";

/// The partition of an app's own records: the app, its secrets, configs, templates, test
/// identifiers and SMS countries (a handful of items per app, read by one `Query`).
pub(crate) fn app(app_id: &AppId) -> String {
    format!("APP#{app_id}")
}

pub(crate) const APP_SK: &str = "APP";
/// Under the app item's sort key, so that the app and its secrets sort together.
pub(crate) const SECRET_PREFIX: &str = "APP#SECRET#";
pub(crate) const CONFIG_PREFIX: &str = "CONFIG#";
pub(crate) const DEFAULT_PREFIX: &str = "DEFAULT#";
pub(crate) const TEMPLATE_PREFIX: &str = "TEMPLATE#";
/// Every test-identifier item (`TESTID#IDENT#…`, `TESTID#ID#…`) sorts at or after this, and
/// every other item of the app partition before it: `load_app` reads `sk < TESTID#`.
pub(crate) const TESTID_PREFIX: &str = "TESTID#";
pub(crate) const TEST_IDENT_PREFIX: &str = "TESTID#IDENT#";
pub(crate) const TEST_ID_PREFIX: &str = "TESTID#ID#";
pub(crate) const SMS_COUNTRIES_SK: &str = "SMS_COUNTRIES";
/// The app's SMS budgets (read with the app by `load_app`: it sorts before `TESTID#`).
pub(crate) const SMS_BUDGETS_SK: &str = "SMS_BUDGETS";
/// The app's JWT signing keys (read with the app by `load_app`: it sorts before `TESTID#`).
pub(crate) const SIGNING_KEYS_SK: &str = "SIGNING_KEYS";
/// The app's frontend settings and public tokens (read with the app by `load_app`).
pub(crate) const FRONTEND_SK: &str = "FRONTEND";

/// The lookup of a public token: which app it names (its own partition, one `GetItem`).
pub(crate) fn public_token(token: &str) -> String {
    format!("PUBLIC_TOKEN#{token}")
}

pub(crate) const PUBLIC_TOKEN_SK: &str = "PUBLIC_TOKEN";

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

/// A test identifier is stored under its identifier (unique per app, read on every send).
pub(crate) fn test_ident_sk(identifier: &Identifier) -> String {
    format!("{TEST_IDENT_PREFIX}{}", identifier_key(identifier))
}

/// Pointer from a test identifier's id to the sort key of its record.
pub(crate) fn test_id_sk(id: &TestIdentifierId) -> String {
    format!("{TEST_ID_PREFIX}{id}")
}

/// The partition of one user: its user record, the codes of its methods and its sessions.
pub(crate) fn home(app_id: &AppId, home: Home) -> String {
    format!("APP#{app_id}#HOME#{}", home.to_hex())
}

pub(crate) const USER_SK: &str = "USER";
pub(crate) const CODES_PREFIX: &str = "CODES#";
pub(crate) const SESSION_PREFIX: &str = "SESSION#";

pub(crate) fn codes_sk(method_id: &MethodId) -> String {
    format!("{CODES_PREFIX}{method_id}")
}

/// A session by the hex of its token's SHA-256 (the token itself is never stored).
pub(crate) fn session_sk(token_hash: &Hash32) -> String {
    format!("{SESSION_PREFIX}{}", hex(token_hash))
}

/// Who holds an identifier in an app (one partition per identifier: uniqueness by key).
pub(crate) fn owner(app_id: &AppId, identifier: &Identifier) -> String {
    format!("APP#{app_id}#IDENT#{}", identifier_key(identifier))
}

pub(crate) const OWNER_SK: &str = "IDENT";

pub(crate) const RATE_PREFIX: &str = "RATE#";
pub(crate) const RATE_SK: &str = "RATE";

/// A send counter (the domain's counter key, e.g. `cooldown#<app>#<identifier>`).
pub(crate) fn rate(counter_key: &str) -> String {
    format!("{RATE_PREFIX}{counter_key}")
}

/// `pk` and `sk` of the item that holds the record at `key`.
pub(crate) fn of(key: &Key) -> (String, String) {
    match key {
        Key::User { app_id, home: h } => (home(app_id, *h), USER_SK.to_owned()),
        Key::Codes { app_id, method_id } => (home(app_id, method_id.home()), codes_sk(method_id)),
        Key::Session {
            app_id,
            home: h,
            token_hash,
        } => (home(app_id, *h), session_sk(token_hash)),
        Key::Owner { app_id, identifier } => (owner(app_id, identifier), OWNER_SK.to_owned()),
        Key::TestIdentifier { app_id, identifier } => (app(app_id), test_ident_sk(identifier)),
        Key::Counter { key } => (rate(key), RATE_SK.to_owned()),
        Key::Tally { app_id, name } => (tallies(app_id), name.clone()),
    }
}

/// The partition of an app's tallies (SMS budgets, regions' sends and verifications): one
/// query lists them.
pub(crate) fn tallies(app_id: &AppId) -> String {
    format!("TALLY#{app_id}")
}

/// The primary key of the item that holds the record at `key`.
pub(crate) fn item_key(key: &Key) -> HashMap<String, AttributeValue> {
    let (pk, sk) = of(key);
    self::key(pk, &sk)
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
        ("phone", number) => PhoneNumber::from_stored(number).map(Identifier::Phone),
        ("email", email) => EmailAddress::from_stored(email).map(Identifier::Email),
        _ => None,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    shared::crypto::to_hex(bytes)
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
    use shared::ids::{EmailId, PhoneId, UserId};
    use shared::random::SeededRandom;

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
    fn load_app_range_reads_everything_but_test_identifiers() {
        let r = SeededRandom::new(3);
        let at = shared::clock::Timestamp(1_800_000_000);
        let below = [
            APP_SK.to_owned(),
            secret_sk(&SecretId::generate(&r, at)),
            config_sk(&ConfigId::generate(&r, at)),
            default_sk(Channel::Sms),
            default_sk(Channel::Email),
            template_sk(&TemplateId::generate(&r, at)),
            SMS_COUNTRIES_SK.to_owned(),
        ];
        for sk in &below {
            assert!(sk.as_str() < TESTID_PREFIX, "{sk}");
        }
        let phone = Identifier::parse("+12025550100").expect("valid");
        for sk in [
            test_ident_sk(&phone),
            test_id_sk(&TestIdentifierId::generate(&r, at)),
        ] {
            assert!(sk.as_str() >= TESTID_PREFIX, "{sk}");
        }
        assert!(!default_sk(Channel::Sms).starts_with(CONFIG_PREFIX));
        assert!(!TEST_ID_PREFIX.starts_with(TEST_IDENT_PREFIX));
        assert!(!TEST_IDENT_PREFIX.starts_with(TEST_ID_PREFIX));
    }

    #[test]
    fn a_users_records_share_its_home_partition() {
        let r = SeededRandom::new(4);
        let app_id = AppId::generate(&r);
        let user = UserId::generate(&r);
        let h = user.home();
        let method = MethodId::Email(EmailId::generate_in(&r, h));
        let other = MethodId::Phone(PhoneId::generate_in(&r, h));
        let token_hash = [0xab; 32];
        let user_key = of(&Key::User {
            app_id: app_id.clone(),
            home: h,
        });
        let codes_key = of(&Key::Codes {
            app_id: app_id.clone(),
            method_id: method.clone(),
        });
        let session_key = of(&Key::Session {
            app_id: app_id.clone(),
            home: h,
            token_hash,
        });
        assert_eq!(user_key.0, format!("APP#{app_id}#HOME#{}", h.to_hex()));
        assert_eq!(codes_key.0, user_key.0);
        assert_eq!(session_key.0, user_key.0);
        assert_eq!(
            of(&Key::Codes {
                app_id: app_id.clone(),
                method_id: other
            })
            .0,
            user_key.0
        );
        assert_eq!(user_key.1, "USER");
        assert_eq!(codes_key.1, format!("CODES#{method}"));
        assert_eq!(session_key.1, format!("SESSION#{}", "ab".repeat(32)));
        let email = Identifier::parse("Ann@Example.com").expect("valid");
        assert_eq!(
            of(&Key::Owner {
                app_id: app_id.clone(),
                identifier: email.clone()
            }),
            (
                format!("APP#{app_id}#IDENT#email#ann@example.com"),
                "IDENT".to_owned()
            )
        );
        assert_eq!(
            of(&Key::TestIdentifier {
                app_id: app_id.clone(),
                identifier: email
            }),
            (
                format!("APP#{app_id}"),
                "TESTID#IDENT#email#ann@example.com".to_owned()
            )
        );
        assert_eq!(
            of(&Key::Counter {
                key: "cooldown#x".to_owned()
            }),
            ("RATE#cooldown#x".to_owned(), "RATE".to_owned())
        );
    }
}
