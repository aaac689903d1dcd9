//! Faults through `crate::api::handle`. Above the store ([`Faulty`]): the store or delivery fails
//! on the Nth call, for every N of a request's call sequence in turn (recorded from a clean run),
//! in three ways: the call is not made and answers unavailable (what an adapter answers once its
//! retries of throttling or conflicts are spent: 503), or broken (500), or it is made and its
//! answer is lost (503). Below the store, where the backend can inject there: an answer lost
//! after the request was applied (the client retries it with the same idempotency token),
//! throttling and transaction conflicts, once (retried: the request succeeds) or always (503).
//!
//! Every failure must be a clear answer in the contract's shape that tells no internals, and
//! leave the state of a clean failure (nothing of the request stays: no user, no code nobody
//! received, the earlier code of a resend still valid, no send counted, the code tried not
//! spent nor counted) or of a clean success (the request's writes, once: one user, one count,
//! one session, one attempt); and the request, retried, succeeds.
//!
//! Which of the two a failure leaves is the contract's: a send (login_or_create) that did not
//! answer 200 leaves nothing, even when its commit landed and the answer was lost (it is taken
//! back), or its message went out and the sender's answer was lost (the code is taken back); an
//! authenticate whose commit landed keeps it (the code is spent, the wrong attempt counted): a
//! success nobody saw, which is clean. A fault in the write of a secret's `last_used_at` is
//! bookkeeping: the request succeeds.
//!
//! Last, two sends to one number overlap (the first held at its delivery while the second is
//! made) and their deliveries fail: together they must leave what each alone would.

use http::StatusCode;
use serde_json::json;

use super::support::*;
use super::{BelowFault, BelowStore, Target, Times};
use crate::api::RouteId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Sms,
    Email,
}

/// The requests whose every call is swept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// login_or_create to a new identifier, or to one that already has a user and a live code.
    Send { channel: Channel, existing: bool },
    /// authenticate with the right code and a new session.
    AuthRight,
    /// authenticate with a wrong code.
    AuthWrong,
    /// sessions.authenticate by token, extending the session.
    SessionToken,
    /// sessions.authenticate by JWT, updating the custom claims.
    SessionJwt,
}

const ALL: [Request; 8] = [
    Request::Send {
        channel: Channel::Sms,
        existing: false,
    },
    Request::Send {
        channel: Channel::Sms,
        existing: true,
    },
    Request::Send {
        channel: Channel::Email,
        existing: false,
    },
    Request::Send {
        channel: Channel::Email,
        existing: true,
    },
    Request::AuthRight,
    Request::AuthWrong,
    Request::SessionToken,
    Request::SessionJwt,
];

/// What a faulted request must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// What it answers without the fault.
    Clean,
    Error(u16, &'static str),
}

/// What a faulted request must leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Nothing of it: the state of a clean failure.
    Nothing,
    /// Its writes, once: the state of a clean success.
    Applied,
}

/// The state a faulted request starts from.
struct Case {
    /// The identifier sent to, or the user's phone number.
    to: String,
    user_id: Option<String>,
    method_id: Option<String>,
    /// The code the user holds: the earlier code of a resend, the code to authenticate with.
    code: Option<String>,
    token: Option<String>,
    jwt: Option<String>,
    delivered_before: usize,
    counted_before: usize,
}

fn identifier(channel: Channel, n: usize) -> String {
    match channel {
        Channel::Sms => {
            assert!(n < 100, "out of test phone numbers");
            format!("+120255501{n:02}")
        }
        Channel::Email => format!("user{n}@example.com"),
    }
}

fn method_field(request: Request) -> &'static str {
    match request {
        Request::Send {
            channel: Channel::Email,
            ..
        } => "email_id",
        _ => "phone_id",
    }
}

/// Sets up the state `request` needs, on identifier number `n`. With `advance`, then moves the
/// clock past the send cooldown and the secret's touch interval, so that every request of a
/// sweep makes the same calls (the secret's `last_used_at` written among them).
async fn prepare(w: &World, request: Request, n: usize, advance: bool) -> Case {
    let channel = match request {
        Request::Send { channel, .. } => channel,
        _ => Channel::Sms,
    };
    let to = identifier(channel, n);
    let mut case = Case {
        to: to.clone(),
        user_id: None,
        method_id: None,
        code: None,
        token: None,
        jwt: None,
        delivered_before: 0,
        counted_before: 0,
    };
    match request {
        Request::Send {
            existing: false, ..
        } => {}
        Request::Send { existing: true, .. } | Request::AuthRight | Request::AuthWrong => {
            let r = run(
                w,
                Request::Send {
                    channel,
                    existing: false,
                },
                &case,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            case.user_id = Some(s(&r.body["user_id"]));
            case.method_id = Some(s(&r.body[method_field(request)]));
            case.code = Some(w.last_code(&to));
        }
        Request::SessionToken | Request::SessionJwt => {
            let (user_id, phone_id, session) = w.session_for(&to).await;
            case.user_id = Some(user_id);
            case.method_id = Some(phone_id);
            case.token = Some(s(&session["session_token"]));
            case.jwt = Some(s(&session["session_jwt"]));
        }
    }
    case.delivered_before = w.codes_to(&to).len();
    case.counted_before = w.counted_sends(&to).await;
    if advance {
        w.clock.advance_seconds(61);
    }
    case
}

async fn run(w: &World, request: Request, case: &Case) -> Reply {
    let method_id = || case.method_id.clone().unwrap_or_default();
    let code = || case.code.clone().unwrap_or_default();
    match request {
        Request::Send {
            channel: Channel::Sms,
            ..
        } => {
            w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": case.to}))
                .await
        }
        Request::Send {
            channel: Channel::Email,
            ..
        } => {
            w.login(RouteId::EmailLoginOrCreate, json!({"email": case.to}))
                .await
        }
        Request::AuthRight => w.authenticate(&method_id(), &code()).await,
        Request::AuthWrong => w.authenticate(&method_id(), &wrong(&code())).await,
        Request::SessionToken => {
            w.login(
                RouteId::SessionsAuthenticate,
                json!({"session_token": case.token, "session_duration_minutes": 30}),
            )
            .await
        }
        Request::SessionJwt => {
            w.login(
                RouteId::SessionsAuthenticate,
                json!({"session_jwt": case.jwt, "session_custom_claims": {"plan": "pro"}}),
            )
            .await
        }
    }
}

/// The answer and the state a fault above the store must leave.
fn expected(request: Request, call: &str, kind: FaultKind) -> (Answer, Effect) {
    match call {
        "apps.touch_secret" => return (Answer::Clean, Effect::Applied),
        "sms.send_sms" => return (Answer::Error(502, "sms_delivery_failed"), Effect::Nothing),
        "email.send_email" => {
            return (Answer::Error(502, "email_delivery_failed"), Effect::Nothing);
        }
        _ => {}
    }
    let answer = match kind {
        FaultKind::Unavailable | FaultKind::Lost => Answer::Error(503, "service_unavailable"),
        FaultKind::Other => Answer::Error(500, "internal_server_error"),
    };
    let writes = call == "login.commit" || call == "login.touch_session";
    let effect = match request {
        // A send whose commit landed without an answer is taken back.
        Request::Send { .. } => Effect::Nothing,
        _ if writes && kind == FaultKind::Lost => Effect::Applied,
        _ => Effect::Nothing,
    };
    (answer, effect)
}

#[track_caller]
fn assert_clean_answer(request: Request, case: &Case, reply: &Reply, what: &str) {
    match request {
        Request::Send { existing, .. } => {
            assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.body);
            assert_eq!(
                reply.body["user_created"],
                json!(!existing),
                "{what}: {}",
                reply.body
            );
        }
        Request::AuthWrong => {
            assert_login_error(reply, 404, "otp_code_not_found");
            assert_eq!(reply.body["attempts_remaining"], json!(4), "{what}");
        }
        Request::AuthRight | Request::SessionToken | Request::SessionJwt => {
            assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.body);
            assert_eq!(
                reply.body["user"]["user_id"],
                json!(case.user_id),
                "{what}: {}",
                reply.body
            );
        }
    }
}

/// The request answered `answer` and left `effect`; then it (or the login it was part of) is
/// retried and succeeds. `lost_delivery`: the message went out and the sender's answer was lost.
#[allow(clippy::too_many_arguments)]
async fn check(
    w: &World,
    request: Request,
    case: &Case,
    answer: Answer,
    effect: Effect,
    reply: &Reply,
    lost_delivery: bool,
    what: &str,
) {
    match answer {
        Answer::Clean => assert_clean_answer(request, case, reply, what),
        Answer::Error(status, error_type) => {
            assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.body);
            assert_login_error(reply, status, error_type);
            let message = reply.body["error_message"].as_str().unwrap_or_default();
            assert!(
                !message.contains("injected") && !message.contains("login."),
                "{what}: internals leak: {message}"
            );
        }
    }
    let user_id = case.user_id.clone().unwrap_or_default();
    let method_id = case.method_id.clone().unwrap_or_default();
    let code = case.code.clone().unwrap_or_default();
    match (request, effect) {
        (Request::Send { existing, .. }, Effect::Nothing) => {
            let delivered = w.codes_to(&case.to);
            let extra = usize::from(lost_delivery);
            assert_eq!(
                delivered.len(),
                case.delivered_before + extra,
                "{what}: delivered"
            );
            let holder = w.holder(&case.to).await;
            if existing {
                assert_eq!(
                    holder,
                    Some((user_id.clone(), method_id.clone())),
                    "{what}: the identifier's user changed"
                );
                assert!(
                    w.code_is_live(&method_id, &code).await,
                    "{what}: the earlier code of a resend that failed is no longer valid: {:?}",
                    w.challenge(&method_id).await
                );
            } else {
                assert_eq!(
                    holder, None,
                    "{what}: a failed login_or_create left its new user"
                );
            }
            assert_eq!(
                w.users_holding(&case.to).await,
                usize::from(existing),
                "{what}: users holding {}",
                case.to
            );
            assert_eq!(
                w.counted_sends(&case.to).await,
                case.counted_before,
                "{what}: a failed send was counted"
            );
            // The retry succeeds at once (the failure used up no send limit), once.
            let r = run(w, request, case).await;
            assert_clean_answer(request, case, &r, &format!("{what}: retry"));
            delivered_send_works(
                w,
                request,
                case,
                &r,
                case.delivered_before + extra + 1,
                what,
            )
            .await;
        }
        (Request::Send { .. }, Effect::Applied) => {
            delivered_send_works(w, request, case, reply, case.delivered_before + 1, what).await;
        }
        (Request::AuthRight, Effect::Nothing) => {
            let c = w.challenge(&method_id).await.expect("the code");
            assert!(!c.consumed && c.attempts == 0, "{what}: {c:?}");
            let user = w.user_record(&user_id).await.expect("the user");
            assert_eq!(user.failed_attempts, 0, "{what}");
            assert_eq!(w.session_count(&user_id).await, 0, "{what}: sessions");
            let r = run(w, request, case).await;
            assert_clean_answer(request, case, &r, &format!("{what}: retry"));
            assert_eq!(w.session_count(&user_id).await, 1, "{what}: sessions");
        }
        (Request::AuthRight, Effect::Applied) => {
            let c = w.challenge(&method_id).await.expect("the code");
            assert!(c.consumed && c.attempts == 0, "{what}: {c:?}");
            let user = w.user_record(&user_id).await.expect("the user");
            assert_eq!(user.failed_attempts, 0, "{what}");
            assert_eq!(w.session_count(&user_id).await, 1, "{what}: sessions");
            if reply.status != StatusCode::OK {
                // A success nobody saw: the code is spent, and a new one logs the user in.
                let r = run(w, request, case).await;
                assert_login_error(&r, 401, "unable_to_auth_otp_code");
                let r = w
                    .login(RouteId::SmsLoginOrCreate, json!({"phone_number": case.to}))
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
                let r = w.authenticate(&method_id, &w.last_code(&case.to)).await;
                assert_eq!(r.status, StatusCode::OK, "{what}: new code: {}", r.body);
            }
        }
        (Request::AuthWrong, effect) => {
            let counted = u32::from(effect == Effect::Applied);
            let c = w.challenge(&method_id).await.expect("the code");
            let user = w.user_record(&user_id).await.expect("the user");
            assert_eq!(
                (c.attempts, user.failed_attempts),
                (counted, counted),
                "{what}: the wrong attempt counted on the code and the user"
            );
            assert!(user.lock.is_none(), "{what}");
            // The right code still works.
            let r = w.authenticate(&method_id, &code).await;
            assert_eq!(r.status, StatusCode::OK, "{what}: right code: {}", r.body);
        }
        (Request::SessionToken | Request::SessionJwt, _) => {
            let r = run(w, request, case).await;
            assert_clean_answer(request, case, &r, &format!("{what}: retry"));
            assert_eq!(w.session_count(&user_id).await, 1, "{what}: sessions");
        }
    }
}

/// The request answered as without a fault, and left its writes, once.
async fn check_clean(w: &World, request: Request, case: &Case, reply: &Reply, what: &str) {
    let (answer, effect) = (Answer::Clean, Effect::Applied);
    check(w, request, case, answer, effect, reply, false, what).await;
}

/// A send answered 200: its code was delivered (`delivered` codes in all), the one user holds
/// the identifier, the send was counted once, and the delivered code works.
async fn delivered_send_works(
    w: &World,
    request: Request,
    case: &Case,
    reply: &Reply,
    delivered: usize,
    what: &str,
) {
    let method_id = s(&reply.body[method_field(request)]);
    if let Some(before) = &case.method_id {
        assert_eq!(&method_id, before, "{what}: another method");
        assert_eq!(Some(s(&reply.body["user_id"])), case.user_id, "{what}");
    }
    assert_eq!(
        w.codes_to(&case.to).len(),
        delivered,
        "{what}: delivered codes"
    );
    assert_eq!(w.users_holding(&case.to).await, 1, "{what}: users");
    assert_eq!(
        w.holder(&case.to).await.map(|(_, m)| m),
        Some(method_id.clone()),
        "{what}: holder"
    );
    assert_eq!(
        w.counted_sends(&case.to).await,
        case.counted_before + 1,
        "{what}: the send was not counted exactly once"
    );
    let r = w.authenticate(&method_id, &w.last_code(&case.to)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{what}: the delivered code: {}",
        r.body
    );
}

/// The clean run of `request`: its above-store calls (for a sweep), checked like any other.
async fn clean_calls(w: &World, request: Request, n: usize, advance: bool) -> Vec<&'static str> {
    let case = prepare(w, request, n, advance).await;
    w.plan.arm(None);
    let r = run(w, request, &case).await;
    let calls = w.plan.disarm();
    let what = format!("{request:?} clean run");
    check_clean(w, request, &case, &r, &what).await;
    let essential = match request {
        Request::SessionToken => "login.touch_session",
        _ => "login.commit",
    };
    assert!(calls.contains(&essential), "{what}: {calls:?}");
    eprintln!("{what}: {calls:?}");
    calls
}

/// Fails every call of `request` in turn, in each of the three ways.
async fn sweep(target: Target, request: Request) {
    let limits = match request {
        Request::Send { .. } => send_limits(),
        _ => relaxed(),
    };
    let Some(w) = World::new(&target, limits).await else {
        return;
    };
    let calls = clean_calls(&w, request, 0, true).await;
    let mut n = 0;
    for (i, call) in calls.iter().enumerate() {
        for kind in KINDS {
            n += 1;
            let what = format!("{request:?}: step {i} ({call}, {kind:?})");
            let case = prepare(&w, request, n, true).await;
            w.plan.arm(Some((i, kind)));
            let reply = run(&w, request, &case).await;
            let seen = w.plan.disarm();
            assert_eq!(&seen[..=i], &calls[..=i], "{what}: the run diverged");
            let (answer, effect) = expected(request, call, kind);
            let lost_delivery =
                kind == FaultKind::Lost && matches!(*call, "sms.send_sms" | "email.send_email");
            check(
                &w,
                request,
                &case,
                answer,
                effect,
                &reply,
                lost_delivery,
                &what,
            )
            .await;
        }
    }
}

pub async fn sms_login_or_create_of_a_new_user_fails_cleanly_at_every_step(target: Target) {
    sweep(target, ALL[0]).await;
}

pub async fn sms_login_or_create_of_an_existing_user_fails_cleanly_at_every_step(target: Target) {
    sweep(target, ALL[1]).await;
}

pub async fn email_login_or_create_of_a_new_user_fails_cleanly_at_every_step(target: Target) {
    sweep(target, ALL[2]).await;
}

pub async fn email_login_or_create_of_an_existing_user_fails_cleanly_at_every_step(target: Target) {
    sweep(target, ALL[3]).await;
}

pub async fn authenticate_with_the_right_code_fails_cleanly_at_every_step(target: Target) {
    sweep(target, Request::AuthRight).await;
}

pub async fn authenticate_with_a_wrong_code_fails_cleanly_at_every_step(target: Target) {
    sweep(target, Request::AuthWrong).await;
}

pub async fn sessions_authenticate_fails_cleanly_at_every_step(target: Target) {
    sweep(target.clone(), Request::SessionToken).await;
    sweep(target, Request::SessionJwt).await;
}

// ---------------------------------------------------------------------------------------------
// Below the store.

/// A world for faults below the store: relaxed limits and a clock that stands still, so that
/// after one warm-up request (which writes the secret's `last_used_at`) every request makes only
/// its own calls.
async fn steady_world(target: &Target) -> Option<World> {
    let w = World::new(target, relaxed()).await?;
    let r = w
        .get_user("user-00000000-0000-4000-8000-000000000000")
        .await;
    assert_login_error(&r, 404, "user_not_found");
    Some(w)
}

/// The requests per operation that `request` makes below the store, from a clean run.
async fn clean_operations(
    w: &World,
    below: &dyn BelowStore,
    request: Request,
    n: usize,
) -> Vec<(String, u32)> {
    let case = prepare(w, request, n, false).await;
    let before = below.requests();
    let r = run(w, request, &case).await;
    let after = below.requests();
    let what = format!("{request:?} clean run");
    check_clean(w, request, &case, &r, &what).await;
    let made: Vec<(String, u32)> = after
        .into_iter()
        .filter_map(|(op, count)| {
            let made = count - before.get(&op).copied().unwrap_or(0);
            (made > 0).then_some((op, made))
        })
        .collect();
    assert!(!made.is_empty(), "{what}: no request below the store");
    eprintln!("{what}: {made:?} below the store");
    made
}

/// Runs `request` on a fresh case with `fault` armed below the store, and checks it.
#[allow(clippy::too_many_arguments)]
async fn below_case(
    w: &World,
    below: &dyn BelowStore,
    request: Request,
    n: usize,
    (operation, fault, times): (&str, BelowFault, Times),
    answer: Answer,
    effect: Effect,
) {
    let what = format!("{request:?}: {fault:?} {times:?} on {operation}");
    let case = prepare(w, request, n, false).await;
    below.inject(operation, fault, times);
    let reply = run(w, request, &case).await;
    below.disarm();
    check(w, request, &case, answer, effect, &reply, false, &what).await;
}

/// Below the store, every request of a clean run loses its answer in turn: the request was
/// applied, the client retries it (a transaction with the same idempotency token, which the
/// store must recognise and not apply again). The request must succeed as if nothing happened:
/// one user, one count, one code that works, one session, one wrong attempt.
pub async fn lost_answers_below_the_store_are_applied_once(target: Target) {
    let Some(w) = steady_world(&target).await else {
        return;
    };
    let Some(below) = w.below() else {
        eprintln!(
            "notice: this backend injects no faults below the store; its lost answers are the \
             above-store sweeps' (the call is made, its answer lost)"
        );
        return;
    };
    let mut n = 0;
    for request in ALL {
        n += 1;
        for (operation, count) in clean_operations(&w, below, request, n).await {
            for nth in 1..=count {
                n += 1;
                let fault = (operation.as_str(), BelowFault::LoseAnswer, Times::Nth(nth));
                below_case(&w, below, request, n, fault, Answer::Clean, Effect::Applied).await;
            }
        }
    }
}

/// Throttling and transaction conflicts are retried (by the store's client, or the adapter)
/// and, when they do not stop, answered 503 `service_unavailable` with nothing of the request
/// left. Below the store where the backend can inject them: once (the request then succeeds as
/// if nothing happened) and always, on every operation of a clean run of each request (a
/// conflict only on transactions). Else above the store: every store call of each request
/// answers `StoreError::Unavailable`, what an adapter answers once its retries are spent.
pub async fn throttling_and_transaction_conflicts_are_retried_then_answered_503(target: Target) {
    let Some(w) = steady_world(&target).await else {
        return;
    };
    let unavailable = Answer::Error(503, "service_unavailable");
    let mut n = 0;
    for request in ALL {
        n += 1;
        match w.below() {
            Some(below) => {
                for (operation, _) in clean_operations(&w, below, request, n).await {
                    for fault in [BelowFault::Throttle, BelowFault::TransactionConflict] {
                        if !below.applies(&operation, fault) {
                            continue;
                        }
                        for (times, answer, effect) in [
                            (Times::First(1), Answer::Clean, Effect::Applied),
                            (Times::Always, unavailable, Effect::Nothing),
                        ] {
                            n += 1;
                            let armed = (operation.as_str(), fault, times);
                            below_case(&w, below, request, n, armed, answer, effect).await;
                        }
                    }
                }
            }
            None => {
                let case = prepare(&w, request, n, false).await;
                w.plan.arm(None);
                let r = run(&w, request, &case).await;
                let calls = w.plan.disarm();
                let what = format!("{request:?} clean run");
                check(
                    &w,
                    request,
                    &case,
                    Answer::Clean,
                    Effect::Applied,
                    &r,
                    false,
                    &what,
                )
                .await;
                for (i, call) in calls.iter().enumerate() {
                    if !call.starts_with("apps.") && !call.starts_with("login.") {
                        continue;
                    }
                    n += 1;
                    let what = format!("{request:?}: step {i} ({call}) unavailable");
                    let case = prepare(&w, request, n, false).await;
                    w.plan.arm(Some((i, FaultKind::Unavailable)));
                    let reply = run(&w, request, &case).await;
                    w.plan.disarm();
                    let (answer, effect) = expected(request, call, FaultKind::Unavailable);
                    assert_eq!(answer, unavailable, "{what}");
                    check(&w, request, &case, answer, effect, &reply, false, &what).await;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Overlapping sends whose deliveries fail.

/// What the scripted sender does with one message.
struct Step {
    /// Told when the message reaches the sender (its send was committed).
    entered: Option<tokio::sync::oneshot::Sender<()>>,
    /// Waited for before answering.
    release: Option<tokio::sync::oneshot::Receiver<()>>,
    deliver: bool,
}

/// An SMS sender that follows a script, one step per message: it can hold a delivery until the
/// test releases it, so that two sends overlap in a chosen order.
struct Scripted {
    inner: std::sync::Arc<dyn crate::ports::SmsSender>,
    steps: std::sync::Mutex<std::collections::VecDeque<Step>>,
}

#[async_trait::async_trait]
impl crate::ports::SmsSender for Scripted {
    async fn send_sms(
        &self,
        message: &crate::ports::SmsMessage,
    ) -> Result<(), crate::ports::DeliveryError> {
        let step = self
            .steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .expect("a scripted step for every message");
        if let Some(entered) = step.entered {
            let _ = entered.send(());
        }
        if let Some(release) = step.release {
            let _ = release.await;
        }
        if step.deliver {
            self.inner.send_sms(message).await
        } else {
            Err(crate::ports::DeliveryError("scripted failure".into()))
        }
    }
}

/// Two login_or_create for one number overlap: A's send is committed and its delivery held, then
/// B's send (which replaces A's code) is committed and delivered or not, then A's delivery fails.
/// Returns both replies.
async fn overlapping_sends(w: World, b_delivers: bool) -> (std::sync::Arc<World>, Reply, Reply) {
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    let mut w = w;
    w.deps.sms = std::sync::Arc::new(Scripted {
        inner: w.deps.sms.clone(),
        steps: std::sync::Mutex::new(
            [
                Step {
                    entered: Some(entered_tx),
                    release: Some(release_rx),
                    deliver: false,
                },
                Step {
                    entered: None,
                    release: None,
                    deliver: b_delivers,
                },
            ]
            .into(),
        ),
    });
    let w = std::sync::Arc::new(w);
    let a = {
        let w = w.clone();
        tokio::spawn(async move {
            w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
                .await
        })
    };
    entered_rx.await.expect("A's message reaches the sender");
    let b = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    let _ = release_tx.send(());
    let a = a.await.expect("A panicked");
    assert_login_error(&a, 502, "sms_delivery_failed");
    (w, a, b)
}

/// A new number: A creates its user and is held at delivery; B sends to the same number (now
/// A's user's) and its delivery fails too; then A's fails. Nothing was delivered, so nothing of
/// either send may stay: no user, no code, no count.
pub async fn overlapping_failed_sends_to_a_new_number_leave_no_user(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (w, _, b) = overlapping_sends(w, false).await;
    assert_login_error(&b, 502, "sms_delivery_failed");
    assert!(w.codes_to(PHONE).is_empty());
    if let Some((user_id, method_id)) = w.holder(PHONE).await {
        panic!(
            "a user nobody's send was delivered to stayed: {user_id}, its code {:?}, {} sends \
             counted",
            w.challenge(&method_id).await,
            w.counted_sends(PHONE).await
        );
    }
    assert_eq!(w.users_holding(PHONE).await, 0);
    assert_eq!(w.counted_sends(PHONE).await, 0, "undelivered sends counted");
}

/// An existing user holding a delivered code `e`: two resends overlap (A held at delivery, B
/// replacing A's code) and both deliveries fail. Each failed resend puts the code it replaced
/// back, so the user's code `e` must work again.
pub async fn overlapping_failed_resends_give_the_earlier_code_back(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (_, phone_id, earlier) = w.sms_code(PHONE).await;
    let (w, _, b) = overlapping_sends(w, false).await;
    assert_login_error(&b, 502, "sms_delivery_failed");
    assert_eq!(w.codes_to(PHONE), vec![earlier.clone()]);
    assert_eq!(w.counted_sends(PHONE).await, 1, "undelivered sends counted");
    assert!(
        w.code_is_live(&phone_id, &earlier).await,
        "the earlier code no longer works: {:?}",
        w.challenge(&phone_id).await
    );
    let r = w.authenticate(&phone_id, &earlier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The same two resends failing the other way round: A's delivery fails first (while B's is
/// held), then B's. A's code, no longer current, leaves the history, so that B's undo puts back
/// the user's code `e`, not A's undelivered one.
pub async fn overlapping_failed_resends_in_the_other_order_give_the_earlier_code_back(
    target: Target,
) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (_, phone_id, earlier) = w.sms_code(PHONE).await;
    let (a_entered_tx, a_entered_rx) = tokio::sync::oneshot::channel();
    let (a_release_tx, a_release_rx) = tokio::sync::oneshot::channel();
    let (b_entered_tx, b_entered_rx) = tokio::sync::oneshot::channel();
    let (b_release_tx, b_release_rx) = tokio::sync::oneshot::channel();
    let mut w = w;
    w.deps.sms = std::sync::Arc::new(Scripted {
        inner: w.deps.sms.clone(),
        steps: std::sync::Mutex::new(
            [
                Step {
                    entered: Some(a_entered_tx),
                    release: Some(a_release_rx),
                    deliver: false,
                },
                Step {
                    entered: Some(b_entered_tx),
                    release: Some(b_release_rx),
                    deliver: false,
                },
            ]
            .into(),
        ),
    });
    let w = std::sync::Arc::new(w);
    let send = |w: std::sync::Arc<World>| {
        tokio::spawn(async move {
            w.login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
                .await
        })
    };
    let a = send(w.clone());
    a_entered_rx.await.expect("A's message reaches the sender");
    let b = send(w.clone());
    b_entered_rx.await.expect("B's message reaches the sender");
    let _ = a_release_tx.send(());
    let a = a.await.expect("A panicked");
    assert_login_error(&a, 502, "sms_delivery_failed");
    let _ = b_release_tx.send(());
    let b = b.await.expect("B panicked");
    assert_login_error(&b, 502, "sms_delivery_failed");
    assert_eq!(w.codes_to(PHONE), vec![earlier.clone()]);
    assert_eq!(w.counted_sends(PHONE).await, 1, "undelivered sends counted");
    let r = w.authenticate(&phone_id, &earlier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The control: when B's delivery succeeds, B's answer holds after A's fails: the user B was
/// told of stays, with B's code, counted once.
pub async fn a_failed_send_overlapped_by_a_delivered_one_keeps_what_that_one_answered(
    target: Target,
) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (w, _, b) = overlapping_sends(w, true).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    let code = w.last_code(PHONE);
    assert_eq!(
        w.holder(PHONE).await.map(|(user, _)| user),
        Some(s(&b.body["user_id"]))
    );
    assert_eq!(w.counted_sends(PHONE).await, 1);
    let r = w.authenticate(&s(&b.body["phone_id"]), &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
