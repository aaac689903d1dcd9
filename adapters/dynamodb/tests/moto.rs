//! `DynamoStore` against a DynamoDB endpoint: moto locally (`scripts/with-moto.sh`).
//! Every test skips, with a notice, when neither `AWS_ENDPOINT_URL_DYNAMODB` nor
//! `AWS_ENDPOINT_URL` is set, so a plain `cargo test` passes without them (except
//! `unreachable_endpoint_is_unavailable`, which needs no server). Each test makes its own table.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use shared::clock::{Clock, SystemClock, Timestamp};
use shared::identifiers::Identifier;
use shared::ids::{
    AppId, ChallengeId, ConfigId, EmailId, MethodId, PhoneId, SessionId, TemplateId, UserId,
};
use shared::model::{
    Challenge, Channel, LoginConfig, Session, SessionAttributes, Template, User, UserStatus,
};
use shared::ports::{ChallengeStore, ConfigStore, SessionStore, StoreError, UserStore, WriteError};
use shared::random::{OsRandom, Random};
use store_dynamodb::{DynamoStore, create_table};

const SKIP: &str = "skipped: neither AWS_ENDPOINT_URL_DYNAMODB nor AWS_ENDPOINT_URL is set \
                    (scripts/with-moto.sh starts moto and sets them)";

/// A client for the DynamoDB endpoint in `AWS_ENDPOINT_URL_DYNAMODB` (else `AWS_ENDPOINT_URL`),
/// with dummy credentials (the credential chain never reaches for instance metadata), or
/// `None` (skip) when neither is set.
async fn client() -> Option<Client> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.is_empty());
    let Some(endpoint) = endpoint else {
        eprintln!("{SKIP}");
        return None;
    };
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .endpoint_url(endpoint)
        .build();
    Some(DynamoStore::client(&config))
}

fn unique_table() -> String {
    format!(
        "otp-test-{}",
        &UserId::generate(&OsRandom).as_str()["user-".len()..]
    )
}

/// A store over a fresh table, or `None` (skip) without an endpoint.
async fn fresh_store() -> Option<DynamoStore> {
    let client = client().await?;
    let table = unique_table();
    create_table(&client, &table).await.expect("create_table");
    Some(DynamoStore::new(client, table))
}

/// Evaluates to a fresh store, or returns from the test (skipped).
macro_rules! store_or_skip {
    () => {
        match fresh_store().await {
            Some(store) => store,
            None => return,
        }
    };
}

mod contract {
    //! The whole store contract of `shared::contract_tests`, one test per behaviour, each on a
    //! fresh table. (Not also `run_all` on one shared table: against moto, which copies the whole
    //! table for every transaction, that alone took 40 s; every behaviour already isolates itself
    //! by app and checks that other apps' records are untouched.)
    use super::*;

    shared::store_contract_tests!(store_or_skip!());
}

fn now() -> Timestamp {
    SystemClock.now()
}

async fn raw_items(store: &DynamoStore, client: &Client) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(store.table_name())
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return items,
        }
    }
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(text)) => text,
        other => panic!("{name} is not a string: {other:?}"),
    }
}

#[tokio::test]
async fn create_table_is_idempotent_with_gsi_and_ttl() {
    let Some(client) = client().await else { return };
    let table = unique_table();
    create_table(&client, &table).await.expect("create");
    create_table(&client, &table)
        .await
        .expect("create again is a no-op");
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe");
    let description = described.table().expect("table");
    let keys: Vec<(&str, &str)> = description
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, vec![("pk", "HASH"), ("sk", "RANGE")]);
    let gsis = description.global_secondary_indexes();
    assert_eq!(gsis.len(), 1);
    assert_eq!(gsis[0].index_name(), Some("gsi1"));
    assert_eq!(
        gsis[0]
            .projection()
            .and_then(|p| p.projection_type())
            .map(|p| p.as_str()),
        Some("ALL")
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("describe ttl");
    let ttl = ttl.time_to_live_description().expect("ttl description");
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

fn challenge(app: &AppId, method: &MethodId, at: Timestamp) -> Challenge {
    let id = ChallengeId::generate(&OsRandom);
    Challenge {
        hash_context: id.as_str().to_owned(),
        id,
        app_id: app.clone(),
        user_id: UserId::generate(&OsRandom),
        method_id: method.clone(),
        channel: Channel::Sms,
        code_hash: [7u8; 32],
        config_id: ConfigId::generate(&OsRandom, at),
        grant_change_password: false,
        created_at: at,
        expires_at: at.plus_seconds(120),
        attempts: 0,
        consumed: false,
        test_identifier: None,
    }
}

fn session(app: &AppId, user: &UserId, at: Timestamp, token_hash: [u8; 32]) -> Session {
    Session {
        id: SessionId::generate(&OsRandom),
        app_id: app.clone(),
        user_id: user.clone(),
        token_hash,
        started_at: at,
        last_accessed_at: at,
        expires_at: at.plus_minutes(30),
        attributes: SessionAttributes::default(),
        custom_claims: serde_json::Map::new(),
        authentication_factors: Vec::new(),
        granted_scopes: Vec::new(),
    }
}

/// Hashes are binary, the token is in a key only as the hex of its hash, and codes and sessions
/// carry a numeric epoch-seconds `ttl` that follows the session when it is extended.
#[tokio::test]
async fn items_hold_hashes_and_ttl() {
    let Some(client) = client().await else { return };
    let table = unique_table();
    create_table(&client, &table).await.expect("create");
    let store = DynamoStore::new(client.clone(), table);
    let at = now();
    let app = AppId::generate(&OsRandom);
    let method = MethodId::Phone(PhoneId::generate(&OsRandom));
    let code = challenge(&app, &method, at);
    store.put_challenge(&code).await.expect("put");
    let mut token_hash = [0u8; 32];
    OsRandom.fill_bytes(&mut token_hash);
    let mut live = session(&app, &UserId::generate(&OsRandom), at, token_hash);
    store.create_session(&live).await.expect("create");
    live.expires_at = at.plus_minutes(90);
    assert!(store.update_session(&live).await.expect("update"));

    let items = raw_items(&store, &client).await;
    assert_eq!(items.len(), 3, "challenge, session, token");
    let hex: String = token_hash.iter().map(|b| format!("{b:02x}")).collect();
    for item in &items {
        let ttl = match item.get("ttl") {
            Some(AttributeValue::N(n)) => n.parse::<i64>().expect("numeric ttl"),
            other => panic!("no numeric ttl: {other:?}"),
        };
        match text(item, "sk") {
            "CHALLENGE" => {
                assert!(
                    matches!(item.get("code_hash"), Some(AttributeValue::B(b)) if b.as_ref().len() == 32)
                );
                assert!(
                    ttl >= code.expires_at.0,
                    "a code outlives its expiry for a while"
                );
            }
            "SESSION" | "TOKEN" => {
                assert_eq!(ttl, live.expires_at.0, "ttl follows the extended session");
                assert!(matches!(item.get("token_hash"), Some(AttributeValue::B(_))));
            }
            other => panic!("unexpected item {other}"),
        }
    }
    let token_item = items
        .iter()
        .find(|i| text(i, "sk") == "TOKEN")
        .expect("token item");
    assert_eq!(text(token_item, "pk"), format!("APP#{app}#TOKEN#{hex}"));
}

/// Expired records are returned as stored (the in-memory store's semantics; the domain checks
/// `expires_at`), and the conditional writes refuse them.
#[tokio::test]
async fn expired_records_are_returned_and_refused() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let method = MethodId::Phone(PhoneId::generate(&OsRandom));
    let mut code = challenge(&app, &method, at.plus_seconds(-600));
    code.expires_at = at.plus_seconds(-480);
    store.put_challenge(&code).await.expect("put");
    assert_eq!(
        store.get_challenge(&app, &method).await.expect("get"),
        Some(code.clone())
    );
    assert!(
        !store
            .consume(&app, &method, &code.id, at, 5)
            .await
            .expect("consume")
    );
    assert_eq!(
        store
            .record_wrong_attempt(&app, &method, &code.id, at, 5)
            .await
            .expect("record"),
        None
    );
    let mut old = session(
        &app,
        &UserId::generate(&OsRandom),
        at.plus_seconds(-7200),
        [1u8; 32],
    );
    old.expires_at = at.plus_seconds(-3600);
    store.create_session(&old).await.expect("create");
    assert_eq!(
        store.get_session(&app, &old.id).await.expect("get"),
        Some(old.clone())
    );
    assert_eq!(
        store
            .find_by_token_hash(&app, &old.token_hash)
            .await
            .expect("find"),
        Some(old)
    );
}

/// 20 concurrent consumes of one code: exactly one wins (the contract runs 100 more).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn twenty_concurrent_consumes_one_winner() {
    let store = Arc::new(store_or_skip!());
    for _round in 0..5 {
        let at = now();
        let app = AppId::generate(&OsRandom);
        let method = MethodId::Email(EmailId::generate(&OsRandom));
        let code = challenge(&app, &method, at);
        store.put_challenge(&code).await.expect("put");
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, app, method, id, barrier) = (
                    store.clone(),
                    app.clone(),
                    method.clone(),
                    code.id.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .consume(&app, &method, &id, at, 5)
                        .await
                        .expect("consume")
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.expect("task"));
        }
        assert_eq!(winners, 1);
    }
}

fn user_with(app: &AppId, identifier: &Identifier) -> User {
    let mut user = User {
        id: UserId::generate(&OsRandom),
        app_id: app.clone(),
        status: UserStatus::Active,
        created_at: now(),
        phone_numbers: Vec::new(),
        emails: Vec::new(),
        failed_attempts: 0,
        lock: None,
    };
    let method = match identifier {
        Identifier::Phone(_) => MethodId::Phone(PhoneId::generate(&OsRandom)),
        Identifier::Email(_) => MethodId::Email(EmailId::generate(&OsRandom)),
    };
    user.add_method(method, identifier.clone());
    user
}

/// `create_user` and `add_method` racing for one identifier: exactly one of all of them gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn create_user_and_add_method_race_for_one_identifier() {
    let store = Arc::new(store_or_skip!());
    let app = AppId::generate(&OsRandom);
    let contested = Identifier::parse("race@example.com").expect("valid");
    let mut owners = Vec::new();
    for n in 0..10 {
        let user = user_with(
            &app,
            &Identifier::parse(&format!("+120255501{n:02}")).expect("valid"),
        );
        store.create_user(&user).await.expect("create");
        owners.push(user.id);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for owner in owners {
        let (store, app, contested, barrier) = (
            store.clone(),
            app.clone(),
            contested.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let method = MethodId::Email(EmailId::generate(&OsRandom));
            let result = store.add_method(&app, &owner, &method, &contested).await;
            (owner, result.map(|_| ()))
        }));
    }
    for _ in 0..10 {
        let user = user_with(&app, &contested);
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (user.id.clone(), store.create_user(&user).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (user_id, result) = task.await.expect("task");
        match result {
            Ok(()) => winners.push(user_id),
            Err(WriteError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one holder");
    let (holder, _) = store
        .find_by_identifier(&app, &contested)
        .await
        .expect("find")
        .expect("held");
    assert_eq!(holder.id, winners[0]);
}

fn config_using(app: &AppId, template: Option<&TemplateId>, is_default: bool) -> LoginConfig {
    let at = now();
    LoginConfig {
        id: ConfigId::generate(&OsRandom, at),
        app_id: app.clone(),
        channel: Channel::Sms,
        is_default,
        template_id: template.cloned(),
        sender_id: None,
        grant_change_password: false,
        code_length: 6,
        expiration_minutes: 2,
        created_at: at,
        updated_at: at,
    }
}

/// `put_config` naming a template and `delete_template` racing: exactly one wins, and a config
/// never names a deleted template.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn template_delete_races_config_that_uses_it() {
    let store = Arc::new(store_or_skip!());
    let app = AppId::generate(&OsRandom);
    for _round in 0..15 {
        let at = now();
        let template = Template {
            id: TemplateId::generate(&OsRandom, at),
            app_id: app.clone(),
            channel: Channel::Sms,
            locale: "en".to_owned(),
            subject: None,
            text: "{{code}}".to_owned(),
            html: None,
            created_at: at,
            updated_at: at,
        };
        store.put_template(&template).await.expect("put_template");
        let config = config_using(&app, Some(&template.id), false);
        let put = {
            let (store, config) = (store.clone(), config.clone());
            tokio::spawn(async move { store.put_config(&config).await })
        };
        let delete = {
            let (store, app, id) = (store.clone(), app.clone(), template.id.clone());
            tokio::spawn(async move { store.delete_template(&app, &id).await })
        };
        let put = put.await.expect("task");
        let delete = delete.await.expect("task");
        match (&put, &delete) {
            (Ok(()), Err(WriteError::Conflict(_))) => {
                assert!(
                    store
                        .get_template(&app, &template.id)
                        .await
                        .expect("get")
                        .is_some()
                );
                assert_eq!(store.delete_config(&app, &config.id).await, Ok(true));
                assert_eq!(store.delete_template(&app, &template.id).await, Ok(true));
            }
            (Err(WriteError::Conflict(_)), Ok(true)) => {
                assert_eq!(store.get_config(&app, &config.id).await.expect("get"), None);
            }
            other => panic!("exactly one must win: {other:?}"),
        }
    }
}

/// The default pointer and the configs' flags agree after racing default switches and deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn default_switches_and_deletes_keep_one_default() {
    let store = Arc::new(store_or_skip!());
    let app = AppId::generate(&OsRandom);
    let first = config_using(&app, None, true);
    store.put_config(&first).await.expect("put");
    let mut tasks = Vec::new();
    let mut created = Vec::new();
    for n in 0..12 {
        let store = store.clone();
        if n % 3 == 0 {
            let app = app.clone();
            let victim = created.last().cloned().unwrap_or_else(|| first.id.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .delete_config(&app, &victim)
                    .await
                    .map(|_| ())
                    .map_err(WriteError::from)
            }));
        } else {
            let config = config_using(&app, None, true);
            created.push(config.id.clone());
            tasks.push(tokio::spawn(async move { store.put_config(&config).await }));
        }
    }
    for task in tasks {
        task.await.expect("task").expect("no error");
    }
    let configs = store.list_configs(&app).await.expect("list");
    let defaults: Vec<&LoginConfig> = configs.iter().filter(|c| c.is_default).collect();
    assert!(defaults.len() <= 1, "at most one default: {defaults:?}");
    assert_eq!(
        store
            .default_config(&app, Channel::Sms)
            .await
            .expect("default")
            .map(|c| c.id),
        defaults.first().map(|c| c.id.clone())
    );
    // A new default still switches cleanly (the pointer is consistent).
    let last = config_using(&app, None, true);
    store.put_config(&last).await.expect("put");
    let defaults: Vec<ConfigId> = store
        .list_configs(&app)
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.is_default)
        .map(|c| c.id)
        .collect();
    assert_eq!(defaults, vec![last.id]);
}

/// Without a reachable endpoint every call is `Unavailable` (after the SDK's retries), with a
/// message that names the operation only. Needs no moto.
#[tokio::test]
async fn unreachable_endpoint_is_unavailable() {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let store = DynamoStore::from_sdk_config(&config, "nowhere");
    let app = AppId::generate(&OsRandom);
    let identifier = Identifier::parse("+12025550142").expect("valid");
    let error = store
        .find_by_identifier(&app, &identifier)
        .await
        .expect_err("unreachable");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains("2025550142"), "{error}");
    let error = store
        .create_user(&user_with(&app, &identifier))
        .await
        .expect_err("unreachable");
    assert!(
        matches!(error, WriteError::Store(StoreError::Unavailable(_))),
        "{error:?}"
    );
}
