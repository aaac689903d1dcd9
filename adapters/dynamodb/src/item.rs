//! Hand-written conversions between the domain records and DynamoDB items. Numbers are stored
//! as `N` (timestamps in epoch seconds), hashes as `B`, optional fields are left out when `None`.
//! A malformed item is a `StoreError::Other` that names the attribute, never its value.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::clock::Timestamp;
use shared::crypto::Hash32;
use shared::identifiers::{EmailAddress, Identifier, PhoneNumber, Region};
use shared::ids::{
    AppId, ChallengeId, ConfigId, EmailId, MethodId, PhoneId, SecretId, SessionId, TemplateId,
    TestIdentifierId, UserId,
};
use shared::model::{
    App, AppSecret, AuthenticationFactor, Challenge, Channel, Codes, EmailMethod, FrontendSettings,
    Lock, LoginConfig, MAX_PREVIOUS_CODES, Owner, PhoneMethod, PublicToken, SendCounter, Session,
    SessionAttributes, SigningKey, SmsBudgets, Tally, Template, TestIdentifier, User, UserStatus,
};
use shared::ports::{Key, Record, StoreError, Versioned};

use crate::keys;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn boolean(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

pub(crate) fn blob(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

pub(crate) fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.as_str())).collect())
}

pub(crate) fn malformed(kind: &str, attribute: &str) -> StoreError {
    StoreError::Other(format!("malformed {kind} item: attribute {attribute}"))
}

/// Typed reads of one item's attributes.
pub(crate) struct Fields<'a> {
    item: &'a Item,
    kind: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(item: &'a Item, kind: &'static str) -> Self {
        Fields { item, kind }
    }

    fn bad(&self, attribute: &str) -> StoreError {
        malformed(self.kind, attribute)
    }

    /// `None` when absent or `NULL`.
    fn value(&self, attribute: &str) -> Option<&'a AttributeValue> {
        match self.item.get(attribute) {
            None | Some(AttributeValue::Null(_)) => None,
            Some(value) => Some(value),
        }
    }

    pub(crate) fn opt_s(&self, attribute: &str) -> Result<Option<&'a str>, StoreError> {
        match self.value(attribute) {
            None => Ok(None),
            Some(AttributeValue::S(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(self.bad(attribute)),
        }
    }

    pub(crate) fn s(&self, attribute: &str) -> Result<&'a str, StoreError> {
        self.opt_s(attribute)?.ok_or_else(|| self.bad(attribute))
    }

    pub(crate) fn opt_i64(&self, attribute: &str) -> Result<Option<i64>, StoreError> {
        match self.value(attribute) {
            None => Ok(None),
            Some(AttributeValue::N(text)) => {
                text.parse().map(Some).map_err(|_| self.bad(attribute))
            }
            Some(_) => Err(self.bad(attribute)),
        }
    }

    pub(crate) fn i64(&self, attribute: &str) -> Result<i64, StoreError> {
        self.opt_i64(attribute)?.ok_or_else(|| self.bad(attribute))
    }

    pub(crate) fn u32(&self, attribute: &str) -> Result<u32, StoreError> {
        u32::try_from(self.i64(attribute)?).map_err(|_| self.bad(attribute))
    }

    pub(crate) fn u64(&self, attribute: &str) -> Result<u64, StoreError> {
        u64::try_from(self.i64(attribute)?).map_err(|_| self.bad(attribute))
    }

    pub(crate) fn timestamp(&self, attribute: &str) -> Result<Timestamp, StoreError> {
        self.i64(attribute).map(Timestamp)
    }

    pub(crate) fn opt_timestamp(&self, attribute: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_i64(attribute)?.map(Timestamp))
    }

    pub(crate) fn bool(&self, attribute: &str) -> Result<bool, StoreError> {
        match self.value(attribute) {
            Some(AttributeValue::Bool(value)) => Ok(*value),
            _ => Err(self.bad(attribute)),
        }
    }

    pub(crate) fn hash(&self, attribute: &str) -> Result<Hash32, StoreError> {
        match self.value(attribute) {
            Some(AttributeValue::B(bytes)) => {
                Hash32::try_from(bytes.as_ref()).map_err(|_| self.bad(attribute))
            }
            _ => Err(self.bad(attribute)),
        }
    }

    /// `None` when absent or `NULL`.
    pub(crate) fn opt_bytes(&self, attribute: &str) -> Result<Option<&'a [u8]>, StoreError> {
        match self.value(attribute) {
            None => Ok(None),
            Some(AttributeValue::B(bytes)) => Ok(Some(bytes.as_ref())),
            Some(_) => Err(self.bad(attribute)),
        }
    }

    pub(crate) fn list(&self, attribute: &str) -> Result<&'a [AttributeValue], StoreError> {
        match self.value(attribute) {
            Some(AttributeValue::L(values)) => Ok(values.as_slice()),
            _ => Err(self.bad(attribute)),
        }
    }

    pub(crate) fn strings(&self, attribute: &str) -> Result<Vec<String>, StoreError> {
        self.list(attribute)?
            .iter()
            .map(|value| match value {
                AttributeValue::S(text) => Ok(text.clone()),
                _ => Err(self.bad(attribute)),
            })
            .collect()
    }

    pub(crate) fn map(&self, attribute: &str) -> Result<&'a Item, StoreError> {
        self.opt_map(attribute)?.ok_or_else(|| self.bad(attribute))
    }

    /// `None` when absent or `NULL`.
    pub(crate) fn opt_map(&self, attribute: &str) -> Result<Option<&'a Item>, StoreError> {
        match self.value(attribute) {
            None => Ok(None),
            Some(AttributeValue::M(map)) => Ok(Some(map)),
            Some(_) => Err(self.bad(attribute)),
        }
    }

    /// A string attribute parsed by `parse` (an id, an identifier, a channel).
    pub(crate) fn parsed<T>(
        &self,
        attribute: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        parse(self.s(attribute)?).ok_or_else(|| self.bad(attribute))
    }

    pub(crate) fn opt_parsed<T>(
        &self,
        attribute: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_s(attribute)? {
            None => Ok(None),
            Some(text) => parse(text).map(Some).ok_or_else(|| self.bad(attribute)),
        }
    }
}

fn insert_opt(item: &mut Item, attribute: &str, value: Option<AttributeValue>) {
    if let Some(value) = value {
        item.insert(attribute.to_owned(), value);
    }
}

fn with_key(pk: String, sk: &str, attributes: Vec<(&str, AttributeValue)>) -> Item {
    let mut item = keys::key(pk, sk);
    for (name, value) in attributes {
        item.insert(name.to_owned(), value);
    }
    item
}

pub(crate) fn parse_channel(text: &str) -> Option<Channel> {
    match text {
        "sms" => Some(Channel::Sms),
        "email" => Some(Channel::Email),
        _ => None,
    }
}

fn parse_status(text: &str) -> Option<UserStatus> {
    match text {
        "active" => Some(UserStatus::Active),
        "pending" => Some(UserStatus::Pending),
        _ => None,
    }
}

fn status_str(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "active",
        UserStatus::Pending => "pending",
    }
}

// --- apps and secrets -------------------------------------------------------------------------

/// The app's count of secrets, kept by the secret transactions so that deleting the last one
/// can be refused by a condition.
pub(crate) const SECRET_COUNT: &str = "secret_count";

/// The app item with `secret_count` secrets.
pub(crate) fn app_item(app: &App, secret_count: u32) -> Item {
    with_key(
        keys::app(&app.id),
        keys::APP_SK,
        vec![
            ("id", s(app.id.as_str())),
            ("name", s(app.name.as_str())),
            ("created_at", n(app.created_at.0)),
            (SECRET_COUNT, n(secret_count)),
        ],
    )
}

pub(crate) fn app_from(item: &Item) -> Result<App, StoreError> {
    let f = Fields::new(item, "app");
    Ok(App {
        id: f.parsed("id", AppId::parse)?,
        name: f.s("name")?.to_owned(),
        created_at: f.timestamp("created_at")?,
    })
}

pub(crate) fn secret_item(secret: &AppSecret) -> Item {
    let mut item = with_key(
        keys::app(&secret.app_id),
        &keys::secret_sk(&secret.id),
        vec![
            ("id", s(secret.id.as_str())),
            ("app_id", s(secret.app_id.as_str())),
            ("hash", blob(&secret.hash)),
            ("created_at", n(secret.created_at.0)),
        ],
    );
    insert_opt(
        &mut item,
        "last_used_at",
        secret.last_used_at.map(|t| n(t.0)),
    );
    item
}

pub(crate) fn secret_from(item: &Item) -> Result<AppSecret, StoreError> {
    let f = Fields::new(item, "secret");
    Ok(AppSecret {
        id: f.parsed("id", SecretId::parse)?,
        app_id: f.parsed("app_id", AppId::parse)?,
        hash: f.hash("hash")?,
        created_at: f.timestamp("created_at")?,
        last_used_at: f.opt_timestamp("last_used_at")?,
    })
}

// --- login configs and templates --------------------------------------------------------------

/// A login config as stored, with the revision that guards its optimistic updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredConfig {
    pub(crate) config: LoginConfig,
    pub(crate) rev: i64,
}

pub(crate) fn config_item(config: &LoginConfig, rev: i64) -> Item {
    let mut item = with_key(
        keys::app(&config.app_id),
        &keys::config_sk(&config.id),
        vec![
            ("id", s(config.id.as_str())),
            ("app_id", s(config.app_id.as_str())),
            ("channel", s(config.channel.as_str())),
            ("is_default", boolean(config.is_default)),
            (
                "grant_change_password",
                boolean(config.grant_change_password),
            ),
            ("code_length", n(config.code_length)),
            ("expiration_minutes", n(config.expiration_minutes)),
            ("created_at", n(config.created_at.0)),
            ("updated_at", n(config.updated_at.0)),
            ("rev", n(rev)),
        ],
    );
    insert_opt(
        &mut item,
        "template_id",
        config.template_id.as_ref().map(|t| s(t.as_str())),
    );
    insert_opt(
        &mut item,
        "sender_id",
        config.sender_id.as_ref().map(|t| s(t.as_str())),
    );
    insert_opt(
        &mut item,
        "webotp_domain",
        config.webotp_domain.as_ref().map(|t| s(t.as_str())),
    );
    insert_opt(
        &mut item,
        "android_app_hash",
        config.android_app_hash.as_ref().map(|t| s(t.as_str())),
    );
    item
}

pub(crate) fn config_from(item: &Item) -> Result<StoredConfig, StoreError> {
    let f = Fields::new(item, "login config");
    Ok(StoredConfig {
        config: LoginConfig {
            id: f.parsed("id", ConfigId::parse)?,
            app_id: f.parsed("app_id", AppId::parse)?,
            channel: f.parsed("channel", parse_channel)?,
            is_default: f.bool("is_default")?,
            template_id: f.opt_parsed("template_id", TemplateId::parse)?,
            sender_id: f.opt_s("sender_id")?.map(str::to_owned),
            webotp_domain: f.opt_s("webotp_domain")?.map(str::to_owned),
            android_app_hash: f.opt_s("android_app_hash")?.map(str::to_owned),
            grant_change_password: f.bool("grant_change_password")?,
            code_length: f.u32("code_length")?,
            expiration_minutes: f.u32("expiration_minutes")?,
            created_at: f.timestamp("created_at")?,
            updated_at: f.timestamp("updated_at")?,
        },
        rev: f.i64("rev")?,
    })
}

pub(crate) fn default_pointer_item(app_id: &AppId, channel: Channel, config_id: &ConfigId) -> Item {
    with_key(
        keys::app(app_id),
        &keys::default_sk(channel),
        vec![("config_id", s(config_id.as_str()))],
    )
}

pub(crate) fn default_pointer_from(item: &Item) -> Result<ConfigId, StoreError> {
    Fields::new(item, "default pointer").parsed("config_id", ConfigId::parse)
}

/// A template's attributes for `SET` (everything but the keys and the usage counter, which a
/// replace must keep) and the optional ones to `REMOVE` when `None`.
pub(crate) fn template_attributes(
    template: &Template,
) -> (Vec<(&'static str, AttributeValue)>, Vec<&'static str>) {
    let mut set = vec![
        ("id", s(template.id.as_str())),
        ("app_id", s(template.app_id.as_str())),
        ("channel", s(template.channel.as_str())),
        ("locale", s(template.locale.as_str())),
        ("text", s(template.text.as_str())),
        ("created_at", n(template.created_at.0)),
        ("updated_at", n(template.updated_at.0)),
    ];
    let mut remove = Vec::new();
    for (name, value) in [("subject", &template.subject), ("html", &template.html)] {
        match value {
            Some(value) => set.push((name, s(value.as_str()))),
            None => remove.push(name),
        }
    }
    (set, remove)
}

pub(crate) fn template_from(item: &Item) -> Result<Template, StoreError> {
    let f = Fields::new(item, "template");
    Ok(Template {
        id: f.parsed("id", TemplateId::parse)?,
        app_id: f.parsed("app_id", AppId::parse)?,
        channel: f.parsed("channel", parse_channel)?,
        locale: f.s("locale")?.to_owned(),
        subject: f.opt_s("subject")?.map(str::to_owned),
        text: f.s("text")?.to_owned(),
        html: f.opt_s("html")?.map(str::to_owned),
        created_at: f.timestamp("created_at")?,
        updated_at: f.timestamp("updated_at")?,
    })
}

// --- test identifiers and SMS countries ----------------------------------------------------------

pub(crate) fn test_identifier_item(test: &TestIdentifier) -> Item {
    with_key(
        keys::app(&test.app_id),
        &keys::test_ident_sk(&test.identifier),
        vec![
            ("id", s(test.id.as_str())),
            ("app_id", s(test.app_id.as_str())),
            ("identifier", s(keys::identifier_key(&test.identifier))),
            ("code_hash", blob(&test.code_hash)),
            ("valid_until", n(test.valid_until.0)),
            ("created_at", n(test.created_at.0)),
        ],
    )
}

pub(crate) fn test_identifier_from(item: &Item) -> Result<TestIdentifier, StoreError> {
    let f = Fields::new(item, "test identifier");
    Ok(TestIdentifier {
        id: f.parsed("id", TestIdentifierId::parse)?,
        app_id: f.parsed("app_id", AppId::parse)?,
        identifier: f.parsed("identifier", keys::parse_identifier_key)?,
        code_hash: f.hash("code_hash")?,
        valid_until: f.timestamp("valid_until")?,
        created_at: f.timestamp("created_at")?,
    })
}

pub(crate) fn test_id_pointer_item(test: &TestIdentifier) -> Item {
    with_key(
        keys::app(&test.app_id),
        &keys::test_id_sk(&test.id),
        vec![("ident_sk", s(keys::test_ident_sk(&test.identifier)))],
    )
}

pub(crate) fn test_id_pointer_from(item: &Item) -> Result<String, StoreError> {
    Ok(Fields::new(item, "test identifier pointer")
        .s("ident_sk")?
        .to_owned())
}

/// An app's SMS countries: the ISO regions (`regions`).
pub(crate) fn sms_countries_item(app_id: &AppId, regions: &[Region]) -> Item {
    let regions: Vec<String> = regions.iter().map(|r| r.as_str().to_owned()).collect();
    with_key(
        keys::app(app_id),
        keys::SMS_COUNTRIES_SK,
        vec![("regions", strings(&regions))],
    )
}

/// The item as earlier versions wrote it: country calling codes (`calling_codes`).
#[cfg(any(test, feature = "test-support"))]
pub(crate) fn legacy_sms_countries_item(app_id: &AppId, calling_codes: &[String]) -> Item {
    with_key(
        keys::app(app_id),
        keys::SMS_COUNTRIES_SK,
        vec![("calling_codes", strings(calling_codes))],
    )
}

/// The regions of the item; an item written by an earlier version, which holds country calling
/// codes, reads as the regions of those codes.
pub(crate) fn sms_countries_from(item: &Item) -> Result<Vec<Region>, StoreError> {
    let f = Fields::new(item, "sms countries");
    if item.contains_key("regions") {
        f.strings("regions")?
            .iter()
            .map(|text| {
                Region::from_stored(text).ok_or_else(|| malformed("sms countries", "regions"))
            })
            .collect()
    } else {
        Ok(Region::of_calling_codes(&f.strings("calling_codes")?))
    }
}

/// The app's SMS budgets, as one JSON attribute (`budgets`): a small settings record read whole.
pub(crate) fn sms_budgets_item(app_id: &AppId, budgets: &SmsBudgets) -> Result<Item, StoreError> {
    let json = serde_json::to_string(budgets)
        .map_err(|_| StoreError::Other("SMS budgets could not be written".to_owned()))?;
    Ok(with_key(
        keys::app(app_id),
        keys::SMS_BUDGETS_SK,
        vec![("budgets", s(json))],
    ))
}

pub(crate) fn sms_budgets_from(item: &Item) -> Result<SmsBudgets, StoreError> {
    let text = Fields::new(item, "sms budgets").s("budgets")?;
    serde_json::from_str(text).map_err(|_| malformed("sms budgets", "budgets"))
}

/// The attribute of the signing-keys item naming its current key: the condition of a rotation.
pub(crate) const CURRENT_KID: &str = "current_kid";

/// The app's signing keys, newest first, as a list of maps; the private keys only sealed.
pub(crate) fn signing_keys_item(app_id: &AppId, signing_keys: &[SigningKey]) -> Item {
    let list = signing_keys
        .iter()
        .map(|key| {
            let mut map: Item = HashMap::from([
                ("kid".to_owned(), s(key.kid.as_str())),
                ("n".to_owned(), s(key.n.as_str())),
                ("e".to_owned(), s(key.e.as_str())),
                ("created_at".to_owned(), n(key.created_at.0)),
            ]);
            if let Some(sealed) = &key.sealed_private_key {
                map.insert("sealed".to_owned(), blob(sealed));
            }
            if let Some(retired) = key.retired_at {
                map.insert("retired_at".to_owned(), n(retired.0));
            }
            AttributeValue::M(map)
        })
        .collect();
    let mut attributes = vec![("keys", AttributeValue::L(list))];
    if let Some(current) = signing_keys.iter().find(|k| k.retired_at.is_none()) {
        attributes.push((CURRENT_KID, s(current.kid.as_str())));
    }
    with_key(keys::app(app_id), keys::SIGNING_KEYS_SK, attributes)
}

pub(crate) fn signing_keys_from(item: &Item) -> Result<Vec<SigningKey>, StoreError> {
    let outer = Fields::new(item, "signing keys");
    outer
        .list("keys")?
        .iter()
        .map(|value| {
            let AttributeValue::M(map) = value else {
                return Err(malformed("signing keys", "keys"));
            };
            let f = Fields::new(map, "signing key");
            Ok(SigningKey {
                kid: f.s("kid")?.to_owned(),
                n: f.s("n")?.to_owned(),
                e: f.s("e")?.to_owned(),
                sealed_private_key: f.opt_bytes("sealed")?.map(<[u8]>::to_vec),
                created_at: f.timestamp("created_at")?,
                retired_at: f.opt_timestamp("retired_at")?,
            })
        })
        .collect()
}

/// The app's frontend settings; `rev` is their revision, the condition of the next change.
pub(crate) fn frontend_item(app_id: &AppId, settings: &FrontendSettings) -> Item {
    let tokens = settings
        .public_tokens
        .iter()
        .map(|token| {
            AttributeValue::M(HashMap::from([
                ("token".to_owned(), s(token.token.as_str())),
                ("created_at".to_owned(), n(token.created_at.0)),
            ]))
        })
        .collect();
    with_key(
        keys::app(app_id),
        keys::FRONTEND_SK,
        vec![
            ("public_tokens", AttributeValue::L(tokens)),
            ("authorized_origins", strings(&settings.authorized_origins)),
            ("max_session_minutes", n(settings.max_session_minutes)),
            ("public_sends_per_hour", n(settings.public_sends_per_hour)),
            (keys::REV, n(settings.revision)),
        ],
    )
}

pub(crate) fn frontend_from(item: &Item) -> Result<FrontendSettings, StoreError> {
    let f = Fields::new(item, "frontend settings");
    let public_tokens = f
        .list("public_tokens")?
        .iter()
        .map(|value| {
            let AttributeValue::M(map) = value else {
                return Err(malformed("frontend settings", "public_tokens"));
            };
            let t = Fields::new(map, "public token");
            Ok(PublicToken {
                token: t.s("token")?.to_owned(),
                created_at: t.timestamp("created_at")?,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(FrontendSettings {
        public_tokens,
        authorized_origins: f.strings("authorized_origins")?,
        max_session_minutes: f.i64("max_session_minutes")?,
        public_sends_per_hour: f.u32("public_sends_per_hour")?,
        revision: f.u64(keys::REV)?,
    })
}

/// The lookup item of a public token.
pub(crate) fn public_token_item(token: &str, app_id: &AppId) -> Item {
    with_key(
        keys::public_token(token),
        keys::PUBLIC_TOKEN_SK,
        vec![("app_id", s(app_id.as_str()))],
    )
}

pub(crate) fn public_token_app(item: &Item) -> Result<AppId, StoreError> {
    let f = Fields::new(item, "public token");
    AppId::parse(f.s("app_id")?).ok_or_else(|| malformed("public token", "app_id"))
}

/// A tally's count attribute.
pub(crate) const COUNT: &str = "count";

pub(crate) fn tally_from(item: &Item) -> Result<Tally, StoreError> {
    let f = Fields::new(item, "tally");
    let app_id = f
        .s(keys::PK)?
        .strip_prefix("TALLY#")
        .and_then(AppId::parse)
        .ok_or_else(|| malformed("tally", keys::PK))?;
    Ok(Tally {
        app_id,
        name: f.s(keys::SK)?.to_owned(),
        count: f.u64(COUNT)?,
    })
}

// --- the login path's records: users, codes, sessions, owners, counters ---------------------------

/// How long a codes item outlives the later expiry of its codes before TTL may delete it, so
/// that an expired or used code is still told apart from a missing one for a day.
pub(crate) const CODES_TTL_GRACE_SECONDS: i64 = 86_400;

/// How long a send counter outlives its newest hit before TTL may delete it (longer than any
/// rate-limit window).
pub(crate) const COUNTER_TTL_SECONDS: i64 = 7 * 86_400;

fn rev_of(f: &Fields<'_>) -> Result<u64, StoreError> {
    f.u64(keys::REV)
}

/// One entry of the user's `phones` or `emails` list (verification lives in the `verified` map).
fn method_entry(method_id: &MethodId, identifier: &Identifier) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("id".to_owned(), s(method_id.as_str())),
        ("value".to_owned(), s(identifier.as_str())),
    ]))
}

/// The user item (`USER` in the user's home), at revision `rev`.
pub(crate) fn user_item(user: &User, rev: u64) -> Item {
    let phones = user
        .phone_numbers
        .iter()
        .map(|p| {
            method_entry(
                &MethodId::Phone(p.id.clone()),
                &Identifier::Phone(p.phone_number.clone()),
            )
        })
        .collect();
    let emails = user
        .emails
        .iter()
        .map(|e| {
            method_entry(
                &MethodId::Email(e.id.clone()),
                &Identifier::Email(e.email.clone()),
            )
        })
        .collect();
    let verified: Item = user
        .phone_numbers
        .iter()
        .map(|p| (p.id.as_str().to_owned(), boolean(p.verified)))
        .chain(
            user.emails
                .iter()
                .map(|e| (e.id.as_str().to_owned(), boolean(e.verified))),
        )
        .collect();
    let mut item = with_key(
        keys::home(&user.app_id, user.id.home()),
        keys::USER_SK,
        vec![
            ("id", s(user.id.as_str())),
            ("app_id", s(user.app_id.as_str())),
            ("status", s(status_str(user.status))),
            ("created_at", n(user.created_at.0)),
            ("phones", AttributeValue::L(phones)),
            ("emails", AttributeValue::L(emails)),
            ("verified", AttributeValue::M(verified)),
            ("failed_attempts", n(user.failed_attempts)),
            (keys::REV, n(rev)),
        ],
    );
    if let Some(lock) = user.lock {
        item.insert("lock_created_at".to_owned(), n(lock.created_at.0));
        item.insert(LOCK_EXPIRES_AT.to_owned(), n(lock.expires_at.0));
    }
    item
}

/// The user attribute `Write::UserUnlocked`'s condition reads.
pub(crate) const LOCK_EXPIRES_AT: &str = "lock_expires_at";

pub(crate) fn user_from(item: &Item) -> Result<Versioned<User>, StoreError> {
    let f = Fields::new(item, "user");
    let verified = f.map("verified")?;
    let is_verified = |id: &str| matches!(verified.get(id), Some(AttributeValue::Bool(true)));
    let entries = |attribute: &'static str| -> Result<Vec<(String, String)>, StoreError> {
        f.list(attribute)?
            .iter()
            .map(|entry| match entry {
                AttributeValue::M(map) => {
                    let e = Fields::new(map, "user");
                    Ok((e.s("id")?.to_owned(), e.s("value")?.to_owned()))
                }
                _ => Err(malformed("user", attribute)),
            })
            .collect()
    };
    let phone_numbers = entries("phones")?
        .into_iter()
        .map(|(id, value)| {
            Ok(PhoneMethod {
                verified: is_verified(&id),
                id: PhoneId::parse(&id).ok_or_else(|| malformed("user", "phones"))?,
                phone_number: PhoneNumber::from_stored(&value)
                    .ok_or_else(|| malformed("user", "phones"))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let emails = entries("emails")?
        .into_iter()
        .map(|(id, value)| {
            Ok(EmailMethod {
                verified: is_verified(&id),
                id: EmailId::parse(&id).ok_or_else(|| malformed("user", "emails"))?,
                email: EmailAddress::from_stored(&value)
                    .ok_or_else(|| malformed("user", "emails"))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let lock = match (
        f.opt_timestamp("lock_created_at")?,
        f.opt_timestamp(LOCK_EXPIRES_AT)?,
    ) {
        (Some(created_at), Some(expires_at)) => Some(Lock {
            created_at,
            expires_at,
        }),
        (None, None) => None,
        _ => return Err(malformed("user", LOCK_EXPIRES_AT)),
    };
    Ok(Versioned::new(
        User {
            id: f.parsed("id", UserId::parse)?,
            app_id: f.parsed("app_id", AppId::parse)?,
            status: f.parsed("status", parse_status)?,
            created_at: f.timestamp("created_at")?,
            phone_numbers,
            emails,
            failed_attempts: f.u32("failed_attempts")?,
            lock,
        },
        rev_of(&f)?,
    ))
}

/// The challenge attribute inside a code's map.
pub(crate) const CHALLENGE_ID: &str = "challenge_id";
/// The codes item's current code and the codes it replaced, newest first (each a map, or
/// `NULL` when there is none): `MAX_PREVIOUS_CODES` slots after `cur`.
pub(crate) const CUR: &str = "cur";
pub(crate) const PREV: [&str; MAX_PREVIOUS_CODES] = ["prev", "prev2"];

/// A challenge as the map stored in `cur` or `prev`.
pub(crate) fn challenge_value(challenge: &Challenge) -> AttributeValue {
    let mut map: Item = [
        (CHALLENGE_ID, s(challenge.id.as_str())),
        ("app_id", s(challenge.app_id.as_str())),
        ("user_id", s(challenge.user_id.as_str())),
        ("method_id", s(challenge.method_id.as_str())),
        ("channel", s(challenge.channel.as_str())),
        ("code_hash", blob(&challenge.code_hash)),
        ("hash_context", s(challenge.hash_context.as_str())),
        ("config_id", s(challenge.config_id.as_str())),
        (
            "grant_change_password",
            boolean(challenge.grant_change_password),
        ),
        ("created_at", n(challenge.created_at.0)),
        ("expires_at", n(challenge.expires_at.0)),
        ("attempts", n(challenge.attempts)),
        ("consumed", boolean(challenge.consumed)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    insert_opt(
        &mut map,
        "test_identifier",
        challenge.test_identifier.as_ref().map(|t| s(t.as_str())),
    );
    AttributeValue::M(map)
}

fn challenge_from(map: &Item) -> Result<Challenge, StoreError> {
    let f = Fields::new(map, "challenge");
    Ok(Challenge {
        id: f.parsed(CHALLENGE_ID, ChallengeId::parse)?,
        app_id: f.parsed("app_id", AppId::parse)?,
        user_id: f.parsed("user_id", UserId::parse)?,
        method_id: f.parsed("method_id", MethodId::parse)?,
        channel: f.parsed("channel", parse_channel)?,
        code_hash: f.hash("code_hash")?,
        hash_context: f.s("hash_context")?.to_owned(),
        config_id: f.parsed("config_id", ConfigId::parse)?,
        grant_change_password: f.bool("grant_change_password")?,
        created_at: f.timestamp("created_at")?,
        expires_at: f.timestamp("expires_at")?,
        attempts: f.u32("attempts")?,
        consumed: f.bool("consumed")?,
        test_identifier: f.opt_parsed("test_identifier", TestIdentifierId::parse)?,
    })
}

/// `NULL`, the value of a `cur` or `prev` that holds no code.
pub(crate) fn null() -> AttributeValue {
    AttributeValue::Null(true)
}

/// The `ttl` of a codes item whose latest code expires at `expires_at`.
pub(crate) fn codes_ttl(expires_at: Timestamp) -> AttributeValue {
    n(expires_at.plus_seconds(CODES_TTL_GRACE_SECONDS).0)
}

/// The codes item of a method (`CODES#<method>` in the user's home), at revision `rev`. Every
/// slot is always written (`NULL` when empty), so that an update can shift them.
pub(crate) fn codes_item(codes: &Codes, rev: u64) -> Item {
    let value = |c: Option<&Challenge>| c.map_or_else(null, challenge_value);
    let mut attributes = vec![
        ("app_id", s(codes.app_id.as_str())),
        ("method_id", s(codes.method_id.as_str())),
        (CUR, value(codes.current.as_ref())),
        (keys::REV, n(rev)),
    ];
    for (slot, name) in PREV.iter().enumerate() {
        attributes.push((name, value(codes.previous.get(slot))));
    }
    let mut item = with_key(
        keys::home(&codes.app_id, codes.method_id.home()),
        &keys::codes_sk(&codes.method_id),
        attributes,
    );
    let latest = codes
        .current
        .iter()
        .chain(codes.previous.iter())
        .map(|c| c.expires_at)
        .max();
    insert_opt(&mut item, keys::TTL, latest.map(codes_ttl));
    item
}

pub(crate) fn codes_from(item: &Item) -> Result<Versioned<Codes>, StoreError> {
    let f = Fields::new(item, "codes");
    let code = |attribute: &str| -> Result<Option<Challenge>, StoreError> {
        f.opt_map(attribute)?.map(challenge_from).transpose()
    };
    Ok(Versioned::new(
        Codes {
            app_id: f.parsed("app_id", AppId::parse)?,
            method_id: f.parsed("method_id", MethodId::parse)?,
            current: code(CUR)?,
            previous: PREV
                .iter()
                .map(|name| code(name))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect(),
        },
        rev_of(&f)?,
    ))
}

/// The owner item of an identifier (`APP#<app>#IDENT#<identifier>`, `IDENT`), at revision `rev`.
pub(crate) fn owner_item(owner: &Owner, rev: u64) -> Item {
    let mut item = with_key(
        keys::owner(&owner.app_id, &owner.identifier),
        keys::OWNER_SK,
        vec![
            ("app_id", s(owner.app_id.as_str())),
            ("identifier", s(keys::identifier_key(&owner.identifier))),
            ("user_id", s(owner.user_id.as_str())),
            ("method_id", s(owner.method_id.as_str())),
            (keys::REV, n(rev)),
        ],
    );
    insert_opt(
        &mut item,
        PENDING_SINCE,
        owner.pending_since.map(|at| n(at.0)),
    );
    item
}

/// An owner item's attribute while its identifier is attached and unverified.
pub(crate) const PENDING_SINCE: &str = "pending_since";

pub(crate) fn owner_from(item: &Item) -> Result<Versioned<Owner>, StoreError> {
    let f = Fields::new(item, "owner");
    Ok(Versioned::new(
        Owner {
            app_id: f.parsed("app_id", AppId::parse)?,
            identifier: f.parsed("identifier", keys::parse_identifier_key)?,
            user_id: f.parsed("user_id", UserId::parse)?,
            method_id: f.parsed("method_id", MethodId::parse)?,
            pending_since: f.opt_timestamp(PENDING_SINCE)?,
        },
        rev_of(&f)?,
    ))
}

/// The item of a send counter (`RATE#<key>`, `RATE`), at revision `rev`; its key is read back
/// from `pk`.
pub(crate) fn counter_item(counter: &SendCounter, rev: u64) -> Item {
    let mut item = with_key(
        keys::rate(&counter.key),
        keys::RATE_SK,
        vec![
            (
                "hits",
                AttributeValue::L(counter.hits.iter().map(|t| n(t.0)).collect()),
            ),
            (keys::REV, n(rev)),
        ],
    );
    let newest = counter.hits.iter().max();
    insert_opt(
        &mut item,
        keys::TTL,
        newest.map(|t| n(t.plus_seconds(COUNTER_TTL_SECONDS).0)),
    );
    item
}

pub(crate) fn counter_from(item: &Item) -> Result<Versioned<SendCounter>, StoreError> {
    let f = Fields::new(item, "counter");
    let key = f
        .s(keys::PK)?
        .strip_prefix(keys::RATE_PREFIX)
        .ok_or_else(|| malformed("counter", keys::PK))?
        .to_owned();
    let hits = f
        .list("hits")?
        .iter()
        .map(|hit| match hit {
            AttributeValue::N(text) => text
                .parse()
                .map(Timestamp)
                .map_err(|_| malformed("counter", "hits")),
            _ => Err(malformed("counter", "hits")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Versioned::new(SendCounter { key, hits }, rev_of(&f)?))
}

/// The session attributes that `touch_session` sets.
pub(crate) const LAST_ACCESSED_AT: &str = "last_accessed_at";
pub(crate) const EXPIRES_AT: &str = "expires_at";

/// The session item (`SESSION#<hex of token hash>` in the user's home), at revision `rev`;
/// `ttl` = `expires_at`.
pub(crate) fn session_item(session: &Session, rev: u64) -> Result<Item, StoreError> {
    let claims = serde_json::to_string(&session.custom_claims)
        .map_err(|_| StoreError::Other("session custom claims do not serialize".to_owned()))?;
    let factors = session
        .authentication_factors
        .iter()
        .map(|factor| {
            AttributeValue::M(HashMap::from([
                ("method_id".to_owned(), s(factor.method_id.as_str())),
                (
                    "identifier".to_owned(),
                    s(keys::identifier_key(&factor.identifier)),
                ),
                (
                    "last_authenticated_at".to_owned(),
                    n(factor.last_authenticated_at.0),
                ),
            ]))
        })
        .collect();
    Ok(with_key(
        keys::home(&session.app_id, session.user_id.home()),
        &keys::session_sk(&session.token_hash),
        vec![
            ("session_id", s(session.id.as_str())),
            ("app_id", s(session.app_id.as_str())),
            ("user_id", s(session.user_id.as_str())),
            ("token_hash", blob(&session.token_hash)),
            ("started_at", n(session.started_at.0)),
            (LAST_ACCESSED_AT, n(session.last_accessed_at.0)),
            (EXPIRES_AT, n(session.expires_at.0)),
            ("ip_address", s(session.attributes.ip_address.as_str())),
            ("user_agent", s(session.attributes.user_agent.as_str())),
            ("custom_claims", s(claims)),
            ("factors", AttributeValue::L(factors)),
            ("granted_scopes", strings(&session.granted_scopes)),
            (keys::REV, n(rev)),
            (keys::TTL, n(session.expires_at.0)),
        ],
    ))
}

pub(crate) fn session_from(item: &Item) -> Result<Versioned<Session>, StoreError> {
    let f = Fields::new(item, "session");
    let custom_claims = serde_json::from_str(f.s("custom_claims")?)
        .map_err(|_| malformed("session", "custom_claims"))?;
    let authentication_factors = f
        .list("factors")?
        .iter()
        .map(|factor| match factor {
            AttributeValue::M(map) => {
                let g = Fields::new(map, "session");
                Ok(AuthenticationFactor {
                    method_id: g.parsed("method_id", MethodId::parse)?,
                    identifier: g.parsed("identifier", keys::parse_identifier_key)?,
                    last_authenticated_at: g.timestamp("last_authenticated_at")?,
                })
            }
            _ => Err(malformed("session", "factors")),
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Versioned::new(
        Session {
            id: f.parsed("session_id", SessionId::parse)?,
            app_id: f.parsed("app_id", AppId::parse)?,
            user_id: f.parsed("user_id", UserId::parse)?,
            token_hash: f.hash("token_hash")?,
            started_at: f.timestamp("started_at")?,
            last_accessed_at: f.timestamp(LAST_ACCESSED_AT)?,
            expires_at: f.timestamp(EXPIRES_AT)?,
            attributes: SessionAttributes {
                ip_address: f.s("ip_address")?.to_owned(),
                user_agent: f.s("user_agent")?.to_owned(),
            },
            custom_claims,
            authentication_factors,
            granted_scopes: f.strings("granted_scopes")?,
        },
        rev_of(&f)?,
    ))
}

/// The record at `key`, parsed from its item as read (or as a failed condition returned it).
pub(crate) fn record_from(key: &Key, item: &Item) -> Result<Record, StoreError> {
    Ok(match key {
        Key::User { .. } => Record::User(user_from(item)?),
        Key::Codes { .. } => Record::Codes(codes_from(item)?),
        Key::Session { .. } => Record::Session(session_from(item)?),
        Key::Owner { .. } => Record::Owner(owner_from(item)?),
        Key::TestIdentifier { .. } => Record::TestIdentifier(test_identifier_from(item)?),
        Key::Counter { .. } => Record::Counter(counter_from(item)?),
        Key::Tally { .. } => Record::Tally(tally_from(item)?),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::random::SeededRandom;

    use super::*;

    const AT: Timestamp = Timestamp(1_800_000_000);

    fn rnd() -> SeededRandom {
        SeededRandom::new(7)
    }

    fn hash(byte: u8) -> Hash32 {
        [byte; 32]
    }

    fn phone() -> Identifier {
        Identifier::parse("+12025550123").expect("valid")
    }

    fn email() -> Identifier {
        Identifier::parse("Ann@Example.com").expect("valid")
    }

    fn key_of(item: &Item) -> (String, String) {
        let f = Fields::new(item, "test");
        (
            f.s(keys::PK).expect("pk").to_owned(),
            f.s(keys::SK).expect("sk").to_owned(),
        )
    }

    #[test]
    fn app_and_secret_round_trip() {
        let r = rnd();
        let app = App {
            id: AppId::generate(&r),
            name: "Acme".to_owned(),
            created_at: AT,
        };
        let item = app_item(&app, 2);
        assert_eq!(app_from(&item).expect("parse"), app);
        assert_eq!(Fields::new(&item, "t").u32(SECRET_COUNT).expect("count"), 2);
        let mut secret = AppSecret {
            id: SecretId::generate(&r, AT),
            app_id: app.id.clone(),
            hash: hash(3),
            created_at: AT,
            last_used_at: None,
        };
        let item = secret_item(&secret);
        assert!(
            matches!(item.get("hash"), Some(AttributeValue::B(_))),
            "hashes are binary"
        );
        assert!(!item.contains_key("last_used_at"));
        assert_eq!(secret_from(&item).expect("parse"), secret);
        secret.last_used_at = Some(AT.plus_seconds(5));
        assert_eq!(secret_from(&secret_item(&secret)).expect("parse"), secret);
        assert_eq!(
            key_of(&secret_item(&secret)),
            (
                format!("APP#{}", app.id),
                format!("APP#SECRET#{}", secret.id)
            )
        );
    }

    #[test]
    fn config_round_trips_with_rev_and_optional_fields() {
        let r = rnd();
        let mut config = LoginConfig {
            id: ConfigId::generate(&r, AT),
            app_id: AppId::generate(&r),
            channel: Channel::Email,
            is_default: true,
            template_id: Some(TemplateId::generate(&r, AT)),
            sender_id: Some("no-reply@example.com".to_owned()),
            webotp_domain: None,
            android_app_hash: None,
            grant_change_password: true,
            code_length: 8,
            expiration_minutes: 10,
            created_at: AT,
            updated_at: AT.plus_seconds(1),
        };
        let stored = config_from(&config_item(&config, 4)).expect("parse");
        assert_eq!(
            stored,
            StoredConfig {
                config: config.clone(),
                rev: 4
            }
        );
        config.template_id = None;
        config.sender_id = None;
        let item = config_item(&config, 1);
        assert!(!item.contains_key("template_id") && !item.contains_key("sender_id"));
        assert_eq!(config_from(&item).expect("parse").config, config);
        let pointer = default_pointer_item(&config.app_id, Channel::Email, &config.id);
        assert_eq!(default_pointer_from(&pointer).expect("parse"), config.id);
    }

    #[test]
    fn template_attributes_set_or_remove_optionals() {
        let r = rnd();
        let mut template = Template {
            id: TemplateId::generate(&r, AT),
            app_id: AppId::generate(&r),
            channel: Channel::Email,
            locale: "pt-br".to_owned(),
            subject: Some("Code".to_owned()),
            text: "{{code}}".to_owned(),
            html: Some("<b>{{code}}</b>".to_owned()),
            created_at: AT,
            updated_at: AT,
        };
        let as_item = |t: &Template| -> Item {
            let (set, _) = template_attributes(t);
            set.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        assert_eq!(template_from(&as_item(&template)).expect("parse"), template);
        template.subject = None;
        template.html = None;
        let (_, remove) = template_attributes(&template);
        assert_eq!(remove, vec!["subject", "html"]);
        assert_eq!(template_from(&as_item(&template)).expect("parse"), template);
    }

    #[test]
    fn test_identifier_and_countries_round_trip() {
        let r = rnd();
        let test = TestIdentifier {
            id: TestIdentifierId::generate(&r, AT),
            app_id: AppId::generate(&r),
            identifier: email(),
            code_hash: hash(9),
            valid_until: AT.plus_seconds(60),
            created_at: AT,
        };
        let item = test_identifier_item(&test);
        assert_eq!(test_identifier_from(&item).expect("parse"), test);
        assert_eq!(key_of(&item).1, "TESTID#IDENT#email#ann@example.com");
        assert_eq!(
            test_id_pointer_from(&test_id_pointer_item(&test)).expect("parse"),
            key_of(&item).1
        );
        let regions: Vec<Region> = ["CA", "US"]
            .iter()
            .filter_map(|r| Region::parse(r))
            .collect();
        assert_eq!(
            sms_countries_from(&sms_countries_item(&test.app_id, &regions)).expect("parse"),
            regions
        );
        assert_eq!(
            sms_countries_from(&sms_countries_item(&test.app_id, &[])).expect("parse"),
            Vec::<Region>::new()
        );
        // Written by an earlier version: calling codes, read as their regions.
        let legacy = legacy_sms_countries_item(&test.app_id, &["44".to_owned(), "1".to_owned()]);
        let read = sms_countries_from(&legacy).expect("parse");
        assert_eq!(read.len(), 25 + 4, "{read:?}");
        for region in ["US", "CA", "JM", "GB", "GG", "IM", "JE"] {
            assert!(read.iter().any(|r| r.as_str() == region), "{region}");
        }
        let nothing = legacy_sms_countries_item(&test.app_id, &["800".to_owned()]);
        assert_eq!(
            sms_countries_from(&nothing).expect("parse"),
            Vec::<Region>::new()
        );
    }

    fn user_in(r: &SeededRandom) -> User {
        let mut user = User {
            id: UserId::generate(r),
            app_id: AppId::generate(r),
            status: UserStatus::Pending,
            created_at: AT,
            phone_numbers: Vec::new(),
            emails: Vec::new(),
            failed_attempts: 3,
            lock: None,
        };
        let home = user.id.home();
        user.add_method(MethodId::Phone(PhoneId::generate_in(r, home)), phone());
        user.add_method(MethodId::Email(EmailId::generate_in(r, home)), email());
        user
    }

    fn challenge_for(r: &SeededRandom, user: &User, method_id: &MethodId) -> Challenge {
        let id = ChallengeId::generate(r);
        Challenge {
            hash_context: id.as_str().to_owned(),
            id,
            app_id: user.app_id.clone(),
            user_id: user.id.clone(),
            method_id: method_id.clone(),
            channel: Channel::Sms,
            code_hash: hash(1),
            config_id: ConfigId::generate(r, AT),
            grant_change_password: false,
            created_at: AT,
            expires_at: AT.plus_seconds(120),
            attempts: 2,
            consumed: true,
            test_identifier: None,
        }
    }

    fn ttl_of(item: &Item) -> Option<i64> {
        Fields::new(item, "t")
            .opt_i64(keys::TTL)
            .expect("numeric ttl")
    }

    #[test]
    fn user_round_trips_with_methods_in_order_lock_and_rev() {
        let r = rnd();
        let mut user = user_in(&r);
        user.add_method(
            MethodId::Phone(PhoneId::generate_in(&r, user.id.home())),
            Identifier::parse("+12025550124").expect("valid"),
        );
        user.phone_numbers[1].verified = true;
        let item = user_item(&user, 7);
        assert_eq!(
            user_from(&item).expect("parse"),
            Versioned::new(user.clone(), 7)
        );
        assert_eq!(
            key_of(&item),
            (
                format!("APP#{}#HOME#{}", user.app_id, user.id.home().to_hex()),
                "USER".to_owned()
            )
        );
        assert_eq!(ttl_of(&item), None, "a user never expires");
        user.lock = Some(Lock {
            created_at: AT,
            expires_at: AT.plus_seconds(3600),
        });
        user.status = UserStatus::Active;
        assert_eq!(
            user_from(&user_item(&user, 1)).expect("parse"),
            Versioned::new(user.clone(), 1)
        );

        let mut broken = user_item(&user, 1);
        broken.remove(LOCK_EXPIRES_AT);
        assert!(user_from(&broken).is_err(), "half a lock is malformed");
        let mut no_rev = user_item(&user, 1);
        no_rev.remove(keys::REV);
        assert_eq!(
            user_from(&no_rev),
            Err(StoreError::Other(
                "malformed user item: attribute rev".to_owned()
            ))
        );
    }

    #[test]
    fn codes_round_trip_with_current_and_previous() {
        let r = rnd();
        let user = user_in(&r);
        let method = user.method_ids()[0].clone();
        let mut current = challenge_for(&r, &user, &method);
        current.expires_at = AT.plus_seconds(600);
        let mut previous = challenge_for(&r, &user, &method);
        previous.test_identifier = Some(TestIdentifierId::generate(&r, AT));
        previous.consumed = false;
        let mut codes = Codes {
            app_id: user.app_id.clone(),
            method_id: method.clone(),
            current: Some(current.clone()),
            previous: vec![previous.clone()],
        };
        let item = codes_item(&codes, 3);
        assert_eq!(
            codes_from(&item).expect("parse"),
            Versioned::new(codes.clone(), 3)
        );
        assert_eq!(
            key_of(&item),
            (
                format!("APP#{}#HOME#{}", user.app_id, user.id.home().to_hex()),
                format!("CODES#{method}")
            )
        );
        assert!(
            matches!(
                item.get(CUR),
                Some(AttributeValue::M(m)) if matches!(m.get("code_hash"), Some(AttributeValue::B(_)))
            ),
            "the code hash is binary"
        );
        assert_eq!(
            ttl_of(&item),
            Some(AT.0 + 600 + CODES_TTL_GRACE_SECONDS),
            "the later code's expiry plus a day"
        );

        // The previous one may be the later; either may be missing; every slot is written.
        assert!(matches!(
            item.get(PREV[1]),
            Some(AttributeValue::Null(true))
        ));
        codes.current = None;
        let item = codes_item(&codes, 1);
        assert!(matches!(item.get(CUR), Some(AttributeValue::Null(true))));
        assert_eq!(ttl_of(&item), Some(AT.0 + 120 + CODES_TTL_GRACE_SECONDS));
        assert_eq!(codes_from(&item).expect("parse").value, codes);
        codes.current = Some(current.clone());
        codes.previous = Vec::new();
        let item = codes_item(&codes, 1);
        assert!(matches!(
            item.get(PREV[0]),
            Some(AttributeValue::Null(true))
        ));
        assert_eq!(codes_from(&item).expect("parse").value, codes);
        codes.previous = vec![previous.clone(), current.clone()];
        let item = codes_item(&codes, 1);
        assert!(matches!(item.get(PREV[1]), Some(AttributeValue::M(_))));
        assert_eq!(codes_from(&item).expect("parse").value, codes);
        codes.previous = Vec::new();
        codes.current = None;
        let item = codes_item(&codes, 1);
        assert_eq!(ttl_of(&item), None);
        assert_eq!(codes_from(&item).expect("parse").value, codes);

        let mut broken = codes_item(&codes, 1);
        broken.insert(CUR.to_owned(), s("not a map"));
        assert_eq!(
            codes_from(&broken),
            Err(StoreError::Other(
                "malformed codes item: attribute cur".to_owned()
            ))
        );
        let mut broken = codes_item(
            &Codes {
                current: Some(previous),
                ..codes
            },
            1,
        );
        if let Some(AttributeValue::M(map)) = broken.get_mut(CUR) {
            map.remove("expires_at");
        }
        assert_eq!(
            codes_from(&broken),
            Err(StoreError::Other(
                "malformed challenge item: attribute expires_at".to_owned()
            ))
        );
    }

    #[test]
    fn owner_round_trips() {
        let r = rnd();
        let user = user_in(&r);
        let owner = Owner {
            app_id: user.app_id.clone(),
            identifier: email(),
            user_id: user.id.clone(),
            method_id: user.method_ids()[1].clone(),
            pending_since: None,
        };
        let item = owner_item(&owner, 2);
        assert_eq!(
            owner_from(&item).expect("parse"),
            Versioned::new(owner.clone(), 2)
        );
        assert!(!item.contains_key(PENDING_SINCE));
        let pending = Owner {
            pending_since: Some(AT),
            ..owner.clone()
        };
        assert_eq!(
            owner_from(&owner_item(&pending, 1)).expect("parse"),
            Versioned::new(pending, 1)
        );
        assert_eq!(
            key_of(&item),
            (
                format!("APP#{}#IDENT#email#ann@example.com", owner.app_id),
                "IDENT".to_owned()
            )
        );
        assert_eq!(ttl_of(&item), None);
    }

    #[test]
    fn counter_round_trips_and_expires_a_week_after_its_newest_hit() {
        let key = format!("cooldown#{}#phone#+12025550123", AppId::generate(&rnd()));
        let counter = SendCounter {
            key: key.clone(),
            hits: vec![AT.plus_seconds(30), AT, AT.plus_seconds(10)],
        };
        let item = counter_item(&counter, 4);
        assert_eq!(
            counter_from(&item).expect("parse"),
            Versioned::new(counter.clone(), 4)
        );
        assert_eq!(key_of(&item), (format!("RATE#{key}"), "RATE".to_owned()));
        assert_eq!(ttl_of(&item), Some(AT.0 + 30 + 7 * 86_400));
        let empty = SendCounter {
            key,
            hits: Vec::new(),
        };
        let item = counter_item(&empty, 5);
        assert_eq!(ttl_of(&item), None);
        assert_eq!(
            counter_from(&item).expect("parse"),
            Versioned::new(empty, 5)
        );
        let mut broken = item;
        broken.insert("hits".to_owned(), AttributeValue::L(vec![s("soon")]));
        assert_eq!(
            counter_from(&broken),
            Err(StoreError::Other(
                "malformed counter item: attribute hits".to_owned()
            ))
        );
    }

    #[test]
    fn session_round_trips_in_its_users_home() {
        let r = rnd();
        let user = user_in(&r);
        let mut claims = serde_json::Map::new();
        claims.insert(
            "plan".to_owned(),
            json!({"tier": "gold", "seats": 3, "ratio": 0.5}),
        );
        let session = Session {
            id: SessionId::generate_in(&r, user.id.home()),
            app_id: user.app_id.clone(),
            user_id: user.id.clone(),
            token_hash: hash(0xab),
            started_at: AT,
            last_accessed_at: AT.plus_seconds(1),
            expires_at: AT.plus_minutes(60),
            attributes: SessionAttributes {
                ip_address: "203.0.113.7".to_owned(),
                user_agent: "tests".to_owned(),
            },
            custom_claims: claims,
            authentication_factors: vec![
                AuthenticationFactor {
                    method_id: user.method_ids()[0].clone(),
                    identifier: phone(),
                    last_authenticated_at: AT,
                },
                AuthenticationFactor {
                    method_id: user.method_ids()[1].clone(),
                    identifier: email(),
                    last_authenticated_at: AT.plus_seconds(2),
                },
            ],
            granted_scopes: vec!["password:write".to_owned()],
        };
        let item = session_item(&session, 9).expect("item");
        assert_eq!(
            session_from(&item).expect("parse"),
            Versioned::new(session.clone(), 9)
        );
        assert_eq!(ttl_of(&item), Some(session.expires_at.0));
        assert_eq!(
            key_of(&item),
            (
                format!("APP#{}#HOME#{}", user.app_id, user.id.home().to_hex()),
                format!("SESSION#{}", "ab".repeat(32))
            )
        );
        assert!(matches!(item.get("token_hash"), Some(AttributeValue::B(_))));
    }

    #[test]
    fn records_parse_by_the_kind_of_their_key_and_sit_at_its_item() {
        let r = rnd();
        let user = user_in(&r);
        let method = user.method_ids()[0].clone();
        let owner = Owner {
            app_id: user.app_id.clone(),
            identifier: phone(),
            user_id: user.id.clone(),
            method_id: method.clone(),
            pending_since: None,
        };
        let codes = Codes {
            app_id: user.app_id.clone(),
            method_id: method.clone(),
            current: Some(challenge_for(&r, &user, &method)),
            previous: Vec::new(),
        };
        let counter = SendCounter {
            key: "send#x".to_owned(),
            hits: vec![AT],
        };
        let test = TestIdentifier {
            id: TestIdentifierId::generate(&r, AT),
            app_id: user.app_id.clone(),
            identifier: phone(),
            code_hash: hash(2),
            valid_until: AT,
            created_at: AT,
        };
        let records = [
            (
                Record::User(Versioned::new(user.clone(), 1)),
                user_item(&user, 1),
            ),
            (
                Record::Codes(Versioned::new(codes.clone(), 2)),
                codes_item(&codes, 2),
            ),
            (
                Record::Owner(Versioned::new(owner.clone(), 3)),
                owner_item(&owner, 3),
            ),
            (
                Record::Counter(Versioned::new(counter.clone(), 4)),
                counter_item(&counter, 4),
            ),
            (
                Record::TestIdentifier(test.clone()),
                test_identifier_item(&test),
            ),
        ];
        for (record, item) in records {
            let key = record.key();
            assert_eq!(record_from(&key, &item).expect("parse"), record);
            let (pk, sk) = keys::of(&key);
            assert_eq!(key_of(&item), (pk, sk), "{key:?}");
        }
        assert!(
            record_from(
                &Key::Counter {
                    key: "x".to_owned()
                },
                &user_item(&user, 1)
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_items_name_the_attribute_not_the_value() {
        let r = rnd();
        let app = App {
            id: AppId::generate(&r),
            name: "Acme".to_owned(),
            created_at: AT,
        };
        let mut item = app_item(&app, 1);
        item.insert("created_at".to_owned(), s("+12025550123"));
        let error = app_from(&item).expect_err("malformed");
        assert_eq!(
            error,
            StoreError::Other("malformed app item: attribute created_at".to_owned())
        );
        item.insert("created_at".to_owned(), AttributeValue::N("12x".to_owned()));
        assert!(app_from(&item).is_err());
        item.insert("created_at".to_owned(), n(1));
        item.insert("id".to_owned(), s("app-not-an-id"));
        assert!(app_from(&item).is_err());
    }
}
