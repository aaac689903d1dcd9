//! No plaintext secret in the store or the logs. A full flow through `shared::api::handle`
//! (app creation, secret rotation, sms and email login_or_create, authenticate with a session,
//! sessions.authenticate by token and JWT, session extension, a test identifier, wrong codes up
//! to a lock, revocation) collects every secret the callers saw; then
//!
//! - the store (`MemoryStore::dump_for_inspection`, every stored record's Debug form) must hold
//!   none of them, and
//! - the logs, captured at TRACE in plain and JSON form, must hold none of them nor the full
//!   phone numbers and email addresses.
//!
//! How codes are searched: a code is 6 digits, and the dump and logs are full of digits
//! (timestamps, hash bytes, durations), so a substring search would collide by chance. Instead
//! the text is cut into maximal runs of ASCII digits and no run may *equal* a code: a stored or
//! logged code (`"123456"`, `code=123456`, `123456,`) is always its own run. The challenge
//! records are also checked field by field: the hash is not an unkeyed SHA-256 of the code and
//! does not verify without the deployment's code key, and the hash context holds no code.
//! Tokens, secrets, JWTs and keys are long and random, so they are searched as exact strings,
//! along with the raw bytes behind the base64 of tokens and secrets (as `Debug` would print them).

mod adversarial_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use adversarial_support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};
use shared::api::RouteId;
use shared::clock::Timestamp;
use shared::crypto::{CodeHasher, sha256};
use shared::ports::{ChallengeStore, LogTestMessages, TestMessageSink};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

const TEST_PHONE: &str = "+12025550177";
const TEST_CODE: &str = "864209";

/// Everything secret that the flow saw.
#[derive(Default, Debug)]
struct Secrets {
    app_secrets: Vec<String>,
    codes: Vec<String>,
    tokens: Vec<String>,
    jwts: Vec<String>,
    /// (method_id, code): the codes that were stored for a method, to check the records.
    stored_codes: Vec<(String, String)>,
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

async fn full_flow(w: &mut World) -> Secrets {
    let mut out = Secrets {
        app_secrets: vec![w.secret.clone()],
        ..Secrets::default()
    };
    let m = Auth::Management;
    let app = [("app_id", w.app_id.as_str())];

    // Rotation: a second secret, the first deleted; the rest of the flow uses the second.
    let r = call(&w.deps, RouteId::ListSecrets, &app, &m, None).await;
    let first_id = s(&r.body["secrets"][0]["secret_id"]);
    let r = call(&w.deps, RouteId::CreateSecret, &app, &m, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let second = s(&r.body["secret"]);
    out.app_secrets.push(second.clone());
    let r = call(
        &w.deps,
        RouteId::DeleteSecret,
        &[("app_id", w.app_id.as_str()), ("secret_id", &first_id)],
        &m,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    w.secret = second;

    // Test identifier with a fixed code.
    let valid_until = Timestamp(START.0 + 86_400).to_rfc3339();
    let r = call(
        &w.deps,
        RouteId::CreateTestIdentifier,
        &app,
        &m,
        Some(json!({"identifier": TEST_PHONE, "code": TEST_CODE, "valid_until": valid_until})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(
        !r.body.to_string().contains(TEST_CODE),
        "the code is never echoed"
    );
    out.codes.push(TEST_CODE.to_owned());

    // SMS and email login_or_create, authenticate with a session.
    let (_, phone_id, sms_code) = w.sms_code(PHONE).await;
    out.codes.push(sms_code.clone());
    out.stored_codes.push((phone_id.clone(), sms_code.clone()));
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({"email": EMAIL.to_uppercase()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_id = s(&r.body["email_id"]);
    let email_code = w.outbox.last_to(EMAIL).unwrap().code;
    out.codes.push(email_code.clone());

    let r = w.authenticate(&phone_id, &sms_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = s(&r.body["session_token"]);
    out.tokens.push(token.clone());
    out.jwts.push(s(&r.body["session_jwt"]));

    // sessions.authenticate by token and by JWT.
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": token, "session_duration_minutes": 120, "session_custom_claims": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let jwt = s(&r.body["session_jwt"]);
    out.jwts.push(jwt.clone());
    let r = w
        .login(RouteId::SessionsAuthenticate, json!({"session_jwt": jwt}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.jwts.push(s(&r.body["session_jwt"]));

    // The email's user (another user than the phone's) gets a session, then extends it with
    // a second code.
    let r = w.authenticate(&email_id, &email_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_token = s(&r.body["session_token"]);
    out.tokens.push(email_token.clone());
    out.jwts.push(s(&r.body["session_jwt"]));
    let (_, _, second_email_code) = w.email_code(EMAIL).await;
    out.codes.push(second_email_code.clone());
    out.stored_codes
        .push((email_id.clone(), second_email_code.clone()));
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": email_id, "code": second_email_code, "session_token": email_token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.jwts.push(s(&r.body["session_jwt"]));

    // The test identifier: a marked message, and the fixed code authenticates.
    let (_, test_phone_id, marker) = w.sms_code(TEST_PHONE).await;
    assert_eq!(marker, "(test code)");
    let r = w.authenticate(&test_phone_id, TEST_CODE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.tokens.push(s(&r.body["session_token"]));
    out.jwts.push(s(&r.body["session_jwt"]));

    // Wrong codes up to a lock (warn logs), a live code left in the store.
    let (other_user, other_phone_id, first) = w.sms_code(OTHER_PHONE).await;
    out.codes.push(first.clone());
    for _ in 0..5 {
        let r = w.authenticate(&other_phone_id, &wrong(&first)).await;
        assert_login_error(&r, 404, "otp_code_not_found");
    }
    let (_, _, second) = w.sms_code(OTHER_PHONE).await;
    out.codes.push(second.clone());
    out.stored_codes
        .push((other_phone_id.clone(), second.clone()));
    for _ in 0..5 {
        let r = w.authenticate(&other_phone_id, &wrong(&second)).await;
        assert_login_error(&r, 404, "otp_code_not_found");
    }
    let r = w.get_user(&other_user).await;
    assert_eq!(r.body["is_locked"], json!(true), "{}", r.body);
    let r = w.authenticate(&other_phone_id, &second).await;
    assert_login_error(&r, 429, "user_lock_limit_reached");

    // A failed request with credentials in it, and a revocation.
    let r = call(
        &w.deps,
        RouteId::SmsSend,
        &[],
        &Auth::Basic(w.app_id.clone(), out.app_secrets[0].clone()),
        Some(json!({"phone_number": PHONE})),
    )
    .await;
    assert_login_error(&r, 401, "unauthorized_credentials");
    let r = w
        .login(RouteId::SessionsRevoke, json!({"session_token": token}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Every code the outbox shows (other than the test marker) is a code too.
    for message in w.outbox.messages() {
        if message.code != "(test code)" {
            assert!(message.code.bytes().all(|b| b.is_ascii_digit()));
            if !out.codes.contains(&message.code) {
                out.codes.push(message.code);
            }
        }
    }
    out
}

/// Maximal runs of ASCII digits.
fn digit_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .collect()
}

/// The strings that must appear in neither the store nor the logs, with a label each.
fn secret_strings(secrets: &Secrets) -> Vec<(String, String)> {
    let mut needles = Vec::new();
    for secret in &secrets.app_secrets {
        needles.push(("app secret".to_owned(), secret.clone()));
        let random = secret.trim_start_matches("secret-");
        needles.push(("app secret's random part".to_owned(), random.to_owned()));
        let bytes = URL_SAFE_NO_PAD.decode(random).unwrap();
        needles.push(("app secret's raw bytes".to_owned(), format!("{bytes:?}")));
    }
    for token in &secrets.tokens {
        needles.push(("session token".to_owned(), token.clone()));
        let bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
        needles.push(("session token's raw bytes".to_owned(), format!("{bytes:?}")));
    }
    for jwt in &secrets.jwts {
        needles.push(("session JWT".to_owned(), jwt.clone()));
        let signature = jwt.rsplit('.').next().unwrap();
        needles.push(("session JWT's signature".to_owned(), signature.to_owned()));
    }
    needles.push(("management key".to_owned(), MANAGEMENT_KEY.to_owned()));
    let key_bytes: Vec<String> = CODE_KEY[..8].iter().map(u8::to_string).collect();
    needles.push(("code key".to_owned(), key_bytes.join(", ")));
    needles.push(("code key (hex)".to_owned(), "a5a5a5a5a5a5a5a5".to_owned()));
    needles
}

#[track_caller]
fn assert_holds_no_secret(text: &str, secrets: &Secrets, where_: &str) {
    for (label, needle) in secret_strings(secrets) {
        assert!(
            !text.contains(&needle),
            "a {label} is in the {where_}: {needle:.60}"
        );
    }
    let runs = digit_runs(text);
    for code in &secrets.codes {
        assert!(
            !runs.contains(&code.as_str()),
            "the code {code} is in the {where_}"
        );
    }
}

/// The two tests of this file run one at a time: tracing caches each callsite's interest, and a
/// callsite first hit on another thread while the log test installs its subscriber can be
/// cached as "never", losing events from the capture.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_store_holds_no_secret_code_or_token() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new(relaxed()).await;
    let secrets = full_flow(&mut w).await;
    assert!(secrets.codes.len() >= 6, "{secrets:?}");
    let dump = w.store.dump_for_inspection();
    // Positive control: the dump does show the records.
    assert!(
        dump.contains(&w.app_id) && dump.contains("code_hash"),
        "{dump:.400}"
    );
    assert_holds_no_secret(&dump, &secrets, "store");

    // The stored codes, field by field.
    let unkeyed = CodeHasher::new(&[0u8; 32]).unwrap();
    for (method_id, code) in &secrets.stored_codes {
        let c = w
            .store
            .get_challenge(&w.app(), &shared::ids::MethodId::parse(method_id).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no stored code for {method_id}"));
        assert!(
            w.deps
                .keys
                .code_hasher
                .matches(&c.hash_context, code, &c.code_hash),
            "the record is the code's"
        );
        assert!(!c.hash_context.contains(code.as_str()), "{c:?}");
        assert_ne!(
            c.code_hash,
            sha256(code.as_bytes()),
            "an unkeyed hash of the code"
        );
        assert_ne!(
            c.code_hash,
            sha256(format!("{}{code}", c.hash_context).as_bytes()),
            "an unkeyed hash of the code"
        );
        assert!(
            !unkeyed.matches(&c.hash_context, code, &c.code_hash),
            "the hash verifies without the code key"
        );
        assert!(
            !digit_runs(&format!("{c:?}")).contains(&code.as_str()),
            "{c:?}"
        );
    }
    // The test identifier's fixed code likewise.
    let tests = shared::ports::ConfigStore::list_test_identifiers(w.store.as_ref(), &w.app())
        .await
        .unwrap();
    assert_eq!(tests.len(), 1);
    assert_ne!(tests[0].code_hash, sha256(TEST_CODE.as_bytes()));
    assert!(!unkeyed.matches(tests[0].id.as_str(), TEST_CODE, &tests[0].code_hash));
    assert!(
        w.deps
            .keys
            .code_hasher
            .matches(tests[0].id.as_str(), TEST_CODE, &tests[0].code_hash)
    );
}

/// Test messages go both to the outbox (so the flow can read them) and to the deployment's
/// log sink (so its log lines are checked too).
struct OutboxAndLog(Arc<shared::memory::Outbox>);

impl TestMessageSink for OutboxAndLog {
    fn record_sms(&self, message: &shared::ports::SmsMessage) {
        self.0.record_sms(message);
        LogTestMessages.record_sms(message);
    }
    fn record_email(&self, message: &shared::ports::EmailMessage) {
        self.0.record_email(message);
        LogTestMessages.record_email(message);
    }
}

/// An in-memory log sink.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// The subscriber is the default of this thread only: the test runs on a current-thread runtime.
#[tokio::test(flavor = "current_thread")]
async fn the_logs_hold_no_secret_code_token_or_personal_data() {
    let _serial = SERIAL.lock().await;
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(buffer.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .without_time()
                .with_writer(buffer.clone()),
        );
    let guard = tracing::subscriber::set_default(subscriber);
    let mut w = World::new(relaxed()).await;
    w.deps.test_messages = Arc::new(OutboxAndLog(w.outbox.clone()));
    let secrets = full_flow(&mut w).await;
    // An internal error, logged with its detail.
    w.plan.arm(Some((0, FaultKind::Other)));
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    w.plan.disarm();
    assert_login_error(&r, 500, "internal_server_error");
    drop(guard);

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    // Positive control: the flow was logged, identifiers redacted.
    for expected in [
        "code sent",
        "code authenticated",
        "session started",
        "user locked",
        "internal error",
        "test identifier: SMS recorded",
        "+1…77",
        "+1…00",
        "a…@example.com",
        "request-id-",
    ] {
        assert!(
            logs.contains(expected),
            "no {expected:?} in the logs:\n{logs:.2000}"
        );
    }
    assert_holds_no_secret(&logs, &secrets, "logs");
    for personal in [
        PHONE,
        OTHER_PHONE,
        TEST_PHONE,
        "2025550100",
        "2025550101",
        "2025550177",
        EMAIL,
        "ann.lee@",
        "ANN.LEE",
    ] {
        assert!(
            !logs.contains(personal),
            "the logs hold personal data {personal:?}"
        );
    }
}
