//! The store contract: what every adapter of the store ports (`crate::ports`) must do, written
//! once as async functions that panic on a breach, so that the in-memory adapter and the
//! DynamoDB adapter are held to the same behaviour.
//!
//! Another crate enables the `contract-tests` feature of `otp-shared` (as a dev-dependency) and
//! then either generates one `#[tokio::test]` per behaviour (the crate needs `tokio` with the
//! `macros` and `rt-multi-thread` features):
//!
//! ```ignore
//! mod store_contract {
//!     shared::store_contract_tests!(my_adapter::Store::connect_for_tests().await);
//! }
//! ```
//!
//! or runs everything in one test with a factory that makes a fresh store:
//!
//! ```ignore
//! shared::contract_tests::run_all(|| async { my_adapter::Store::connect_for_tests().await }).await;
//! ```
//!
//! or calls single functions. Each function makes its own apps with random ids and uses the
//! current time, so a store shared between functions and between runs (one DynamoDB table whose
//! TTL deletes expired items) is fine. The concurrency functions spawn tasks, so they want a
//! multi-thread runtime to mean anything.
//!
//! When you add a behaviour, add it to `run_all` and to `store_contract_tests!` as well.

use std::future::Future;
use std::sync::Arc;

use serde_json::json;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::crypto::Hash32;
use crate::identifiers::{EmailAddress, Identifier, PhoneNumber, Region};
use crate::ids::{
    AppId, ChallengeId, ConfigId, EmailId, Home, MethodId, PhoneId, RequestId, SecretId, SessionId,
    TemplateId, TestIdentifierId, UserId,
};
use crate::model::{
    App, AppSecret, AuthenticationFactor, Challenge, Channel, Codes, FrontendSettings, Lock,
    LoginConfig, Owner, PublicToken, SendCounter, Session, SessionAttributes, SigningKey,
    SmsBudgets, Tally, Template, TestIdentifier, User, UserStatus,
};
use crate::ports::{
    AppStore, CommitError, CommitToken, ConfigStore, Conflict, Expect, HomeRecords, Key,
    LoginStore, Record, Versioned, Write, WriteError,
};
use crate::random::{OsRandom, Random};

// ---------------------------------------------------------------------------------------------
// Fixtures: records with fresh random ids, valid as the domain would write them.
// ---------------------------------------------------------------------------------------------

fn rnd() -> &'static dyn Random {
    &OsRandom
}

fn now() -> Timestamp {
    SystemClock.now()
}

fn random_hash() -> Hash32 {
    let mut hash = [0u8; 32];
    rnd().fill_bytes(&mut hash);
    hash
}

/// A valid fictional US number, `+1 202 555 01xx`, unique enough within one app.
fn phone(n: u8) -> Identifier {
    let text = format!("+120255501{:02}", n % 100);
    Identifier::Phone(PhoneNumber::parse(&text).expect("fixture phone number is valid"))
}

fn email(local: &str) -> Identifier {
    Identifier::Email(
        EmailAddress::parse(&format!("{local}@example.com")).expect("fixture email is valid"),
    )
}

/// A method id in `home` (a user's methods live in the user's home).
fn new_method_id(identifier: &Identifier, home: Home) -> MethodId {
    match identifier {
        Identifier::Phone(_) => MethodId::Phone(PhoneId::generate_in(rnd(), home)),
        Identifier::Email(_) => MethodId::Email(EmailId::generate_in(rnd(), home)),
    }
}

fn app_with_secret(at: Timestamp) -> (App, AppSecret) {
    let app = App {
        id: AppId::generate(rnd()),
        name: "Contract app".to_owned(),
        created_at: at,
    };
    let secret = secret_of(&app.id, at);
    (app, secret)
}

fn secret_of(app_id: &AppId, at: Timestamp) -> AppSecret {
    AppSecret {
        id: SecretId::generate(rnd(), at),
        app_id: app_id.clone(),
        hash: random_hash(),
        created_at: at,
        last_used_at: None,
    }
}

fn config_of(app_id: &AppId, channel: Channel, is_default: bool, at: Timestamp) -> LoginConfig {
    LoginConfig {
        id: ConfigId::generate(rnd(), at),
        app_id: app_id.clone(),
        channel,
        is_default,
        template_id: None,
        sender_id: match channel {
            Channel::Sms => Some("Contract".to_owned()),
            Channel::Email => None,
        },
        webotp_domain: match channel {
            Channel::Sms => Some("login.example.com".to_owned()),
            Channel::Email => None,
        },
        android_app_hash: None,
        grant_change_password: false,
        code_length: 6,
        expiration_minutes: 2,
        created_at: at,
        updated_at: at,
    }
}

fn template_of(app_id: &AppId, channel: Channel, at: Timestamp) -> Template {
    let email = channel == Channel::Email;
    Template {
        id: TemplateId::generate(rnd(), at),
        app_id: app_id.clone(),
        channel,
        locale: "en".to_owned(),
        subject: email.then(|| "Your code".to_owned()),
        text: "Your code is {{code}}".to_owned(),
        html: email.then(|| "<p>{{code}}</p>".to_owned()),
        created_at: at,
        updated_at: at,
    }
}

fn test_identifier_of(app_id: &AppId, identifier: Identifier, at: Timestamp) -> TestIdentifier {
    TestIdentifier {
        id: TestIdentifierId::generate(rnd(), at),
        app_id: app_id.clone(),
        identifier,
        code_hash: random_hash(),
        valid_until: at.plus_seconds(86_400),
        created_at: at,
    }
}

/// A user holding exactly one method, for `identifier`.
fn user_of(
    app_id: &AppId,
    identifier: &Identifier,
    status: UserStatus,
    at: Timestamp,
) -> (User, MethodId) {
    let id = UserId::generate(rnd());
    let method_id = new_method_id(identifier, id.home());
    let mut user = User {
        id,
        app_id: app_id.clone(),
        status,
        created_at: at,
        phone_numbers: Vec::new(),
        emails: Vec::new(),
        failed_attempts: 0,
        lock: None,
    };
    user.add_method(method_id.clone(), identifier.clone());
    (user, method_id)
}

/// A live code of `user`'s method.
fn challenge_for(user: &User, method_id: &MethodId, at: Timestamp) -> Challenge {
    let id = ChallengeId::generate(rnd());
    Challenge {
        hash_context: id.as_str().to_owned(),
        id,
        app_id: user.app_id.clone(),
        user_id: user.id.clone(),
        method_id: method_id.clone(),
        channel: match method_id {
            MethodId::Phone(_) => Channel::Sms,
            MethodId::Email(_) => Channel::Email,
        },
        code_hash: random_hash(),
        config_id: ConfigId::generate(rnd(), at),
        grant_change_password: false,
        created_at: at,
        expires_at: at.plus_seconds(120),
        attempts: 0,
        consumed: false,
        test_identifier: None,
    }
}

/// A live session of `user_id`, in its home.
fn session_of(app_id: &AppId, user_id: &UserId, at: Timestamp) -> Session {
    let identifier = phone(1);
    let mut custom_claims = serde_json::Map::new();
    custom_claims.insert("plan".to_owned(), json!({"tier": "gold", "seats": 3}));
    let home = user_id.home();
    Session {
        id: SessionId::generate_in(rnd(), home),
        app_id: app_id.clone(),
        user_id: user_id.clone(),
        token_hash: random_hash(),
        started_at: at,
        last_accessed_at: at,
        expires_at: at.plus_minutes(60),
        attributes: SessionAttributes {
            ip_address: "203.0.113.7".to_owned(),
            user_agent: "contract-tests".to_owned(),
        },
        custom_claims,
        authentication_factors: vec![AuthenticationFactor {
            method_id: new_method_id(&identifier, home),
            identifier,
            last_authenticated_at: at,
        }],
        granted_scopes: vec!["password:write".to_owned()],
    }
}

fn sorted_by_key<T, K: Ord>(mut items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    items.sort_by_key(|item| key(item));
    items
}

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, WriteError>) -> bool {
    matches!(result, Err(WriteError::Conflict(_)))
}

// ---------------------------------------------------------------------------------------------
// AppStore
// ---------------------------------------------------------------------------------------------

/// `create_app` stores the app with its first secret; `get_app` reads it back, `None` for others.
pub async fn app_create_and_get(store: &dyn AppStore) {
    let at = now();
    let (app, secret) = app_with_secret(at);
    store
        .create_app(&app, &secret, &[], &FrontendSettings::default())
        .await
        .expect("create_app");

    assert_eq!(
        store.get_app(&app.id).await.expect("get_app"),
        Some(app.clone())
    );
    assert_eq!(
        store.list_secrets(&app.id).await.expect("list_secrets"),
        vec![secret],
        "create_app stores the first secret"
    );
    let unknown = AppId::generate(rnd());
    assert_eq!(store.get_app(&unknown).await.expect("get_app"), None);
    assert!(
        store
            .list_secrets(&unknown)
            .await
            .expect("list_secrets")
            .is_empty(),
        "an unknown app has no secrets"
    );
}

/// Secrets: add, list per app, delete (with its existed flag).
pub async fn app_secrets_add_list_delete(store: &dyn AppStore) {
    let at = now();
    let (app, first) = app_with_secret(at);
    store
        .create_app(&app, &first, &[], &FrontendSettings::default())
        .await
        .expect("create_app");
    let (other_app, other_secret) = app_with_secret(at);
    store
        .create_app(&other_app, &other_secret, &[], &FrontendSettings::default())
        .await
        .expect("create_app");

    let second = secret_of(&app.id, at.plus_seconds(1));
    store.add_secret(&second).await.expect("add_secret");
    let listed = sorted_by_key(store.list_secrets(&app.id).await.expect("list"), |s| {
        s.id.clone()
    });
    let expected = sorted_by_key(vec![first.clone(), second.clone()], |s| s.id.clone());
    assert_eq!(listed, expected, "both secrets listed, with their hashes");
    assert_eq!(
        store.list_secrets(&other_app.id).await.expect("list"),
        vec![other_secret.clone()],
        "secrets are per app"
    );

    assert!(
        store
            .delete_secret(&app.id, &first.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_secret(&app.id, &first.id)
            .await
            .expect("delete"),
        "a second delete reports that the secret did not exist"
    );
    assert!(
        is_conflict(&store.delete_secret(&app.id, &second.id).await),
        "the app's last secret is kept"
    );
    assert!(
        !store
            .delete_secret(&app.id, &other_secret.id)
            .await
            .expect("delete"),
        "another app's secret cannot be deleted through this app"
    );
    assert_eq!(
        store.list_secrets(&app.id).await.expect("list"),
        vec![second]
    );
    assert_eq!(
        store.list_secrets(&other_app.id).await.expect("list"),
        vec![other_secret]
    );
}

/// `touch_secret` records `last_used_at` on that secret only, and never brings back a deleted one.
pub async fn app_secret_touch(store: &dyn AppStore) {
    let at = now();
    let (app, first) = app_with_secret(at);
    store
        .create_app(&app, &first, &[], &FrontendSettings::default())
        .await
        .expect("create_app");
    let second = secret_of(&app.id, at);
    store.add_secret(&second).await.expect("add_secret");

    let used = at.plus_seconds(90);
    store
        .touch_secret(&app.id, &first.id, used)
        .await
        .expect("touch");
    let secrets = store.list_secrets(&app.id).await.expect("list");
    let find = |id: &SecretId| secrets.iter().find(|s| &s.id == id).cloned();
    let touched = find(&first.id).expect("first secret still there");
    assert_eq!(touched.last_used_at, Some(used));
    assert_eq!(touched.hash, first.hash, "touch keeps the hash");
    assert_eq!(
        touched.created_at, first.created_at,
        "touch keeps created_at"
    );
    assert_eq!(find(&second.id).expect("second").last_used_at, None);

    store
        .delete_secret(&app.id, &second.id)
        .await
        .expect("delete");
    store
        .touch_secret(&app.id, &second.id, used.plus_seconds(60))
        .await
        .expect("touching a deleted secret is not an error");
    assert_eq!(
        store.list_secrets(&app.id).await.expect("list").len(),
        1,
        "touching a deleted secret must not recreate it"
    );
}

/// `load_app` reads the app with its secrets, login configs, templates and SMS countries in one
/// go (never its test identifiers); `None` for an unknown app.
pub async fn app_load_app(store: &dyn AllStores) {
    let at = now();
    let (app, secret) = app_with_secret(at);
    store
        .create_app(&app, &secret, &[], &FrontendSettings::default())
        .await
        .expect("create_app");
    let template = template_of(&app.id, Channel::Sms, at);
    store.put_template(&template).await.expect("put_template");
    let mut sms = config_of(&app.id, Channel::Sms, true, at);
    sms.template_id = Some(template.id.clone());
    store.put_config(&sms).await.expect("put_config");
    let email = config_of(&app.id, Channel::Email, false, at);
    store.put_config(&email).await.expect("put_config");
    store
        .put_test_identifier(&test_identifier_of(&app.id, phone(9), at))
        .await
        .expect("put_test_identifier");
    let data = store
        .load_app(&app.id)
        .await
        .expect("load_app")
        .expect("the app");
    assert_eq!(data.app, app);
    assert_eq!(data.secrets, vec![secret]);
    assert_eq!(
        sorted_by_key(data.configs, |c| c.id.clone()),
        sorted_by_key(vec![sms, email], |c| c.id.clone())
    );
    assert_eq!(data.templates, vec![template]);
    assert_eq!(data.sms_countries, None);
    store
        .put_sms_countries(&app.id, Some(regions(&["GB", "US"])))
        .await
        .expect("put_sms_countries");
    let budgets = SmsBudgets {
        prefix_digits: 6,
        verification_floor: None,
        ..SmsBudgets::default()
    };
    assert_eq!(store.get_sms_budgets(&app.id).await.expect("get"), None);
    store
        .put_sms_budgets(&app.id, &budgets)
        .await
        .expect("put_sms_budgets");
    assert_eq!(
        store.get_sms_budgets(&app.id).await.expect("get"),
        Some(budgets)
    );
    let data = store
        .load_app(&app.id)
        .await
        .expect("load_app")
        .expect("app");
    assert_eq!(data.sms_countries, Some(regions(&["GB", "US"])));
    assert_eq!(data.sms_budgets, Some(budgets));
    assert_eq!(
        store
            .load_app(&AppId::generate(rnd()))
            .await
            .expect("load_app"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// ConfigStore
// ---------------------------------------------------------------------------------------------

/// Login configs: put (create and full replace), get, list per app, delete.
pub async fn config_put_get_list_delete(store: &dyn ConfigStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let other_app = AppId::generate(rnd());
    let sms = config_of(&app, Channel::Sms, false, at);
    let email = config_of(&app, Channel::Email, false, at);
    let foreign = config_of(&other_app, Channel::Sms, false, at);
    for config in [&sms, &email, &foreign] {
        store.put_config(config).await.expect("put_config");
    }

    assert_eq!(
        store.get_config(&app, &sms.id).await.expect("get"),
        Some(sms.clone())
    );
    assert_eq!(
        store.get_config(&app, &foreign.id).await.expect("get"),
        None,
        "a config is found only under its own app"
    );
    let listed = sorted_by_key(store.list_configs(&app).await.expect("list"), |c| {
        c.id.clone()
    });
    assert_eq!(
        listed,
        sorted_by_key(vec![sms.clone(), email.clone()], |c| c.id.clone())
    );

    let mut replaced = sms.clone();
    replaced.code_length = 8;
    replaced.expiration_minutes = 10;
    replaced.sender_id = None;
    replaced.grant_change_password = true;
    replaced.updated_at = at.plus_seconds(5);
    store.put_config(&replaced).await.expect("replace");
    assert_eq!(
        store.get_config(&app, &sms.id).await.expect("get"),
        Some(replaced),
        "put_config fully replaces, including fields set back to None"
    );
    assert_eq!(store.list_configs(&app).await.expect("list").len(), 2);

    assert!(store.delete_config(&app, &sms.id).await.expect("delete"));
    assert!(!store.delete_config(&app, &sms.id).await.expect("delete"));
    assert!(
        !store
            .delete_config(&app, &foreign.id)
            .await
            .expect("delete"),
        "another app's config cannot be deleted through this app"
    );
    assert_eq!(store.get_config(&app, &sms.id).await.expect("get"), None);
    assert_eq!(store.list_configs(&app).await.expect("list"), vec![email]);
    assert_eq!(
        store.list_configs(&other_app).await.expect("list"),
        vec![foreign]
    );
}

/// The default config of an app and channel, as the app's settings show it (at most one).
async fn default_config(
    store: &dyn ConfigStore,
    app: &AppId,
    channel: Channel,
) -> Result<Option<LoginConfig>, crate::ports::StoreError> {
    let configs = store.list_configs(app).await?;
    let defaults: Vec<LoginConfig> = configs
        .into_iter()
        .filter(|c| c.channel == channel && c.is_default)
        .collect();
    assert!(defaults.len() <= 1, "two defaults: {defaults:?}");
    Ok(defaults.into_iter().next())
}

async fn default_id(store: &dyn ConfigStore, app: &AppId, channel: Channel) -> Option<ConfigId> {
    default_config(store, app, channel)
        .await
        .expect("default_config")
        .map(|c| c.id)
}

/// Making a config default un-defaults the others of the same app and channel, and only those.
pub async fn config_default_switching(store: &dyn ConfigStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let other_app = AppId::generate(rnd());
    let first = config_of(&app, Channel::Sms, true, at);
    let email = config_of(&app, Channel::Email, true, at);
    let foreign = config_of(&other_app, Channel::Sms, true, at);
    for config in [&first, &email, &foreign] {
        store.put_config(config).await.expect("put_config");
    }
    let default = |channel| default_id(store, &app, channel);
    assert_eq!(default(Channel::Sms).await, Some(first.id.clone()));
    assert_eq!(default(Channel::Email).await, Some(email.id.clone()));

    // A non-default config changes nothing.
    let plain = config_of(&app, Channel::Sms, false, at);
    store.put_config(&plain).await.expect("put_config");
    assert_eq!(default(Channel::Sms).await, Some(first.id.clone()));

    // A second default takes over.
    let second = config_of(&app, Channel::Sms, true, at);
    store.put_config(&second).await.expect("put_config");
    assert_eq!(default(Channel::Sms).await, Some(second.id.clone()));
    let stored_first = store
        .get_config(&app, &first.id)
        .await
        .expect("get")
        .expect("first");
    assert!(
        !stored_first.is_default,
        "the previous default is no longer default"
    );
    assert_eq!(
        stored_first,
        LoginConfig {
            is_default: false,
            ..first.clone()
        },
        "un-defaulting changes nothing else"
    );
    let defaults: Vec<_> = store
        .list_configs(&app)
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.is_default)
        .map(|c| c.id)
        .collect();
    assert_eq!(
        sorted_by_key(defaults, Clone::clone),
        sorted_by_key(vec![second.id.clone(), email.id.clone()], Clone::clone),
        "exactly one default per channel"
    );
    assert_eq!(
        default(Channel::Email).await,
        Some(email.id.clone()),
        "the other channel keeps its default"
    );
    assert_eq!(
        default_config(store, &other_app, Channel::Sms)
            .await
            .expect("default")
            .map(|c| c.id),
        Some(foreign.id.clone()),
        "another app keeps its default"
    );

    // Replacing the old one as default switches back; replacing the default as non-default
    // leaves the channel without one.
    store.put_config(&first).await.expect("replace");
    assert_eq!(default(Channel::Sms).await, Some(first.id.clone()));
    assert!(
        !store
            .get_config(&app, &second.id)
            .await
            .expect("get")
            .expect("second")
            .is_default
    );
    store
        .put_config(&LoginConfig {
            is_default: false,
            ..first.clone()
        })
        .await
        .expect("replace");
    assert_eq!(
        default(Channel::Sms).await,
        None,
        "a channel may have no default"
    );

    // Deleting the default leaves no default either.
    store.delete_config(&app, &email.id).await.expect("delete");
    assert_eq!(default(Channel::Email).await, None);
}

/// `put_config` naming a template that does not exist is a `Conflict` and writes nothing.
pub async fn config_missing_template_conflict(store: &dyn ConfigStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let current_default = config_of(&app, Channel::Sms, true, at);
    store
        .put_config(&current_default)
        .await
        .expect("put_config");

    let mut config = config_of(&app, Channel::Sms, true, at);
    config.template_id = Some(TemplateId::generate(rnd(), at));
    let result = store.put_config(&config).await;
    assert!(is_conflict(&result), "missing template: {result:?}");
    assert_eq!(store.get_config(&app, &config.id).await.expect("get"), None);
    assert_eq!(
        default_config(store, &app, Channel::Sms)
            .await
            .expect("default")
            .map(|c| c.id),
        Some(current_default.id.clone()),
        "a refused put_config un-defaults nothing"
    );

    // A template of another app does not count either.
    let foreign_template = template_of(&AppId::generate(rnd()), Channel::Sms, at);
    store
        .put_template(&foreign_template)
        .await
        .expect("put_template");
    config.template_id = Some(foreign_template.id.clone());
    let result = store.put_config(&config).await;
    assert!(is_conflict(&result), "another app's template: {result:?}");

    // With the template in place the same config is accepted.
    let template = template_of(&app, Channel::Sms, at);
    store.put_template(&template).await.expect("put_template");
    config.template_id = Some(template.id.clone());
    store
        .put_config(&config)
        .await
        .expect("put_config with an existing template");
    assert_eq!(
        store.get_config(&app, &config.id).await.expect("get"),
        Some(config)
    );
}

/// Templates: put, get, list, replace; delete refused (`Conflict`) while a config uses it.
pub async fn template_crud_and_in_use_conflict(store: &dyn ConfigStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let sms = template_of(&app, Channel::Sms, at);
    let email = template_of(&app, Channel::Email, at);
    store.put_template(&sms).await.expect("put_template");
    store.put_template(&email).await.expect("put_template");
    assert_eq!(
        store.get_template(&app, &sms.id).await.expect("get"),
        Some(sms.clone())
    );
    assert_eq!(
        store
            .get_template(&AppId::generate(rnd()), &sms.id)
            .await
            .expect("get"),
        None,
        "a template is found only under its own app"
    );
    assert_eq!(
        sorted_by_key(store.list_templates(&app).await.expect("list"), |t| t
            .id
            .clone()),
        sorted_by_key(vec![sms.clone(), email.clone()], |t| t.id.clone())
    );

    let mut replaced = email.clone();
    replaced.text = "Code: {{code}}".to_owned();
    replaced.html = None;
    replaced.updated_at = at.plus_seconds(3);
    store.put_template(&replaced).await.expect("replace");
    assert_eq!(
        store.get_template(&app, &email.id).await.expect("get"),
        Some(replaced)
    );

    let mut config = config_of(&app, Channel::Sms, true, at);
    config.template_id = Some(sms.id.clone());
    store.put_config(&config).await.expect("put_config");
    let result = store.delete_template(&app, &sms.id).await;
    assert!(is_conflict(&result), "template in use: {result:?}");
    assert_eq!(
        store.get_template(&app, &sms.id).await.expect("get"),
        Some(sms.clone()),
        "a refused delete keeps the template"
    );

    // Once no config uses it (here: the config is replaced without it), it can go.
    config.template_id = None;
    store.put_config(&config).await.expect("replace config");
    assert_eq!(store.delete_template(&app, &sms.id).await, Ok(true));
    assert_eq!(store.delete_template(&app, &sms.id).await, Ok(false));
    assert_eq!(store.get_template(&app, &sms.id).await.expect("get"), None);

    // A config that is deleted frees its template as well.
    let mut email_config = config_of(&app, Channel::Email, false, at);
    email_config.template_id = Some(email.id.clone());
    store.put_config(&email_config).await.expect("put_config");
    assert!(is_conflict(&store.delete_template(&app, &email.id).await));
    store
        .delete_config(&app, &email_config.id)
        .await
        .expect("delete_config");
    assert_eq!(store.delete_template(&app, &email.id).await, Ok(true));
    assert!(store.list_templates(&app).await.expect("list").is_empty());
}

/// Test identifiers: unique per app (`Conflict`), found by identifier, deletable.
pub async fn test_identifier_uniqueness(store: &dyn ConfigStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let other_app = AppId::generate(rnd());
    let number = phone(10);
    let first = test_identifier_of(&app, number.clone(), at);
    store
        .put_test_identifier(&first)
        .await
        .expect("put_test_identifier");
    let by_email = test_identifier_of(&app, email("reviewer"), at);
    store
        .put_test_identifier(&by_email)
        .await
        .expect("put_test_identifier");

    let duplicate = test_identifier_of(&app, number.clone(), at);
    let result = store.put_test_identifier(&duplicate).await;
    assert!(
        is_conflict(&result),
        "same identifier twice in one app: {result:?}"
    );

    let elsewhere = test_identifier_of(&other_app, number.clone(), at);
    store
        .put_test_identifier(&elsewhere)
        .await
        .expect("the same identifier in another app is fine");

    // Re-putting the same record is a replace, not a duplicate.
    let mut renewed = first.clone();
    renewed.valid_until = at.plus_seconds(7_200);
    store.put_test_identifier(&renewed).await.expect("replace");

    assert_eq!(
        store
            .find_test_identifier(&app, &number)
            .await
            .expect("find"),
        Some(renewed.clone())
    );
    assert_eq!(
        store
            .find_test_identifier(&app, &phone(11))
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .find_test_identifier(&other_app, &number)
            .await
            .expect("find"),
        Some(elsewhere.clone())
    );
    assert_eq!(
        sorted_by_key(
            store.list_test_identifiers(&app).await.expect("list"),
            |t| t.id.clone()
        ),
        sorted_by_key(vec![renewed.clone(), by_email.clone()], |t| t.id.clone())
    );

    assert!(
        store
            .delete_test_identifier(&app, &first.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_test_identifier(&app, &first.id)
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .find_test_identifier(&app, &number)
            .await
            .expect("find"),
        None
    );
    store
        .put_test_identifier(&duplicate)
        .await
        .expect("a deleted test identifier frees its identifier");
    assert_eq!(
        store
            .find_test_identifier(&other_app, &number)
            .await
            .expect("find"),
        Some(elsewhere),
        "the other app is untouched"
    );
}

fn regions(codes: &[&str]) -> Vec<Region> {
    codes
        .iter()
        .map(|code| Region::parse(code).expect("a region"))
        .collect()
}

/// SMS countries: `None` until set, per app, and `None` again when reset; an empty list stays
/// empty (no region).
pub async fn sms_countries(store: &dyn ConfigStore) {
    let app = AppId::generate(rnd());
    let other_app = AppId::generate(rnd());
    assert_eq!(store.get_sms_countries(&app).await.expect("get"), None);
    let listed = regions(&["CA", "JM", "US"]);
    store
        .put_sms_countries(&app, Some(listed.clone()))
        .await
        .expect("put");
    assert_eq!(
        store.get_sms_countries(&app).await.expect("get"),
        Some(listed)
    );
    assert_eq!(
        store.get_sms_countries(&other_app).await.expect("get"),
        None
    );
    store.put_sms_countries(&app, None).await.expect("put");
    assert_eq!(store.get_sms_countries(&app).await.expect("get"), None);
    store
        .put_sms_countries(&app, Some(Vec::new()))
        .await
        .expect("put");
    assert_eq!(
        store.get_sms_countries(&app).await.expect("get"),
        Some(Vec::new())
    );
}

// ---------------------------------------------------------------------------------------------
// LoginStore
// ---------------------------------------------------------------------------------------------

/// Every port at once, for the behaviours that need more than one.
pub trait AllStores: AppStore + ConfigStore + LoginStore {}

impl<T: AppStore + ConfigStore + LoginStore> AllStores for T {}

fn token() -> CommitToken {
    CommitToken::derive(RequestId::generate(rnd()).as_str(), 0)
}

async fn commit(store: &dyn LoginStore, writes: Vec<Write>) -> Result<(), CommitError> {
    store.commit(&writes, &token()).await
}

async fn committed(store: &dyn LoginStore, writes: Vec<Write>) {
    if let Err(error) = commit(store, writes).await {
        panic!("commit failed: {error:?}");
    }
}

/// The conflicts of a commit that must fail on its conditions.
async fn conflicts(store: &dyn LoginStore, writes: Vec<Write>) -> Vec<Conflict> {
    match commit(store, writes).await {
        Err(CommitError::Conflict(conflicts)) => conflicts,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn load_one(store: &dyn LoginStore, key: &Key) -> Option<Record> {
    let mut loaded = store.load(std::slice::from_ref(key)).await.expect("load");
    assert_eq!(loaded.len(), 1);
    loaded.pop().flatten()
}

fn user_key(user: &User) -> Key {
    Key::User {
        app_id: user.app_id.clone(),
        home: user.id.home(),
    }
}

fn codes_key(app_id: &AppId, method_id: &MethodId) -> Key {
    Key::Codes {
        app_id: app_id.clone(),
        method_id: method_id.clone(),
    }
}

fn owner_of(user: &User, method_id: &MethodId) -> Owner {
    Owner {
        app_id: user.app_id.clone(),
        identifier: user.identifier_of(method_id).expect("the user's method"),
        user_id: user.id.clone(),
        method_id: method_id.clone(),
        pending_since: None,
    }
}

fn counter_of(hits: &[Timestamp]) -> SendCounter {
    SendCounter {
        key: format!("contract#{}", RequestId::generate(rnd())),
        hits: hits.to_vec(),
    }
}

/// A fresh user with one method and, in its home, a session.
fn user_with_session(at: Timestamp) -> (User, MethodId, Session) {
    let app_id = AppId::generate(rnd());
    let (user, method_id) = user_of(&app_id, &phone(7), UserStatus::Active, at);
    let session = session_of(&app_id, &user.id, at);
    (user, method_id, session)
}

/// Every record kind is written by a commit (revision 1) and read back by `load`, in the order
/// asked, `None` where nothing is; one key may be asked twice.
pub async fn login_load_every_record_kind(store: &dyn AllStores) {
    let at = now();
    let (user, method_id, session) = user_with_session(at);
    let app_id = user.app_id.clone();
    let challenge = challenge_for(&user, &method_id, at);
    let codes = Codes {
        app_id: app_id.clone(),
        method_id: method_id.clone(),
        current: Some(challenge.clone()),
        previous: vec![
            Challenge {
                consumed: true,
                attempts: 2,
                ..challenge_for(&user, &method_id, at.plus_seconds(-60))
            },
            challenge_for(&user, &method_id, at.plus_seconds(-90)),
        ],
    };
    let owner = owner_of(&user, &method_id);
    let counter = counter_of(&[at, at.plus_seconds(1)]);
    let test = test_identifier_of(&app_id, email("reviewer"), at);
    store
        .put_test_identifier(&test)
        .await
        .expect("put_test_identifier");
    committed(
        store,
        vec![
            Write::PutUser {
                user: user.clone(),
                expect: Expect::Absent,
            },
            Write::PutCodes {
                codes: codes.clone(),
                expect: Expect::Absent,
            },
            Write::PutSession {
                session: session.clone(),
                expect: Expect::Absent,
            },
            Write::PutOwner {
                owner: owner.clone(),
                expect: Expect::Absent,
            },
            Write::PutCounter {
                counter: counter.clone(),
                expect: Expect::Absent,
            },
        ],
    )
    .await;
    let session_key = Record::Session(Versioned::new(session.clone(), 1)).key();
    let owner_key = Key::Owner {
        app_id: app_id.clone(),
        identifier: owner.identifier.clone(),
    };
    let keys = vec![
        Key::Counter {
            key: counter.key.clone(),
        },
        user_key(&user),
        codes_key(&app_id, &method_id),
        Key::Counter {
            key: "contract#nothing-here".into(),
        },
        session_key.clone(),
        owner_key.clone(),
        Key::TestIdentifier {
            app_id: app_id.clone(),
            identifier: test.identifier.clone(),
        },
        Key::TestIdentifier {
            app_id: app_id.clone(),
            identifier: email("nobody"),
        },
        user_key(&user),
    ];
    let loaded = store.load(&keys).await.expect("load");
    assert_eq!(
        loaded,
        vec![
            Some(Record::Counter(Versioned::new(counter, 1))),
            Some(Record::User(Versioned::new(user.clone(), 1))),
            Some(Record::Codes(Versioned::new(codes, 1))),
            None,
            Some(Record::Session(Versioned::new(session, 1))),
            Some(Record::Owner(Versioned::new(owner, 1))),
            Some(Record::TestIdentifier(test)),
            None,
            Some(Record::User(Versioned::new(user.clone(), 1))),
        ]
    );
    for (key, record) in keys.iter().zip(&loaded) {
        if let Some(record) = record {
            assert_eq!(
                &record.key(),
                key,
                "a record's key is the one it was read by"
            );
        }
    }
    // Another app sees none of it.
    let elsewhere = Key::User {
        app_id: AppId::generate(rnd()),
        home: user.id.home(),
    };
    assert_eq!(load_one(store, &elsewhere).await, None);
    assert!(store.load(&[]).await.expect("load nothing").is_empty());
}

/// A put names the revision it read (or `Absent`) and makes the next; a stale or wrong
/// expectation is a conflict that returns the record as it is; deletes follow their `Expect`.
pub async fn login_revisions_guard_writes(store: &dyn LoginStore) {
    let at = now();
    let (mut user, method_id, _) = user_with_session(at);
    let key = user_key(&user);
    let put = |user: &User, expect| Write::PutUser {
        user: user.clone(),
        expect,
    };
    committed(store, vec![put(&user, Expect::Absent)]).await;
    let stored_v1 = Record::User(Versioned::new(user.clone(), 1));
    let found = conflicts(store, vec![put(&user, Expect::Absent)]).await;
    assert_eq!(
        found,
        vec![Conflict {
            index: 0,
            current: Some(stored_v1.clone())
        }],
        "Absent on an existing record"
    );
    user.failed_attempts = 3;
    committed(store, vec![put(&user, Expect::Rev(1))]).await;
    assert_eq!(
        load_one(store, &key).await,
        Some(Record::User(Versioned::new(user.clone(), 2)))
    );
    let stale = conflicts(store, vec![put(&user, Expect::Rev(1))]).await;
    assert_eq!(
        stale[0].current,
        Some(Record::User(Versioned::new(user.clone(), 2)))
    );

    // A put must say what it expects.
    for expect in [Expect::Present, Expect::Any] {
        assert!(
            matches!(
                commit(store, vec![put(&user, expect)]).await,
                Err(CommitError::Store(_))
            ),
            "a put with {expect:?}"
        );
    }

    // Owners: deletes by revision, by presence, or whatever is there.
    let owner = owner_of(&user, &method_id);
    let owner_key = Key::Owner {
        app_id: owner.app_id.clone(),
        identifier: owner.identifier.clone(),
    };
    let delete = |expect| Write::DeleteOwner {
        app_id: owner.app_id.clone(),
        identifier: owner.identifier.clone(),
        expect,
    };
    let conflict = conflicts(store, vec![delete(Expect::Present)]).await;
    assert_eq!(conflict[0].current, None, "Present on a missing record");
    committed(store, vec![delete(Expect::Any)]).await;
    committed(store, vec![delete(Expect::Absent)]).await;
    committed(
        store,
        vec![Write::PutOwner {
            owner: owner.clone(),
            expect: Expect::Absent,
        }],
    )
    .await;
    conflicts(store, vec![delete(Expect::Rev(2))]).await;
    conflicts(store, vec![delete(Expect::Absent)]).await;
    committed(
        store,
        vec![Write::Check {
            key: owner_key.clone(),
            expect: Expect::Rev(1),
        }],
    )
    .await;
    committed(store, vec![delete(Expect::Rev(1))]).await;
    assert_eq!(load_one(store, &owner_key).await, None);
    let check = conflicts(
        store,
        vec![Write::Check {
            key: owner_key,
            expect: Expect::Present,
        }],
    )
    .await;
    assert_eq!(check[0].current, None);

    // Deleting a user by revision.
    conflicts(
        store,
        vec![Write::DeleteUser {
            app_id: user.app_id.clone(),
            user_id: user.id.clone(),
            expect: Expect::Rev(1),
        }],
    )
    .await;
    committed(
        store,
        vec![Write::DeleteUser {
            app_id: user.app_id.clone(),
            user_id: user.id.clone(),
            expect: Expect::Rev(2),
        }],
    )
    .await;
    assert_eq!(load_one(store, &key).await, None);
}

/// A commit writes everything or nothing, and a conflict lists every write whose condition
/// failed, with the record as it is now.
pub async fn login_commit_is_all_or_nothing(store: &dyn LoginStore) {
    let at = now();
    let (user, method_id, session) = user_with_session(at);
    let owner = owner_of(&user, &method_id);
    let taken = counter_of(&[at]);
    committed(
        store,
        vec![Write::PutCounter {
            counter: taken.clone(),
            expect: Expect::Absent,
        }],
    )
    .await;
    let fresh = counter_of(&[at]);
    let writes = vec![
        Write::PutUser {
            user: user.clone(),
            expect: Expect::Absent,
        },
        Write::PutCounter {
            counter: taken.clone(),
            expect: Expect::Absent,
        },
        Write::PutOwner {
            owner: owner.clone(),
            expect: Expect::Absent,
        },
        Write::PutCounter {
            counter: fresh.clone(),
            expect: Expect::Rev(4),
        },
        Write::PutSession {
            session: session.clone(),
            expect: Expect::Absent,
        },
    ];
    let found = conflicts(store, writes).await;
    assert_eq!(
        found,
        vec![
            Conflict {
                index: 1,
                current: Some(Record::Counter(Versioned::new(taken, 1))),
            },
            Conflict {
                index: 3,
                current: None,
            },
        ]
    );
    let keys = [
        user_key(&user),
        Key::Owner {
            app_id: owner.app_id.clone(),
            identifier: owner.identifier.clone(),
        },
        Key::Counter { key: fresh.key },
        Record::Session(Versioned::new(session, 1)).key(),
    ];
    assert_eq!(
        store.load(&keys).await.expect("load"),
        vec![None, None, None, None],
        "nothing of a cancelled commit is written"
    );

    // Two writes on one record are refused before anything is tried.
    let twice = vec![
        Write::PutUser {
            user: user.clone(),
            expect: Expect::Absent,
        },
        Write::UserUnlocked {
            app_id: user.app_id.clone(),
            user_id: user.id.clone(),
            now: at,
        },
    ];
    assert!(matches!(
        commit(store, twice).await,
        Err(CommitError::Store(_))
    ));
    assert_eq!(load_one(store, &user_key(&user)).await, None);
}

/// A commit repeated with its token (the retry of a commit whose answer was lost) succeeds
/// without writing again; the same token for other writes is an error; another token is a new
/// commit.
pub async fn login_commit_tokens_are_idempotent(store: &dyn LoginStore) {
    let at = now();
    let counter = counter_of(&[at]);
    let key = Key::Counter {
        key: counter.key.clone(),
    };
    let writes = vec![Write::PutCounter {
        counter: counter.clone(),
        expect: Expect::Absent,
    }];
    let token = token();
    store.commit(&writes, &token).await.expect("first commit");
    store
        .commit(&writes, &token)
        .await
        .expect("the same commit again, with its token");
    assert_eq!(
        load_one(store, &key).await,
        Some(Record::Counter(Versioned::new(counter.clone(), 1))),
        "applied once"
    );
    let other_writes = vec![Write::PutCounter {
        counter: counter_of(&[at]),
        expect: Expect::Absent,
    }];
    assert!(
        matches!(
            store.commit(&other_writes, &token).await,
            Err(CommitError::Store(_))
        ),
        "a token is for one set of writes"
    );
    assert!(matches!(
        store.commit(&writes, &self::token()).await,
        Err(CommitError::Conflict(_))
    ));
    // A commit cancelled by a condition does not use up its token.
    let cancelled = self::token();
    let conditional = vec![Write::PutCounter {
        counter: counter.clone(),
        expect: Expect::Rev(1),
    }];
    store
        .commit(&writes, &cancelled)
        .await
        .expect_err("a conflict");
    store
        .commit(&conditional, &cancelled)
        .await
        .expect("the token of a cancelled commit is free");
}

/// `UserUnlocked` holds for an existing user that is not locked at `now`; a locked user's
/// conflict returns the user (with its lock), a missing one `None`.
pub async fn login_user_unlocked_condition(store: &dyn LoginStore) {
    let at = now();
    let (mut user, _, _) = user_with_session(at);
    let unlocked = |user: &User, now| Write::UserUnlocked {
        app_id: user.app_id.clone(),
        user_id: user.id.clone(),
        now,
    };
    let missing = conflicts(store, vec![unlocked(&user, at)]).await;
    assert_eq!(missing[0].current, None);
    user.lock = Some(Lock {
        created_at: at,
        expires_at: at.plus_seconds(60),
    });
    committed(
        store,
        vec![Write::PutUser {
            user: user.clone(),
            expect: Expect::Absent,
        }],
    )
    .await;
    let locked = conflicts(store, vec![unlocked(&user, at.plus_seconds(59))]).await;
    assert_eq!(
        locked[0].current,
        Some(Record::User(Versioned::new(user.clone(), 1)))
    );
    committed(store, vec![unlocked(&user, at.plus_seconds(60))]).await;
    let mut stranger = user.clone();
    stranger.id = UserId::generate_in(rnd(), user.id.home());
    conflicts(store, vec![unlocked(&stranger, at.plus_seconds(60))]).await;
}

/// `ReplaceCode` keeps the replaced codes, newest first, at most `MAX_PREVIOUS_CODES` of them
/// (whatever was there, unread); codes written whole keep their history as written.
pub async fn login_replace_codes(store: &dyn LoginStore) {
    let at = now();
    let (user, method_id, _) = user_with_session(at);
    let app_id = user.app_id.clone();
    let key = codes_key(&app_id, &method_id);
    let code = |n: i64| challenge_for(&user, &method_id, at.plus_seconds(n));
    let (first, second, third, fourth) = (code(0), code(1), code(2), code(3));
    let replace = |challenge: &Challenge| Write::ReplaceCode {
        challenge: challenge.clone(),
    };
    let codes = |current: Option<&Challenge>, previous: &[&Challenge], rev| {
        Some(Record::Codes(Versioned::new(
            Codes {
                app_id: app_id.clone(),
                method_id: method_id.clone(),
                current: current.cloned(),
                previous: previous.iter().map(|c| (*c).clone()).collect(),
            },
            rev,
        )))
    };
    committed(store, vec![replace(&first)]).await;
    assert_eq!(load_one(store, &key).await, codes(Some(&first), &[], 1));
    committed(store, vec![replace(&second)]).await;
    committed(store, vec![replace(&third)]).await;
    assert_eq!(
        load_one(store, &key).await,
        codes(Some(&third), &[&second, &first], 3)
    );
    assert_eq!(crate::model::MAX_PREVIOUS_CODES, 2);
    committed(store, vec![replace(&fourth)]).await;
    assert_eq!(
        load_one(store, &key).await,
        codes(Some(&fourth), &[&third, &second], 4),
        "the oldest goes"
    );

    // Codes written whole (a spent code, its history), then replaced.
    let mut spent = first.clone();
    spent.consumed = true;
    committed(
        store,
        vec![Write::PutCodes {
            codes: Codes {
                app_id: app_id.clone(),
                method_id: method_id.clone(),
                current: Some(spent.clone()),
                previous: vec![second.clone()],
            },
            expect: Expect::Rev(4),
        }],
    )
    .await;
    committed(store, vec![replace(&third)]).await;
    assert_eq!(
        load_one(store, &key).await,
        codes(Some(&third), &[&spent, &second], 6)
    );
    // No current code (all taken out): a replace makes the new one current, the history stays.
    committed(
        store,
        vec![Write::PutCodes {
            codes: Codes {
                app_id: app_id.clone(),
                method_id: method_id.clone(),
                current: None,
                previous: vec![second.clone()],
            },
            expect: Expect::Rev(6),
        }],
    )
    .await;
    assert_eq!(load_one(store, &key).await, codes(None, &[&second], 7));
    committed(store, vec![replace(&fourth)]).await;
    assert_eq!(
        load_one(store, &key).await,
        codes(Some(&fourth), &[&second], 8)
    );
    committed(
        store,
        vec![Write::DeleteCodes {
            app_id: app_id.clone(),
            method_id: method_id.clone(),
            expect: Expect::Rev(8),
        }],
    )
    .await;
    assert_eq!(load_one(store, &key).await, None);
}

/// `ConfirmOwner` ends an owner's pending attachment if it still names the method; a conflict
/// returns the owner as it is (or `None`).
pub async fn login_confirm_owner(store: &dyn LoginStore) {
    let at = now();
    let (user, method_id, _) = user_with_session(at);
    let pending = Owner {
        pending_since: Some(at),
        ..owner_of(&user, &method_id)
    };
    let key = Key::Owner {
        app_id: pending.app_id.clone(),
        identifier: pending.identifier.clone(),
    };
    let confirm = |method_id: &MethodId| Write::ConfirmOwner {
        app_id: pending.app_id.clone(),
        identifier: pending.identifier.clone(),
        method_id: method_id.clone(),
    };
    assert_eq!(
        conflicts(store, vec![confirm(&method_id)]).await[0].current,
        None
    );
    committed(
        store,
        vec![Write::PutOwner {
            owner: pending.clone(),
            expect: Expect::Absent,
        }],
    )
    .await;
    let other = new_method_id(&pending.identifier, user.id.home());
    let wrong = conflicts(store, vec![confirm(&other)]).await;
    assert_eq!(
        wrong[0].current,
        Some(Record::Owner(Versioned::new(pending.clone(), 1)))
    );
    committed(store, vec![confirm(&method_id)]).await;
    let confirmed = Owner {
        pending_since: None,
        ..pending.clone()
    };
    assert_eq!(
        load_one(store, &key).await,
        Some(Record::Owner(Versioned::new(confirmed.clone(), 2)))
    );
    committed(store, vec![confirm(&method_id)]).await;
    assert_eq!(
        load_one(store, &key).await,
        Some(Record::Owner(Versioned::new(confirmed, 3))),
        "confirming a confirmed owner changes nothing but the revision"
    );
}

/// Tallies count blindly: within a limit (a full one fails the commit and comes back with its
/// count), down but never below 0, unlimited; they are listed by name prefix and deleted.
pub async fn login_tallies(store: &dyn LoginStore) {
    let at = now();
    let app_id = AppId::generate(rnd());
    let tally = |name: &str, add: i64, limit: Option<u64>| Write::Tally {
        app_id: app_id.clone(),
        name: name.to_owned(),
        add,
        limit,
        expires_at: at.plus_seconds(86_400),
    };
    let record = |name: &str, count: u64| {
        Some(Record::Tally(Tally {
            app_id: app_id.clone(),
            name: name.to_owned(),
            count,
        }))
    };
    let key = |name: &str| Key::Tally {
        app_id: app_id.clone(),
        name: name.to_owned(),
    };
    assert_eq!(load_one(store, &key("sms#a")).await, None);
    for _ in 0..3 {
        committed(store, vec![tally("sms#a", 1, Some(3))]).await;
    }
    let full = conflicts(store, vec![tally("sms#a", 1, Some(3))]).await;
    assert_eq!(full[0].current, record("sms#a", 3), "the limit holds");
    committed(store, vec![tally("sms#a", -1, None)]).await;
    committed(store, vec![tally("sms#a", 1, Some(3))]).await;
    assert_eq!(load_one(store, &key("sms#a")).await, record("sms#a", 3));
    let nothing = conflicts(store, vec![tally("sms#zero", 1, Some(0))]).await;
    assert_eq!(nothing[0].current, None, "a limit of 0 admits nothing");
    let below = conflicts(store, vec![tally("sms#b", -1, None)]).await;
    assert_eq!(below[0].current, None, "never below 0");
    committed(
        store,
        vec![tally("sms#b", 5, None), tally("verified#b", 2, None)],
    )
    .await;
    let listed = store.list_tallies(&app_id, "sms#").await.expect("list");
    assert_eq!(
        listed,
        vec![
            Tally {
                app_id: app_id.clone(),
                name: "sms#a".into(),
                count: 3
            },
            Tally {
                app_id: app_id.clone(),
                name: "sms#b".into(),
                count: 5
            },
        ]
    );
    assert!(
        store
            .list_tallies(&AppId::generate(rnd()), "sms#")
            .await
            .expect("list")
            .is_empty()
    );
    committed(
        store,
        vec![Write::DeleteTally {
            app_id: app_id.clone(),
            name: "sms#b".into(),
        }],
    )
    .await;
    assert_eq!(load_one(store, &key("sms#b")).await, None);
    assert_eq!(
        load_one(store, &key("verified#b")).await,
        record("verified#b", 2)
    );
}

/// `TestIdentifierValid` holds while the test identifier exists, is the one named and is valid
/// at `now`; a conflict returns it as it is (or `None`).
pub async fn login_test_identifier_condition(store: &dyn AllStores) {
    let at = now();
    let app_id = AppId::generate(rnd());
    let test = test_identifier_of(&app_id, phone(42), at);
    let valid = |id: &TestIdentifierId, now| Write::TestIdentifierValid {
        app_id: app_id.clone(),
        identifier: test.identifier.clone(),
        id: id.clone(),
        now,
    };
    assert_eq!(
        conflicts(store, vec![valid(&test.id, at)]).await[0].current,
        None
    );
    store.put_test_identifier(&test).await.expect("put");
    committed(store, vec![valid(&test.id, at)]).await;
    let ended = conflicts(store, vec![valid(&test.id, test.valid_until)]).await;
    assert_eq!(ended[0].current, Some(Record::TestIdentifier(test.clone())));
    let other = TestIdentifierId::generate(rnd(), at);
    conflicts(store, vec![valid(&other, at)]).await;
    store
        .delete_test_identifier(&app_id, &test.id)
        .await
        .expect("delete");
    assert_eq!(
        conflicts(store, vec![valid(&test.id, at)]).await[0].current,
        None
    );
}

/// `load_home` reads a user's home whole: the user, its codes and its sessions, and nothing of
/// another home or app.
pub async fn login_load_home(store: &dyn LoginStore) {
    let at = now();
    let (user, method_id, session) = user_with_session(at);
    let app_id = user.app_id.clone();
    let home = user.id.home();
    let mut second_session = session_of(&app_id, &user.id, at.plus_seconds(1));
    second_session.expires_at = at.plus_seconds(-1);
    let (neighbour, neighbour_method, neighbour_session) = {
        let (mut u, m, s) = user_with_session(at);
        u.app_id = app_id.clone();
        let m = match m {
            MethodId::Phone(_) => MethodId::Phone(PhoneId::generate_in(rnd(), u.id.home())),
            other => other,
        };
        let mut s = s;
        s.app_id = app_id.clone();
        s.user_id = u.id.clone();
        (u, m, s)
    };
    let challenge = challenge_for(&user, &method_id, at);
    committed(
        store,
        vec![
            Write::PutUser {
                user: user.clone(),
                expect: Expect::Absent,
            },
            Write::ReplaceCode {
                challenge: challenge.clone(),
            },
            Write::PutSession {
                session: session.clone(),
                expect: Expect::Absent,
            },
            Write::PutSession {
                session: second_session.clone(),
                expect: Expect::Absent,
            },
            Write::PutUser {
                user: neighbour.clone(),
                expect: Expect::Absent,
            },
            Write::ReplaceCode {
                challenge: challenge_for(&neighbour, &neighbour_method, at),
            },
            Write::PutSession {
                session: neighbour_session,
                expect: Expect::Absent,
            },
        ],
    )
    .await;
    let records = store.load_home(&app_id, home).await.expect("load_home");
    assert_eq!(records.user, Some(Versioned::new(user.clone(), 1)));
    assert_eq!(
        records.codes,
        vec![Versioned::new(
            Codes {
                app_id: app_id.clone(),
                method_id,
                current: Some(challenge),
                previous: Vec::new(),
            },
            1
        )]
    );
    let mut sessions: Vec<Session> = records.sessions.into_iter().map(|s| s.value).collect();
    sessions.sort_by_key(|s| s.started_at);
    assert_eq!(
        sessions,
        vec![session, second_session],
        "expired sessions are read too: the domain checks expiry"
    );
    assert_eq!(
        store
            .load_home(&AppId::generate(rnd()), home)
            .await
            .expect("load_home"),
        HomeRecords::default()
    );
}

/// `touch_session` records an access on a live session in one step and returns it; a missing
/// or expired session is left alone (`None`).
pub async fn login_touch_session(store: &dyn LoginStore) {
    let at = now();
    let (user, _, session) = user_with_session(at);
    let home = user.id.home();
    let app_id = user.app_id.clone();
    assert_eq!(
        store
            .touch_session(&app_id, home, &session.token_hash, at, None)
            .await
            .expect("touch"),
        None
    );
    committed(
        store,
        vec![Write::PutSession {
            session: session.clone(),
            expect: Expect::Absent,
        }],
    )
    .await;
    let later = at.plus_seconds(30);
    let touched = store
        .touch_session(&app_id, home, &session.token_hash, later, None)
        .await
        .expect("touch")
        .expect("live");
    let mut expected = session.clone();
    expected.last_accessed_at = later;
    assert_eq!(touched, Versioned::new(expected.clone(), 2));
    let extended_to = later.plus_minutes(600);
    let touched = store
        .touch_session(&app_id, home, &session.token_hash, later, Some(extended_to))
        .await
        .expect("touch")
        .expect("live");
    expected.expires_at = extended_to;
    assert_eq!(touched, Versioned::new(expected.clone(), 3));
    let key = Record::Session(touched.clone()).key();
    assert_eq!(load_one(store, &key).await, Some(Record::Session(touched)));
    assert_eq!(
        store
            .touch_session(&app_id, home, &session.token_hash, extended_to, None)
            .await
            .expect("touch"),
        None,
        "an expired session is not touched"
    );
    assert_eq!(
        load_one(store, &key).await,
        Some(Record::Session(Versioned::new(expected, 3)))
    );
}

/// Of many concurrent commits that expect one revision of one record, exactly one succeeds;
/// of many that put one absent record, exactly one.
pub async fn concurrent_commits_have_one_winner(store: Arc<dyn AllStores>) {
    let at = now();
    let counter = counter_of(&[]);
    committed(
        &*store,
        vec![Write::PutCounter {
            counter: counter.clone(),
            expect: Expect::Absent,
        }],
    )
    .await;
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_TASKS));
    let tasks = (0..CONCURRENT_TASKS)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let mut mine = counter.clone();
            mine.hits = vec![at.plus_seconds(i as i64)];
            tokio::spawn(async move {
                barrier.wait().await;
                commit(
                    &*store,
                    vec![Write::PutCounter {
                        counter: mine,
                        expect: Expect::Rev(1),
                    }],
                )
                .await
            })
        })
        .collect();
    let results = join_all(tasks).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(CommitError::Conflict(_))))
    );

    let app_id = AppId::generate(rnd());
    let identifier = phone(3);
    let tasks = (0..CONCURRENT_TASKS)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let (user, method_id) = user_of(&app_id, &identifier, UserStatus::Active, at);
            tokio::spawn(async move {
                barrier.wait().await;
                commit(
                    &*store,
                    vec![
                        Write::PutOwner {
                            owner: owner_of(&user, &method_id),
                            expect: Expect::Absent,
                        },
                        Write::PutUser {
                            user,
                            expect: Expect::Absent,
                        },
                    ],
                )
                .await
            })
        })
        .collect();
    let results = join_all(tasks).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "one owner of an identifier"
    );
}

/// Concurrent unconditional code replacements are all applied, one revision each, none lost.
pub async fn concurrent_code_replacements_are_all_applied(store: Arc<dyn AllStores>) {
    const REPLACEMENTS: usize = 40;
    let at = now();
    let (user, method_id, _) = user_with_session(at);
    let barrier = Arc::new(tokio::sync::Barrier::new(REPLACEMENTS));
    let tasks = (0..REPLACEMENTS)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let challenge = challenge_for(&user, &method_id, at.plus_seconds(i as i64));
            tokio::spawn(async move {
                barrier.wait().await;
                committed(&*store, vec![Write::ReplaceCode { challenge }]).await;
            })
        })
        .collect();
    join_all(tasks).await;
    match load_one(&*store, &codes_key(&user.app_id, &method_id)).await {
        Some(Record::Codes(codes)) => {
            assert_eq!(codes.rev, REPLACEMENTS as u64);
            assert!(codes.value.current.is_some());
            assert_eq!(codes.value.previous.len(), crate::model::MAX_PREVIOUS_CODES);
        }
        other => panic!("{other:?}"),
    }
}

/// Of two concurrent deletes of an app's last two secrets, exactly one succeeds; the other is
/// refused as the last secret.
pub async fn concurrent_deletes_keep_the_last_secret(store: Arc<dyn AllStores>) {
    for _ in 0..10 {
        let at = now();
        let (app, first) = app_with_secret(at);
        store
            .create_app(&app, &first, &[], &FrontendSettings::default())
            .await
            .expect("create_app");
        let second = secret_of(&app.id, at);
        store.add_secret(&second).await.expect("add_secret");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = [first.id.clone(), second.id.clone()]
            .into_iter()
            .map(|secret_id| {
                let (store, barrier, app_id) = (store.clone(), barrier.clone(), app.id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.delete_secret(&app_id, &secret_id).await
                })
            })
            .collect();
        let results = join_all(tasks).await;
        assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 1);
        assert_eq!(results.iter().filter(|r| is_conflict(r)).count(), 1);
        assert_eq!(store.list_secrets(&app.id).await.expect("list").len(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency: the atomic operations under many simultaneous callers.
// ---------------------------------------------------------------------------------------------

/// Concurrent callers per test.
pub const CONCURRENT_TASKS: usize = 100;

async fn join_all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task panicked"));
    }
    out
}

/// Of many concurrent default `put_config` calls for one app and channel, exactly one config
/// ends up default.
pub async fn concurrent_default_config(store: Arc<dyn ConfigStore>) {
    const CONFIGS: usize = 20;
    let at = now();
    let app = AppId::generate(rnd());
    let barrier = Arc::new(tokio::sync::Barrier::new(CONFIGS));
    let tasks = (0..CONFIGS)
        .map(|_| {
            let config = config_of(&app, Channel::Sms, true, at);
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.put_config(&config).await.expect("put_config");
            })
        })
        .collect();
    join_all(tasks).await;
    let configs = store.list_configs(&app).await.expect("list");
    assert_eq!(configs.len(), CONFIGS);
    let defaults: Vec<&LoginConfig> = configs.iter().filter(|c| c.is_default).collect();
    assert_eq!(
        defaults.len(),
        1,
        "exactly one default survives concurrent writes"
    );
    assert_eq!(
        default_config(&*store, &app, Channel::Sms)
            .await
            .expect("default")
            .map(|c| c.id),
        Some(defaults[0].id.clone())
    );
}

fn signing_key_of(kid: &str, at: Timestamp, retired_at: Option<Timestamp>) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        n: format!("n-of-{kid}"),
        e: "AQAB".to_owned(),
        sealed_private_key: retired_at.is_none().then(|| vec![1, 2, 3, 0, 255]),
        created_at: at,
        retired_at,
    }
}

/// An app's signing keys: stored with the app, read by `load_app` in order and in full (the
/// sealed private key's bytes, retirement), and replaced only over the current key the caller
/// read: an app made without keys once (`None`), then over its current kid; a stale or
/// concurrent replacement is a `Conflict` and changes nothing.
pub async fn app_signing_keys(store: Arc<dyn AllStores>) {
    let at = now();
    let (app, secret) = app_with_secret(at);
    let first = signing_key_of("kid-1", at, None);
    store
        .create_app(
            &app,
            &secret,
            std::slice::from_ref(&first),
            &FrontendSettings::default(),
        )
        .await
        .expect("create_app");
    let load = |id: AppId| {
        let store = store.clone();
        async move {
            store
                .load_app(&id)
                .await
                .expect("load_app")
                .expect("the app")
                .signing_keys
        }
    };
    assert_eq!(load(app.id.clone()).await, vec![first.clone()]);

    let rotated = vec![
        signing_key_of("kid-2", at.plus_seconds(5), None),
        SigningKey {
            sealed_private_key: None,
            retired_at: Some(at.plus_seconds(5)),
            ..first.clone()
        },
    ];
    assert!(is_conflict(
        &store.replace_signing_keys(&app.id, None, &rotated).await
    ));
    assert!(is_conflict(
        &store
            .replace_signing_keys(&app.id, Some("kid-9"), &rotated)
            .await
    ));
    assert_eq!(load(app.id.clone()).await, vec![first.clone()]);
    store
        .replace_signing_keys(&app.id, Some("kid-1"), &rotated)
        .await
        .expect("replace over the current key");
    assert_eq!(load(app.id.clone()).await, rotated);
    assert!(is_conflict(
        &store
            .replace_signing_keys(&app.id, Some("kid-1"), &rotated)
            .await
    ));

    // An app made without keys: the first replacement expects none, and only one of two
    // racing ones lands.
    let (legacy, legacy_secret) = app_with_secret(at);
    store
        .create_app(&legacy, &legacy_secret, &[], &FrontendSettings::default())
        .await
        .expect("create_app");
    assert_eq!(load(legacy.id.clone()).await, vec![]);
    let attempts = ["kid-a", "kid-b"].map(|kid| {
        let store = store.clone();
        let id = legacy.id.clone();
        let keys = vec![signing_key_of(kid, at, None)];
        tokio::spawn(async move { store.replace_signing_keys(&id, None, &keys).await })
    });
    let mut landed = 0;
    for attempt in attempts {
        match attempt.await.expect("the task") {
            Ok(()) => landed += 1,
            Err(WriteError::Conflict(_)) => {}
            Err(other) => panic!("replace_signing_keys: {other:?}"),
        }
    }
    assert_eq!(landed, 1, "exactly one first rotation lands");
    assert_eq!(load(legacy.id.clone()).await.len(), 1);
}

/// An app's frontend settings: stored with the app (with a lookup of each public token),
/// replaced only from the revision the caller read; a token's lookup comes and goes with it; a
/// token another app holds, a stale revision or a missing app is a `Conflict` that changes
/// nothing. Of two racing changes from one revision exactly one lands.
pub async fn app_frontend_settings(store: Arc<dyn AllStores>) {
    let at = now();
    let unique = |n: u8| format!("public-token-live-{:08x}-0000-4000-8000-{:012x}", at.0, n);
    let (app, secret) = app_with_secret(at);
    let first = FrontendSettings {
        public_tokens: vec![PublicToken {
            token: unique(1),
            created_at: at,
        }],
        authorized_origins: vec!["https://app.example.com".into()],
        revision: 1,
        ..FrontendSettings::default()
    };
    store
        .create_app(&app, &secret, &[], &first)
        .await
        .expect("create_app");
    let load = |id: AppId| {
        let store = store.clone();
        async move {
            store
                .load_app(&id)
                .await
                .expect("load_app")
                .expect("the app")
                .frontend
        }
    };
    assert_eq!(load(app.id.clone()).await, first);
    assert_eq!(
        store.find_public_token(&unique(1)).await.expect("find"),
        Some(app.id.clone())
    );
    assert_eq!(
        store.find_public_token(&unique(9)).await.expect("find"),
        None
    );

    let mut second = first.clone();
    second.public_tokens.push(PublicToken {
        token: unique(2),
        created_at: at.plus_seconds(1),
    });
    second.max_session_minutes = 60;
    second.public_sends_per_hour = 7;
    second.revision = 2;
    // From a stale revision, or for an app that does not exist: nothing changes.
    assert!(is_conflict(
        &store
            .replace_frontend(&app.id, 0, &second, Some(&unique(2)), None)
            .await
    ));
    let (ghost, _) = app_with_secret(at);
    assert!(is_conflict(
        &store
            .replace_frontend(&ghost.id, 0, &second, Some(&unique(3)), None)
            .await
    ));
    assert_eq!(
        store.find_public_token(&unique(3)).await.expect("find"),
        None
    );
    assert_eq!(load(app.id.clone()).await, first);
    store
        .replace_frontend(&app.id, 1, &second, Some(&unique(2)), None)
        .await
        .expect("replace from the revision read");
    assert_eq!(load(app.id.clone()).await, second);
    assert_eq!(
        store.find_public_token(&unique(2)).await.expect("find"),
        Some(app.id.clone())
    );

    // Another app cannot take a token that exists.
    let (other, other_secret) = app_with_secret(at);
    store
        .create_app(&other, &other_secret, &[], &FrontendSettings::default())
        .await
        .expect("create_app");
    assert_eq!(load(other.id.clone()).await, FrontendSettings::default());
    let taken = FrontendSettings {
        public_tokens: vec![PublicToken {
            token: unique(2),
            created_at: at,
        }],
        revision: 1,
        ..FrontendSettings::default()
    };
    assert!(is_conflict(
        &store
            .replace_frontend(&other.id, 0, &taken, Some(&unique(2)), None)
            .await
    ));
    assert_eq!(load(other.id.clone()).await, FrontendSettings::default());
    assert_eq!(
        store.find_public_token(&unique(2)).await.expect("find"),
        Some(app.id.clone())
    );

    // Removing a token removes its lookup.
    let mut third = second.clone();
    third.public_tokens.retain(|t| t.token != unique(1));
    third.revision = 3;
    store
        .replace_frontend(&app.id, 2, &third, None, Some(&unique(1)))
        .await
        .expect("remove a token");
    assert_eq!(
        store.find_public_token(&unique(1)).await.expect("find"),
        None
    );
    assert_eq!(load(app.id.clone()).await, third);

    // Two changes from one revision: exactly one lands.
    let attempts = [4u8, 5].map(|n| {
        let store = store.clone();
        let id = app.id.clone();
        let mut next = third.clone();
        next.public_tokens.push(PublicToken {
            token: unique(n),
            created_at: at,
        });
        next.revision = 4;
        let token = unique(n);
        tokio::spawn(async move {
            store
                .replace_frontend(&id, 3, &next, Some(&token), None)
                .await
        })
    });
    let mut landed = 0;
    for attempt in attempts {
        match attempt.await.expect("the task") {
            Ok(()) => landed += 1,
            Err(WriteError::Conflict(_)) => {}
            Err(other) => panic!("replace_frontend: {other:?}"),
        }
    }
    assert_eq!(landed, 1, "exactly one change from revision 3 lands");
    let lookups = [
        store.find_public_token(&unique(4)).await.expect("find"),
        store.find_public_token(&unique(5)).await.expect("find"),
    ];
    assert_eq!(
        lookups.iter().filter(|l| l.is_some()).count(),
        1,
        "only the landed change's token has a lookup"
    );
    assert_eq!(load(app.id.clone()).await.public_tokens.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------------------------

/// Runs every behaviour, each on the store `make` hands out: a fresh one each time, or clones of
/// one shared `Arc` (every behaviour isolates itself by app, so sharing is fine).
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: AppStore + ConfigStore + LoginStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    app_create_and_get(&*make().await).await;
    app_secrets_add_list_delete(&*make().await).await;
    app_secret_touch(&*make().await).await;
    app_load_app(&*make().await).await;

    config_put_get_list_delete(&*make().await).await;
    config_default_switching(&*make().await).await;
    config_missing_template_conflict(&*make().await).await;
    template_crud_and_in_use_conflict(&*make().await).await;
    test_identifier_uniqueness(&*make().await).await;
    sms_countries(&*make().await).await;

    login_load_every_record_kind(&*make().await).await;
    login_revisions_guard_writes(&*make().await).await;
    login_commit_is_all_or_nothing(&*make().await).await;
    login_commit_tokens_are_idempotent(&*make().await).await;
    login_user_unlocked_condition(&*make().await).await;
    login_replace_codes(&*make().await).await;
    login_confirm_owner(&*make().await).await;
    login_tallies(&*make().await).await;
    login_test_identifier_condition(&*make().await).await;
    login_load_home(&*make().await).await;
    login_touch_session(&*make().await).await;

    concurrent_default_config(make().await).await;
    concurrent_commits_have_one_winner(make().await).await;
    concurrent_code_replacements_are_all_applied(make().await).await;
    concurrent_deletes_keep_the_last_secret(make().await).await;
    app_signing_keys(make().await).await;
    app_frontend_settings(make().await).await;
}

/// One `#[tokio::test]` (multi-thread) per behaviour of the store contract, each on a store made
/// by the given expression (evaluated inside the async test, so it may `.await`). The expression's
/// type implements every store port. The calling crate needs `tokio` with `macros` and
/// `rt-multi-thread`.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@by_ref $make;
            app_create_and_get, app_secrets_add_list_delete, app_secret_touch, app_load_app,
            config_put_get_list_delete, config_default_switching,
            config_missing_template_conflict, template_crud_and_in_use_conflict,
            test_identifier_uniqueness, sms_countries,
            login_load_every_record_kind, login_revisions_guard_writes,
            login_commit_is_all_or_nothing, login_commit_tokens_are_idempotent,
            login_user_unlocked_condition, login_replace_codes, login_confirm_owner, login_tallies,
            login_test_identifier_condition, login_load_home, login_touch_session
        );
        $crate::store_contract_tests!(@by_arc $make;
            concurrent_default_config, concurrent_commits_have_one_winner,
            concurrent_code_replacements_are_all_applied,
            concurrent_deletes_keep_the_last_secret, app_signing_keys, app_frontend_settings
        );
    };
    (@by_ref $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store = $make;
                $crate::contract_tests::$name(&store).await;
            }
        )+
    };
    (@by_arc $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
            async fn $name() {
                let store = ::std::sync::Arc::new($make);
                $crate::contract_tests::$name(store).await;
            }
        )+
    };
}

#[cfg(test)]
mod memory_store {
    //! The whole contract against `MemoryStore`.

    use std::sync::Arc;

    use crate::memory::MemoryStore;

    crate::store_contract_tests!(MemoryStore::new());

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn run_all_on_fresh_stores() {
        super::run_all(|| async { Arc::new(MemoryStore::new()) }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn run_all_on_one_shared_store() {
        // Every behaviour isolates itself by app, as it must against a shared DynamoDB table.
        let store = Arc::new(MemoryStore::new());
        super::run_all(|| {
            let store = store.clone();
            async move { store }
        })
        .await;
    }
}
