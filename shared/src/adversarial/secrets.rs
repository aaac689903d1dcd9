//! No plaintext secret in the store or the logs. A full flow through `crate::api::handle` (app
//! creation, secret rotation, a test identifier, sms and email login_or_create, authenticate
//! with a session, sessions.authenticate by token and JWT, session extension with a second
//! code, the test identifier's fixed code, wrong codes up to a lock, live codes left unused, a
//! request with a deleted secret, revocation) collects every secret the callers saw; then
//!
//! - everything stored (the backend's dump) must hold none of them, and the stored code records
//!   are checked field by field; and
//! - the logs, captured at TRACE for the service's crates in plain and JSON form, must hold none
//!   of them nor the full phone numbers and email addresses.
//!
//! How each kind is searched:
//!
//! - app secrets, session tokens, JWTs (and their signatures), the management key, the JWT
//!   signing key: long and random, so no line may *contain* them; nor their raw bytes (the
//!   base64url decoded, and the management key's SHA-256) as a list of decimal bytes or in hex.
//! - codes (every code delivered, the test identifier's fixed code): 6 digits, and the text is
//!   full of digits (timestamps, hash bytes, counters), so a substring search would collide by
//!   chance. Instead the text is cut into maximal runs of ASCII digits and no run may *equal* a
//!   code (a code stored or logged is always its own run: `"123456"`, `code=123456`, `x#123456`),
//!   nor, for a code with leading zeros, the code without them (as a number it loses them).
//! - the code-hashing key: 8 of its bytes in a row, as a list or in hex.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::json;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::Target;
use super::support::*;
use crate::api::RouteId;
use crate::crypto::{CodeHasher, sha256, to_hex};
use crate::memory::Outbox;
use crate::ports::{EmailMessage, LogTestMessages, SmsMessage, TestMessageSink};

const TEST_PHONE: &str = "+12025550177";
const TEST_CODE: &str = "864209";

/// Everything secret that the flow saw, and what it made.
#[derive(Default, Debug)]
struct Secrets {
    app_secrets: Vec<String>,
    codes: Vec<String>,
    tokens: Vec<String>,
    jwts: Vec<String>,
    /// (method_id, code): the codes stored for a method at the end.
    stored_codes: Vec<(String, String)>,
    /// Ids the store must show (a positive control of the dump).
    ids: Vec<String>,
}

async fn full_flow(w: &mut World) -> Secrets {
    let mut out = Secrets {
        app_secrets: vec![w.secret.clone()],
        ids: vec![w.app_id.clone()],
        ..Secrets::default()
    };
    let app_id = w.app_id.clone();
    let app = [("app_id", app_id.as_str())];

    // Rotation: a second secret, the first deleted; the rest of the flow uses the second. A
    // third is kept: a live secret of its own in the store.
    let r = w.manage(RouteId::ListSecrets, &app, None).await;
    let first_id = s(&r.body["secrets"][0]["secret_id"]);
    let r = w.manage(RouteId::CreateSecret, &app, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let second = s(&r.body["secret"]);
    out.app_secrets.push(second.clone());
    let r = w.manage(RouteId::CreateSecret, &app, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    out.app_secrets.push(s(&r.body["secret"]));
    let r = w
        .manage(
            RouteId::DeleteSecret,
            &[("app_id", app_id.as_str()), ("secret_id", &first_id)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    w.secret = second;

    // Test identifier with a fixed code.
    w.add_test_identifier(TEST_PHONE, TEST_CODE, w.start.plus_seconds(86_400))
        .await;
    out.codes.push(TEST_CODE.to_owned());

    // SMS and email login_or_create, authenticate with a session.
    let (phone_user, phone_id, sms_code) = w.sms_code(PHONE).await;
    out.codes.push(sms_code.clone());
    out.ids.extend([phone_user, phone_id.clone()]);
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({"email": EMAIL.to_uppercase()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_id = s(&r.body["email_id"]);
    out.ids.extend([s(&r.body["user_id"]), email_id.clone()]);
    let email_code = w.last_code(EMAIL);
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

    // The email's user (another user than the phone's) gets a session, then extends it with a
    // second code; a third code is left live in the store.
    let r = w.authenticate(&email_id, &email_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_token = s(&r.body["session_token"]);
    out.tokens.push(email_token.clone());
    out.jwts.push(s(&r.body["session_jwt"]));
    out.ids.push(s(&r.body["session"]["session_id"]));
    let (_, _, second_email_code) = w.email_code(EMAIL).await;
    out.codes.push(second_email_code.clone());
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": email_id, "code": second_email_code, "session_token": email_token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.jwts.push(s(&r.body["session_jwt"]));
    let (_, _, live_email_code) = w.email_code(EMAIL).await;
    out.codes.push(live_email_code.clone());
    out.stored_codes.push((email_id.clone(), live_email_code));

    // The test identifier: a marked message, nothing delivered, and the fixed code works.
    let (_, test_phone_id, marker) = w.sms_code(TEST_PHONE).await;
    assert_eq!(marker, "(test code)");
    assert!(w.codes_to(TEST_PHONE).is_empty());
    out.stored_codes
        .push((test_phone_id.clone(), TEST_CODE.to_owned()));
    let r = w.authenticate(&test_phone_id, TEST_CODE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.tokens.push(s(&r.body["session_token"]));
    out.jwts.push(s(&r.body["session_jwt"]));
    // Sent again, so that its fixed code is the stored one at the end.
    w.sms_code(TEST_PHONE).await;

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

    // A live, unused sms code of the first user.
    let (_, _, live_sms_code) = w.sms_code(PHONE).await;
    out.codes.push(live_sms_code.clone());
    out.stored_codes.push((phone_id, live_sms_code));

    // A failed request with a deleted secret in it, and a revocation.
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

    // Every code handed to delivery is a code too.
    for message in w.outbox.messages() {
        if message.test {
            continue;
        }
        assert!(message.code.bytes().all(|b| b.is_ascii_digit()));
        if !out.codes.contains(&message.code) {
            out.codes.push(message.code);
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

/// Bytes as a list of decimal bytes (as `Debug` shows them, without the brackets).
fn byte_list(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// (label, needle): what no line may contain.
fn needles(secrets: &Secrets) -> Vec<(String, String)> {
    let mut needles = Vec::new();
    let mut raw = |label: &str, bytes: &[u8]| {
        needles.push((format!("{label}'s raw bytes"), byte_list(bytes)));
        needles.push((format!("{label}'s raw bytes in hex"), to_hex(bytes)));
    };
    for secret in &secrets.app_secrets {
        let random = secret.trim_start_matches("secret-");
        raw("app secret", &URL_SAFE_NO_PAD.decode(random).unwrap());
    }
    for token in &secrets.tokens {
        raw("session token", &URL_SAFE_NO_PAD.decode(token).unwrap());
    }
    for jwt in &secrets.jwts {
        let signature = jwt.rsplit('.').next().unwrap();
        raw(
            "session JWT's signature",
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        );
    }
    raw("management key", MANAGEMENT_KEY.as_bytes());
    raw(
        "management key's SHA-256",
        &sha256(MANAGEMENT_KEY.as_bytes()),
    );
    raw("code key", &CODE_KEY[..8]);
    for secret in &secrets.app_secrets {
        needles.push(("app secret".to_owned(), secret.clone()));
        let random = secret.trim_start_matches("secret-");
        needles.push(("app secret's random part".to_owned(), random.to_owned()));
    }
    for token in &secrets.tokens {
        needles.push(("session token".to_owned(), token.clone()));
    }
    for jwt in &secrets.jwts {
        needles.push(("session JWT".to_owned(), jwt.clone()));
        let signature = jwt.rsplit('.').next().unwrap();
        needles.push(("session JWT's signature".to_owned(), signature.to_owned()));
    }
    needles.push(("management key".to_owned(), MANAGEMENT_KEY.to_owned()));
    needles.push(("JWT signing key".to_owned(), "PRIVATE KEY".to_owned()));
    needles
}

/// Every secret found in `text`, one line each.
fn violations(text: &str, secrets: &Secrets) -> Vec<String> {
    let needles = needles(secrets);
    let mut found = Vec::new();
    for line in text.lines() {
        for (label, needle) in &needles {
            if line.contains(needle.as_str()) {
                found.push(format!("a {label} in: {line:.300}"));
            }
        }
        let runs = digit_runs(line);
        for code in &secrets.codes {
            let trimmed = code.trim_start_matches('0');
            let as_number = trimmed.len() >= 4 && trimmed.len() < code.len();
            if runs
                .iter()
                .any(|run| *run == code || (as_number && *run == trimmed))
            {
                found.push(format!("the code {code} in: {line:.300}"));
            }
        }
    }
    found
}

/// The two tests of this module run one at a time: tracing caches each callsite's interest, and
/// a callsite first hit on another thread while the log test installs its subscriber can be
/// cached as "never", losing events from the capture.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn the_store_holds_no_secret_code_token_or_key(target: Target) {
    let _serial = SERIAL.lock().await;
    let Some(mut w) = World::new(&target, relaxed()).await else {
        return;
    };
    let secrets = full_flow(&mut w).await;
    assert!(secrets.codes.len() >= 8, "{secrets:?}");
    assert!(secrets.tokens.len() >= 3 && secrets.jwts.len() >= 6);
    let dump = w.dump().await;
    // Positive controls: the dump shows the records the flow made, and the search would catch
    // a plaintext secret in every form it looks for.
    for id in &secrets.ids {
        assert!(dump.contains(id.as_str()), "{id} is not in the dump");
    }
    let planted = format!(
        "x#{}\n{}\n[{}]\n{}\n{}",
        secrets.codes[1],
        secrets.codes[2].trim_start_matches('0'),
        byte_list(&URL_SAFE_NO_PAD.decode(&secrets.tokens[1]).unwrap()),
        secrets.tokens[0],
        to_hex(&CODE_KEY),
    );
    assert!(
        violations(&planted, &secrets).len() >= 4,
        "{:?}",
        violations(&planted, &secrets)
    );
    let found = violations(&dump, &secrets);
    assert!(found.is_empty(), "{found:#?}");

    // The stored codes, field by field.
    let unkeyed = CodeHasher::new(&[0u8; 32]).unwrap();
    for (method_id, code) in &secrets.stored_codes {
        let c = w
            .challenge(method_id)
            .await
            .unwrap_or_else(|| panic!("no stored code for {method_id}"));
        assert!(
            w.deps
                .keys
                .code_hasher()
                .expect("the code hash key")
                .matches(&c.hash_context, code, &c.code_hash),
            "the record is the code's: {c:?}"
        );
        assert!(!c.hash_context.contains(code.as_str()), "{c:?}");
        assert_ne!(c.code_hash, sha256(code.as_bytes()), "an unkeyed hash");
        assert_ne!(
            c.code_hash,
            sha256(format!("{}{code}", c.hash_context).as_bytes()),
            "an unkeyed hash"
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
    let tests = w
        .ports
        .configs
        .list_test_identifiers(&w.app())
        .await
        .unwrap();
    assert_eq!(tests.len(), 1);
    assert_ne!(tests[0].code_hash, sha256(TEST_CODE.as_bytes()));
    assert!(!unkeyed.matches(tests[0].id.as_str(), TEST_CODE, &tests[0].code_hash));
    assert!(
        w.deps
            .keys
            .code_hasher()
            .expect("the code hash key")
            .matches(tests[0].id.as_str(), TEST_CODE, &tests[0].code_hash)
    );
}

/// Test messages go both to the outbox (so the flow can read them) and to the deployment's
/// log sink (so its log lines are checked too).
struct OutboxAndLog(Arc<Outbox>);

impl TestMessageSink for OutboxAndLog {
    fn record_sms(&self, message: &SmsMessage) {
        self.0.record_sms(message);
        LogTestMessages.record_sms(message);
    }
    fn record_email(&self, message: &EmailMessage) {
        self.0.record_email(message);
        LogTestMessages.record_email(message);
    }
}

/// An in-memory log sink.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
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

/// The subscriber is the default of the test's own thread: the test's future runs there (the
/// runtime's `block_on`), and so does every request it makes (nothing of a request is spawned).
/// The service's crates log at TRACE, everything else (an SDK) at INFO, as a deployment would.
pub async fn the_logs_hold_no_secret_code_token_or_personal_data(target: Target) {
    let _serial = SERIAL.lock().await;
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new(
            "info,shared=trace,store_dynamodb=trace,delivery_aws=trace,function_runtime=trace",
        ))
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
    let Some(mut w) = World::new(&target, relaxed()).await else {
        return;
    };
    // A callsite registered by another thread while the subscriber was being installed.
    tracing::callsite::rebuild_interest_cache();
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
        "session revoked",
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
    let found = violations(&logs, &secrets);
    assert!(found.is_empty(), "{found:#?}");
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
