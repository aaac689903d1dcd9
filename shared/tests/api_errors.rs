//! Every error row of the contract, reached through the HTTP handlers, with its body shape.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, RouteId, handle};
use shared::clock::{FakeClock, Timestamp};
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::identifiers::Identifier;
use shared::ids::{AppId, Home};
use shared::ports::{
    CommitError, CommitToken, DeliveryError, EmailMessage, EmailSender, HomeRecords, Key,
    LoginStore, Record, SmsMessage, SmsSender, StoreError, Versioned, Write, WriteError,
};
use shared::random::SeededRandom;
use shared::service::{Deps, InMemory, Keys, Limits, SendLimits, Settings};

const MANAGEMENT_KEY: &str = "test-management-key";
const PHONE: &str = "+12025550100";
const OTHER_PHONE: &str = "+12025550101";

/// Send limits out of the way: these tests are about other rows.
fn relaxed() -> Limits {
    Limits {
        send: SendLimits {
            cooldown_seconds: 0,
            window_max: 1000,
            window_seconds: 600,
            ip_window_max: 1000,
        },
        ..Limits::default()
    }
}

fn in_memory_with(limits: Limits, clock: Arc<FakeClock>) -> InMemory {
    let keys = Keys::new(
        ManagementKeyHash::of_key(MANAGEMENT_KEY),
        CodeHasher::new(&[7u8; 32]).unwrap(),
        KeyEncryptionKey::from_secret(&"k".repeat(32)).unwrap(),
    );
    let settings = Settings {
        public_base_url: "http://127.0.0.1:3000".into(),
        default_email_from: "no-reply@example.com".into(),
        limits,
        app_cache_seconds: shared::service::DEFAULT_APP_CACHE_SECONDS,
        test_environment: false,
    };
    InMemory::with(keys, settings, clock, Arc::new(SeededRandom::new(42)))
}

enum Auth<'a> {
    None,
    Management,
    Basic(&'a str, &'a str),
    Raw(&'a str),
}

struct Reply {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

async fn call(
    deps: &Deps,
    route: RouteId,
    params: &[(&str, &str)],
    auth: Auth<'_>,
    body: Option<Value>,
) -> Reply {
    let mut headers = HeaderMap::new();
    match auth {
        Auth::None => {}
        Auth::Management => {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {MANAGEMENT_KEY}")).unwrap(),
            );
        }
        Auth::Basic(user, password) => {
            let encoded = STANDARD.encode(format!("{user}:{password}"));
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
            );
        }
        Auth::Raw(value) => {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
    }
    let bytes = match body {
        Some(v) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            serde_json::to_vec(&v).unwrap()
        }
        None => Vec::new(),
    };
    raw_call(deps, route, params, headers, bytes).await
}

async fn raw_call(
    deps: &Deps,
    route: RouteId,
    params: &[(&str, &str)],
    headers: HeaderMap,
    body: Vec<u8>,
) -> Reply {
    let request = ApiRequest {
        method: Method::from_bytes(route.route().method.as_bytes()).unwrap(),
        path_params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        query: params
            .iter()
            .filter(|(k, _)| *k == "user_id")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers,
        body,
        base_url: None,
        source_ip: None,
    };
    let response = handle(deps, route, request).await;
    let body = response.json();
    Reply {
        status: response.status,
        body,
        headers: response.headers,
    }
}

/// Checks the Stytch error shape and returns the body.
fn assert_login_error(reply: &Reply, status: u16, error_type: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    let b = &reply.body;
    assert_eq!(b["status_code"], json!(status), "{b}");
    assert_eq!(b["error_type"], json!(error_type), "{b}");
    assert!(
        b["error_message"].as_str().is_some_and(|m| !m.is_empty()),
        "{b}"
    );
    assert!(
        b["error_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("#{error_type}"))),
        "{b}"
    );
    let request_id = b["request_id"].as_str().unwrap();
    assert!(request_id.starts_with("request-id-"), "{b}");
    assert_eq!(
        reply.headers.get("x-request-id").unwrap().to_str().unwrap(),
        request_id
    );
    assert_eq!(
        reply.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
}

fn assert_management_error(reply: &Reply, status: u16, code: &str, status_word: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    let b = &reply.body;
    assert_eq!(b["code"], json!(code), "{b}");
    assert_eq!(b["status"], json!(status_word), "{b}");
    assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    assert!(
        b["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("request-id-")),
        "{b}"
    );
}

struct World {
    mem: InMemory,
    clock: Arc<FakeClock>,
    app_id: String,
    secret: String,
}

async fn world() -> World {
    world_with(relaxed()).await
}

async fn world_with(limits: Limits) -> World {
    let clock = Arc::new(FakeClock::new(Timestamp(1_800_000_000)));
    let mem = in_memory_with(limits, clock.clone());
    let created = call(
        &mem.deps,
        RouteId::CreateApp,
        &[],
        Auth::Management,
        Some(json!({"name": "Acme"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let app_id = created.body["app"]["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    for channel in ["sms", "email"] {
        let r = call(
            &mem.deps,
            RouteId::CreateLoginConfig,
            &[("app_id", &app_id)],
            Auth::Management,
            Some(json!({"config_type": "otp", "channel_type": channel, "is_default": true})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    World {
        mem,
        clock,
        app_id,
        secret,
    }
}

impl World {
    fn deps(&self) -> &Deps {
        &self.mem.deps
    }

    fn basic(&self) -> Auth<'_> {
        Auth::Basic(&self.app_id, &self.secret)
    }

    async fn login(&self, route: RouteId, body: Value) -> Reply {
        call(self.deps(), route, &[], self.basic(), Some(body)).await
    }

    /// login_or_create by SMS; returns (user_id, phone_id, code).
    async fn sms_code(&self, phone: &str) -> (String, String, String) {
        let r = self
            .login(RouteId::SmsLoginOrCreate, json!({"phone_number": phone}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let code = self.mem.outbox.last_to(phone).unwrap().code;
        (
            r.body["user_id"].as_str().unwrap().to_owned(),
            r.body["phone_id"].as_str().unwrap().to_owned(),
            code,
        )
    }

    async fn session_for(&self, phone: &str) -> (String, String, Value) {
        let (user_id, phone_id, code) = self.sms_code(phone).await;
        let r = self
            .login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (user_id, phone_id, r.body)
    }
}

fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

#[tokio::test]
async fn management_errors_have_the_prelude_shape() {
    let w = world().await;
    let d = w.deps();
    let app = [("app_id", w.app_id.as_str())];

    let r = call(
        d,
        RouteId::CreateApp,
        &[],
        Auth::None,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_management_error(&r, 401, "unauthorized", "unauthorized");
    let r = call(
        d,
        RouteId::CreateApp,
        &[],
        Auth::Raw("Bearer wrong"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_management_error(&r, 401, "unauthorized", "unauthorized");

    let r = call(
        d,
        RouteId::CreateApp,
        &[],
        Auth::Management,
        Some(json!({"name": ""})),
    )
    .await;
    assert_management_error(&r, 400, "invalid_request", "bad_request");
    let r = call(
        d,
        RouteId::CreateApp,
        &[],
        Auth::Management,
        Some(json!({})),
    )
    .await;
    assert_management_error(&r, 400, "invalid_request", "bad_request");
    assert!(r.body["message"].as_str().unwrap().contains("name"));

    let r = call(
        d,
        RouteId::CreateLoginConfig,
        &app,
        Auth::Management,
        Some(json!({"config_type": "otp", "channel_type": "fax", "is_default": true})),
    )
    .await;
    assert_management_error(&r, 400, "invalid_request", "bad_request");

    let r = call(
        d,
        RouteId::GetApp,
        &[("app_id", "app-nope")],
        Auth::Management,
        None,
    )
    .await;
    assert_management_error(&r, 404, "not_found", "not_found");

    // A template in use cannot be deleted.
    let t = call(
        d,
        RouteId::CreateTemplate,
        &app,
        Auth::Management,
        Some(json!({"channel_type": "sms", "locale": "en", "text": "Code {{code}}"})),
    )
    .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
    let template_id = t.body["template"]["id"].as_str().unwrap().to_owned();
    let c = call(
        d,
        RouteId::CreateLoginConfig,
        &app,
        Auth::Management,
        Some(json!({"config_type": "otp", "channel_type": "sms", "is_default": false, "template_id": template_id})),
    )
    .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
    let r = call(
        d,
        RouteId::DeleteTemplate,
        &[
            ("app_id", w.app_id.as_str()),
            ("template_id", template_id.as_str()),
        ],
        Auth::Management,
        None,
    )
    .await;
    assert_management_error(&r, 409, "conflict", "conflict");

    let mut big = HeaderMap::new();
    big.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {MANAGEMENT_KEY}")).unwrap(),
    );
    big.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let r = raw_call(d, RouteId::CreateApp, &[], big, vec![b' '; 16 * 1024 + 1]).await;
    assert_management_error(&r, 413, "payload_too_large", "payload_too_large");

    let mut text = HeaderMap::new();
    text.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {MANAGEMENT_KEY}")).unwrap(),
    );
    text.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let r = raw_call(d, RouteId::CreateApp, &[], text, b"name=x".to_vec()).await;
    assert_management_error(&r, 415, "unsupported_media_type", "unsupported_media_type");
}

#[tokio::test]
async fn management_internal_errors_do_not_leak() {
    let mut w = world().await;
    w.mem.deps.apps = Arc::new(BrokenAppStore);
    let r = call(
        w.deps(),
        RouteId::GetApp,
        &[("app_id", w.app_id.as_str())],
        Auth::Management,
        None,
    )
    .await;
    assert_management_error(&r, 500, "internal", "internal");
    assert!(!r.body["message"].as_str().unwrap().contains("disk"));
}

#[tokio::test]
async fn credentials_are_checked() {
    let w = world().await;
    let body = json!({"phone_number": PHONE});
    for auth in [
        Auth::None,
        Auth::Basic(&w.app_id, "secret-wrong"),
        Auth::Basic("app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f", &w.secret),
        Auth::Raw("Bearer test-management-key"),
        Auth::Raw("Basic !!!not-base64"),
    ] {
        let r = call(
            w.deps(),
            RouteId::SmsLoginOrCreate,
            &[],
            auth,
            Some(body.clone()),
        )
        .await;
        assert_login_error(&r, 401, "unauthorized_credentials");
    }
    // Another app's secret does not open this app.
    let other = call(
        w.deps(),
        RouteId::CreateApp,
        &[],
        Auth::Management,
        Some(json!({"name": "Other"})),
    )
    .await;
    let other_secret = other.body["secret"].as_str().unwrap();
    let r = call(
        w.deps(),
        RouteId::SmsLoginOrCreate,
        &[],
        Auth::Basic(&w.app_id, other_secret),
        Some(body),
    )
    .await;
    assert_login_error(&r, 401, "unauthorized_credentials");
    assert!(w.mem.outbox.messages().is_empty());
}

#[tokio::test]
async fn request_validation_errors() {
    let w = world().await;
    let d = w.deps();
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": "+15555550100"}),
        )
        .await;
    assert_login_error(&r, 400, "invalid_phone_number");
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({"email": "not-an-email"}),
        )
        .await;
    assert_login_error(&r, 400, "invalid_email");
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": PHONE, "expiration_minutes": 11}),
        )
        .await;
    assert_login_error(&r, 400, "invalid_expiration_minutes");
    let r = w.login(RouteId::SmsLoginOrCreate, json!({})).await;
    assert_login_error(&r, 400, "bad_request");
    assert!(
        r.body["error_message"]
            .as_str()
            .unwrap()
            .contains("phone_number")
    );
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": 12025550100u64}),
        )
        .await;
    assert_login_error(&r, 400, "bad_request");

    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", w.app_id, w.secret))
        ))
        .unwrap(),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let r = raw_call(
        d,
        RouteId::SmsLoginOrCreate,
        &[],
        headers.clone(),
        b"{\"phone_number\": ".to_vec(),
    )
    .await;
    assert_login_error(&r, 400, "bad_request");
    let r = raw_call(
        d,
        RouteId::SmsLoginOrCreate,
        &[],
        headers.clone(),
        vec![b'{'; 16 * 1024 + 1],
    )
    .await;
    assert_login_error(&r, 413, "payload_too_large");
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let r = raw_call(
        d,
        RouteId::SmsLoginOrCreate,
        &[],
        headers,
        b"phone_number=+12025550100".to_vec(),
    )
    .await;
    assert_login_error(&r, 415, "unsupported_media_type");
    assert!(
        w.mem.outbox.messages().is_empty(),
        "nothing was sent for bad input"
    );
}

#[tokio::test]
async fn login_config_and_country_errors() {
    let w = world().await;
    let bare = call(
        w.deps(),
        RouteId::CreateApp,
        &[],
        Auth::Management,
        Some(json!({"name": "Bare"})),
    )
    .await;
    let (bare_id, bare_secret) = (
        bare.body["app"]["id"].as_str().unwrap().to_owned(),
        bare.body["secret"].as_str().unwrap().to_owned(),
    );
    let r = call(
        w.deps(),
        RouteId::SmsLoginOrCreate,
        &[],
        Auth::Basic(&bare_id, &bare_secret),
        Some(json!({"phone_number": PHONE})),
    )
    .await;
    assert_login_error(&r, 400, "no_login_config");

    let r = call(
        w.deps(),
        RouteId::PutSmsCountries,
        &[("app_id", w.app_id.as_str())],
        Auth::Management,
        Some(json!({"calling_codes": ["44"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 400, "invalid_phone_number_country_code");
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": "+447400123456"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn code_errors() {
    let w = world().await;
    let (_, phone_id, code) = w.sms_code(PHONE).await;

    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": wrong(&code)}),
        )
        .await;
    assert_login_error(&r, 404, "otp_code_not_found");
    assert_eq!(r.body["attempts_remaining"], json!(4));

    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": "phone-number-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f", "code": code}),
        )
        .await;
    assert_login_error(&r, 404, "otp_code_not_found");

    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code, "session_duration_minutes": 4}),
        )
        .await;
    assert_login_error(&r, 400, "invalid_session_duration");
    let r = w
        .login(RouteId::OtpAuthenticate, json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60, "session_custom_claims": {"sub": "x"}}))
        .await;
    assert_login_error(&r, 400, "invalid_session_custom_claims");
    let r = w
        .login(RouteId::OtpAuthenticate, json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60, "session_custom_claims": {"big": "x".repeat(5000)}}))
        .await;
    assert_login_error(&r, 400, "invalid_session_custom_claims");

    let ok = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["session_token"], json!(""));
    assert_eq!(ok.body["session_jwt"], json!(""));
    assert_eq!(ok.body["session"], Value::Null);
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code}),
        )
        .await;
    assert_login_error(&r, 401, "unable_to_auth_otp_code");
}

#[tokio::test]
async fn user_lock_answers_429_with_retry_after() {
    let w = world().await;
    let (user_id, phone_id, first) = w.sms_code(PHONE).await;
    for _ in 0..5 {
        let r = w
            .login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": wrong(&first)}),
            )
            .await;
        assert_login_error(&r, 404, "otp_code_not_found");
    }
    let (_, _, second) = w.sms_code(PHONE).await;
    for i in 0..5 {
        let r = w
            .login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": wrong(&second)}),
            )
            .await;
        assert_login_error(&r, 404, "otp_code_not_found");
        assert_eq!(r.body["attempts_remaining"], json!(4 - i));
    }
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": second}),
        )
        .await;
    assert_login_error(&r, 429, "user_lock_limit_reached");
    assert_eq!(r.body["retry_after_seconds"], json!(3600));
    assert_eq!(r.headers.get(header::RETRY_AFTER).unwrap(), "3600");
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 429, "user_lock_limit_reached");
    let user = call(
        w.deps(),
        RouteId::UsersGet,
        &[("user_id", user_id.as_str())],
        w.basic(),
        None,
    )
    .await;
    assert_eq!(user.body["is_locked"], json!(true), "{}", user.body);
    assert_eq!(user.body["lock_created_at"], json!("2027-01-15T08:00:00Z"));
    assert_eq!(user.body["lock_expires_at"], json!("2027-01-15T09:00:00Z"));
}

#[tokio::test]
async fn identifier_and_user_errors() {
    let w = world().await;
    let r = w
        .login(RouteId::SmsSend, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 404, "phone_number_not_found");
    let r = w
        .login(RouteId::EmailSend, json!({"email": "ann@example.com"}))
        .await;
    assert_login_error(&r, 404, "email_not_found");

    let (ann, _, _) = w.sms_code(PHONE).await;
    let (bob, _, _) = w.sms_code(OTHER_PHONE).await;
    let r = w
        .login(
            RouteId::SmsSend,
            json!({"phone_number": PHONE, "user_id": bob}),
        )
        .await;
    assert_login_error(&r, 409, "duplicate_phone_number");
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({"email": "ann@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w
        .login(
            RouteId::EmailSend,
            json!({"email": "ANN@example.com", "user_id": bob}),
        )
        .await;
    assert_login_error(&r, 409, "duplicate_email");
    let r = w.login(RouteId::SmsSend, json!({"phone_number": "+12025550109", "user_id": "user-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f"})).await;
    assert_login_error(&r, 404, "user_not_found");

    let r = call(
        w.deps(),
        RouteId::UsersGet,
        &[("user_id", "user-nope")],
        w.basic(),
        None,
    )
    .await;
    assert_login_error(&r, 404, "user_not_found");
    let r = call(
        w.deps(),
        RouteId::UsersGet,
        &[("user_id", ann.as_str())],
        w.basic(),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user_id"], json!(ann));
    assert_eq!(r.body["status_code"], json!(200));
}

#[tokio::test]
async fn session_errors() {
    let w = world().await;
    let (_ann, _, session) = w.session_for(PHONE).await;
    let token = session["session_token"].as_str().unwrap().to_owned();
    let jwt = session["session_jwt"].as_str().unwrap().to_owned();
    let (_, bob_phone_id, bob_code) = w.sms_code(OTHER_PHONE).await;

    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": bob_phone_id, "code": bob_code, "session_token": token}),
        )
        .await;
    assert_login_error(&r, 400, "session_user_mismatch");

    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_jwt": "e30.e30.sig"}),
        )
        .await;
    assert_login_error(&r, 401, "invalid_session_jwt");
    // A JWT of another app does not verify for this one (audience).
    let other = call(
        w.deps(),
        RouteId::CreateApp,
        &[],
        Auth::Management,
        Some(json!({"name": "Other"})),
    )
    .await;
    let r = call(
        w.deps(),
        RouteId::SessionsAuthenticate,
        &[],
        Auth::Basic(
            other.body["app"]["id"].as_str().unwrap(),
            other.body["secret"].as_str().unwrap(),
        ),
        Some(json!({"session_jwt": jwt})),
    )
    .await;
    assert_login_error(&r, 401, "invalid_session_jwt");

    let r = w
        .login(RouteId::SessionsRevoke, json!({"session_token": token}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": token}),
        )
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = w
        .login(RouteId::SessionsAuthenticate, json!({"session_jwt": jwt}))
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = w
        .login(
            RouteId::SessionsRevoke,
            json!({"session_id": "session-nope"}),
        )
        .await;
    assert_login_error(&r, 404, "session_not_found");

    let r = call(
        w.deps(),
        RouteId::SessionsJwks,
        &[("app_id", "app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f")],
        Auth::None,
        None,
    )
    .await;
    assert_login_error(&r, 404, "app_not_found");
    let r = call(
        w.deps(),
        RouteId::SessionsJwks,
        &[("app_id", w.app_id.as_str())],
        Auth::None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let key = &r.body["keys"][0];
    for field in [
        "kty", "use", "key_ops", "alg", "kid", "n", "e", "x5c", "x5tS256",
    ] {
        assert!(!key[field].is_null(), "{field} missing in {key}");
    }
}

#[tokio::test]
async fn the_jwks_is_cacheable_and_everything_else_is_not() {
    let w = world().await;
    let params = [("app_id", w.app_id.as_str())];
    let r = raw_call(
        w.deps(),
        RouteId::SessionsJwks,
        &params,
        HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.headers.get(header::CACHE_CONTROL).unwrap(),
        "public, max-age=300"
    );
    let etag = r.headers.get(header::ETAG).expect("an ETag").clone();
    let again = raw_call(
        w.deps(),
        RouteId::SessionsJwks,
        &params,
        HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(
        again.headers.get(header::ETAG),
        Some(&etag),
        "the tag is the keys', not the request's"
    );
    let mut conditional = HeaderMap::new();
    conditional.insert(header::IF_NONE_MATCH, etag.clone());
    let r = raw_call(
        w.deps(),
        RouteId::SessionsJwks,
        &params,
        conditional,
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers.get(header::ETAG), Some(&etag));
    let mut stale = HeaderMap::new();
    stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
    let r = raw_call(w.deps(), RouteId::SessionsJwks, &params, stale, Vec::new()).await;
    assert_eq!(r.status, StatusCode::OK);

    // An unknown app's JWKS, and every other answer, is not to be kept.
    let unknown = [("app_id", "app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f")];
    let r = raw_call(
        w.deps(),
        RouteId::SessionsJwks,
        &unknown,
        HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    assert!(r.headers.get(header::ETAG).is_none());
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
}

#[tokio::test]
async fn delivery_failures_answer_502_and_leave_no_usable_code() {
    let mut w = world().await;
    w.mem.deps.sms = Arc::new(FailingSender);
    w.mem.deps.email = Arc::new(FailingSender);
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 502, "sms_delivery_failed");
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({"email": "ann@example.com"}),
        )
        .await;
    assert_login_error(&r, 502, "email_delivery_failed");
    // Nothing of the undelivered sends is left: no user holds the identifiers, no code.
    let app_id = AppId::parse(&w.app_id).unwrap();
    for text in [PHONE, "ann@example.com"] {
        let key = Key::Owner {
            app_id: app_id.clone(),
            identifier: Identifier::parse(text).unwrap(),
        };
        let loaded = w.mem.deps.login.load(&[key]).await.unwrap();
        assert_eq!(loaded, vec![None], "{text}");
    }
    assert!(
        !w.mem.store.dump_for_inspection().contains("Codes"),
        "no code record is left"
    );
}

#[tokio::test]
async fn storage_failures_answer_503_or_500() {
    let mut w = world().await;
    w.mem.deps.login = Arc::new(BrokenLoginStore(StoreError::Unavailable(
        "throttled".into(),
    )));
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 503, "service_unavailable");
    w.mem.deps.login = Arc::new(BrokenLoginStore(StoreError::Other("disk on fire".into())));
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 500, "internal_server_error");
    assert!(!r.body["error_message"].as_str().unwrap().contains("disk"));
}

struct FailingSender;

#[async_trait]
impl SmsSender for FailingSender {
    async fn send_sms(&self, _: &SmsMessage) -> Result<(), DeliveryError> {
        Err(DeliveryError("SNS refused".into()))
    }
}

#[async_trait]
impl EmailSender for FailingSender {
    async fn send_email(&self, _: &EmailMessage) -> Result<(), DeliveryError> {
        Err(DeliveryError("SES refused".into()))
    }
}

struct BrokenLoginStore(StoreError);

#[async_trait]
impl LoginStore for BrokenLoginStore {
    async fn list_tallies(
        &self,
        _: &AppId,
        _: &str,
    ) -> Result<Vec<shared::model::Tally>, StoreError> {
        Err(self.0.clone())
    }
    async fn load(&self, _: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        Err(self.0.clone())
    }
    async fn load_home(&self, _: &AppId, _: Home) -> Result<HomeRecords, StoreError> {
        Err(self.0.clone())
    }
    async fn commit(&self, _: &[Write], _: &CommitToken) -> Result<(), CommitError> {
        Err(CommitError::Store(self.0.clone()))
    }
    async fn touch_session(
        &self,
        _: &AppId,
        _: Home,
        _: &shared::crypto::Hash32,
        _: Timestamp,
        _: Option<Timestamp>,
    ) -> Result<Option<Versioned<shared::model::Session>>, StoreError> {
        Err(self.0.clone())
    }
}

struct BrokenAppStore;

#[async_trait]
impl shared::ports::AppStore for BrokenAppStore {
    async fn create_app(
        &self,
        _: &shared::model::App,
        _: &shared::model::AppSecret,
        _: &[shared::model::SigningKey],
        _: &shared::model::FrontendSettings,
    ) -> Result<(), StoreError> {
        Err(StoreError::Other("disk on fire".into()))
    }
    async fn find_public_token(&self, _: &str) -> Result<Option<AppId>, StoreError> {
        Err(StoreError::Other("disk on fire".into()))
    }
    async fn replace_frontend(
        &self,
        _: &AppId,
        _: u64,
        _: &shared::model::FrontendSettings,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<(), WriteError> {
        Err(WriteError::Store(StoreError::Other("disk on fire".into())))
    }
    async fn replace_signing_keys(
        &self,
        _: &AppId,
        _: Option<&str>,
        _: &[shared::model::SigningKey],
    ) -> Result<(), shared::ports::WriteError> {
        Err(StoreError::Other("disk on fire".into()).into())
    }
    async fn get_app(&self, _: &AppId) -> Result<Option<shared::model::App>, StoreError> {
        Err(StoreError::Other("disk on fire".into()))
    }
    async fn add_secret(&self, _: &shared::model::AppSecret) -> Result<(), StoreError> {
        Err(StoreError::Other("disk on fire".into()))
    }
    async fn list_secrets(&self, _: &AppId) -> Result<Vec<shared::model::AppSecret>, StoreError> {
        Err(StoreError::Other("disk on fire".into()))
    }
    async fn load_app(&self, _: &AppId) -> Result<Option<shared::ports::AppData>, StoreError> {
        Err(StoreError::Other("disk on fire".into()))
    }
    async fn delete_secret(
        &self,
        _: &AppId,
        _: &shared::ids::SecretId,
    ) -> Result<bool, WriteError> {
        Err(WriteError::Store(StoreError::Other("disk on fire".into())))
    }
    async fn touch_secret(
        &self,
        _: &AppId,
        _: &shared::ids::SecretId,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        Err(StoreError::Other("disk on fire".into()))
    }
}

#[tokio::test]
async fn send_limits_answer_429_with_retry_after() {
    let w = world_with(Limits {
        sms_budgets: shared::model::SmsBudgets::unlimited(),
        ..Limits::default()
    })
    .await;
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.clock.advance_seconds(10);
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 429, "too_many_requests");
    assert_eq!(r.body["retry_after_seconds"], json!(20));
    assert_eq!(r.headers.get(header::RETRY_AFTER).unwrap(), "20");
    assert_eq!(
        w.mem.outbox.messages().len(),
        1,
        "a refused send delivers nothing"
    );

    // Five codes per identifier per 10 minutes, 30 seconds apart.
    for _ in 0..4 {
        w.clock.advance_seconds(30);
        let r = w
            .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    w.clock.advance_seconds(30);
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 429, "too_many_requests");
    // The window opened at the first send, 160 seconds ago.
    assert_eq!(r.body["retry_after_seconds"], json!(600 - 160));
    w.clock.advance_seconds(600 - 160);
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn send_limits_count_per_end_user_ip() {
    let w = world_with(Limits {
        sms_budgets: shared::model::SmsBudgets::unlimited(),
        ..Limits::default()
    })
    .await;
    for i in 0..20 {
        let phone = format!("+120255501{i:02}");
        let r = w
            .login(
                RouteId::SmsLoginOrCreate,
                json!({"phone_number": phone, "attributes": {"ip_address": "203.0.113.7"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{i}: {}", r.body);
    }
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": "+12025550150", "attributes": {"ip_address": "203.0.113.7"}}),
        )
        .await;
    assert_login_error(&r, 429, "too_many_requests");
    // Another end user's IP, or none, is not limited by it.
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": "+12025550150", "attributes": {"ip_address": "203.0.113.8"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn refused_and_failed_sends_use_up_nothing() {
    let mut w = world_with(Limits {
        sms_budgets: shared::model::SmsBudgets::unlimited(),
        ..Limits::default()
    })
    .await;
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": PHONE, "expiration_minutes": 99}),
        )
        .await;
    assert_login_error(&r, 400, "invalid_expiration_minutes");
    w.mem.deps.sms = Arc::new(FailingSender);
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 502, "sms_delivery_failed");
    let outbox = w.mem.outbox.clone();
    w.mem.deps.sms = outbox;
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the retry is not rate limited: {}",
        r.body
    );
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_login_error(&r, 429, "too_many_requests");
}
