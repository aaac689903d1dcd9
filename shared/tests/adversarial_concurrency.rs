//! Races through `shared::api::handle` on a multi-threaded runtime: the single-use code, the
//! per-code attempt limit, the user lock, user creation and the send limits must hold when many
//! requests arrive at once. Each scenario runs twice: once as is, once with every store call
//! yielding to the scheduler first, so that the requests interleave at every store operation.

mod adversarial_support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use adversarial_support::*;
use http::StatusCode;
use serde_json::{Value, json};
use shared::api::RouteId;
use shared::service::Limits;
use tokio::sync::Barrier;

/// Runs `n` copies of a request at once (released together by a barrier) and returns the replies.
async fn race<F, Fut>(world: &Arc<World>, n: usize, make: F) -> Vec<Reply>
where
    F: Fn(Arc<World>, usize) -> Fut,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
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
    replies
}

fn statuses(replies: &[Reply]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for r in replies {
        *counts.entry(r.status.as_u16()).or_default() += 1;
    }
    counts
}

async fn world(yielding: bool, limits: Limits) -> Arc<World> {
    let w = World::new(limits).await;
    w.plan.set_yield(yielding);
    Arc::new(w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn right_code_from_100_concurrent_requests_succeeds_exactly_once() {
    for yielding in [false, true] {
        let w = world(yielding, relaxed()).await;
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
        assert_eq!(
            counts.get(&200),
            Some(&1),
            "yielding={yielding}: {counts:?}"
        );
        assert_eq!(
            counts.get(&401),
            Some(&99),
            "yielding={yielding}: {counts:?}"
        );
        let winner = replies.iter().find(|r| r.status == StatusCode::OK).unwrap();
        assert_login_shape(winner);
        for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
            assert_login_error(r, 401, "unable_to_auth_otp_code");
        }
        let sessions = w.list_sessions(&user_id).await;
        assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
        let list = sessions.body["sessions"].as_array().unwrap();
        assert_eq!(list.len(), 1, "yielding={yielding}: {}", sessions.body);
        assert_eq!(
            list[0]["session_id"], winner.body["session"]["session_id"],
            "the one session is the winner's"
        );
        assert!(w.challenge(&phone_id).await.unwrap().consumed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_codes_from_100_concurrent_requests_count_exactly_five() {
    for yielding in [false, true] {
        let w = world(yielding, relaxed()).await;
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
        assert_eq!(
            counts.get(&404),
            Some(&5),
            "yielding={yielding}: {counts:?}"
        );
        assert_eq!(
            counts.get(&401),
            Some(&95),
            "yielding={yielding}: {counts:?}"
        );
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
        assert_eq!(remaining, vec![0, 1, 2, 3, 4], "yielding={yielding}");
        assert_eq!(w.challenge(&phone_id).await.unwrap().attempts, 5);
        assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 5);

        // Observed through the API: the user's count is exactly 5, so on a new code the 4th
        // wrong attempt leaves the user unlocked and the 5th (the 10th in a row) locks it.
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
                "yielding={yielding}, after {} wrong attempts on the second code: {}",
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn right_code_racing_wrong_guesses_never_lets_more_than_five_guesses_through() {
    for yielding in [false, true] {
        let w = world(yielding, relaxed()).await;
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
        assert_eq!(ok + wrong + counts.get(&401).copied().unwrap_or(0), 60);
        // Exactly one of the 60 requests was the right code: if it won, it was reply 30.
        if ok == 1 {
            assert_eq!(replies[30].status, StatusCode::OK);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_login_or_create_make_one_user() {
    for yielding in [false, true] {
        let w = world(yielding, relaxed()).await;
        let replies = race(&w, 50, |w, _| async move {
            w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
                .await
        })
        .await;
        for r in &replies {
            assert_eq!(r.status, StatusCode::OK, "yielding={yielding}: {}", r.body);
            assert_login_shape(r);
        }
        let created = replies
            .iter()
            .filter(|r| r.body["user_created"] == json!(true))
            .count();
        assert_eq!(created, 1, "yielding={yielding}");
        let users: HashSet<&Value> = replies.iter().map(|r| &r.body["user_id"]).collect();
        let phones: HashSet<&Value> = replies.iter().map(|r| &r.body["phone_id"]).collect();
        assert_eq!(users.len(), 1, "yielding={yielding}: {users:?}");
        assert_eq!(phones.len(), 1, "yielding={yielding}: {phones:?}");
        assert_eq!(w.users_holding(PHONE), 1);

        // Of the 50 codes delivered, exactly one is the stored one.
        let phone_id = phones.iter().next().unwrap().as_str().unwrap();
        let sent: Vec<String> = w.outbox.messages().into_iter().map(|m| m.code).collect();
        assert_eq!(sent.len(), 50);
        let mut live = 0;
        for code in &sent {
            if w.code_matches(phone_id, code).await {
                live += 1;
            }
        }
        assert_eq!(live, 1, "yielding={yielding}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_login_or_create_with_differently_cased_emails_make_one_user() {
    let w = world(true, relaxed()).await;
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
    assert_eq!(w.users_holding(EMAIL), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_respect_the_cooldown_and_the_ip_window() {
    for yielding in [false, true] {
        // One identifier, 40 sends at once: the 30-second cooldown lets exactly one through.
        let w = world(yielding, Limits::default()).await;
        let replies = race(&w, 40, |w, _| async move {
            w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
                .await
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(
            counts.get(&200),
            Some(&1),
            "yielding={yielding}: {counts:?}"
        );
        assert_eq!(
            counts.get(&429),
            Some(&39),
            "yielding={yielding}: {counts:?}"
        );
        for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
            assert_login_error(r, 429, "too_many_requests");
        }
        assert_eq!(
            w.outbox.messages().len(),
            1,
            "a refused send delivers nothing"
        );

        // 40 identifiers from one end-user IP at once: at most 20 per 10 minutes.
        let w = world(yielding, Limits::default()).await;
        let replies = race(&w, 40, |w, i| async move {
            w.login(
                RouteId::SmsLoginOrCreate,
                json!({"phone_number": format!("+120255501{i:02}"), "attributes": {"ip_address": "203.0.113.9"}}),
            )
            .await
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(
            counts.get(&200),
            Some(&20),
            "yielding={yielding}: {counts:?}"
        );
        assert_eq!(
            counts.get(&429),
            Some(&20),
            "yielding={yielding}: {counts:?}"
        );
        assert_eq!(w.outbox.messages().len(), 20);
    }
}

/// A user with three live codes (two phones and an email) takes 99 concurrent wrong guesses
/// spread over them. The contract: the 10th consecutive wrong attempt locks the user, and while
/// locked every authenticate answers 429. So at most 10 guesses may be evaluated (404), although
/// the three codes would take 15: the user's failure count, not the (possibly stale) user read
/// at the start of the request, is the gate (`UserStore::record_failure` counts nothing while
/// the user is locked).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_over_three_codes_stop_at_the_user_lock() {
    let w = world(true, relaxed()).await;
    let (user_id, phone_id, phone_code) = w.sms_code(PHONE).await;
    let r = w
        .login(
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "user_id": user_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let phone2_id = r.body["phone_id"].as_str().unwrap().to_owned();
    let phone2_code = w.outbox.last_to(OTHER_PHONE).unwrap().code;
    let r = w
        .login(
            RouteId::EmailSend,
            json!({"email": EMAIL, "user_id": user_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_id = r.body["email_id"].as_str().unwrap().to_owned();
    let email_code = w.outbox.last_to(EMAIL).unwrap().code;
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
    let user = w.get_user(&user_id).await;
    assert_eq!(user.body["is_locked"], json!(true), "{}", user.body);
    assert!(
        counts.get(&404).copied().unwrap_or(0) <= 10,
        "wrong codes evaluated while the user was (being) locked: {counts:?}"
    );
}
