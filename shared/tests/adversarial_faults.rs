//! Fault injection through `shared::api::handle`: the store and delivery adapters fail on the
//! Nth call, for every N of a request's call sequence in turn (recorded from a clean run). Each
//! failure must be a clear 503/500/502 in the contract's shape, duplicate no user, leave no
//! usable code that was not delivered, use up no send limit, and let the retried request (with
//! the faults off) succeed.

mod adversarial_support;

use adversarial_support::*;
use http::StatusCode;
use serde_json::json;
use shared::api::RouteId;
use shared::clock::Clock;
use shared::identifiers::Identifier;
use shared::ports::UserStore;
use shared::service::Limits;

const KINDS: [FaultKind; 2] = [FaultKind::Unavailable, FaultKind::Other];

/// What a request answers when call `name` fails with `kind`.
fn expected(name: &str, kind: FaultKind) -> (u16, &'static str) {
    match (name, kind) {
        ("sms.send_sms", _) => (502, "sms_delivery_failed"),
        ("email.send_email", _) => (502, "email_delivery_failed"),
        (_, FaultKind::Unavailable) => (503, "service_unavailable"),
        (_, FaultKind::Other) => (500, "internal_server_error"),
    }
}

#[track_caller]
fn assert_fault_reply(reply: &Reply, name: &str, kind: FaultKind, what: &str) {
    let (status, error_type) = expected(name, kind);
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{what}: fault in {name} ({kind:?}): {}",
        reply.body
    );
    assert_login_error(reply, status, error_type);
    let message = reply.body["error_message"].as_str().unwrap();
    assert!(
        !message.contains("injected") && !message.contains(name),
        "{what}: internals leak: {message}"
    );
}

struct Channel {
    route: RouteId,
    field: &'static str,
    method_field: &'static str,
}

const SMS: Channel = Channel {
    route: RouteId::SmsLoginOrCreate,
    field: "phone_number",
    method_field: "phone_id",
};
const EMAIL_CHANNEL: Channel = Channel {
    route: RouteId::EmailLoginOrCreate,
    field: "email",
    method_field: "email_id",
};

fn identifier(channel: &Channel, n: usize) -> String {
    if channel.route == RouteId::SmsLoginOrCreate {
        assert!(n < 100);
        format!("+120255501{n:02}")
    } else {
        format!("user{n}@example.com")
    }
}

async fn send(w: &World, channel: &Channel, to: &str) -> Reply {
    w.login(channel.route, json!({ channel.field: to })).await
}

/// The user holding `to` and its method id, straight from the store.
async fn holder(w: &World, to: &str) -> Option<(String, String)> {
    w.store
        .find_by_identifier(&w.app(), &Identifier::parse(to).unwrap())
        .await
        .unwrap()
        .map(|(u, m)| (u.id.as_str().to_owned(), m.as_str().to_owned()))
}

/// login_or_create (sms and email; new and existing users) with each store call and the
/// delivery failing in turn.
#[tokio::test]
async fn login_or_create_fails_cleanly_at_every_step_and_the_retry_succeeds() {
    for channel in [&SMS, &EMAIL_CHANNEL] {
        for existing in [false, true] {
            let w = World::new(Limits::default()).await;
            let mut n = 0;
            let mut next = || {
                n += 1;
                n
            };
            // Record the calls of a clean run.
            let to = identifier(channel, next());
            if existing {
                assert_eq!(send(&w, channel, &to).await.status, StatusCode::OK);
            }
            w.clock.advance_seconds(61);
            w.plan.arm(None);
            let r = send(&w, channel, &to).await;
            let calls = w.plan.disarm();
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert!(
                calls
                    .iter()
                    .any(|c| c.ends_with("send_sms") || c.ends_with("send_email")),
                "{calls:?}"
            );
            if !existing {
                assert!(calls.contains(&"users.create_user"), "{calls:?}");
            }

            for (i, name) in calls.iter().enumerate() {
                for kind in KINDS {
                    let what = format!(
                        "{:?} existing={existing} step {i} ({name}, {kind:?})",
                        channel.route
                    );
                    let to = identifier(channel, next());
                    if existing {
                        let r = send(&w, channel, &to).await;
                        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
                    }
                    let delivered_before: Vec<String> = w
                        .outbox
                        .messages()
                        .into_iter()
                        .filter(|m| m.to == to)
                        .map(|m| m.code)
                        .collect();
                    let existed = holder(&w, &to).await;
                    w.clock.advance_seconds(61);

                    w.plan.arm(Some((i, kind)));
                    let r = send(&w, channel, &to).await;
                    let seen = w.plan.disarm();
                    assert_eq!(&seen[..=i], &calls[..=i], "{what}: the run diverged");
                    assert_fault_reply(&r, name, kind, &what);

                    // Nothing new delivered; no duplicate user.
                    let delivered: Vec<String> = w
                        .outbox
                        .messages()
                        .into_iter()
                        .filter(|m| m.to == to)
                        .map(|m| m.code)
                        .collect();
                    assert_eq!(delivered, delivered_before, "{what}");
                    assert!(w.users_holding(&to) <= 1, "{what}");
                    let after = holder(&w, &to).await;
                    if let Some(before) = &existed {
                        assert_eq!(after.as_ref(), Some(before), "{what}");
                    }
                    // No stored code but one that was delivered.
                    if let Some((_, method_id)) = &after
                        && let Some(c) = w.challenge(method_id).await
                        && c.is_live(w.clock.now(), 5)
                    {
                        let mut known = false;
                        for code in &delivered {
                            known |= w.code_matches(method_id, code).await;
                        }
                        assert!(known, "{what}: a live code nobody received is stored");
                    }

                    // The retry succeeds at once: the failed attempt used up no send limit.
                    let r = send(&w, channel, &to).await;
                    assert_eq!(r.status, StatusCode::OK, "{what}: retry: {}", r.body);
                    assert_eq!(
                        r.body["user_created"],
                        json!(after.is_none()),
                        "{what}: {}",
                        r.body
                    );
                    assert_eq!(w.users_holding(&to), 1, "{what}");
                    let method_id = r.body[channel.method_field].as_str().unwrap().to_owned();
                    if let Some((_, m)) = &after {
                        assert_eq!(&method_id, m, "{what}");
                    }
                    let code = w
                        .outbox
                        .last_to(&to)
                        .map(|m| m.code)
                        .unwrap_or_else(|| panic!("{what}: nothing delivered on retry"));
                    // The send after it is limited: the retry was counted, once.
                    let r = send(&w, channel, &to).await;
                    assert_login_error(&r, 429, "too_many_requests");
                    assert_eq!(r.body["retry_after_seconds"], json!(30), "{what}");
                    // The delivered code is the one that works.
                    let r = w.authenticate(&method_id, &code).await;
                    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
                }
            }
        }
    }
}

/// Sends a code to a new number and moves the clock past the secret's touch interval, so that
/// every authenticate makes the same calls. Returns (user_id, phone_id, code).
async fn code_for(w: &World, n: usize) -> (String, String, String) {
    let to = identifier(&SMS, n);
    let r = send(w, &SMS, &to).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.clock.advance_seconds(61);
    (
        r.body["user_id"].as_str().unwrap().to_owned(),
        r.body["phone_id"].as_str().unwrap().to_owned(),
        w.outbox.last_to(&to).unwrap().code,
    )
}

/// Records the calls of a clean authenticate with the right code and a new session.
async fn authenticate_calls(w: &World) -> Vec<&'static str> {
    let (_, phone_id, code) = code_for(w, 0).await;
    w.plan.arm(None);
    let r = w.authenticate(&phone_id, &code).await;
    let calls = w.plan.disarm();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(calls.contains(&"challenges.consume"), "{calls:?}");
    calls
}

#[tokio::test]
async fn authenticate_faults_up_to_consume_leave_the_code_usable() {
    let w = World::new(relaxed()).await;
    let calls = authenticate_calls(&w).await;
    let consume = calls
        .iter()
        .position(|c| *c == "challenges.consume")
        .unwrap();
    let mut n = 0;
    for (i, name) in calls.iter().enumerate().take(consume + 1) {
        for kind in KINDS {
            n += 1;
            let what = format!("step {i} ({name}, {kind:?})");
            let (user_id, phone_id, code) = code_for(&w, n).await;
            w.plan.arm(Some((i, kind)));
            let r = w.authenticate(&phone_id, &code).await;
            w.plan.disarm();
            assert_fault_reply(&r, name, kind, &what);
            let c = w.challenge(&phone_id).await.unwrap();
            assert!(!c.consumed && c.attempts == 0, "{what}: {c:?}");
            let user = w.user_record(&user_id).await.unwrap();
            assert_eq!(user.failed_attempts, 0, "{what}");
            let r = w.list_sessions(&user_id).await;
            assert_eq!(r.body["sessions"], json!([]), "{what}");
            // The retry succeeds with the same code.
            let r = w.authenticate(&phone_id, &code).await;
            assert_eq!(r.status, StatusCode::OK, "{what}: retry: {}", r.body);
            let r = w.list_sessions(&user_id).await;
            assert_eq!(r.body["sessions"].as_array().unwrap().len(), 1, "{what}");
        }
    }
}

/// A fault after the code was consumed (recording the success, creating the session) answers
/// 503/500, and the code is given back (`ChallengeStore::restore`), so that the retry with the
/// same code succeeds.
#[tokio::test]
async fn authenticate_faults_after_consume_leave_a_retry_that_works() {
    let w = World::new(relaxed()).await;
    let calls = authenticate_calls(&w).await;
    let consume = calls
        .iter()
        .position(|c| *c == "challenges.consume")
        .unwrap();
    let mut n = 0;
    let mut failures = Vec::new();
    for (i, name) in calls.iter().enumerate().skip(consume + 1) {
        for kind in KINDS {
            n += 1;
            let what = format!("step {i} ({name}, {kind:?})");
            let (_, phone_id, code) = code_for(&w, n).await;
            w.plan.arm(Some((i, kind)));
            let r = w.authenticate(&phone_id, &code).await;
            w.plan.disarm();
            assert_fault_reply(&r, name, kind, &what);
            let r = w.authenticate(&phone_id, &code).await;
            if r.status != StatusCode::OK {
                failures.push(format!(
                    "{what}: retry answered {} {}",
                    r.status, r.body["error_type"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn wrong_code_faults_fail_cleanly_and_count_at_most_once() {
    let w = World::new(relaxed()).await;
    let (_, phone_id, code) = code_for(&w, 0).await;
    w.plan.arm(None);
    let r = w.authenticate(&phone_id, &wrong(&code)).await;
    let calls = w.plan.disarm();
    assert_login_error(&r, 404, "otp_code_not_found");
    assert!(
        calls.contains(&"challenges.record_wrong_attempt"),
        "{calls:?}"
    );
    let mut n = 0;
    for (i, name) in calls.iter().enumerate() {
        for kind in KINDS {
            n += 1;
            let what = format!("step {i} ({name}, {kind:?})");
            let (user_id, phone_id, code) = code_for(&w, n).await;
            w.plan.arm(Some((i, kind)));
            let r = w.authenticate(&phone_id, &wrong(&code)).await;
            w.plan.disarm();
            assert_fault_reply(&r, name, kind, &what);
            let c = w.challenge(&phone_id).await.unwrap();
            let user = w.user_record(&user_id).await.unwrap();
            assert!(c.attempts <= 1 && user.failed_attempts <= 1, "{what}");
            assert!(user.lock.is_none(), "{what}");
            // The code still works.
            let r = w.authenticate(&phone_id, &code).await;
            assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
        }
    }
}

#[tokio::test]
async fn sessions_authenticate_faults_fail_cleanly_and_the_retry_succeeds() {
    let w = World::new(relaxed()).await;
    let (_, _, session) = w.session_for(PHONE).await;
    let token = session["session_token"].as_str().unwrap().to_owned();
    let jwt = session["session_jwt"].as_str().unwrap().to_owned();
    for body in [
        json!({"session_token": token, "session_duration_minutes": 30}),
        json!({"session_jwt": jwt, "session_custom_claims": {"plan": "pro"}}),
    ] {
        w.clock.advance_seconds(61);
        w.plan.arm(None);
        let r = w.login(RouteId::SessionsAuthenticate, body.clone()).await;
        let calls = w.plan.disarm();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for (i, name) in calls.iter().enumerate() {
            for kind in KINDS {
                let what = format!("step {i} ({name}, {kind:?})");
                w.clock.advance_seconds(61);
                w.plan.arm(Some((i, kind)));
                let r = w.login(RouteId::SessionsAuthenticate, body.clone()).await;
                w.plan.disarm();
                assert_fault_reply(&r, name, kind, &what);
                let r = w.login(RouteId::SessionsAuthenticate, body.clone()).await;
                assert_eq!(r.status, StatusCode::OK, "{what}: retry: {}", r.body);
            }
        }
    }
}
