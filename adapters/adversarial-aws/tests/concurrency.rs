//! Races through `shared::api::handle` on `DynamoStore` (moto), ported from
//! `shared/tests/adversarial_concurrency.rs`: the single-use code, the per-code attempt limit,
//! the user lock and user creation must hold when many requests arrive at once.
//!
//! moto (as `scripts/with-moto.sh` runs it) serves one request at a time, as DynamoDB makes each
//! request atomic; the requests of the racing callers interleave at every DynamoDB call. So these
//! tests show that the adapter's conditions and transactions are right under the interleavings
//! that occur; that each port operation is atomic is the in-memory suite's and DynamoDB's part.
//! The counts are the contract's (100 racing authenticates, 50 racing login_or_create).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;
use serde_json::{Value, json};
use shared::api::RouteId;
use shared::service::Limits;
use support::*;
use tokio::sync::Barrier;

/// Runs `n` copies of a request at once (released together by a barrier) and returns the replies.
async fn race<F, Fut>(world: &Arc<World>, n: usize, make: F) -> Vec<Reply>
where
    F: Fn(Arc<World>, usize) -> Fut,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let barrier = barrier.clone();
        let fut = make(world.clone(), i);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut replies = Vec::with_capacity(n);
    for task in tasks {
        replies.push(task.await.expect("a request panicked"));
    }
    eprintln!("{n} racing requests took {:?}", started.elapsed());
    replies
}

fn statuses(replies: &[Reply]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for r in replies {
        *counts.entry(r.status.as_u16()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn right_code_from_100_concurrent_requests_succeeds_exactly_once() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let w = Arc::new(w);
    let (user_id, phone_id, code) = w.sms_code(PHONE).await;
    let replies = race(&w, 100, |w, _| {
        let (phone_id, code) = (phone_id.clone(), code.clone());
        async move {
            w.login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60}),
            )
            .await
        }
    })
    .await;
    let counts = statuses(&replies);
    assert_eq!(counts.get(&200), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&401), Some(&99), "{counts:?}");
    let winner = replies.iter().find(|r| r.status == StatusCode::OK).unwrap();
    assert_login_shape(winner);
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_login_error(r, 401, "unable_to_auth_otp_code");
    }
    let sessions = w.list_sessions(&user_id).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    let list = sessions.body["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", sessions.body);
    assert_eq!(
        list[0]["session_id"], winner.body["session"]["session_id"],
        "the one session is the winner's"
    );
    let c = w.challenge(&phone_id).await.unwrap();
    assert!(c.consumed && c.attempts == 0, "{c:?}");
    assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_codes_from_100_concurrent_requests_count_exactly_five() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let w = Arc::new(w);
    let (user_id, phone_id, code) = w.sms_code(PHONE).await;
    let actual: u32 = code.parse().unwrap();
    let replies = race(&w, 100, |w, i| {
        let phone_id = phone_id.clone();
        // 100 distinct wrong codes.
        let guess = format!("{:06}", (actual + 1 + i as u32) % 1_000_000);
        async move {
            w.login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": guess}),
            )
            .await
        }
    })
    .await;
    let counts = statuses(&replies);
    assert_eq!(counts.get(&404), Some(&5), "{counts:?}");
    assert_eq!(counts.get(&401), Some(&95), "{counts:?}");
    let mut remaining = Vec::new();
    for r in &replies {
        if r.status == StatusCode::NOT_FOUND {
            assert_login_error(r, 404, "otp_code_not_found");
            remaining.push(r.body["attempts_remaining"].as_u64().unwrap());
        } else {
            assert_login_error(r, 401, "unable_to_auth_otp_code");
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, vec![0, 1, 2, 3, 4]);
    // Exact in the table: the code took five wrong attempts, the user counted five.
    assert_eq!(w.challenge(&phone_id).await.unwrap().attempts, 5);
    let user = w.user_record(&user_id).await.unwrap();
    assert_eq!(user.failed_attempts, 5, "{user:?}");
    assert!(user.lock.is_none(), "{user:?}");

    // Observed through the API: the user's count is exactly 5, so on a new code the 4th wrong
    // attempt leaves the user unlocked and the 5th (the 10th in a row) locks it.
    let (_, _, second) = w.sms_code(PHONE).await;
    for i in 0..5u64 {
        let r = w
            .login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": wrong(&second)}),
            )
            .await;
        assert_login_error(&r, 404, "otp_code_not_found");
        assert_eq!(r.body["attempts_remaining"], json!(4 - i));
        let user = w.get_user(&user_id).await;
        assert_eq!(
            user.body["is_locked"],
            json!(i == 4),
            "after {} wrong attempts on the second code: {}",
            i + 1,
            user.body
        );
    }
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": second}),
        )
        .await;
    assert_login_error(&r, 429, "user_lock_limit_reached");
    assert!(w.user_record(&user_id).await.unwrap().lock.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn right_code_racing_wrong_guesses_never_lets_more_than_five_guesses_through() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let w = Arc::new(w);
    let (_, phone_id, code) = w.sms_code(PHONE).await;
    let actual: u32 = code.parse().unwrap();
    let replies = race(&w, 60, |w, i| {
        let phone_id = phone_id.clone();
        let guess = if i == 30 {
            code.clone()
        } else {
            format!("{:06}", (actual + 1 + i as u32) % 1_000_000)
        };
        async move {
            w.login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": guess, "session_duration_minutes": 5}),
            )
            .await
        }
    })
    .await;
    let counts = statuses(&replies);
    let ok = counts.get(&200).copied().unwrap_or(0);
    let wrong = counts.get(&404).copied().unwrap_or(0);
    assert!(ok <= 1, "{counts:?}");
    assert!(wrong <= 5, "{counts:?}");
    if ok == 0 {
        // The right code only fails once the five wrong attempts killed the code.
        assert_eq!(wrong, 5, "{counts:?}");
    }
    assert_eq!(
        ok + wrong + counts.get(&401).copied().unwrap_or(0),
        60,
        "{counts:?}"
    );
    if ok == 1 {
        assert_eq!(replies[30].status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_login_or_create_make_one_user() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let w = Arc::new(w);
    let replies = race(&w, 50, |w, _| async move {
        w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
            .await
    })
    .await;
    let counts = statuses(&replies);
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{counts:?}: {}", r.body);
        assert_login_shape(r);
    }
    let created = replies
        .iter()
        .filter(|r| r.body["user_created"] == json!(true))
        .count();
    assert_eq!(created, 1);
    let users: HashSet<&Value> = replies.iter().map(|r| &r.body["user_id"]).collect();
    let phones: HashSet<&Value> = replies.iter().map(|r| &r.body["phone_id"]).collect();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(phones.len(), 1, "{phones:?}");
    assert_eq!(w.users_holding(PHONE).await, 1);

    // Of the 50 codes delivered, exactly one is the stored one.
    let phone_id = phones.iter().next().unwrap().as_str().unwrap();
    let sent = w.outbox.codes_to(PHONE);
    assert_eq!(sent.len(), 50);
    let mut live = 0;
    for code in &sent {
        if w.code_matches(phone_id, code).await {
            live += 1;
        }
    }
    assert_eq!(live, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_login_or_create_with_differently_cased_emails_make_one_user() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let w = Arc::new(w);
    let spellings: [&'static str; 3] = [
        "Ann.Lee@Example.com",
        "ann.lee@example.com",
        "ANN.LEE@EXAMPLE.COM",
    ];
    let replies = race(&w, 30, move |w, i| async move {
        w.login(
            RouteId::EmailLoginOrCreate,
            json!({"email": spellings[i % spellings.len()]}),
        )
        .await
    })
    .await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let users: HashSet<&Value> = replies.iter().map(|r| &r.body["user_id"]).collect();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.body["user_created"] == json!(true))
            .count(),
        1
    );
    assert_eq!(w.users_holding(EMAIL).await, 1);
}

/// The send limits are `DynamoStore` counters written by optimistic concurrency (read, then a
/// transaction conditioned on what was read): 40 sends to one number at once pass the 30-second
/// cooldown exactly once, and 40 numbers from one end-user IP at once pass the IP window (20)
/// exactly 20 times. A refused send delivers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_respect_the_cooldown_and_the_ip_window() {
    let Some(w) = World::new(Limits::default()).await else {
        return;
    };
    let w = Arc::new(w);
    let replies = race(&w, 40, |w, _| async move {
        w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
            .await
    })
    .await;
    let counts = statuses(&replies);
    assert_eq!(counts.get(&200), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&39), "{counts:?}");
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_login_error(r, 429, "too_many_requests");
    }
    assert_eq!(
        w.outbox.messages().len(),
        1,
        "a refused send delivers nothing"
    );

    let replies = race(&w, 40, |w, i| async move {
        w.login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": format!("+120255502{i:02}"), "attributes": {"ip_address": "203.0.113.9"}}),
        )
        .await
    })
    .await;
    let counts = statuses(&replies);
    assert_eq!(counts.get(&200), Some(&20), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&20), "{counts:?}");
    assert_eq!(w.outbox.messages().len(), 21);
}

/// A user with three live codes (two phones and an email) takes 99 concurrent wrong guesses
/// spread over them. The 10th consecutive wrong attempt locks the user, and while locked every
/// authenticate answers 429: at most 10 guesses may be evaluated (404), although the three codes
/// would take 15. On DynamoDB the gate is `record_failure`'s condition on the user item.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_over_three_codes_stop_at_the_user_lock() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let w = Arc::new(w);
    let (user_id, phone_id, phone_code) = w.sms_code(PHONE).await;
    let r = w
        .login(
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "user_id": user_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let phone2_id = s(&r.body["phone_id"]);
    let phone2_code = w.outbox.last_to(OTHER_PHONE).unwrap();
    let r = w
        .login(
            RouteId::EmailSend,
            json!({"email": EMAIL, "user_id": user_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_id = s(&r.body["email_id"]);
    let email_code = w.outbox.last_to(EMAIL).unwrap();
    let targets = Arc::new(vec![
        (phone_id, wrong(&phone_code)),
        (phone2_id, wrong(&phone2_code)),
        (email_id, wrong(&email_code)),
    ]);
    let replies = race(&w, 99, |w, i| {
        let (method_id, guess) = targets[i % 3].clone();
        async move {
            w.login(
                RouteId::OtpAuthenticate,
                json!({"method_id": method_id, "code": guess}),
            )
            .await
        }
    })
    .await;
    let counts = statuses(&replies);
    for r in &replies {
        match r.status.as_u16() {
            404 => assert_login_error(r, 404, "otp_code_not_found"),
            401 => assert_login_error(r, 401, "unable_to_auth_otp_code"),
            429 => assert_login_error(r, 429, "user_lock_limit_reached"),
            _ => panic!("{counts:?}: {}", r.body),
        }
    }
    let user = w.get_user(&user_id).await;
    assert_eq!(user.body["is_locked"], json!(true), "{}", user.body);
    assert!(
        counts.get(&404).copied().unwrap_or(0) <= 10,
        "wrong codes evaluated while the user was (being) locked: {counts:?}"
    );
}
