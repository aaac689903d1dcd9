//! `DynamoStore` against a DynamoDB endpoint: moto locally (`scripts/with-moto.sh`).
//! Every test skips, with a notice, when neither `AWS_ENDPOINT_URL_DYNAMODB` nor
//! `AWS_ENDPOINT_URL` is set, so a plain `cargo test` passes without them (except
//! `unreachable_endpoint_is_unavailable`, which needs no server); under CI (`CI` set) a missing
//! `AWS_ENDPOINT_URL_DYNAMODB` fails them instead. Each test makes its own table.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use common::*;
use shared::identifiers::Region;
use shared::ids::{AppId, SecretId, TestIdentifierId};
use shared::model::{App, AppSecret, SendCounter, TestIdentifier};
use shared::ports::{
    AppStore, CommitError, ConfigStore, Conflict, Expect, Key, LoginStore, Record, StoreError,
    Versioned, Write, WriteError,
};
use shared::random::{OsRandom, Random};
use store_dynamodb::testing::{client, fresh_store, unique_table};
use store_dynamodb::{DynamoStore, create_table};

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

async fn raw_items(store: &DynamoStore) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .sdk_client()
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

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().expect("a number"),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

#[tokio::test]
async fn create_table_is_idempotent_without_index_and_with_ttl() {
    let Some(client) = client() else { return };
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
    assert!(description.global_secondary_indexes().is_empty());
    assert!(description.local_secondary_indexes().is_empty());
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

/// A user's records share its home partition; hashes are binary; the token is in a key only as
/// the hex of its hash; codes, sessions and counters carry a numeric epoch-seconds `ttl` that
/// follows them; every login record has its `rev`.
#[tokio::test]
async fn items_hold_keys_hashes_revs_and_ttl() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let user = user_with(&app, &phone(1));
    let method = user.method_ids()[0].clone();
    let code = challenge(&user, &method, at);
    let mut token_hash = [0u8; 32];
    OsRandom.fill_bytes(&mut token_hash);
    let live = session(&user, at, token_hash);
    let counter = SendCounter {
        key: format!("send#{app}#x"),
        hits: vec![at],
    };
    let writes = vec![
        Write::PutUser {
            user: user.clone(),
            expect: Expect::Absent,
        },
        Write::PutOwner {
            owner: owner_of(&user, 0),
            expect: Expect::Absent,
        },
        Write::ReplaceCode {
            challenge: code.clone(),
        },
        Write::PutSession {
            session: live.clone(),
            expect: Expect::Absent,
        },
        Write::PutCounter {
            counter: counter.clone(),
            expect: Expect::Absent,
        },
    ];
    store.commit(&writes, &token()).await.expect("commit");
    let extended = at.plus_minutes(90);
    let touched = store
        .touch_session(&app, user.id.home(), &token_hash, at, Some(extended))
        .await
        .expect("touch")
        .expect("live");
    assert_eq!(touched.rev, 2);

    let items = raw_items(&store).await;
    assert_eq!(items.len(), 5, "user, owner, codes, session, counter");
    let home = format!("APP#{app}#HOME#{}", user.id.home().to_hex());
    let hex: String = token_hash.iter().map(|b| format!("{b:02x}")).collect();
    for item in &items {
        let (pk, sk) = (text(item, "pk"), text(item, "sk"));
        match sk {
            "USER" => {
                assert_eq!(pk, home);
                assert_eq!(number(item, "rev"), 1);
                assert!(!item.contains_key("ttl"));
            }
            "IDENT" => {
                assert_eq!(pk, format!("APP#{app}#IDENT#phone#+12025550101"));
                assert_eq!(number(item, "rev"), 1);
            }
            s if s.starts_with("CODES#") => {
                assert_eq!(pk, home);
                assert_eq!(s, format!("CODES#{method}"));
                let Some(AttributeValue::M(cur)) = item.get("cur") else {
                    panic!("cur is a map");
                };
                assert!(
                    matches!(cur.get("code_hash"), Some(AttributeValue::B(b)) if b.as_ref().len() == 32)
                );
                assert!(matches!(item.get("prev"), Some(AttributeValue::Null(true))));
                assert_eq!(number(item, "rev"), 1);
                assert_eq!(
                    number(item, "ttl"),
                    code.expires_at.0 + 86_400,
                    "a code outlives its expiry by a day"
                );
            }
            s if s.starts_with("SESSION#") => {
                assert_eq!(pk, home);
                assert_eq!(s, format!("SESSION#{hex}"));
                assert!(matches!(item.get("token_hash"), Some(AttributeValue::B(_))));
                assert_eq!(number(item, "ttl"), extended.0, "ttl follows the session");
                assert_eq!(number(item, "expires_at"), extended.0);
                assert_eq!(number(item, "rev"), 2);
            }
            "RATE" => {
                assert_eq!(pk, format!("RATE#{}", counter.key));
                assert_eq!(number(item, "ttl"), at.0 + 7 * 86_400);
            }
            other => panic!("unexpected item {other}"),
        }
    }
}

/// `load`: the records in the order asked, `None` where missing, repeated keys answered each
/// time, the test identifier read from the app partition, and more than one batch of keys.
#[tokio::test]
async fn load_maps_records_back_in_order() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let user = user_with(&app, &phone(2));
    let counters: Vec<SendCounter> = (0..130)
        .map(|n| SendCounter {
            key: format!("send#{app}#{n}"),
            hits: vec![at.plus_seconds(n)],
        })
        .collect();
    let mut writes: Vec<Write> = counters
        .iter()
        .take(99)
        .map(|c| Write::PutCounter {
            counter: c.clone(),
            expect: Expect::Absent,
        })
        .collect();
    writes.push(Write::PutUser {
        user: user.clone(),
        expect: Expect::Absent,
    });
    store.commit(&writes, &token()).await.expect("commit");
    let rest: Vec<Write> = counters
        .iter()
        .skip(99)
        .map(|c| Write::PutCounter {
            counter: c.clone(),
            expect: Expect::Absent,
        })
        .collect();
    store.commit(&rest, &token()).await.expect("commit");
    let test = TestIdentifier {
        id: TestIdentifierId::generate(&OsRandom, at),
        app_id: app.clone(),
        identifier: email("reviewer"),
        code_hash: [4u8; 32],
        valid_until: at.plus_seconds(3600),
        created_at: at,
    };
    store.put_test_identifier(&test).await.expect("put test");

    let user_key = Key::User {
        app_id: app.clone(),
        home: user.id.home(),
    };
    let missing = Key::Owner {
        app_id: app.clone(),
        identifier: phone(2),
    };
    let test_key = Key::TestIdentifier {
        app_id: app.clone(),
        identifier: email("reviewer"),
    };
    let mut keys = vec![
        test_key.clone(),
        user_key.clone(),
        missing.clone(),
        user_key.clone(),
    ];
    keys.extend(
        counters
            .iter()
            .rev()
            .map(|c| Key::Counter { key: c.key.clone() }),
    );
    keys.push(test_key);
    let loaded = store.load(&keys).await.expect("load");
    assert_eq!(loaded.len(), keys.len());
    assert_eq!(loaded[0], Some(Record::TestIdentifier(test.clone())));
    assert_eq!(
        loaded[1],
        Some(Record::User(Versioned::new(user.clone(), 1)))
    );
    assert_eq!(loaded[2], None);
    assert_eq!(loaded[3], loaded[1]);
    for (record, counter) in loaded[4..134].iter().zip(counters.iter().rev()) {
        assert_eq!(
            record,
            &Some(Record::Counter(Versioned::new(counter.clone(), 1)))
        );
    }
    assert_eq!(loaded[134], loaded[0]);
    assert_eq!(store.load(&[]).await.expect("load nothing"), Vec::new());
}

/// `load_home`: the user, its codes and its sessions (by token hash), nothing of other homes.
#[tokio::test]
async fn load_home_reads_one_users_partition() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let user = user_with(&app, &phone(3));
    let neighbour = user_with(&app, &phone(4));
    let method = user.method_ids()[0].clone();
    let code = challenge(&user, &method, at);
    let sessions = [session(&user, at, [9u8; 32]), session(&user, at, [1u8; 32])];
    let mut writes = vec![
        Write::PutUser {
            user: user.clone(),
            expect: Expect::Absent,
        },
        Write::PutUser {
            user: neighbour.clone(),
            expect: Expect::Absent,
        },
        Write::ReplaceCode {
            challenge: code.clone(),
        },
        Write::PutSession {
            session: session(&neighbour, at, [5u8; 32]),
            expect: Expect::Absent,
        },
    ];
    for s in &sessions {
        writes.push(Write::PutSession {
            session: s.clone(),
            expect: Expect::Absent,
        });
    }
    store.commit(&writes, &token()).await.expect("commit");
    let home = store.load_home(&app, user.id.home()).await.expect("home");
    assert_eq!(home.user, Some(Versioned::new(user.clone(), 1)));
    assert_eq!(home.codes.len(), 1);
    assert_eq!(home.codes[0].value.current, Some(code));
    assert!(home.codes[0].value.previous.is_empty());
    assert_eq!(
        home.sessions,
        vec![
            Versioned::new(sessions[1].clone(), 1),
            Versioned::new(sessions[0].clone(), 1)
        ]
    );
    let other_app = AppId::generate(&OsRandom);
    let empty = store
        .load_home(&other_app, user.id.home())
        .await
        .expect("home");
    assert_eq!(empty, Default::default());
}

/// A refused commit writes nothing and lists every failed write with its record as it is now
/// (from `ALL_OLD`), parsed as the kind of the write's key.
#[tokio::test]
async fn conflicts_list_every_failed_write_with_its_current_record() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let mut locked = user_with(&app, &phone(5));
    locked.lock = Some(shared::model::Lock {
        created_at: at,
        expires_at: at.plus_seconds(600),
    });
    let expired_test = TestIdentifier {
        id: TestIdentifierId::generate(&OsRandom, at),
        app_id: app.clone(),
        identifier: email("expired"),
        code_hash: [4u8; 32],
        valid_until: at.plus_seconds(-1),
        created_at: at.plus_seconds(-100),
    };
    store
        .put_test_identifier(&expired_test)
        .await
        .expect("put test");
    let counter = SendCounter {
        key: format!("send#{app}"),
        hits: vec![at],
    };
    store
        .commit(
            &[
                Write::PutUser {
                    user: locked.clone(),
                    expect: Expect::Absent,
                },
                Write::PutCounter {
                    counter: counter.clone(),
                    expect: Expect::Absent,
                },
            ],
            &token(),
        )
        .await
        .expect("seed");

    let newcomer = user_with(&app, &phone(6));
    let method = locked.method_ids()[0].clone();
    let writes = vec![
        // Holds: written only if the whole commit is.
        Write::PutUser {
            user: newcomer.clone(),
            expect: Expect::Absent,
        },
        // Stale revision.
        Write::PutCounter {
            counter: counter.clone(),
            expect: Expect::Rev(7),
        },
        // Missing.
        Write::DeleteOwner {
            app_id: app.clone(),
            identifier: phone(5),
            expect: Expect::Present,
        },
        // Locked.
        Write::UserUnlocked {
            app_id: app.clone(),
            user_id: locked.id.clone(),
            now: at,
        },
        // Expired.
        Write::TestIdentifierValid {
            app_id: app.clone(),
            identifier: email("expired"),
            id: expired_test.id.clone(),
            now: at,
        },
        // No codes at all.
        Write::DeleteCodes {
            app_id: app.clone(),
            method_id: method,
            expect: Expect::Present,
        },
    ];
    let error = store.commit(&writes, &token()).await.expect_err("refused");
    assert_eq!(
        error,
        CommitError::Conflict(vec![
            Conflict {
                index: 1,
                current: Some(Record::Counter(Versioned::new(counter.clone(), 1))),
            },
            Conflict {
                index: 2,
                current: None,
            },
            Conflict {
                index: 3,
                current: Some(Record::User(Versioned::new(locked.clone(), 1))),
            },
            Conflict {
                index: 4,
                current: Some(Record::TestIdentifier(expired_test.clone())),
            },
            Conflict {
                index: 5,
                current: None,
            },
        ])
    );
    let after = store
        .load(&[Key::User {
            app_id: app.clone(),
            home: newcomer.id.home(),
        }])
        .await
        .expect("load");
    assert_eq!(after, vec![None], "nothing of a refused commit is written");

    // The same checks hold for a user that is not locked and a test identifier still valid.
    let unlocked = user_with(&app, &phone(7));
    store
        .commit(
            &[Write::PutUser {
                user: unlocked.clone(),
                expect: Expect::Absent,
            }],
            &token(),
        )
        .await
        .expect("seed");
    store
        .commit(
            &[Write::UserUnlocked {
                app_id: app.clone(),
                user_id: unlocked.id.clone(),
                now: at,
            }],
            &token(),
        )
        .await
        .expect("unlocked");
    // The lock has expired at its expiry.
    store
        .commit(
            &[Write::UserUnlocked {
                app_id: app.clone(),
                user_id: locked.id.clone(),
                now: at.plus_seconds(600),
            }],
            &token(),
        )
        .await
        .expect("lock over");
}

/// `ReplaceCode` shifts the current code into `prev` (and `prev` into `prev2`) whatever is
/// there; every write raises `rev`.
#[tokio::test]
async fn replace_codes_keeps_two_previous() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let user = user_with(&app, &email("codes"));
    let method = user.method_ids()[0].clone();
    let key = Key::Codes {
        app_id: app.clone(),
        method_id: method.clone(),
    };
    let codes = |store: DynamoStore, key: Key| async move {
        match store.load(&[key]).await.expect("load").pop().flatten() {
            Some(Record::Codes(codes)) => Some(codes),
            None => None,
            other => panic!("not codes: {other:?}"),
        }
    };
    let first = challenge(&user, &method, at);
    let second = challenge(&user, &method, at.plus_seconds(1));
    let third = challenge(&user, &method, at.plus_seconds(2));
    let fourth = challenge(&user, &method, at.plus_seconds(3));
    for code in [&first, &second, &third, &fourth] {
        store
            .commit(
                &[Write::ReplaceCode {
                    challenge: code.clone(),
                }],
                &token(),
            )
            .await
            .expect("replace");
    }
    let replaced = codes(store.clone(), key.clone()).await.expect("codes");
    assert_eq!(replaced.rev, 4);
    assert_eq!(replaced.value.current.as_ref(), Some(&fourth));
    assert_eq!(replaced.value.previous, vec![third.clone(), second.clone()]);
    // A put at the read revision, then a delete at it.
    let mut consumed = replaced.value.clone();
    if let Some(current) = consumed.current.as_mut() {
        current.consumed = true;
    }
    store
        .commit(
            &[Write::PutCodes {
                codes: consumed.clone(),
                expect: Expect::Rev(4),
            }],
            &token(),
        )
        .await
        .expect("put");
    assert_eq!(
        codes(store.clone(), key.clone()).await,
        Some(Versioned::new(consumed, 5))
    );
    store
        .commit(
            &[Write::DeleteCodes {
                app_id: app.clone(),
                method_id: method.clone(),
                expect: Expect::Rev(5),
            }],
            &token(),
        )
        .await
        .expect("delete");
    assert_eq!(codes(store.clone(), key).await, None);
}

/// The idempotency token: the same commit again is answered from the first (nothing applied
/// twice), the same token for other writes is refused, and two writes on one record never
/// reach DynamoDB.
#[tokio::test]
async fn commit_tokens_make_a_repeat_harmless() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let counter = SendCounter {
        key: format!("send#{app}"),
        hits: vec![at],
    };
    let writes = vec![Write::PutCounter {
        counter: counter.clone(),
        expect: Expect::Absent,
    }];
    let once = token();
    store.commit(&writes, &once).await.expect("first");
    store
        .commit(&writes, &once)
        .await
        .expect("the same commit again succeeds");
    let key = Key::Counter {
        key: counter.key.clone(),
    };
    assert_eq!(
        store.load(std::slice::from_ref(&key)).await.expect("load"),
        vec![Some(Record::Counter(Versioned::new(counter.clone(), 1)))]
    );
    let other = vec![Write::PutCounter {
        counter: counter.clone(),
        expect: Expect::Rev(1),
    }];
    let error = store.commit(&other, &once).await.expect_err("mismatch");
    assert!(
        matches!(error, CommitError::Store(StoreError::Other(ref m)) if m.contains("IdempotentParameterMismatch")),
        "{error:?}"
    );
    // A new token applies it.
    store.commit(&other, &token()).await.expect("new token");

    let twice = vec![
        Write::PutCounter {
            counter: counter.clone(),
            expect: Expect::Rev(2),
        },
        Write::Check {
            key,
            expect: Expect::Present,
        },
    ];
    assert!(matches!(
        store.commit(&twice, &token()).await,
        Err(CommitError::Store(StoreError::Other(_)))
    ));
    assert!(matches!(
        store
            .commit(
                &[Write::PutCounter {
                    counter,
                    expect: Expect::Present
                }],
                &token()
            )
            .await,
        Err(CommitError::Store(StoreError::Other(_)))
    ));
    store
        .commit(&[], &token())
        .await
        .expect("an empty commit is a no-op");
}

/// `Check` on every kind of expectation, on a record and on a test identifier.
#[tokio::test]
async fn checks_test_existence_and_revision() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let user = user_with(&app, &phone(8));
    let owner = owner_of(&user, 0);
    store
        .commit(
            &[Write::PutOwner {
                owner: owner.clone(),
                expect: Expect::Absent,
            }],
            &token(),
        )
        .await
        .expect("seed");
    let key = Key::Owner {
        app_id: app.clone(),
        identifier: owner.identifier.clone(),
    };
    let check = |expect| Write::Check {
        key: key.clone(),
        expect,
    };
    for holds in [Expect::Present, Expect::Rev(1), Expect::Any] {
        store
            .commit(&[check(holds)], &token())
            .await
            .unwrap_or_else(|e| panic!("{holds:?}: {e:?}"));
    }
    for fails in [Expect::Absent, Expect::Rev(2)] {
        assert_eq!(
            store.commit(&[check(fails)], &token()).await,
            Err(CommitError::Conflict(vec![Conflict {
                index: 0,
                current: Some(Record::Owner(Versioned::new(owner.clone(), 1))),
            }])),
            "{fails:?}"
        );
    }
    let test = TestIdentifier {
        id: TestIdentifierId::generate(&OsRandom, at),
        app_id: app.clone(),
        identifier: email("check"),
        code_hash: [4u8; 32],
        valid_until: at.plus_seconds(60),
        created_at: at,
    };
    store.put_test_identifier(&test).await.expect("put test");
    store
        .commit(
            &[Write::TestIdentifierValid {
                app_id: app.clone(),
                identifier: email("check"),
                id: test.id.clone(),
                now: at,
            }],
            &token(),
        )
        .await
        .expect("valid");
    let other_id = TestIdentifierId::generate(&OsRandom, at);
    assert!(matches!(
        store
            .commit(
                &[Write::TestIdentifierValid {
                    app_id: app.clone(),
                    identifier: email("check"),
                    id: other_id,
                    now: at,
                }],
                &token(),
            )
            .await,
        Err(CommitError::Conflict(_))
    ));
}

/// `touch_session`: missing or expired → `None`, nothing written; live → the session after,
/// one revision up, `ttl` following a new expiry.
#[tokio::test]
async fn touch_session_updates_live_sessions_only() {
    let store = store_or_skip!();
    let at = now();
    let app = AppId::generate(&OsRandom);
    let user = user_with(&app, &phone(9));
    let live = session(&user, at, [7u8; 32]);
    let mut old = session(&user, at.plus_seconds(-7200), [8u8; 32]);
    old.expires_at = at.plus_seconds(-3600);
    store
        .commit(
            &[
                Write::PutSession {
                    session: live.clone(),
                    expect: Expect::Absent,
                },
                Write::PutSession {
                    session: old.clone(),
                    expect: Expect::Absent,
                },
            ],
            &token(),
        )
        .await
        .expect("seed");
    let home = user.id.home();
    assert_eq!(
        store
            .touch_session(&app, home, &[6u8; 32], at, None)
            .await
            .expect("touch"),
        None
    );
    assert_eq!(
        store
            .touch_session(&app, home, &old.token_hash, at, Some(at.plus_minutes(5)))
            .await
            .expect("touch"),
        None
    );
    let later = at.plus_seconds(10);
    let mut expected = live.clone();
    expected.last_accessed_at = later;
    assert_eq!(
        store
            .touch_session(&app, home, &live.token_hash, later, None)
            .await
            .expect("touch"),
        Some(Versioned::new(expected.clone(), 2))
    );
    expected.expires_at = at.plus_minutes(120);
    assert_eq!(
        store
            .touch_session(
                &app,
                home,
                &live.token_hash,
                later,
                Some(expected.expires_at)
            )
            .await
            .expect("touch"),
        Some(Versioned::new(expected.clone(), 3))
    );
    let records = store.load_home(&app, home).await.expect("home");
    assert_eq!(
        records.sessions,
        vec![Versioned::new(expected, 3), Versioned::new(old, 1),]
    );
}

fn app_with_secret() -> (App, AppSecret) {
    let at = now();
    let app = App {
        id: AppId::generate(&OsRandom),
        name: "Acme".to_owned(),
        created_at: at,
    };
    let secret = secret_of(&app.id);
    (app, secret)
}

fn secret_of(app_id: &AppId) -> AppSecret {
    let mut hash = [0u8; 32];
    OsRandom.fill_bytes(&mut hash);
    AppSecret {
        id: SecretId::generate(&OsRandom, now()),
        app_id: app_id.clone(),
        hash,
        created_at: now(),
        last_used_at: None,
    }
}

/// `load_app` reads the app partition in one query but not its test identifiers.
#[tokio::test]
async fn load_app_reads_the_app_without_test_identifiers() {
    let store = store_or_skip!();
    let (app, secret) = app_with_secret();
    assert_eq!(store.load_app(&app.id).await.expect("load"), None);
    store
        .create_app(&app, &secret, &[], &Default::default())
        .await
        .expect("create");
    let second = secret_of(&app.id);
    store.add_secret(&second).await.expect("add");
    let template = template_of(&app.id);
    store.put_template(&template).await.expect("template");
    let config = config_of(&app.id, Some(&template.id));
    store.put_config(&config).await.expect("config");
    store
        .put_sms_countries(&app.id, Some(regions(&["GB", "US"])))
        .await
        .expect("countries");
    let test = TestIdentifier {
        id: TestIdentifierId::generate(&OsRandom, now()),
        app_id: app.id.clone(),
        identifier: email("reviewer"),
        code_hash: [4u8; 32],
        valid_until: now().plus_seconds(60),
        created_at: now(),
    };
    store.put_test_identifier(&test).await.expect("test");
    let data = store.load_app(&app.id).await.expect("load").expect("app");
    assert_eq!(data.app, app);
    let mut secrets = vec![secret, second];
    secrets.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(data.secrets, secrets);
    assert_eq!(data.configs, vec![config]);
    assert_eq!(data.templates, vec![template]);
    assert_eq!(data.sms_countries, Some(regions(&["GB", "US"])));
    // As an earlier version wrote them: calling codes, read as their regions.
    store
        .put_sms_calling_codes_as_before(&app.id, &["44".to_owned()])
        .await;
    let data = store.load_app(&app.id).await.expect("load").expect("app");
    assert_eq!(data.sms_countries, Some(regions(&["GB", "GG", "IM", "JE"])));
    assert_eq!(
        store.get_sms_countries(&app.id).await.expect("get"),
        Some(regions(&["GB", "GG", "IM", "JE"]))
    );
}

fn regions(codes: &[&str]) -> Vec<Region> {
    codes
        .iter()
        .map(|code| Region::parse(code).expect("a region"))
        .collect()
}

/// Two concurrent deletes of an app's last two secrets: exactly one succeeds, every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_the_last_two_secrets_concurrently_leaves_one() {
    let store = Arc::new(store_or_skip!());
    for _round in 0..10 {
        let (app, first) = app_with_secret();
        store
            .create_app(&app, &first, &[], &Default::default())
            .await
            .expect("create");
        let second = secret_of(&app.id);
        store.add_secret(&second).await.expect("add");
        store
            .add_secret(&second)
            .await
            .expect("adding it again replaces it");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = [first.id.clone(), second.id.clone()]
            .into_iter()
            .map(|id| {
                let (store, app_id, barrier) = (store.clone(), app.id.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.delete_secret(&app_id, &id).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let deleted = results.iter().filter(|r| **r == Ok(true)).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(WriteError::Conflict(_))))
            .count();
        assert_eq!((deleted, refused), (1, 1), "{results:?}");
        assert_eq!(store.list_secrets(&app.id).await.expect("list").len(), 1);
        assert_eq!(
            store
                .delete_secret(&app.id, &SecretId::generate(&OsRandom, now()))
                .await,
            Ok(false)
        );
    }
}

/// 20 concurrent commits at one revision of one counter: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn twenty_concurrent_commits_one_winner() {
    let store = Arc::new(store_or_skip!());
    let app = AppId::generate(&OsRandom);
    let counter = SendCounter {
        key: format!("send#{app}"),
        hits: Vec::new(),
    };
    store
        .commit(
            &[Write::PutCounter {
                counter: counter.clone(),
                expect: Expect::Absent,
            }],
            &token(),
        )
        .await
        .expect("seed");
    for round in 1..=3u64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let (store, barrier) = (store.clone(), barrier.clone());
                let mut counter = counter.clone();
                counter.hits.push(now().plus_seconds(n));
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .commit(
                            &[Write::PutCounter {
                                counter,
                                expect: Expect::Rev(round),
                            }],
                            &token(),
                        )
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(()) => winners += 1,
                Err(CommitError::Conflict(conflicts)) => {
                    assert_eq!(conflicts.len(), 1);
                    assert_eq!(
                        conflicts[0].current.as_ref().and_then(Record::rev),
                        Some(round + 1)
                    );
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners, 1);
    }
}

/// Without a reachable endpoint every call is `Unavailable` (after the SDK's retries), with a
/// message that names the operation only. Needs no moto.
#[tokio::test]
async fn unreachable_endpoint_is_unavailable() {
    let config = store_dynamodb::testing::sdk_config("http://127.0.0.1:9");
    let store = DynamoStore::from_sdk_config(&config, "nowhere");
    let app = AppId::generate(&OsRandom);
    let identifier = phone(42);
    let error = store
        .load(&[Key::Owner {
            app_id: app.clone(),
            identifier: identifier.clone(),
        }])
        .await
        .expect_err("unreachable");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains("2025550142"), "{error}");
    let user = user_with(&app, &identifier);
    let error = store
        .commit(
            &[Write::PutOwner {
                owner: owner_of(&user, 0),
                expect: Expect::Absent,
            }],
            &token(),
        )
        .await
        .expect_err("unreachable");
    assert!(
        matches!(error, CommitError::Store(StoreError::Unavailable(_))),
        "{error:?}"
    );
    assert!(!error.to_string().contains("2025550142"), "{error}");
}
