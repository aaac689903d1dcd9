//! Races through `crate::api::handle` on a multi-threaded runtime: the single-use code, the
//! per-code attempt limit, the user lock, user creation, the send limits, the last secret and
//! user deletion must hold when many requests arrive at once. Each race runs twice: as is, and
//! with every store call yielding to the scheduler first, so that the requests interleave at
//! every store operation (on a remote store they interleave at every call anyway).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use super::Target;
use super::support::*;
use crate::api::RouteId;
use crate::ids::UserId;
use crate::service::{Limits, SendLimits};

/// Runs `n` requests at once (released together by a barrier) and returns their replies, in
/// the order of `i`.
async fn race<F, Fut>(world: &Arc<World>, n: usize, make: F) -> Vec<Reply>
where
    F: Fn(Arc<World>, usize) -> Fut,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let request = make(world.clone(), i);
            tokio::spawn(async move {
                barrier.wait().await;
                request.await
            })
        })
        .collect();
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

fn count(counts: &BTreeMap<u16, usize>, status: u16) -> usize {
    counts.get(&status).copied().unwrap_or(0)
}

async fn world(target: &Target, yielding: bool, limits: Limits) -> Option<Arc<World>> {
    let w = World::new(target, limits).await?;
    w.plan.set_yield(yielding);
    Some(Arc::new(w))
}

pub async fn right_code_from_100_concurrent_requests_succeeds_exactly_once(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
        let (user_id, phone_id, code) = w.sms_code(PHONE).await;
        let replies = race(&w, 100, |w, _| {
            let (phone_id, code) = (phone_id.clone(), code.clone());
            async move { w.authenticate(&phone_id, &code).await }
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(count(&counts, 200), 1, "yielding={yielding}: {counts:?}");
        assert_eq!(count(&counts, 401), 99, "yielding={yielding}: {counts:?}");
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
        let c = w.challenge(&phone_id).await.unwrap();
        assert!(c.consumed && c.attempts == 0, "yielding={yielding}: {c:?}");
        assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 0);
    }
}

pub async fn wrong_codes_from_100_concurrent_requests_count_exactly_five(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
        let (user_id, phone_id, code) = w.sms_code(PHONE).await;
        let actual: u32 = code.parse().unwrap();
        let replies = race(&w, 100, |w, i| {
            let phone_id = phone_id.clone();
            // 100 distinct wrong codes.
            let guess = format!("{:06}", (actual + 1 + i as u32) % 1_000_000);
            async move { w.try_code(&phone_id, &guess).await }
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(count(&counts, 404), 5, "yielding={yielding}: {counts:?}");
        assert_eq!(count(&counts, 401), 95, "yielding={yielding}: {counts:?}");
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
        // Exact in the store: the code took five wrong attempts, the user counted five.
        assert_eq!(w.challenge(&phone_id).await.unwrap().attempts, 5);
        let user = w.user_record(&user_id).await.unwrap();
        assert_eq!(user.failed_attempts, 5, "yielding={yielding}: {user:?}");
        assert!(user.lock.is_none(), "{user:?}");

        // Observed through the API: the user's count is exactly 5, so on a new code the 4th
        // wrong attempt leaves the user unlocked and the 5th (the 10th in a row) locks it.
        let (_, _, second) = w.sms_code(PHONE).await;
        for i in 0..5u64 {
            let r = w.try_code(&phone_id, &wrong(&second)).await;
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
        let r = w.try_code(&phone_id, &second).await;
        assert_login_error(&r, 429, "user_lock_limit_reached");
        // A send to the locked user is refused alike, and counts nothing.
        let counted = w.counted_sends(PHONE).await;
        let r = w
            .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
            .await;
        assert_login_error(&r, 429, "user_lock_limit_reached");
        assert_eq!(w.counted_sends(PHONE).await, counted);
    }
}

pub async fn right_code_racing_wrong_guesses_lets_at_most_five_guesses_through(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
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
        let ok = count(&counts, 200);
        let wrong = count(&counts, 404);
        assert!(ok <= 1, "{counts:?}");
        assert!(wrong <= 5, "{counts:?}");
        if ok == 0 {
            // The right code only fails once the five wrong attempts killed the code.
            assert_eq!(wrong, 5, "{counts:?}");
        }
        assert_eq!(ok + wrong + count(&counts, 401), 60, "{counts:?}");
        // Exactly one of the 60 requests was the right code: if one succeeded, it was that one.
        if ok == 1 {
            assert_eq!(replies[30].status, StatusCode::OK);
        }
    }
}

/// A user with three live codes (two phones and an email) takes 99 concurrent wrong guesses
/// spread over them. The 10th consecutive wrong attempt locks the user, and while locked every
/// authenticate answers 429: exactly 10 guesses are evaluated (404), although the three codes
/// would take 15. The gate is the user record, which every wrong attempt's commit rewrites on
/// condition that it is unchanged.
pub async fn guesses_over_three_codes_stop_at_exactly_the_user_lock(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
        let (user_id, phone_id, phone_code) = w.sms_code(PHONE).await;
        let (phone2_id, phone2_code) = w.add_identifier(&user_id, OTHER_PHONE).await;
        let (email_id, email_code) = w.add_identifier(&user_id, EMAIL).await;
        let targets = Arc::new(vec![
            (phone_id, wrong(&phone_code)),
            (phone2_id, wrong(&phone2_code)),
            (email_id, wrong(&email_code)),
        ]);
        let replies = race(&w, 99, |w, i| {
            let (method_id, guess) = targets[i % 3].clone();
            async move { w.try_code(&method_id, &guess).await }
        })
        .await;
        let counts = statuses(&replies);
        for r in &replies {
            match r.status.as_u16() {
                404 => assert_login_error(r, 404, "otp_code_not_found"),
                401 => assert_login_error(r, 401, "unable_to_auth_otp_code"),
                429 => assert_login_error(r, 429, "user_lock_limit_reached"),
                _ => panic!("yielding={yielding}: {counts:?}: {}", r.body),
            }
        }
        assert_eq!(
            count(&counts, 404),
            10,
            "yielding={yielding}: the lock must come at exactly the 10th wrong attempt: {counts:?}"
        );
        let user = w.get_user(&user_id).await;
        assert_eq!(user.body["is_locked"], json!(true), "{}", user.body);
        let mut attempts = 0;
        for (method_id, _) in targets.iter() {
            attempts += w.challenge(method_id).await.unwrap().attempts;
        }
        assert_eq!(
            attempts, 10,
            "yielding={yielding}: attempts counted on the codes"
        );
    }
}

pub async fn fifty_concurrent_login_or_create_make_one_user(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
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
        assert_eq!(w.users_holding(PHONE).await, 1, "yielding={yielding}");

        // Of the 50 codes delivered, exactly one is the stored one.
        let phone_id = phones.iter().next().unwrap().as_str().unwrap();
        let sent = w.codes_to(PHONE);
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

pub async fn concurrent_login_or_create_with_differently_cased_emails_make_one_user(
    target: Target,
) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
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
        assert_eq!(users.len(), 1, "yielding={yielding}: {users:?}");
        assert_eq!(
            replies
                .iter()
                .filter(|r| r.body["user_created"] == json!(true))
                .count(),
            1
        );
        assert_eq!(w.users_holding(EMAIL).await, 1, "yielding={yielding}");
    }
}

/// 40 sends to one number at once pass the 30-second cooldown exactly once, and 40 numbers from
/// one end-user IP at once pass the IP window (20) exactly 20 times. A refused send delivers
/// nothing.
pub async fn concurrent_sends_respect_the_cooldown_and_the_ip_window(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, send_limits()).await else {
            return;
        };
        let replies = race(&w, 40, |w, _| async move {
            w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
                .await
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(count(&counts, 200), 1, "yielding={yielding}: {counts:?}");
        assert_eq!(count(&counts, 429), 39, "yielding={yielding}: {counts:?}");
        for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
            assert_login_error(r, 429, "too_many_requests");
        }
        assert_eq!(
            w.outbox.messages().len(),
            1,
            "a refused send delivers nothing"
        );
        assert_eq!(w.counted_sends(PHONE).await, 1, "yielding={yielding}");

        let replies = race(&w, 40, |w, i| async move {
            w.login(
                RouteId::SmsLoginOrCreate,
                json!({"phone_number": format!("+120255502{i:02}"), "attributes": {"ip_address": "203.0.113.9"}}),
            )
            .await
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(count(&counts, 200), 20, "yielding={yielding}: {counts:?}");
        assert_eq!(count(&counts, 429), 20, "yielding={yielding}: {counts:?}");
        assert_eq!(w.outbox.messages().len(), 21);
    }
}

/// A send counts on every counter it is held to (the identifier's cooldown and window, and the
/// end user's IP window) or on none: a send refused by one full counter leaves the others as
/// they were, however many race. With one send per IP address per window:
/// - 40 sends to one number from 40 addresses at once: one passes the number's cooldown; each
///   of the 39 refused addresses can then send to another number (its counter took nothing),
///   the one that passed cannot;
/// - 40 sends to 40 numbers from one address at once: one passes the address's window; each of
///   the 39 refused numbers can then be sent to from another address (its cooldown took
///   nothing), the one that passed cannot.
pub async fn rate_limits_count_on_every_counter_or_on_none(target: Target) {
    let limits = Limits {
        send: SendLimits {
            cooldown_seconds: 30,
            window_max: 5,
            window_seconds: 600,
            ip_window_max: 1,
        },
        ..send_limits()
    };
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, limits.clone()).await else {
            return;
        };
        let send = |w: Arc<World>, phone: String, ip: String| async move {
            w.login(
                RouteId::SmsLoginOrCreate,
                json!({"phone_number": phone, "attributes": {"ip_address": ip}}),
            )
            .await
        };

        // One number, 40 addresses.
        let replies = race(&w, 40, |w, i| {
            send(w, PHONE.to_owned(), format!("198.51.100.{}", i + 1))
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(count(&counts, 200), 1, "yielding={yielding}: {counts:?}");
        assert_eq!(count(&counts, 429), 39, "yielding={yielding}: {counts:?}");
        assert_eq!(w.counted_sends(PHONE).await, 1);
        for (i, reply) in replies.iter().enumerate() {
            let r = send(
                w.clone(),
                format!("+120255502{i:02}"),
                format!("198.51.100.{}", i + 1),
            )
            .await;
            if reply.status == StatusCode::OK {
                assert_login_error(&r, 429, "too_many_requests");
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::OK,
                    "yielding={yielding}: a refused send counted on its address: {}",
                    r.body
                );
            }
        }

        // 40 numbers, one address.
        let replies = race(&w, 40, |w, i| {
            send(
                w,
                format!("+120255501{:02}", i + 40),
                "203.0.113.77".to_owned(),
            )
        })
        .await;
        let counts = statuses(&replies);
        assert_eq!(count(&counts, 200), 1, "yielding={yielding}: {counts:?}");
        assert_eq!(count(&counts, 429), 39, "yielding={yielding}: {counts:?}");
        for (i, reply) in replies.iter().enumerate() {
            let phone = format!("+120255501{:02}", i + 40);
            let r = send(w.clone(), phone.clone(), format!("192.0.2.{}", i + 1)).await;
            if reply.status == StatusCode::OK {
                assert_login_error(&r, 429, "too_many_requests");
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::OK,
                    "yielding={yielding}: a refused send counted on {phone}: {}",
                    r.body
                );
            }
        }
    }
}

/// Of two concurrent deletes of an app's last two secrets, exactly one is answered 204 and the
/// other 409, and the app keeps one secret.
pub async fn concurrent_deletes_of_the_last_two_secrets_keep_one(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
        for round in 0..10 {
            let (app_id, _) = w.create_app(&format!("Round {round}")).await;
            let app = [("app_id", app_id.as_str())];
            let r = w.manage(RouteId::CreateSecret, &app, None).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            let r = w.manage(RouteId::ListSecrets, &app, None).await;
            let ids: Vec<String> = r.body["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|secret| s(&secret["secret_id"]))
                .collect();
            assert_eq!(ids.len(), 2, "{}", r.body);
            let ids = Arc::new(ids);
            let app_id = Arc::new(app_id);
            let replies = race(&w, 2, |w, i| {
                let (ids, app_id) = (ids.clone(), app_id.clone());
                async move {
                    w.manage(
                        RouteId::DeleteSecret,
                        &[("app_id", &app_id), ("secret_id", &ids[i])],
                        None,
                    )
                    .await
                }
            })
            .await;
            let counts = statuses(&replies);
            assert_eq!(count(&counts, 204), 1, "yielding={yielding}: {counts:?}");
            assert_eq!(count(&counts, 409), 1, "yielding={yielding}: {counts:?}");
            for r in &replies {
                if r.status == StatusCode::CONFLICT {
                    assert_management_error(r, 409, "conflict");
                } else {
                    assert_management_shape(r);
                }
            }
            let r = w
                .manage(RouteId::ListSecrets, &[("app_id", &app_id)], None)
                .await;
            assert_eq!(r.body["secrets"].as_array().map(Vec::len), Some(1));
        }
    }
}

/// A user with a session and three live codes is deleted while the codes are used to
/// authenticate (each making a session) and its session is used. Once the delete has answered,
/// no session of the user authenticates, and nothing of the user is left in the store: no
/// record names its id, its home, its methods or its sessions.
pub async fn a_user_deleted_while_it_authenticates_keeps_no_session(target: Target) {
    for yielding in [false, true] {
        let Some(w) = world(&target, yielding, relaxed()).await else {
            return;
        };
        for round in 0..4 {
            let phone = format!("+120255501{:02}", 10 + 2 * round);
            let other = format!("+120255501{:02}", 11 + 2 * round);
            let email = format!("round{round}@example.com");
            let (user_id, phone_id, session) = w.session_for(&phone).await;
            let token = s(&session["session_token"]);
            let (_, _, phone_code) = w.sms_code(&phone).await;
            let (other_id, other_code) = w.add_identifier(&user_id, &other).await;
            let (email_id, email_code) = w.add_identifier(&user_id, &email).await;
            let codes = Arc::new(vec![
                (phone_id.clone(), phone_code),
                (other_id.clone(), other_code),
                (email_id.clone(), email_code),
            ]);
            let (uid, tok) = (Arc::new(user_id.clone()), Arc::new(token.clone()));
            let replies = race(&w, 6, |w, i| {
                let (codes, uid, tok) = (codes.clone(), uid.clone(), tok.clone());
                async move {
                    match i {
                        0..=2 => w.authenticate(&codes[i].0, &codes[i].1).await,
                        3 => w.delete_user(&uid).await,
                        4 => {
                            w.login(
                                RouteId::SessionsAuthenticate,
                                json!({"session_token": *tok, "session_duration_minutes": 90}),
                            )
                            .await
                        }
                        _ => {
                            w.login(
                                RouteId::SessionsAuthenticate,
                                json!({"session_token": *tok, "session_custom_claims": {"n": 1}}),
                            )
                            .await
                        }
                    }
                }
            })
            .await;
            let what = format!("yielding={yielding} round {round}");
            assert_eq!(
                replies[3].status,
                StatusCode::OK,
                "{what}: {}",
                replies[3].body
            );
            let mut tokens = vec![token];
            let mut session_ids = vec![s(&session["session"]["session_id"])];
            for r in &replies[..3] {
                match r.status.as_u16() {
                    200 => {
                        tokens.push(s(&r.body["session_token"]));
                        session_ids.push(s(&r.body["session"]["session_id"]));
                    }
                    404 => assert_login_error(r, 404, "otp_code_not_found"),
                    _ => panic!("{what}: {}", r.body),
                }
            }
            for r in &replies[4..] {
                assert!(
                    r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND,
                    "{what}: {}",
                    r.body
                );
            }
            for token in &tokens {
                let r = w
                    .login(
                        RouteId::SessionsAuthenticate,
                        json!({"session_token": token}),
                    )
                    .await;
                assert_login_error(&r, 404, "session_not_found");
            }
            assert_login_error(&w.get_user(&user_id).await, 404, "user_not_found");
            let home = UserId::parse(&user_id).unwrap().home().to_hex();
            let home_in_ids = format!("{}-{}", &home[..8], &home[8..]);
            let mut gone: Vec<&str> = vec![&user_id, &home, &home_in_ids, &phone_id, &other_id];
            gone.push(&email_id);
            gone.extend(session_ids.iter().map(String::as_str));
            let dump = w.dump().await;
            for line in dump.lines() {
                for needle in &gone {
                    assert!(
                        !line.contains(needle),
                        "{what}: {needle} is still in the store: {line:.300}"
                    );
                }
            }
            // Its identifiers are free again.
            let r = w
                .login(RouteId::SmsLoginOrCreate, json!({"phone_number": phone}))
                .await;
            assert_eq!(r.body["user_created"], json!(true), "{what}: {}", r.body);
        }
    }
}
