//! What `commit` and `load` do when DynamoDB or the network misbehaves, against moto with the
//! `FaultInjector` SDK interceptor (`store_dynamodb::testing`). Needs `scripts/with-moto.sh`:
//! its moto proxy honours `ClientRequestToken` as DynamoDB does (moto alone does not). Skips
//! without an endpoint, fails under CI without one.

mod common;

use common::*;
use shared::ids::AppId;
use shared::model::SendCounter;
use shared::ports::{CommitError, Expect, Key, LoginStore, Record, StoreError, Versioned, Write};
use shared::random::OsRandom;
use store_dynamodb::testing::{Fault, FaultInjector, Injected, Times, fresh_store_with};

const TWI: &str = "TransactWriteItems";

/// Evaluates to a fresh store whose client runs `faults`, or returns (skipped).
macro_rules! store_or_skip {
    ($faults:expr) => {
        match fresh_store_with($faults.clone()).await {
            Some(store) => store,
            None => return,
        }
    };
}

fn new_counter() -> SendCounter {
    SendCounter {
        key: format!("send#{}", AppId::generate(&OsRandom)),
        hits: vec![now()],
    }
}

/// A commit that can be applied only once: a put of a new record.
fn create(counter: &SendCounter) -> Vec<Write> {
    vec![Write::PutCounter {
        counter: counter.clone(),
        expect: Expect::Absent,
    }]
}

async fn stored(store: &impl LoginStore, counter: &SendCounter) -> Option<Record> {
    store
        .load(&[Key::Counter {
            key: counter.key.clone(),
        }])
        .await
        .expect("load")
        .pop()
        .flatten()
}

/// The first answer is lost after DynamoDB applied the commit: the SDK resends the same
/// request (same token), which is answered as the first was, not refused by the commit's own
/// write. Applied once, reported `Ok`.
#[tokio::test]
async fn a_lost_answer_is_applied_once_and_reported_ok() {
    let faults = FaultInjector::new();
    let store = store_or_skip!(faults);
    let counter = new_counter();
    faults.lose_answers(TWI, Times::First(1));
    store
        .commit(&create(&counter), &token())
        .await
        .expect("the retry gets the first answer");
    assert_eq!(faults.requests(TWI), 2, "one lost answer, one SDK retry");
    assert_eq!(
        faults.injected(),
        vec![Injected {
            operation: TWI.to_owned(),
            attempt: 1,
            fault: Fault::LoseAnswer,
        }]
    );
    assert_eq!(
        stored(&store, &counter).await,
        Some(Record::Counter(Versioned::new(counter.clone(), 1))),
        "written once: revision 1"
    );

    // Also for a commit conditioned on a revision, which a second application would fail.
    let mut next = counter.clone();
    next.hits.push(now().plus_seconds(1));
    faults.lose_answers(TWI, Times::First(1));
    store
        .commit(
            &[Write::PutCounter {
                counter: next.clone(),
                expect: Expect::Rev(1),
            }],
            &token(),
        )
        .await
        .expect("applied once");
    assert_eq!(
        stored(&store, &counter).await,
        Some(Record::Counter(Versioned::new(next, 2)))
    );
}

/// Every answer lost: `Unavailable` after the SDK's attempts, and the commit is in the table
/// once (the repeats were answered from the first).
#[tokio::test]
async fn every_answer_lost_is_unavailable_and_written_once() {
    let faults = FaultInjector::new();
    let store = store_or_skip!(faults);
    let counter = new_counter();
    faults.lose_answers(TWI, Times::Always);
    let error = store
        .commit(&create(&counter), &token())
        .await
        .expect_err("no answer");
    assert!(
        matches!(error, CommitError::Store(StoreError::Unavailable(_))),
        "{error:?}"
    );
    assert_eq!(faults.requests(TWI), store_dynamodb::MAX_ATTEMPTS);
    faults.disarm();
    assert_eq!(
        stored(&store, &counter).await,
        Some(Record::Counter(Versioned::new(counter, 1)))
    );
}

/// A transaction cancelled by conflicting transactions (all reasons `TransactionConflict`) is
/// retried by the adapter, under new tokens, and succeeds.
#[tokio::test]
async fn transaction_conflicts_are_retried_then_succeed() {
    let faults = FaultInjector::new();
    let store = store_or_skip!(faults);
    let counter = new_counter();
    let mut writes = create(&counter);
    let other = new_counter();
    writes.extend(create(&other));
    faults.inject(TWI, Fault::TransactionConflict, Times::First(2));
    store
        .commit(&writes, &token())
        .await
        .expect("the third attempt");
    assert_eq!(faults.requests(TWI), 3);
    assert_eq!(
        faults
            .injected()
            .iter()
            .map(|i| (i.attempt, i.fault))
            .collect::<Vec<_>>(),
        vec![
            (1, Fault::TransactionConflict),
            (1, Fault::TransactionConflict)
        ],
        "the SDK does not retry a cancelled transaction: the adapter does, with a new call"
    );
    assert_eq!(
        stored(&store, &counter).await,
        Some(Record::Counter(Versioned::new(counter, 1)))
    );
    assert_eq!(
        stored(&store, &other).await,
        Some(Record::Counter(Versioned::new(other, 1)))
    );
}

/// Conflicting transactions every time: `Unavailable` after the adapter's attempts, nothing
/// written.
#[tokio::test]
async fn transaction_conflicts_every_time_are_unavailable() {
    let faults = FaultInjector::new();
    let store = store_or_skip!(faults);
    let counter = new_counter();
    faults.inject(TWI, Fault::TransactionConflict, Times::Always);
    let error = store
        .commit(&create(&counter), &token())
        .await
        .expect_err("contended");
    assert!(
        matches!(error, CommitError::Store(StoreError::Unavailable(_))),
        "{error:?}"
    );
    assert_eq!(faults.requests(TWI), 5, "the adapter's attempts");
    faults.disarm();
    assert_eq!(stored(&store, &counter).await, None);
}

/// Throttling: the SDK retries it, then `Unavailable`; nothing written. Also for reads.
#[tokio::test]
async fn throttling_is_unavailable_after_the_sdks_retries() {
    let faults = FaultInjector::new();
    let store = store_or_skip!(faults);
    let counter = new_counter();
    faults.inject(TWI, Fault::Throttle, Times::Always);
    let error = store
        .commit(&create(&counter), &token())
        .await
        .expect_err("throttled");
    assert!(
        matches!(error, CommitError::Store(StoreError::Unavailable(ref m)) if m.contains("ProvisionedThroughputExceeded")),
        "{error:?}"
    );
    assert_eq!(faults.requests(TWI), store_dynamodb::MAX_ATTEMPTS);

    faults.inject("BatchGetItem", Fault::Throttle, Times::Always);
    let error = store
        .load(&[Key::Counter {
            key: counter.key.clone(),
        }])
        .await
        .expect_err("throttled");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert_eq!(
        faults.requests("BatchGetItem"),
        store_dynamodb::MAX_ATTEMPTS
    );

    faults.disarm();
    assert_eq!(stored(&store, &counter).await, None, "nothing written");
    // Throttled once only: the SDK's retry gets through.
    faults.inject(TWI, Fault::Throttle, Times::First(1));
    store
        .commit(&create(&counter), &token())
        .await
        .expect("second attempt");
    assert_eq!(
        stored(&store, &counter).await,
        Some(Record::Counter(Versioned::new(counter, 1)))
    );
}
