//! Fault injection through `shared::api::handle` on `DynamoStore` (moto), ported from
//! `shared/tests/adversarial_faults.rs`: the store (a wrapper around `DynamoStore`) or the
//! delivery fails on the Nth call, for every N of a request's call sequence in turn (recorded
//! from a clean run). Each failure must be a clear 503/500/502 in the contract's shape,
//! duplicate no user, leave no usable code that was not delivered, use up no send limit, and let
//! the retried request (with the faults off) succeed. What is left in DynamoDB after each
//! failure is read back from the table itself.
//!
//! The fault is injected above the store, so a failed call never reaches DynamoDB: this is the
//! failure of a call that did not happen (throttled, unreachable), which is what the adapter's
//! `StoreError::Unavailable` stands for. The last test fails the real SNS sender instead.

mod support;

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
use delivery_aws::SnsSms;
use http::StatusCode;
use serde_json::json;
use shared::api::RouteId;
use shared::clock::Clock;
use shared::service::Limits;
use support::*;

const KINDS: [FaultKind; 2] = [FaultKind::Unavailable, FaultKind::Other];

/// What a request answers when call `name` fails with `kind`.
fn expected(name: &str, kind: FaultKind) -> (u16, &'static str) {
    match (name, kind) {
        ("sms.send_sms", _) => (502, "sms_delivery_failed"),
        ("email.send_email", _) => (502, "email_delivery_failed"),
        (_, FaultKind::Unavailable | FaultKind::Lost) => (503, "service_unavailable"),
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

/// login_or_create (new or existing user) with each store call and the delivery failing in turn.
async fn login_or_create_sweep(channel: &Channel, existing: bool) {
    let Some(w) = World::new(Limits::default()).await else {
        return;
    };
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
    eprintln!("{:?} existing={existing}: {calls:?}", channel.route);

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
            let delivered_before = w.outbox.codes_to(&to);
            let existed = w.holder(&to).await;
            w.clock.advance_seconds(61);

            w.plan.arm(Some((i, kind)));
            let r = send(&w, channel, &to).await;
            let seen = w.plan.disarm();
            assert_eq!(&seen[..=i], &calls[..=i], "{what}: the run diverged");
            assert_fault_reply(&r, name, kind, &what);

            // Nothing new delivered; no duplicate user; an existing user kept its method.
            let delivered = w.outbox.codes_to(&to);
            assert_eq!(delivered, delivered_before, "{what}");
            assert!(w.users_holding(&to).await <= 1, "{what}");
            let after = w.holder(&to).await;
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
            assert_eq!(w.users_holding(&to).await, 1, "{what}");
            let method_id = s(&r.body[channel.method_field]);
            if let Some((_, m)) = &after {
                assert_eq!(&method_id, m, "{what}");
            }
            let code = w
                .outbox
                .last_to(&to)
                .unwrap_or_else(|| panic!("{what}: nothing delivered on retry"));
            assert_eq!(w.outbox.codes_to(&to).len(), delivered.len() + 1, "{what}");
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

#[tokio::test]
async fn sms_login_or_create_of_a_new_user_fails_cleanly_at_every_step() {
    login_or_create_sweep(&SMS, false).await;
}

#[tokio::test]
async fn sms_login_or_create_of_an_existing_user_fails_cleanly_at_every_step() {
    login_or_create_sweep(&SMS, true).await;
}

#[tokio::test]
async fn email_login_or_create_of_a_new_user_fails_cleanly_at_every_step() {
    login_or_create_sweep(&EMAIL_CHANNEL, false).await;
}

#[tokio::test]
async fn email_login_or_create_of_an_existing_user_fails_cleanly_at_every_step() {
    login_or_create_sweep(&EMAIL_CHANNEL, true).await;
}

/// Sends a code to a new number and moves the clock past the secret's touch interval, so that
/// every authenticate makes the same calls. Returns (user_id, phone_id, code).
async fn code_for(w: &World, n: usize) -> (String, String, String) {
    let to = identifier(&SMS, n);
    let r = send(w, &SMS, &to).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.clock.advance_seconds(61);
    (
        s(&r.body["user_id"]),
        s(&r.body["phone_id"]),
        w.outbox.last_to(&to).unwrap(),
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
    eprintln!("authenticate: {calls:?}");
    calls
}

#[tokio::test]
async fn authenticate_faults_up_to_consume_leave_the_code_usable() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
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
/// 503/500, and the code is given back (`ChallengeStore::restore`, a conditional `UpdateItem`
/// on DynamoDB), so that the retry with the same code succeeds, with one session.
#[tokio::test]
async fn authenticate_faults_after_consume_leave_a_retry_that_works() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
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
            let (user_id, phone_id, code) = code_for(&w, n).await;
            w.plan.arm(Some((i, kind)));
            let r = w.authenticate(&phone_id, &code).await;
            w.plan.disarm();
            assert_fault_reply(&r, name, kind, &what);
            let c = w.challenge(&phone_id).await.unwrap();
            if c.consumed {
                failures.push(format!("{what}: the code stayed spent: {c:?}"));
            }
            let r = w.authenticate(&phone_id, &code).await;
            if r.status != StatusCode::OK {
                failures.push(format!(
                    "{what}: retry answered {} {}",
                    r.status, r.body["error_type"]
                ));
                continue;
            }
            let r = w.list_sessions(&user_id).await;
            let sessions = r.body["sessions"].as_array().map_or(0, Vec::len);
            if sessions != 1 {
                failures.push(format!("{what}: {sessions} sessions after the retry"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn wrong_code_faults_fail_cleanly_and_count_at_most_once() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let (_, phone_id, code) = code_for(&w, 0).await;
    w.plan.arm(None);
    let r = w.authenticate(&phone_id, &wrong(&code)).await;
    let calls = w.plan.disarm();
    assert_login_error(&r, 404, "otp_code_not_found");
    assert!(
        calls.contains(&"challenges.record_wrong_attempt"),
        "{calls:?}"
    );
    eprintln!("wrong code: {calls:?}");
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
            assert!(
                c.attempts <= 1 && user.failed_attempts <= 1,
                "{what}: {c:?} {user:?}"
            );
            assert!(user.lock.is_none(), "{what}");
            // The code still works.
            let r = w.authenticate(&phone_id, &code).await;
            assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
        }
    }
}

#[tokio::test]
async fn sessions_authenticate_faults_fail_cleanly_and_the_retry_succeeds() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let (user_id, _, session) = w.session_for(PHONE).await;
    let token = s(&session["session_token"]);
    let jwt = s(&session["session_jwt"]);
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
    let r = w.list_sessions(&user_id).await;
    assert_eq!(
        r.body["sessions"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
}

/// An AWS configuration whose endpoint refuses every connection.
fn unreachable_aws() -> SdkConfig {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "faults",
        )))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build()
}

/// The real SNS sender (`delivery_aws::SnsSms`) cannot reach SNS: 502 `sms_delivery_failed`,
/// for a new user and an existing one; no live code is left in DynamoDB (nobody received one);
/// the send limit is given back, so the retry (with a sender that works) is not refused by the
/// 30-second cooldown, and its code works.
#[tokio::test]
async fn sns_failing_leaves_no_usable_code_and_the_retry_works() {
    let Some(w) = World::new(Limits::default()).await else {
        return;
    };
    let mut broken = w.deps.clone();
    broken.sms = Arc::new(SnsSms::from_sdk_config(&unreachable_aws()));
    for (to, existing) in [(PHONE, false), (OTHER_PHONE, true)] {
        let what = format!("existing={existing}");
        if existing {
            let (_, _, _) = w.sms_code(to).await;
            w.clock.advance_seconds(61);
        }
        let r = call(
            &broken,
            RouteId::SmsLoginOrCreate,
            &[],
            &w.basic(),
            Some(json!({"phone_number": to})),
        )
        .await;
        assert_login_error(&r, 502, "sms_delivery_failed");
        let delivered = w.outbox.codes_to(to);
        assert_eq!(delivered.len(), usize::from(existing), "{what}");
        assert!(w.users_holding(to).await <= 1, "{what}");
        if let Some((_, method_id)) = w.holder(to).await
            && let Some(c) = w.challenge(&method_id).await
            && c.is_live(w.clock.now(), 5)
        {
            let mut known = false;
            for code in &delivered {
                known |= w.code_matches(&method_id, code).await;
            }
            assert!(
                known,
                "{what}: a live code nobody received is stored: {c:?}"
            );
        }
        let r = w
            .login(RouteId::SmsLoginOrCreate, json!({"phone_number": to}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{what}: retry: {}", r.body);
        assert_eq!(w.users_holding(to).await, 1, "{what}");
        let code = w.outbox.last_to(to).unwrap();
        let r = w.authenticate(&s(&r.body["phone_id"]), &code).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
    }
}

// ---------------------------------------------------------------------------------------------
// Lost answers: the call is made (and commits in DynamoDB), then answers an error, as a timeout
// after the write can do to any remote call. The domain cannot tell such a call from one that
// never happened, so the contract's promises about the retry cannot all hold; what must hold is
// security: a clear 5xx, no second user, no code usable twice, no count lost to the attacker's
// advantage. What the retry answers is printed (`--no-capture`) and asserted only where it can
// be guaranteed.

#[tokio::test]
async fn lost_answers_in_login_or_create_leave_no_second_user_and_recover() {
    let Some(w) = World::new(Limits::default()).await else {
        return;
    };
    let mut n = 0;
    let mut observed = Vec::new();
    for existing in [false, true] {
        n += 1;
        let to = identifier(&SMS, n);
        if existing {
            assert_eq!(send(&w, &SMS, &to).await.status, StatusCode::OK);
        }
        w.clock.advance_seconds(61);
        w.plan.arm(None);
        let r = send(&w, &SMS, &to).await;
        let calls = w.plan.disarm();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for (i, name) in calls.iter().enumerate() {
            n += 1;
            let what = format!("existing={existing} step {i} ({name}, answer lost)");
            let to = identifier(&SMS, n);
            if existing {
                let r = send(&w, &SMS, &to).await;
                assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
            }
            let existed = w.holder(&to).await;
            w.clock.advance_seconds(61);
            w.plan.arm(Some((i, FaultKind::Lost)));
            let r = send(&w, &SMS, &to).await;
            let seen = w.plan.disarm();
            assert_eq!(&seen[..=i], &calls[..=i], "{what}: the run diverged");
            assert_fault_reply(&r, name, FaultKind::Lost, &what);
            assert!(w.users_holding(&to).await <= 1, "{what}");
            if let Some(before) = &existed {
                assert_eq!(w.holder(&to).await.as_ref(), Some(before), "{what}");
            }
            // A stored live code that nobody received.
            let delivered = w.outbox.codes_to(&to);
            let mut undelivered_live = false;
            if let Some((_, method_id)) = w.holder(&to).await
                && let Some(c) = w.challenge(&method_id).await
                && c.is_live(w.clock.now(), 5)
            {
                let mut known = false;
                for code in &delivered {
                    known |= w.code_matches(&method_id, code).await;
                }
                undelivered_live = !known;
            }
            let retry = send(&w, &SMS, &to).await;
            observed.push(format!(
                "{what}: answered {}; live code nobody received left: {undelivered_live}; \
                 retry at once: {} {}",
                r.status, retry.status, retry.body["error_type"]
            ));
            // Once the cooldown a counted send may have taken has passed, the send works, for
            // the one user holding the number, and its code works.
            let retry = if retry.status == StatusCode::OK {
                retry
            } else {
                assert_login_error(&retry, 429, "too_many_requests");
                w.clock.advance_seconds(31);
                send(&w, &SMS, &to).await
            };
            assert_eq!(retry.status, StatusCode::OK, "{what}: {}", retry.body);
            assert_eq!(w.users_holding(&to).await, 1, "{what}");
            let code = w.outbox.last_to(&to).unwrap();
            let r = w.authenticate(&s(&retry.body["phone_id"]), &code).await;
            assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
        }
    }
    eprintln!("{}", observed.join("\n"));
}

#[tokio::test]
async fn lost_answers_in_authenticate_never_let_a_code_work_twice() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let calls = authenticate_calls(&w).await;
    let mut observed = Vec::new();
    for (i, name) in calls.iter().enumerate() {
        let what = format!("step {i} ({name}, answer lost)");
        let (user_id, phone_id, code) = code_for(&w, i + 1).await;
        w.plan.arm(Some((i, FaultKind::Lost)));
        let r = w.authenticate(&phone_id, &code).await;
        w.plan.disarm();
        assert_fault_reply(&r, name, FaultKind::Lost, &what);
        let sessions_after_fault = w.list_sessions(&user_id).await.body["sessions"]
            .as_array()
            .map_or(0, Vec::len);
        let retry = w.authenticate(&phone_id, &code).await;
        let again = w.authenticate(&phone_id, &code).await;
        let sessions = w.list_sessions(&user_id).await.body["sessions"]
            .as_array()
            .map_or(0, Vec::len);
        observed.push(format!(
            "{what}: retry {} {}; sessions after the fault {sessions_after_fault}, at the end \
             {sessions}",
            retry.status, retry.body["error_type"]
        ));
        match retry.status {
            StatusCode::OK => {}
            _ => assert_login_error(&retry, 401, "unable_to_auth_otp_code"),
        }
        // Single use holds whatever the retry answered.
        assert_login_error(&again, 401, "unable_to_auth_otp_code");
        let user = w.user_record(&user_id).await.unwrap();
        assert!(user.failed_attempts == 0 && user.lock.is_none(), "{what}");
        // At most one session holder: the fault's reply carried no token, so any session it
        // left behind is one nobody holds.
        assert!(
            sessions <= sessions_after_fault + usize::from(retry.status == StatusCode::OK),
            "{what}"
        );
    }
    eprintln!("{}", observed.join("\n"));
}

#[tokio::test]
async fn lost_answers_in_a_wrong_code_count_at_most_once_and_leave_the_code() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let (_, phone_id, code) = code_for(&w, 0).await;
    w.plan.arm(None);
    let r = w.authenticate(&phone_id, &wrong(&code)).await;
    let calls = w.plan.disarm();
    assert_login_error(&r, 404, "otp_code_not_found");
    for (i, name) in calls.iter().enumerate() {
        let what = format!("step {i} ({name}, answer lost)");
        let (user_id, phone_id, code) = code_for(&w, i + 1).await;
        w.plan.arm(Some((i, FaultKind::Lost)));
        let r = w.authenticate(&phone_id, &wrong(&code)).await;
        w.plan.disarm();
        assert_fault_reply(&r, name, FaultKind::Lost, &what);
        let c = w.challenge(&phone_id).await.unwrap();
        let user = w.user_record(&user_id).await.unwrap();
        assert!(
            c.attempts <= 1 && user.failed_attempts <= 1 && user.lock.is_none(),
            "{what}: {c:?} {user:?}"
        );
        let r = w.authenticate(&phone_id, &code).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
    }
}
