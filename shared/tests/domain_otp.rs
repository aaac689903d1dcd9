//! Sending and authenticating codes through the use cases, on the in-memory adapters with a fake
//! clock and seeded randomness: expiry, replacement, attempt limits, single use, user lockout,
//! and what the store keeps.

#[path = "domain_harness.rs"]
mod harness;

use std::sync::Arc;

use harness::{EMAIL, Harness, PHONE, login_or_create, wrong};
use shared::Error;
use shared::ids::MethodId;
use shared::service::{otp, sessions, users};

#[tokio::test]
async fn codes_are_six_digits_by_default_and_drawn_from_the_random_port() {
    let h = Harness::new(1).await;
    let (_, sms_code) = h.send_code(PHONE).await;
    let (_, email_code) = h.send_code(EMAIL).await;
    for code in [&sms_code, &email_code] {
        assert_eq!(code.len(), 6, "{code}");
        assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    }
    let message = h.mem.outbox.last_to(PHONE).expect("sms");
    assert!(
        message.text.contains(&sms_code),
        "the message carries the code"
    );

    // The same seed and the same steps give the same codes: they come from the Random port.
    let same = Harness::new(1).await;
    assert_eq!(same.send_code(PHONE).await.1, sms_code);
    assert_eq!(same.send_code(EMAIL).await.1, email_code);
    let other = Harness::new(2).await;
    assert_ne!(other.send_code(PHONE).await.1, sms_code);
}

#[tokio::test]
async fn a_code_works_until_it_expires() {
    let h = Harness::new(3).await;
    let (sent, code) = h.send_code(PHONE).await;
    // Default lifetime: 2 minutes.
    h.clock.advance_seconds(119);
    let outcome = h.auth(&sent.method_id, &code).await.expect("still live");
    assert_eq!(outcome.user.id, sent.user_id);
    assert_eq!(outcome.method_id, sent.method_id);
    assert!(
        outcome.session.is_none(),
        "no session without session_duration_minutes"
    );

    let (sent, code) = h.send_code(PHONE).await;
    h.clock.advance_seconds(121);
    let result = h.auth(&sent.method_id, &code).await;
    assert!(
        matches!(result, Err(Error::UnableToAuthOtpCode)),
        "the right code after expiry: {result:?}"
    );
}

#[tokio::test]
async fn a_request_expiration_overrides_the_config_lifetime() {
    let h = Harness::new(4).await;
    let mut request = login_or_create(PHONE);
    request.expiration_minutes = Some(5);
    let sent = h.send(request).await.expect("send");
    let code = h.last_code(PHONE);
    h.clock.advance_seconds(4 * 60 + 59);
    h.auth(&sent.method_id, &code)
        .await
        .expect("live for the requested 5 minutes");

    let mut request = login_or_create(PHONE);
    request.expiration_minutes = Some(1);
    let sent = h.send(request).await.expect("send");
    let code = h.last_code(PHONE);
    h.clock.advance_seconds(60);
    assert!(matches!(
        h.auth(&sent.method_id, &code).await,
        Err(Error::UnableToAuthOtpCode)
    ));

    for minutes in [0, 11] {
        let mut request = login_or_create(PHONE);
        request.expiration_minutes = Some(minutes);
        assert!(matches!(
            h.send(request).await,
            Err(Error::InvalidExpirationMinutes)
        ));
    }
}

#[tokio::test]
async fn attempts_on_an_expired_code_are_refused_and_count_for_nothing() {
    let h = Harness::new(5).await;
    let (sent, code) = h.send_code(PHONE).await;
    h.clock.advance_seconds(3600);
    for _ in 0..12 {
        let result = h.auth(&sent.method_id, &wrong(&code)).await;
        assert!(
            matches!(result, Err(Error::UnableToAuthOtpCode)),
            "{result:?}"
        );
    }
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(user.failed_attempts, 0);
    assert_eq!(user.lock, None, "12 attempts on a dead code lock nobody");
    let (sent, code) = h.send_code(PHONE).await;
    h.auth(&sent.method_id, &code)
        .await
        .expect("a new code works");
}

#[tokio::test]
async fn a_new_code_replaces_the_previous_one() {
    let h = Harness::new(6).await;
    let (first, old_code) = h.send_code(PHONE).await;
    h.cooldown();
    let (second, new_code) = h.send_code(PHONE).await;
    assert_eq!(first.method_id, second.method_id);
    assert_ne!(old_code, new_code, "the seed must give two different codes");

    let result = h.auth(&second.method_id, &old_code).await;
    assert!(
        matches!(
            result,
            Err(Error::OtpCodeNotFound {
                attempts_remaining: Some(4)
            })
        ),
        "the replaced code counts as a wrong code: {result:?}"
    );
    h.auth(&second.method_id, &new_code)
        .await
        .expect("the newest code works");
}

#[tokio::test]
async fn five_wrong_attempts_kill_the_code() {
    let h = Harness::new(7).await;
    let (sent, code) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1, 0] {
        h.expect_wrong(&sent.method_id, &code, remaining).await;
    }
    let result = h.auth(&sent.method_id, &code).await;
    assert!(
        matches!(result, Err(Error::UnableToAuthOtpCode)),
        "the right code after 5 wrong attempts: {result:?}"
    );
    let result = h.auth(&sent.method_id, &wrong(&code)).await;
    assert!(
        matches!(result, Err(Error::UnableToAuthOtpCode)),
        "{result:?}"
    );
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(user.failed_attempts, 5, "only the 5 live attempts count");
}

#[tokio::test]
async fn a_code_is_single_use() {
    let h = Harness::new(8).await;
    let (sent, code) = h.send_code(PHONE).await;
    h.auth(&sent.method_id, &code).await.expect("first use");
    let result = h.auth(&sent.method_id, &code).await;
    assert!(
        matches!(result, Err(Error::UnableToAuthOtpCode)),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_right_codes_succeed_exactly_once() {
    const TASKS: usize = 50;
    let h = Arc::new(Harness::new(9).await);
    let (sent, code) = h.send_code(PHONE).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (h, method_id, code, barrier) = (
                h.clone(),
                sent.method_id.clone(),
                code.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                h.auth_with(&method_id, &code, Some(60)).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let successes = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        successes, 1,
        "exactly one of {TASKS} concurrent requests succeeds"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::UnableToAuthOtpCode))),
        "the others are answered unable_to_auth_otp_code"
    );
    let winner = results.into_iter().find_map(Result::ok).expect("winner");
    let issued = winner.session.expect("a session was asked for");
    let live = sessions::list(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("list");
    assert_eq!(live.len(), 1, "exactly one session exists");
    assert_eq!(live[0].id, issued.session.id);
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(user.failed_attempts, 0, "losing a race is not a wrong code");
}

#[tokio::test]
async fn ten_wrong_attempts_across_codes_lock_the_user_for_an_hour() {
    let h = Harness::new(10).await;
    let (sent, first) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1, 0] {
        h.expect_wrong(&sent.method_id, &first, remaining).await;
    }
    // A new code does not reset the count.
    h.cooldown();
    let (_, second) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1] {
        h.expect_wrong(&sent.method_id, &second, remaining).await;
    }
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(user.lock, None, "9 wrong attempts do not lock");
    // The 10th is still a plain wrong code...
    h.expect_wrong(&sent.method_id, &second, 0).await;
    // ...and now the user is locked.
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    let lock = user.lock.expect("locked after the 10th");
    assert_eq!(lock.created_at, h.clock_now());
    assert_eq!(lock.expires_at, h.clock_now().plus_seconds(3600));

    let result = h.auth(&sent.method_id, &second).await;
    assert!(
        matches!(
            result,
            Err(Error::UserLockLimitReached {
                retry_after_seconds: 3600
            })
        ),
        "authenticate while locked: {result:?}"
    );
    let sent_before = h.outbox_len();
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(result, Err(Error::UserLockLimitReached { .. })),
        "send while locked: {result:?}"
    );
    assert_eq!(
        h.outbox_len(),
        sent_before,
        "nothing is sent to a locked user"
    );

    h.clock.advance_seconds(1800);
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(
            result,
            Err(Error::UserLockLimitReached {
                retry_after_seconds: 1800
            })
        ),
        "still locked after half an hour: {result:?}"
    );

    h.clock.advance_seconds(1800);
    let (sent, third) = h.send_code(PHONE).await;
    h.auth(&sent.method_id, &third)
        .await
        .expect("an hour later the user can log in again");
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let h = Harness::new(11).await;
    let (sent, first) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1, 0] {
        h.expect_wrong(&sent.method_id, &first, remaining).await;
    }
    h.cooldown();
    let (_, second) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1] {
        h.expect_wrong(&sent.method_id, &second, remaining).await;
    }
    // Nine wrong, then a success.
    h.auth(&sent.method_id, &second).await.expect("success");
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(user.failed_attempts, 0);

    // Nine more wrong attempts do not lock: the count started again.
    h.cooldown();
    let (_, third) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1, 0] {
        h.expect_wrong(&sent.method_id, &third, remaining).await;
    }
    h.cooldown();
    let (_, fourth) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1] {
        h.expect_wrong(&sent.method_id, &fourth, remaining).await;
    }
    h.auth(&sent.method_id, &fourth)
        .await
        .expect("not locked: the success reset the count");
}

#[tokio::test]
async fn the_lock_is_per_user() {
    let h = Harness::new(12).await;
    let (locked, code) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1, 0] {
        h.expect_wrong(&locked.method_id, &code, remaining).await;
    }
    h.cooldown();
    let (_, code) = h.send_code(PHONE).await;
    for remaining in [4, 3, 2, 1, 0] {
        h.expect_wrong(&locked.method_id, &code, remaining).await;
    }
    let (other, code) = h.send_code(EMAIL).await;
    assert_ne!(other.user_id, locked.user_id);
    h.auth(&other.method_id, &code)
        .await
        .expect("another user is not locked");
}

#[tokio::test]
async fn unknown_or_malformed_method_ids_are_not_found() {
    let h = Harness::new(13).await;
    let (sent, code) = h.send_code(PHONE).await;
    let unknown = MethodId::Phone(shared::ids::PhoneId::generate(&shared::random::OsRandom));
    let result = h.auth(&unknown, &code).await;
    assert!(
        matches!(
            result,
            Err(Error::OtpCodeNotFound {
                attempts_remaining: None
            })
        ),
        "{result:?}"
    );
    let result = otp::authenticate(
        h.deps(),
        &*h.app_data().await,
        &h.request_id(),
        otp::AuthenticateRequest {
            method_id: "phone-number-nope".to_owned(),
            code: code.clone(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(result, Err(Error::OtpCodeNotFound { .. })),
        "{result:?}"
    );

    // A method of another app is unknown here.
    let elsewhere = Harness::new(14).await;
    let result = elsewhere.auth(&sent.method_id, &code).await;
    assert!(
        matches!(result, Err(Error::OtpCodeNotFound { .. })),
        "{result:?}"
    );
    h.auth(&sent.method_id, &code)
        .await
        .expect("the code is still good in its own app");
}

#[tokio::test]
async fn the_store_keeps_no_code_secret_or_token_in_plaintext() {
    let h = Harness::new(15).await;
    let (sent, code) = h.send_code(PHONE).await;
    let (_, email_code) = h.send_code(EMAIL).await;
    let dump = h.mem.store.dump_for_inspection();
    assert!(
        dump.contains("challenge-"),
        "the dump shows the stored challenges"
    );
    assert!(
        !dump.contains(&code),
        "the sms code is stored only as a hash"
    );
    assert!(
        !dump.contains(&email_code),
        "the email code is stored only as a hash"
    );
    assert!(
        !dump.contains(&h.secret),
        "the app secret is stored only as a hash"
    );
    let secret_body = h.secret.trim_start_matches("secret-");
    assert!(!dump.contains(secret_body));

    let (extra_secret, _) = shared::service::management::add_secret(h.deps(), h.app.id.as_str())
        .await
        .expect("add_secret");
    let outcome = h
        .auth_with(&sent.method_id, &code, Some(60))
        .await
        .expect("authenticate");
    let issued = outcome.session.expect("session");
    assert_eq!(issued.token.len(), 43);
    let dump = h.mem.store.dump_for_inspection();
    assert!(
        dump.contains(issued.session.id.as_str()),
        "the session is in the dump"
    );
    assert!(
        !dump.contains(&issued.token),
        "the session token is stored only as a hash"
    );
    assert!(!dump.contains(&extra_secret));
    assert!(!dump.contains(&issued.jwt));
}
