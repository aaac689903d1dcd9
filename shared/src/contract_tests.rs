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
use crate::identifiers::{EmailAddress, Identifier, PhoneNumber};
use crate::ids::{
    AppId, ChallengeId, ConfigId, EmailId, MethodId, PhoneId, SecretId, SessionId, TemplateId,
    TestIdentifierId, UserId,
};
use crate::model::{
    App, AppSecret, AuthenticationFactor, Challenge, Channel, LoginConfig, Session,
    SessionAttributes, Template, TestIdentifier, User, UserStatus,
};
use crate::ports::{
    AppStore, ChallengeStore, ConfigStore, FailureOutcome, RateCounter, RateDecision, RateHit,
    RateLimitStore, SessionStore, SuccessOutcome, UserStore, WriteError,
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

fn new_method_id(identifier: &Identifier) -> MethodId {
    match identifier {
        Identifier::Phone(_) => MethodId::Phone(PhoneId::generate(rnd())),
        Identifier::Email(_) => MethodId::Email(EmailId::generate(rnd())),
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
    let method_id = new_method_id(identifier);
    let mut user = User {
        id: UserId::generate(rnd()),
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

fn challenge_of(app_id: &AppId, method_id: &MethodId, at: Timestamp) -> Challenge {
    let id = ChallengeId::generate(rnd());
    Challenge {
        hash_context: id.as_str().to_owned(),
        id,
        app_id: app_id.clone(),
        user_id: UserId::generate(rnd()),
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

fn session_of(app_id: &AppId, user_id: &UserId, at: Timestamp) -> Session {
    let identifier = phone(1);
    let mut custom_claims = serde_json::Map::new();
    custom_claims.insert("plan".to_owned(), json!({"tier": "gold", "seats": 3}));
    Session {
        id: SessionId::generate(rnd()),
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
            method_id: new_method_id(&identifier),
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
    store.create_app(&app, &secret).await.expect("create_app");

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
    store.create_app(&app, &first).await.expect("create_app");
    let (other_app, other_secret) = app_with_secret(at);
    store
        .create_app(&other_app, &other_secret)
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
    store.create_app(&app, &first).await.expect("create_app");
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

async fn default_id(store: &dyn ConfigStore, app: &AppId, channel: Channel) -> Option<ConfigId> {
    store
        .default_config(app, channel)
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
        store
            .default_config(&other_app, Channel::Sms)
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
        store
            .default_config(&app, Channel::Sms)
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

/// SMS countries: `None` until set, per app, and `None` again when reset.
pub async fn sms_countries(store: &dyn ConfigStore) {
    let app = AppId::generate(rnd());
    let other_app = AppId::generate(rnd());
    assert_eq!(store.get_sms_countries(&app).await.expect("get"), None);
    let codes = vec!["1".to_owned(), "44".to_owned()];
    store
        .put_sms_countries(&app, Some(codes.clone()))
        .await
        .expect("put");
    assert_eq!(
        store.get_sms_countries(&app).await.expect("get"),
        Some(codes)
    );
    assert_eq!(
        store.get_sms_countries(&other_app).await.expect("get"),
        None
    );
    store.put_sms_countries(&app, None).await.expect("put");
    assert_eq!(store.get_sms_countries(&app).await.expect("get"), None);
}

// ---------------------------------------------------------------------------------------------
// UserStore
// ---------------------------------------------------------------------------------------------

/// `create_user`, then `get_user`, `find_by_identifier` and `find_by_method` all find it.
pub async fn user_create_and_find(store: &dyn UserStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let number = phone(20);
    let (user, method_id) = user_of(&app, &number, UserStatus::Pending, at);
    store.create_user(&user).await.expect("create_user");

    assert_eq!(
        store.get_user(&app, &user.id).await.expect("get"),
        Some(user.clone())
    );
    assert_eq!(
        store.find_by_identifier(&app, &number).await.expect("find"),
        Some((user.clone(), method_id.clone()))
    );
    assert_eq!(
        store.find_by_method(&app, &method_id).await.expect("find"),
        Some(user.clone())
    );

    let other_app = AppId::generate(rnd());
    assert_eq!(
        store.get_user(&other_app, &user.id).await.expect("get"),
        None
    );
    assert_eq!(
        store
            .find_by_identifier(&other_app, &number)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .find_by_method(&other_app, &method_id)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .find_by_identifier(&app, &phone(21))
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .find_by_method(&app, &MethodId::Phone(PhoneId::generate(rnd())))
            .await
            .expect("find"),
        None
    );

    let (email_user, email_method) = user_of(&app, &email("ann"), UserStatus::Active, at);
    store.create_user(&email_user).await.expect("create_user");
    assert_eq!(
        store
            .find_by_identifier(&app, &email("ann"))
            .await
            .expect("find"),
        Some((email_user, email_method))
    );
}

/// Identifiers are unique per app: a second user with a taken one is refused and not created;
/// the same identifier in another app is fine.
pub async fn user_identifier_conflicts(store: &dyn UserStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let number = phone(30);
    let (owner, owner_method) = user_of(&app, &number, UserStatus::Active, at);
    store.create_user(&owner).await.expect("create_user");

    let (intruder, intruder_method) = user_of(&app, &number, UserStatus::Active, at);
    let result = store.create_user(&intruder).await;
    assert!(is_conflict(&result), "taken identifier: {result:?}");
    assert_eq!(
        store.get_user(&app, &intruder.id).await.expect("get"),
        None,
        "the refused user is not stored"
    );
    assert_eq!(
        store
            .find_by_method(&app, &intruder_method)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.find_by_identifier(&app, &number).await.expect("find"),
        Some((owner.clone(), owner_method)),
        "the identifier still belongs to its owner"
    );

    let other_app = AppId::generate(rnd());
    let (elsewhere, elsewhere_method) = user_of(&other_app, &number, UserStatus::Active, at);
    store
        .create_user(&elsewhere)
        .await
        .expect("the same phone number in another app is fine");
    assert_eq!(
        store
            .find_by_identifier(&other_app, &number)
            .await
            .expect("find"),
        Some((elsewhere, elsewhere_method))
    );
    assert_eq!(
        store
            .find_by_identifier(&app, &number)
            .await
            .expect("find")
            .map(|(u, _)| u.id),
        Some(owner.id)
    );
}

/// `add_method` adds an identifier to a user; refused when the identifier is held by anyone
/// (this user included) or the user is gone, and a refusal reserves nothing.
pub async fn user_add_method(store: &dyn UserStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let number = phone(40);
    let (user, _) = user_of(&app, &number, UserStatus::Active, at);
    store.create_user(&user).await.expect("create_user");
    let (other, _) = user_of(&app, &phone(41), UserStatus::Active, at);
    store.create_user(&other).await.expect("create_user");

    let address = email("bea");
    let email_method = new_method_id(&address);
    let updated = store
        .add_method(&app, &user.id, &email_method, &address)
        .await
        .expect("add_method");
    assert_eq!(updated.identifier_of(&email_method), Some(address.clone()));
    assert_eq!(
        updated.phone_numbers, user.phone_numbers,
        "existing methods are kept"
    );
    assert_eq!(updated.emails.len(), 1);
    assert!(!updated.emails[0].verified, "a new method is unverified");
    assert_eq!(
        store.get_user(&app, &user.id).await.expect("get"),
        Some(updated.clone())
    );
    assert_eq!(
        store
            .find_by_identifier(&app, &address)
            .await
            .expect("find"),
        Some((updated.clone(), email_method.clone()))
    );
    assert_eq!(
        store
            .find_by_method(&app, &email_method)
            .await
            .expect("find"),
        Some(updated.clone())
    );

    // Held by this user.
    let again = new_method_id(&number);
    let result = store.add_method(&app, &user.id, &again, &number).await;
    assert!(
        is_conflict(&result),
        "identifier held by the same user: {result:?}"
    );
    // Held by another user.
    let stolen = new_method_id(&address);
    let result = store.add_method(&app, &other.id, &stolen, &address).await;
    assert!(
        is_conflict(&result),
        "identifier held by another user: {result:?}"
    );
    assert_eq!(
        store.find_by_method(&app, &stolen).await.expect("find"),
        None
    );
    assert_eq!(
        store.get_user(&app, &other.id).await.expect("get"),
        Some(other.clone()),
        "a refused add_method changes nothing"
    );
    assert_eq!(
        store.get_user(&app, &user.id).await.expect("get"),
        Some(updated)
    );

    // The user is gone.
    let free = email("cid");
    let ghost_method = new_method_id(&free);
    let result = store
        .add_method(&app, &UserId::generate(rnd()), &ghost_method, &free)
        .await;
    assert!(is_conflict(&result), "user gone: {result:?}");
    assert_eq!(
        store.find_by_identifier(&app, &free).await.expect("find"),
        None,
        "a refused add_method reserves nothing"
    );
    assert_eq!(
        store
            .find_by_method(&app, &ghost_method)
            .await
            .expect("find"),
        None
    );
    let (newcomer, _) = user_of(&app, &free, UserStatus::Active, at);
    store
        .create_user(&newcomer)
        .await
        .expect("the identifier is still free");
}

/// Unwraps a `Counted` outcome of `record_failure` into the user and `locked_now`.
#[track_caller]
fn failure_counted(outcome: FailureOutcome) -> (User, bool) {
    match outcome {
        FailureOutcome::Counted { user, locked_now } => (user, locked_now),
        other => panic!("expected Counted, got {other:?}"),
    }
}

/// Unwraps a `Recorded` outcome of `record_success`.
#[track_caller]
fn recorded(outcome: SuccessOutcome) -> User {
    match outcome {
        SuccessOutcome::Recorded(user) => user,
        other => panic!("expected Recorded, got {other:?}"),
    }
}

/// `record_success`: method verified, pending user active, failure count cleared; refused
/// (nothing written) while the user is locked, fine again once the lock has expired.
pub async fn user_record_success(store: &dyn UserStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let number = phone(50);
    let (user, phone_method) = user_of(&app, &number, UserStatus::Pending, at);
    store.create_user(&user).await.expect("create_user");
    let address = email("dee");
    let email_method = new_method_id(&address);
    store
        .add_method(&app, &user.id, &email_method, &address)
        .await
        .expect("add_method");
    for _ in 0..3 {
        failure_counted(
            store
                .record_failure(&app, &user.id, at, 10, 3600)
                .await
                .expect("record_failure"),
        );
    }
    assert_eq!(
        store
            .get_user(&app, &user.id)
            .await
            .expect("get")
            .expect("user")
            .failed_attempts,
        3
    );

    let after = recorded(
        store
            .record_success(&app, &user.id, &phone_method, at)
            .await
            .expect("record_success"),
    );
    assert_eq!(after.status, UserStatus::Active);
    assert_eq!(after.failed_attempts, 0);
    assert!(after.phone_numbers[0].verified);
    assert!(
        !after.emails[0].verified,
        "only the authenticated method is verified"
    );
    assert_eq!(
        store.get_user(&app, &user.id).await.expect("get"),
        Some(after.clone())
    );
    assert_eq!(
        store
            .find_by_method(&app, &phone_method)
            .await
            .expect("find"),
        Some(after.clone()),
        "every way of reading the user sees the update"
    );
    assert_eq!(
        store.find_by_identifier(&app, &number).await.expect("find"),
        Some((after, phone_method))
    );

    let after = recorded(
        store
            .record_success(&app, &user.id, &email_method, at)
            .await
            .expect("record_success"),
    );
    assert!(after.emails[0].verified && after.phone_numbers[0].verified);

    assert_eq!(
        store
            .record_success(&app, &UserId::generate(rnd()), &email_method, at)
            .await
            .expect("record_success"),
        SuccessOutcome::UserGone,
        "an unknown user is UserGone"
    );

    // A locked user: refused, and nothing is written.
    let (pending, pending_method) = user_of(&app, &phone(51), UserStatus::Pending, at);
    store.create_user(&pending).await.expect("create_user");
    failure_counted(
        store
            .record_failure(&app, &pending.id, at, 3, 3600)
            .await
            .expect("record_failure"),
    );
    let (locked, locked_now) = failure_counted(
        store
            .record_failure(&app, &pending.id, at, 2, 3600)
            .await
            .expect("record_failure"),
    );
    assert!(locked_now);
    let lock = locked.lock.expect("locked");
    for when in [at, at.plus_seconds(1), lock.expires_at.plus_seconds(-1)] {
        assert_eq!(
            store
                .record_success(&app, &pending.id, &pending_method, when)
                .await
                .expect("record_success"),
            SuccessOutcome::Locked(lock),
            "no success is recorded while the user is locked"
        );
    }
    assert_eq!(
        store.get_user(&app, &pending.id).await.expect("get"),
        Some(locked),
        "a refused record_success writes nothing"
    );
    // The lock ends at `expires_at` (as `User::active_lock`).
    let after = recorded(
        store
            .record_success(&app, &pending.id, &pending_method, lock.expires_at)
            .await
            .expect("record_success"),
    );
    assert_eq!(after.status, UserStatus::Active);
    assert!(after.phone_numbers[0].verified);
    assert_eq!(after.active_lock(lock.expires_at), None);
}

/// `record_failure` counts; the `limit`-th failure locks the user for `lock_seconds` and starts
/// the count again; while locked it counts nothing (`AlreadyLocked`); once the lock has expired
/// it counts again.
pub async fn user_record_failure_locks(store: &dyn UserStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let (user, _) = user_of(&app, &phone(60), UserStatus::Active, at);
    store.create_user(&user).await.expect("create_user");

    for expected in 1..=3u32 {
        let (after, locked_now) = failure_counted(
            store
                .record_failure(&app, &user.id, at, 4, 3600)
                .await
                .expect("record_failure"),
        );
        assert!(!locked_now);
        assert_eq!(after.failed_attempts, expected);
        assert_eq!(after.lock, None, "not locked below the limit");
    }
    let lock_at = at.plus_seconds(30);
    let (locked, locked_now) = failure_counted(
        store
            .record_failure(&app, &user.id, lock_at, 4, 3600)
            .await
            .expect("record_failure"),
    );
    assert!(locked_now, "the limit-th failure locks");
    let lock = locked.lock.expect("locked at the limit");
    assert_eq!(lock.created_at, lock_at);
    assert_eq!(lock.expires_at, lock_at.plus_seconds(3600));
    assert_eq!(
        locked.failed_attempts, 0,
        "the count starts again after a lock"
    );
    assert_eq!(locked.active_lock(lock_at.plus_seconds(3599)), Some(lock));
    assert_eq!(locked.active_lock(lock_at.plus_seconds(3600)), None);
    assert_eq!(
        store.get_user(&app, &user.id).await.expect("get"),
        Some(locked.clone())
    );

    // While locked: nothing counted, the lock is not renewed.
    for when in [lock_at, lock_at.plus_seconds(1), lock_at.plus_seconds(3599)] {
        assert_eq!(
            store
                .record_failure(&app, &user.id, when, 4, 3600)
                .await
                .expect("record_failure"),
            FailureOutcome::AlreadyLocked(lock)
        );
    }
    assert_eq!(
        store
            .record_failure(&app, &user.id, lock_at, 1, 60)
            .await
            .expect("record_failure"),
        FailureOutcome::AlreadyLocked(lock),
        "whatever the limit"
    );
    assert_eq!(
        store.get_user(&app, &user.id).await.expect("get"),
        Some(locked),
        "a failure while locked writes nothing"
    );

    // The lock has expired: counting starts again from zero.
    let expired = lock.expires_at;
    let (after, locked_now) = failure_counted(
        store
            .record_failure(&app, &user.id, expired, 4, 3600)
            .await
            .expect("record_failure"),
    );
    assert!(!locked_now);
    assert_eq!(after.failed_attempts, 1);
    assert_eq!(after.active_lock(expired), None);

    // A limit of 1 locks on the first failure.
    let (other, _) = user_of(&app, &phone(61), UserStatus::Active, at);
    store.create_user(&other).await.expect("create_user");
    let (after, locked_now) = failure_counted(
        store
            .record_failure(&app, &other.id, at, 1, 60)
            .await
            .expect("record_failure"),
    );
    assert!(locked_now);
    assert_eq!(after.failed_attempts, 0);
    assert_eq!(
        after.lock.map(|l| (l.created_at, l.expires_at)),
        Some((at, at.plus_seconds(60)))
    );

    assert_eq!(
        store
            .record_failure(&app, &UserId::generate(rnd()), at, 4, 3600)
            .await
            .expect("record_failure"),
        FailureOutcome::UserGone,
        "an unknown user is UserGone"
    );
}

/// `delete_user` removes the user and frees its identifiers.
pub async fn user_delete(store: &dyn UserStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let number = phone(70);
    let (user, method_id) = user_of(&app, &number, UserStatus::Active, at);
    store.create_user(&user).await.expect("create_user");
    let address = email("eve");
    let email_method = new_method_id(&address);
    store
        .add_method(&app, &user.id, &email_method, &address)
        .await
        .expect("add_method");
    let (bystander, _) = user_of(&app, &phone(71), UserStatus::Active, at);
    store.create_user(&bystander).await.expect("create_user");

    assert!(store.delete_user(&app, &user.id).await.expect("delete"));
    assert!(!store.delete_user(&app, &user.id).await.expect("delete"));
    assert_eq!(store.get_user(&app, &user.id).await.expect("get"), None);
    assert_eq!(
        store.find_by_identifier(&app, &number).await.expect("find"),
        None
    );
    assert_eq!(
        store
            .find_by_identifier(&app, &address)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.find_by_method(&app, &method_id).await.expect("find"),
        None
    );
    assert_eq!(
        store
            .find_by_method(&app, &email_method)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.get_user(&app, &bystander.id).await.expect("get"),
        Some(bystander),
        "other users are untouched"
    );

    let (successor, _) = user_of(&app, &number, UserStatus::Active, at);
    store
        .create_user(&successor)
        .await
        .expect("a deleted user's phone number is free again");
    let (successor2, _) = user_of(&app, &address, UserStatus::Active, at);
    store
        .create_user(&successor2)
        .await
        .expect("a deleted user's email is free again");
}

// ---------------------------------------------------------------------------------------------
// ChallengeStore
// ---------------------------------------------------------------------------------------------

fn phone_method() -> MethodId {
    MethodId::Phone(PhoneId::generate(rnd()))
}

/// `put_challenge` stores the method's code and replaces an earlier one.
pub async fn challenge_put_replaces(store: &dyn ChallengeStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    assert_eq!(store.get_challenge(&app, &method).await.expect("get"), None);

    let first = challenge_of(&app, &method, at);
    store.put_challenge(&first).await.expect("put");
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(first.clone())
    );

    let second = challenge_of(&app, &method, at.plus_seconds(10));
    store.put_challenge(&second).await.expect("put");
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(second.clone()),
        "a method has one code: the newest"
    );

    // A replacement starts fresh even over a used, tried code.
    assert!(
        store
            .consume(&app, &method, &second.id, at, 5)
            .await
            .expect("consume")
    );
    let third = challenge_of(&app, &method, at.plus_seconds(20));
    store.put_challenge(&third).await.expect("put");
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(third)
    );

    let other_method = phone_method();
    assert_eq!(
        store.get_challenge(&app, &other_method).await.expect("get"),
        None
    );
    assert_eq!(
        store
            .get_challenge(&AppId::generate(rnd()), &method)
            .await
            .expect("get"),
        None,
        "a code is found only under its own app"
    );
}

/// `consume` succeeds once for a live code, and marks it used.
pub async fn challenge_consume_once(store: &dyn ChallengeStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    let mut challenge = challenge_of(&app, &method, at);
    challenge.attempts = 4;
    store.put_challenge(&challenge).await.expect("put");

    assert!(
        store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume"),
        "a live code with one attempt left is consumed"
    );
    let stored = store
        .get_challenge(&app, &method)
        .await
        .expect("get")
        .expect("kept");
    assert!(stored.consumed, "a consumed code is marked used");
    assert!(!stored.is_live(at, 5));
    assert!(
        !store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume")
    );
    assert_eq!(
        store
            .record_wrong_attempt(&app, &method, &challenge.id, at, 5)
            .await
            .expect("record_wrong_attempt"),
        None,
        "a used code counts no wrong attempts"
    );
}

/// `consume` refuses a replaced code, an expired one, one whose attempts are spent, and a
/// missing one.
pub async fn challenge_consume_refusals(store: &dyn ChallengeStore) {
    let at = now();
    let app = AppId::generate(rnd());

    // Replaced.
    let method = phone_method();
    let old = challenge_of(&app, &method, at);
    store.put_challenge(&old).await.expect("put");
    let new = challenge_of(&app, &method, at);
    store.put_challenge(&new).await.expect("put");
    assert!(
        !store
            .consume(&app, &method, &old.id, at, 5)
            .await
            .expect("consume")
    );
    let current = store
        .get_challenge(&app, &method)
        .await
        .expect("get")
        .expect("current");
    assert!(
        !current.consumed,
        "a refused consume leaves the current code alone"
    );
    assert!(
        store
            .consume(&app, &method, &new.id, at, 5)
            .await
            .expect("consume")
    );

    // Expired: live strictly before `expires_at` (as `Challenge::is_live`).
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");
    assert!(
        !store
            .consume(&app, &method, &challenge.id, challenge.expires_at, 5)
            .await
            .expect("consume"),
        "dead at expires_at"
    );
    assert!(
        !store
            .consume(
                &app,
                &method,
                &challenge.id,
                challenge.expires_at.plus_seconds(60),
                5
            )
            .await
            .expect("consume")
    );
    assert!(
        store
            .consume(
                &app,
                &method,
                &challenge.id,
                challenge.expires_at.plus_seconds(-1),
                5
            )
            .await
            .expect("consume"),
        "live one second before expires_at"
    );

    // Attempts spent.
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");
    for _ in 0..3 {
        store
            .record_wrong_attempt(&app, &method, &challenge.id, at, 3)
            .await
            .expect("record_wrong_attempt")
            .expect("counted");
    }
    assert!(
        !store
            .consume(&app, &method, &challenge.id, at, 3)
            .await
            .expect("consume")
    );
    assert!(
        !store
            .get_challenge(&app, &method)
            .await
            .expect("get")
            .expect("kept")
            .consumed,
        "a refused consume does not mark the code used"
    );

    // Missing, or under another app.
    assert!(
        !store
            .consume(&app, &phone_method(), &ChallengeId::generate(rnd()), at, 5)
            .await
            .expect("consume")
    );
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");
    assert!(
        !store
            .consume(&AppId::generate(rnd()), &method, &challenge.id, at, 5)
            .await
            .expect("consume")
    );
}

/// `record_wrong_attempt` counts up to `max_attempts`, then counts nothing; it refuses what
/// `consume` refuses.
pub async fn challenge_wrong_attempts(store: &dyn ChallengeStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");

    for expected in 1..=5u32 {
        assert_eq!(
            store
                .record_wrong_attempt(&app, &method, &challenge.id, at, 5)
                .await
                .expect("record_wrong_attempt"),
            Some(expected)
        );
    }
    for _ in 0..2 {
        assert_eq!(
            store
                .record_wrong_attempt(&app, &method, &challenge.id, at, 5)
                .await
                .expect("record_wrong_attempt"),
            None,
            "a dead code counts nothing"
        );
    }
    let stored = store
        .get_challenge(&app, &method)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(stored.attempts, 5);
    assert!(!stored.consumed);

    // Replaced: the old id counts nothing, and the new code starts at zero.
    let fresh = challenge_of(&app, &method, at);
    store.put_challenge(&fresh).await.expect("put");
    assert_eq!(
        store
            .record_wrong_attempt(&app, &method, &challenge.id, at, 5)
            .await
            .expect("record_wrong_attempt"),
        None
    );
    assert_eq!(
        store
            .get_challenge(&app, &method)
            .await
            .expect("get")
            .expect("kept")
            .attempts,
        0
    );
    assert_eq!(
        store
            .record_wrong_attempt(&app, &method, &fresh.id, at, 5)
            .await
            .expect("record_wrong_attempt"),
        Some(1)
    );

    // Expired.
    assert_eq!(
        store
            .record_wrong_attempt(&app, &method, &fresh.id, fresh.expires_at, 5)
            .await
            .expect("record_wrong_attempt"),
        None
    );
    assert_eq!(
        store
            .get_challenge(&app, &method)
            .await
            .expect("get")
            .expect("kept")
            .attempts,
        1,
        "an attempt on an expired code is not counted"
    );

    // Missing.
    assert_eq!(
        store
            .record_wrong_attempt(&app, &phone_method(), &ChallengeId::generate(rnd()), at, 5)
            .await
            .expect("record_wrong_attempt"),
        None
    );
}

/// `restore` undoes a `consume`: only for the method's current code with that id, and only if
/// it is used; afterwards `consume` succeeds again, once. Attempts and expiry are kept.
pub async fn challenge_restore(store: &dyn ChallengeStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    let mut challenge = challenge_of(&app, &method, at);
    challenge.attempts = 2;
    store.put_challenge(&challenge).await.expect("put");

    assert!(
        !store
            .restore(&app, &method, &challenge.id)
            .await
            .expect("restore"),
        "an unused code has nothing to restore"
    );
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(challenge.clone())
    );

    assert!(
        store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume")
    );
    assert!(
        !store
            .restore(&app, &method, &ChallengeId::generate(rnd()))
            .await
            .expect("restore"),
        "another id restores nothing"
    );
    assert!(
        !store
            .restore(&AppId::generate(rnd()), &method, &challenge.id)
            .await
            .expect("restore"),
        "another app restores nothing"
    );
    assert!(
        store
            .get_challenge(&app, &method)
            .await
            .expect("get")
            .expect("kept")
            .consumed
    );

    assert!(
        store
            .restore(&app, &method, &challenge.id)
            .await
            .expect("restore"),
        "a used code is restored"
    );
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(challenge.clone()),
        "exactly as before the consume: unused, attempts and expiry kept"
    );
    assert!(
        !store
            .restore(&app, &method, &challenge.id)
            .await
            .expect("restore"),
        "a restored code is unused: nothing more to restore"
    );

    // Consumable again, exactly once.
    assert!(
        store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume"),
        "a restored code is consumed again"
    );
    assert!(
        !store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume"),
        "and only once"
    );

    // Replaced: the newer code is not touched.
    let newer = challenge_of(&app, &method, at.plus_seconds(5));
    store.put_challenge(&newer).await.expect("put");
    assert!(
        !store
            .restore(&app, &method, &challenge.id)
            .await
            .expect("restore"),
        "a replaced code is not restored"
    );
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(newer.clone())
    );
    assert!(
        store
            .consume(&app, &method, &newer.id, at, 5)
            .await
            .expect("consume")
    );
    let replacement = challenge_of(&app, &method, at.plus_seconds(10));
    store.put_challenge(&replacement).await.expect("put");
    assert!(
        !store
            .restore(&app, &method, &newer.id)
            .await
            .expect("restore"),
        "a used code that was replaced is not restored"
    );
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(replacement),
        "the replacement is left as it was"
    );

    // Restoring does not revive an expired code.
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");
    assert!(
        store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume")
    );
    assert!(
        store
            .restore(&app, &method, &challenge.id)
            .await
            .expect("restore")
    );
    assert!(
        !store
            .consume(&app, &method, &challenge.id, challenge.expires_at, 5)
            .await
            .expect("consume"),
        "a restored code is still dead at expires_at"
    );

    // Missing, or deleted.
    assert!(
        !store
            .restore(&app, &phone_method(), &ChallengeId::generate(rnd()))
            .await
            .expect("restore")
    );
    store
        .delete_challenge(&app, &method, &challenge.id)
        .await
        .expect("delete");
    assert!(
        !store
            .restore(&app, &method, &challenge.id)
            .await
            .expect("restore")
    );
    assert_eq!(store.get_challenge(&app, &method).await.expect("get"), None);
}

/// `delete_challenge` deletes only the named code; `delete_challenges` those of the methods.
pub async fn challenge_delete(store: &dyn ChallengeStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    let old = challenge_of(&app, &method, at);
    store.put_challenge(&old).await.expect("put");
    let new = challenge_of(&app, &method, at);
    store.put_challenge(&new).await.expect("put");

    store
        .delete_challenge(&app, &method, &old.id)
        .await
        .expect("delete");
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(new.clone()),
        "deleting a replaced code keeps the newer one"
    );
    store
        .delete_challenge(&AppId::generate(rnd()), &method, &new.id)
        .await
        .expect("delete");
    assert!(
        store
            .get_challenge(&app, &method)
            .await
            .expect("get")
            .is_some()
    );
    store
        .delete_challenge(&app, &method, &new.id)
        .await
        .expect("delete");
    assert_eq!(store.get_challenge(&app, &method).await.expect("get"), None);
    store
        .delete_challenge(&app, &method, &new.id)
        .await
        .expect("deleting a missing code is not an error");

    let methods: Vec<MethodId> = (0..3).map(|_| phone_method()).collect();
    for method in &methods {
        store
            .put_challenge(&challenge_of(&app, method, at))
            .await
            .expect("put");
    }
    store
        .delete_challenges(&app, &methods[..2])
        .await
        .expect("delete_challenges");
    assert_eq!(
        store.get_challenge(&app, &methods[0]).await.expect("get"),
        None
    );
    assert_eq!(
        store.get_challenge(&app, &methods[1]).await.expect("get"),
        None
    );
    assert!(
        store
            .get_challenge(&app, &methods[2])
            .await
            .expect("get")
            .is_some(),
        "other methods keep their codes"
    );
    store
        .delete_challenges(&app, &[])
        .await
        .expect("no methods is fine");
}

// ---------------------------------------------------------------------------------------------
// SessionStore
// ---------------------------------------------------------------------------------------------

/// `create_session`, `get_session` and `find_by_token_hash`, per app.
pub async fn session_create_get_find(store: &dyn SessionStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let user = UserId::generate(rnd());
    let session = session_of(&app, &user, at);
    store.create_session(&session).await.expect("create");

    assert_eq!(
        store.get_session(&app, &session.id).await.expect("get"),
        Some(session.clone()),
        "every field round-trips, custom claims included"
    );
    assert_eq!(
        store
            .find_by_token_hash(&app, &session.token_hash)
            .await
            .expect("find"),
        Some(session.clone())
    );
    let other_app = AppId::generate(rnd());
    assert_eq!(
        store
            .get_session(&other_app, &session.id)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store
            .find_by_token_hash(&other_app, &session.token_hash)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .find_by_token_hash(&app, &random_hash())
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store
            .get_session(&app, &SessionId::generate(rnd()))
            .await
            .expect("get"),
        None
    );
}

/// `update_session` replaces a live session; after `delete_session` it is `false` and
/// recreates nothing.
pub async fn session_update_and_delete(store: &dyn SessionStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let user = UserId::generate(rnd());
    let session = session_of(&app, &user, at);
    store.create_session(&session).await.expect("create");

    let mut updated = session.clone();
    updated.last_accessed_at = at.plus_seconds(30);
    updated.expires_at = at.plus_minutes(120);
    updated.custom_claims.remove("plan");
    updated
        .custom_claims
        .insert("role".to_owned(), json!("admin"));
    updated.granted_scopes.clear();
    assert!(store.update_session(&updated).await.expect("update"));
    assert_eq!(
        store.get_session(&app, &session.id).await.expect("get"),
        Some(updated.clone())
    );
    assert_eq!(
        store
            .find_by_token_hash(&app, &session.token_hash)
            .await
            .expect("find"),
        Some(updated.clone()),
        "the token still finds the updated session"
    );

    assert!(
        store
            .delete_session(&app, &session.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_session(&app, &session.id)
            .await
            .expect("delete")
    );
    assert!(
        !store.update_session(&updated).await.expect("update"),
        "a revoked session cannot be updated"
    );
    assert_eq!(
        store.get_session(&app, &session.id).await.expect("get"),
        None,
        "update_session never recreates a revoked session"
    );
    assert_eq!(
        store
            .find_by_token_hash(&app, &session.token_hash)
            .await
            .expect("find"),
        None,
        "a revoked session's token finds nothing"
    );
    assert!(
        store
            .list_sessions(&app, &user)
            .await
            .expect("list")
            .is_empty()
    );
}

/// `list_sessions` is per app and user; `delete_user_sessions` removes exactly that user's.
pub async fn session_list_and_delete_user_sessions(store: &dyn SessionStore) {
    let at = now();
    let app = AppId::generate(rnd());
    let alice = UserId::generate(rnd());
    let bob = UserId::generate(rnd());
    let a1 = session_of(&app, &alice, at);
    let a2 = session_of(&app, &alice, at.plus_seconds(5));
    let b1 = session_of(&app, &bob, at);
    for session in [&a1, &a2, &b1] {
        store.create_session(session).await.expect("create");
    }
    let ids = |sessions: Vec<Session>| {
        sorted_by_key(sessions.into_iter().map(|s| s.id).collect(), Clone::clone)
    };

    assert_eq!(
        ids(store.list_sessions(&app, &alice).await.expect("list")),
        ids(vec![a1.clone(), a2.clone()])
    );
    assert_eq!(
        store.list_sessions(&app, &bob).await.expect("list"),
        vec![b1.clone()]
    );
    assert!(
        store
            .list_sessions(&AppId::generate(rnd()), &alice)
            .await
            .expect("list")
            .is_empty()
    );

    store
        .delete_user_sessions(&app, &alice)
        .await
        .expect("delete_user_sessions");
    assert!(
        store
            .list_sessions(&app, &alice)
            .await
            .expect("list")
            .is_empty()
    );
    for gone in [&a1, &a2] {
        assert_eq!(store.get_session(&app, &gone.id).await.expect("get"), None);
        assert_eq!(
            store
                .find_by_token_hash(&app, &gone.token_hash)
                .await
                .expect("find"),
            None
        );
    }
    assert_eq!(
        store.list_sessions(&app, &bob).await.expect("list"),
        vec![b1.clone()],
        "another user's sessions stay"
    );
    assert_eq!(
        store
            .find_by_token_hash(&app, &b1.token_hash)
            .await
            .expect("find"),
        Some(b1)
    );
    store
        .delete_user_sessions(&app, &alice)
        .await
        .expect("deleting no sessions is fine");
}

// ---------------------------------------------------------------------------------------------
// RateLimitStore
// ---------------------------------------------------------------------------------------------

fn rate_counter(limit: u32, window_seconds: i64) -> RateCounter {
    RateCounter {
        key: format!("contract#{}", UserId::generate(rnd())),
        limit,
        window_seconds,
    }
}

async fn counted(store: &dyn RateLimitStore, counter: &RateCounter, at: Timestamp) -> RateHit {
    match store
        .hit(std::slice::from_ref(counter), at)
        .await
        .expect("hit")
    {
        RateDecision::Counted(mut hits) if hits.len() == 1 => hits.remove(0),
        other => panic!("expected the hit at {at:?} to be counted, got {other:?}"),
    }
}

async fn limited(store: &dyn RateLimitStore, counter: &RateCounter, at: Timestamp) -> Timestamp {
    match store
        .hit(std::slice::from_ref(counter), at)
        .await
        .expect("hit")
    {
        RateDecision::Limited { retry_at } => retry_at,
        counted => panic!("expected the hit at {at:?} to be limited, got {counted:?}"),
    }
}

/// `hit` allows at most `limit` hits within any `window_seconds` (a sliding window), answers
/// `Limited` with the time a hit will be allowed again, and at that time allows it.
pub async fn rate_limit_window(store: &dyn RateLimitStore) {
    let at = now();
    let counter = rate_counter(3, 60);
    for offset in [0, 10, 20] {
        let hit = counted(store, &counter, at.plus_seconds(offset)).await;
        assert_eq!(hit.key, counter.key);
        assert_eq!(hit.at, at.plus_seconds(offset));
    }
    assert_eq!(
        limited(store, &counter, at.plus_seconds(30)).await,
        at.plus_seconds(60)
    );
    assert_eq!(
        limited(store, &counter, at.plus_seconds(59)).await,
        at.plus_seconds(60),
        "a refused hit is not counted"
    );
    let other = rate_counter(1, 60);
    counted(store, &other, at.plus_seconds(30)).await;

    // At `retry_at` the oldest hit has aged out (else Retry-After would lie); the window
    // slides, so the next room comes when the hit at +10 ages out.
    counted(store, &counter, at.plus_seconds(60)).await;
    assert_eq!(
        limited(store, &counter, at.plus_seconds(61)).await,
        at.plus_seconds(70)
    );
    counted(store, &counter, at.plus_seconds(70)).await;

    // A limit of 1 is a cooldown from the last accepted hit.
    let cooldown = rate_counter(1, 30);
    counted(store, &cooldown, at).await;
    assert_eq!(
        limited(store, &cooldown, at.plus_seconds(29)).await,
        at.plus_seconds(30)
    );
    counted(store, &cooldown, at.plus_seconds(45)).await;
    assert_eq!(
        limited(store, &cooldown, at.plus_seconds(74)).await,
        at.plus_seconds(75),
        "the cooldown starts at the last accepted hit"
    );
}

/// Several counters in one `hit` are counted together or not at all.
pub async fn rate_limit_all_or_nothing(store: &dyn RateLimitStore) {
    let at = now();
    let roomy = rate_counter(5, 60);
    let full = rate_counter(1, 60);
    counted(store, &full, at).await;
    let decision = store
        .hit(&[roomy.clone(), full.clone()], at.plus_seconds(1))
        .await
        .expect("hit");
    assert_eq!(
        decision,
        RateDecision::Limited {
            retry_at: at.plus_seconds(60)
        }
    );
    for offset in 2..7 {
        counted(store, &roomy, at.plus_seconds(offset)).await;
    }
    limited(store, &roomy, at.plus_seconds(7)).await;
    let other = rate_counter(2, 60);
    match store
        .hit(&[other.clone(), rate_counter(2, 60)], at)
        .await
        .expect("hit")
    {
        RateDecision::Counted(hits) => assert_eq!(hits.len(), 2),
        limited => panic!("two fresh counters: {limited:?}"),
    }
}

/// `give_back` takes back counted hits; giving back unknown hits changes nothing.
pub async fn rate_limit_give_back(store: &dyn RateLimitStore) {
    let at = now();
    let counter = rate_counter(2, 60);
    counted(store, &counter, at).await;
    let second = counted(store, &counter, at.plus_seconds(1)).await;
    limited(store, &counter, at.plus_seconds(2)).await;
    store
        .give_back(std::slice::from_ref(&second))
        .await
        .expect("give_back");
    counted(store, &counter, at.plus_seconds(3)).await;
    limited(store, &counter, at.plus_seconds(4)).await;

    // Giving back a hit of a counter that was never hit creates nothing that blocks.
    let fresh = rate_counter(1, 60);
    store
        .give_back(&[RateHit {
            key: fresh.key.clone(),
            at,
        }])
        .await
        .expect("give_back of an unknown counter");
    counted(store, &fresh, at.plus_seconds(1)).await;
}

/// A hit that was given back leaves no trace: with a cooldown of 30 s, a hit given back at `t`
/// and an accepted one at `t + 20` keep the next one out until `t + 50`.
pub async fn rate_limit_given_back_hit_does_not_open_the_window(store: &dyn RateLimitStore) {
    let at = now();
    let cooldown = rate_counter(1, 30);
    let refunded = counted(store, &cooldown, at).await;
    store.give_back(&[refunded]).await.expect("give_back");
    counted(store, &cooldown, at.plus_seconds(20)).await;
    assert_eq!(
        limited(store, &cooldown, at.plus_seconds(30)).await,
        at.plus_seconds(50),
        "two accepted hits 10 seconds apart under a 30-second cooldown"
    );
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

/// Of many concurrent `consume` calls on one live code, exactly one returns `true`.
pub async fn concurrent_consume(store: Arc<dyn ChallengeStore>) {
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");

    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_TASKS));
    let tasks = (0..CONCURRENT_TASKS)
        .map(|_| {
            let (store, app, method, id) = (
                store.clone(),
                app.clone(),
                method.clone(),
                challenge.id.clone(),
            );
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .consume(&app, &method, &id, at, 5)
                    .await
                    .expect("consume")
            })
        })
        .collect();
    let results = join_all(tasks).await;
    let winners = results.iter().filter(|won| **won).count();
    assert_eq!(winners, 1, "exactly one concurrent consume succeeds");
    assert!(
        store
            .get_challenge(&app, &method)
            .await
            .expect("get")
            .expect("kept")
            .consumed
    );
}

/// Of many concurrent `record_wrong_attempt` calls with `max_attempts` 5, exactly 5 count
/// (returning 1..=5 once each) and the rest return `None`.
pub async fn concurrent_wrong_attempts(store: Arc<dyn ChallengeStore>) {
    const MAX: u32 = 5;
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");

    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_TASKS));
    let tasks = (0..CONCURRENT_TASKS)
        .map(|_| {
            let (store, app, method, id) = (
                store.clone(),
                app.clone(),
                method.clone(),
                challenge.id.clone(),
            );
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .record_wrong_attempt(&app, &method, &id, at, MAX)
                    .await
                    .expect("record_wrong_attempt")
            })
        })
        .collect();
    let results = join_all(tasks).await;
    let mut counted: Vec<u32> = results.iter().filter_map(|r| *r).collect();
    counted.sort_unstable();
    assert_eq!(
        counted,
        (1..=MAX).collect::<Vec<_>>(),
        "each count handed out once"
    );
    assert_eq!(
        results.iter().filter(|r| r.is_none()).count(),
        CONCURRENT_TASKS - MAX as usize
    );
    let stored = store
        .get_challenge(&app, &method)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(stored.attempts, MAX);
    assert!(
        !store
            .consume(&app, &method, &challenge.id, at, MAX)
            .await
            .expect("consume")
    );
}

/// Of many concurrent `create_user` calls for one identifier, exactly one succeeds and the
/// rest are `Conflict`.
pub async fn concurrent_create_user(store: Arc<dyn UserStore>) {
    let at = now();
    let app = AppId::generate(rnd());
    let number = phone(80);
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_TASKS));
    let tasks = (0..CONCURRENT_TASKS)
        .map(|_| {
            let (user, _) = user_of(&app, &number, UserStatus::Active, at);
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                (user.id.clone(), store.create_user(&user).await)
            })
        })
        .collect();
    let results = join_all(tasks).await;
    let created: Vec<&UserId> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "exactly one concurrent create_user succeeds"
    );
    assert!(
        results.iter().all(|(_, r)| r.is_ok() || is_conflict(r)),
        "the others are Conflict"
    );
    assert_eq!(
        store
            .find_by_identifier(&app, &number)
            .await
            .expect("find")
            .map(|(u, _)| u.id),
        Some(created[0].clone())
    );
    for (id, result) in &results {
        if result.is_err() {
            assert_eq!(store.get_user(&app, id).await.expect("get"), None);
        }
    }
}

/// Concurrent `record_failure` calls lose no count, and stop at the lock: with `limit` 10, of
/// 100 concurrent calls exactly 10 are `Counted` (the one that reaches the limit with
/// `locked_now`) and the other 90 `AlreadyLocked`.
pub async fn concurrent_record_failure(store: Arc<dyn UserStore>) {
    let at = now();
    let app = AppId::generate(rnd());

    let run = |user_id: UserId, calls: usize, limit: u32| {
        let barrier = Arc::new(tokio::sync::Barrier::new(calls));
        let tasks: Vec<_> = (0..calls)
            .map(|_| {
                let (store, app, id) = (store.clone(), app.clone(), user_id.clone());
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .record_failure(&app, &id, at, limit, 3600)
                        .await
                        .expect("record_failure")
                })
            })
            .collect();
        join_all(tasks)
    };

    // Far below the limit: every call counts, none is lost.
    let (user, _) = user_of(&app, &phone(90), UserStatus::Active, at);
    store.create_user(&user).await.expect("create_user");
    let results = run(user.id.clone(), CONCURRENT_TASKS, 1_000).await;
    let stored = store
        .get_user(&app, &user.id)
        .await
        .expect("get")
        .expect("user");
    assert_eq!(
        stored.failed_attempts, CONCURRENT_TASKS as u32,
        "no concurrent failure is lost"
    );
    let mut seen: Vec<u32> = results
        .into_iter()
        .map(|r| {
            let (user, locked_now) = failure_counted(r);
            assert!(!locked_now);
            user.failed_attempts
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=CONCURRENT_TASKS as u32).collect::<Vec<_>>());
    assert_eq!(stored.lock, None);
    // The next call reaches the limit and locks.
    let limit = CONCURRENT_TASKS as u32 + 1;
    let results = run(user.id.clone(), 1, limit).await;
    let (locked, locked_now) = failure_counted(results.into_iter().next().expect("one result"));
    assert!(locked_now && locked.lock.is_some(), "locked at the limit");

    // Across the limit: exactly `LIMIT` count, one of them locks, the rest count nothing.
    const LIMIT: u32 = 10;
    let (user, _) = user_of(&app, &phone(91), UserStatus::Active, at);
    store.create_user(&user).await.expect("create_user");
    let results = run(user.id.clone(), CONCURRENT_TASKS, LIMIT).await;
    let stored = store
        .get_user(&app, &user.id)
        .await
        .expect("get")
        .expect("user");
    let lock = stored.lock.expect("locked at the limit");
    assert_eq!(lock.created_at, at);
    assert_eq!(stored.failed_attempts, 0, "the count starts again");
    let mut seen = Vec::new();
    let mut lockers = 0;
    let mut already_locked = 0;
    for result in results {
        match result {
            FailureOutcome::Counted { user, locked_now } => {
                if locked_now {
                    lockers += 1;
                    assert_eq!(user.lock, Some(lock));
                    assert_eq!(user.failed_attempts, 0);
                } else {
                    assert_eq!(user.active_lock(at), None);
                    seen.push(user.failed_attempts);
                }
            }
            FailureOutcome::AlreadyLocked(l) => {
                assert_eq!(l, lock);
                already_locked += 1;
            }
            FailureOutcome::UserGone => panic!("the user exists"),
        }
    }
    seen.sort_unstable();
    assert_eq!(lockers, 1, "exactly one failure locks");
    assert_eq!(
        seen,
        (1..LIMIT).collect::<Vec<_>>(),
        "each count below the limit handed out once"
    );
    assert_eq!(
        already_locked,
        CONCURRENT_TASKS - LIMIT as usize,
        "the rest count nothing"
    );
}

/// After a `restore`, of many concurrent `consume` calls exactly one succeeds again.
pub async fn concurrent_consume_after_restore(store: Arc<dyn ChallengeStore>) {
    let at = now();
    let app = AppId::generate(rnd());
    let method = phone_method();
    let challenge = challenge_of(&app, &method, at);
    store.put_challenge(&challenge).await.expect("put");
    assert!(
        store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume")
    );

    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_TASKS));
    let tasks = (0..CONCURRENT_TASKS)
        .map(|i| {
            let (store, app, method, id) = (
                store.clone(),
                app.clone(),
                method.clone(),
                challenge.id.clone(),
            );
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                if i == 0 {
                    // The one restore races the consumes: either it comes first and one of
                    // them wins, or it comes last and leaves the code unused.
                    let restored = store.restore(&app, &method, &id).await.expect("restore");
                    assert!(restored, "the code was used: restore succeeds");
                    false
                } else {
                    store
                        .consume(&app, &method, &id, at, 5)
                        .await
                        .expect("consume")
                }
            })
        })
        .collect();
    let results = join_all(tasks).await;
    let winners = results.iter().filter(|won| **won).count();
    let consumed = store
        .get_challenge(&app, &method)
        .await
        .expect("get")
        .expect("kept")
        .consumed;
    assert!(winners <= 1, "at most one consume after one restore");
    assert_eq!(
        consumed,
        winners == 1,
        "the code is used exactly when a consume won"
    );
    if winners == 0 {
        assert!(
            store
                .consume(&app, &method, &challenge.id, at, 5)
                .await
                .expect("consume"),
            "the restored code is consumed"
        );
    }
    assert!(
        !store
            .consume(&app, &method, &challenge.id, at, 5)
            .await
            .expect("consume"),
        "once"
    );
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
        store
            .default_config(&app, Channel::Sms)
            .await
            .expect("default")
            .map(|c| c.id),
        Some(defaults[0].id.clone())
    );
}

/// Of many concurrent `hit` calls on one counter with limit 5, exactly 5 are counted.
pub async fn concurrent_rate_limit_hits(store: Arc<dyn RateLimitStore>) {
    const LIMIT: u32 = 5;
    let at = now();
    let counter = rate_counter(LIMIT, 600);
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_TASKS));
    let tasks = (0..CONCURRENT_TASKS)
        .map(|_| {
            let (store, counter, barrier) = (store.clone(), counter.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .hit(std::slice::from_ref(&counter), at)
                    .await
                    .expect("hit")
            })
        })
        .collect();
    let results = join_all(tasks).await;
    let counted = results
        .iter()
        .filter(|d| matches!(d, RateDecision::Counted(_)))
        .count();
    assert_eq!(counted, LIMIT as usize, "exactly the limit is counted");
    assert!(results.iter().all(|d| match d {
        RateDecision::Counted(hits) => hits.len() == 1 && hits[0].at == at,
        RateDecision::Limited { retry_at } => *retry_at == at.plus_seconds(600),
    }));
}

// ---------------------------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------------------------

/// Runs every behaviour, each on the store `make` hands out: a fresh one each time, or clones of
/// one shared `Arc` (every behaviour isolates itself by app, so sharing is fine).
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: AppStore
        + ConfigStore
        + UserStore
        + ChallengeStore
        + SessionStore
        + RateLimitStore
        + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    app_create_and_get(&*make().await).await;
    app_secrets_add_list_delete(&*make().await).await;
    app_secret_touch(&*make().await).await;

    config_put_get_list_delete(&*make().await).await;
    config_default_switching(&*make().await).await;
    config_missing_template_conflict(&*make().await).await;
    template_crud_and_in_use_conflict(&*make().await).await;
    test_identifier_uniqueness(&*make().await).await;
    sms_countries(&*make().await).await;

    user_create_and_find(&*make().await).await;
    user_identifier_conflicts(&*make().await).await;
    user_add_method(&*make().await).await;
    user_record_success(&*make().await).await;
    user_record_failure_locks(&*make().await).await;
    user_delete(&*make().await).await;

    challenge_put_replaces(&*make().await).await;
    challenge_consume_once(&*make().await).await;
    challenge_consume_refusals(&*make().await).await;
    challenge_wrong_attempts(&*make().await).await;
    challenge_restore(&*make().await).await;
    challenge_delete(&*make().await).await;

    session_create_get_find(&*make().await).await;
    session_update_and_delete(&*make().await).await;
    session_list_and_delete_user_sessions(&*make().await).await;

    rate_limit_window(&*make().await).await;
    rate_limit_all_or_nothing(&*make().await).await;
    rate_limit_give_back(&*make().await).await;
    rate_limit_given_back_hit_does_not_open_the_window(&*make().await).await;

    concurrent_consume(make().await).await;
    concurrent_consume_after_restore(make().await).await;
    concurrent_wrong_attempts(make().await).await;
    concurrent_create_user(make().await).await;
    concurrent_record_failure(make().await).await;
    concurrent_default_config(make().await).await;
    concurrent_rate_limit_hits(make().await).await;
}

/// One `#[tokio::test]` (multi-thread) per behaviour of the store contract, each on a store made
/// by the given expression (evaluated inside the async test, so it may `.await`). The expression's
/// type implements every store port. The calling crate needs `tokio` with `macros` and
/// `rt-multi-thread`.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@by_ref $make;
            app_create_and_get, app_secrets_add_list_delete, app_secret_touch,
            config_put_get_list_delete, config_default_switching,
            config_missing_template_conflict, template_crud_and_in_use_conflict,
            test_identifier_uniqueness, sms_countries,
            user_create_and_find, user_identifier_conflicts, user_add_method,
            user_record_success, user_record_failure_locks, user_delete,
            challenge_put_replaces, challenge_consume_once, challenge_consume_refusals,
            challenge_wrong_attempts, challenge_restore, challenge_delete,
            session_create_get_find, session_update_and_delete,
            session_list_and_delete_user_sessions,
            rate_limit_window, rate_limit_all_or_nothing, rate_limit_give_back,
            rate_limit_given_back_hit_does_not_open_the_window
        );
        $crate::store_contract_tests!(@by_arc $make;
            concurrent_consume, concurrent_consume_after_restore, concurrent_wrong_attempts,
            concurrent_create_user,
            concurrent_record_failure, concurrent_default_config, concurrent_rate_limit_hits
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
