//! What the `adversarial_*` tests share: a world (an app with sms and email login configs) on the
//! in-memory adapters behind wrappers that can inject faults or yield to the scheduler before
//! every store and delivery call, a fake clock, and helpers that drive `shared::api::handle`
//! with Basic/Bearer credentials. Included by each file with `mod adversarial_support;`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, Dialect, RouteId, handle};
use shared::clock::{FakeClock, Timestamp};
use shared::crypto::{CodeHasher, Hash32, ManagementKeyHash};
use shared::identifiers::Identifier;
use shared::ids::{
    AppId, ChallengeId, ConfigId, MethodId, SecretId, SessionId, TemplateId, TestIdentifierId,
    UserId,
};
use shared::jwt::JwtKeys;
use shared::memory::{MemoryStore, Outbox};
use shared::model::{
    App, AppSecret, Challenge, Channel, LoginConfig, Session, Template, TestIdentifier, User,
};
use shared::ports::{
    AppStore, ChallengeStore, ConfigStore, DeliveryError, EmailMessage, EmailSender,
    FailureOutcome, RateCounter, RateDecision, RateHit, RateLimitStore, SessionStore, SmsMessage,
    SmsSender, StoreError, SuccessOutcome, UserStore, WriteError,
};
use shared::random::SeededRandom;
use shared::service::{Deps, InMemory, Keys, Limits, SendLimits, Settings};

pub const MANAGEMENT_KEY: &str = "adversarial-management-key-5f2a9c";
/// The code-hashing key: distinctive bytes, so that a copy of it in the store would be seen.
pub const CODE_KEY: [u8; 32] = [0xA5; 32];
pub const START: Timestamp = Timestamp(1_800_000_000);
pub const PHONE: &str = "+12025550100";
pub const OTHER_PHONE: &str = "+12025550101";
pub const THIRD_PHONE: &str = "+12025550102";
pub const EMAIL: &str = "ann.lee@example.com";
pub const OTHER_EMAIL: &str = "bob.ray@example.com";
pub const BASE_URL: &str = "http://127.0.0.1:3000";

/// Send limits out of the way, for tests about something else.
pub fn relaxed() -> Limits {
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

/// One RSA key per test binary: generating one takes far longer than parsing it.
fn signing_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA keygen");
        key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .expect("PEM")
            .to_string()
    })
}

pub fn keys() -> Keys {
    Keys {
        management_key: ManagementKeyHash::of_key(MANAGEMENT_KEY),
        code_hasher: CodeHasher::new(&CODE_KEY).expect("a 32-byte key"),
        jwt: JwtKeys::from_pem(signing_key_pem()).expect("RSA key"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection and scheduling: every store and delivery call passes through a `FaultPlan`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `StoreError::Unavailable` (503); a delivery call fails with `DeliveryError` either way.
    Unavailable,
    /// `StoreError::Other` (500).
    Other,
}

#[derive(Default)]
struct PlanState {
    armed: bool,
    calls: Vec<&'static str>,
    fail_at: Option<(usize, FaultKind)>,
}

/// Counts the calls of the wrapped adapters while armed, and fails the chosen one.
#[derive(Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
    yield_each: AtomicBool,
    /// The longest rate-limit counter key seen (armed or not).
    pub longest_rate_key: AtomicUsize,
}

impl FaultPlan {
    /// Starts counting from zero; `fail_at` is the 0-based index of the call to fail.
    pub fn arm(&self, fail_at: Option<(usize, FaultKind)>) {
        let mut s = self.state.lock().unwrap();
        *s = PlanState {
            armed: true,
            calls: Vec::new(),
            fail_at,
        };
    }

    /// Stops counting and failing; returns the calls seen since `arm`.
    pub fn disarm(&self) -> Vec<&'static str> {
        let mut s = self.state.lock().unwrap();
        s.armed = false;
        s.fail_at = None;
        std::mem::take(&mut s.calls)
    }

    /// Yield to the scheduler before every call, so that concurrent requests interleave at
    /// every store operation.
    pub fn set_yield(&self, on: bool) {
        self.yield_each.store(on, Ordering::SeqCst);
    }

    fn enter(&self, name: &'static str) -> Option<FaultKind> {
        let mut s = self.state.lock().unwrap();
        if !s.armed {
            return None;
        }
        let index = s.calls.len();
        s.calls.push(name);
        match s.fail_at {
            Some((at, kind)) if at == index => Some(kind),
            _ => None,
        }
    }

    async fn gate(&self, name: &'static str) -> Result<(), StoreError> {
        if self.yield_each.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        match self.enter(name) {
            None => Ok(()),
            Some(FaultKind::Unavailable) => Err(StoreError::Unavailable(format!(
                "injected: {name} throttled"
            ))),
            Some(FaultKind::Other) => Err(StoreError::Other(format!("injected: {name} broke"))),
        }
    }
}

/// Delegates to a real adapter, through a `FaultPlan`.
pub struct Faulty<T> {
    pub inner: Arc<T>,
    pub plan: Arc<FaultPlan>,
}

fn write(e: StoreError) -> WriteError {
    WriteError::Store(e)
}

#[async_trait]
impl AppStore for Faulty<MemoryStore> {
    async fn create_app(&self, app: &App, secret: &AppSecret) -> Result<(), StoreError> {
        self.plan.gate("apps.create_app").await?;
        self.inner.create_app(app, secret).await
    }
    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        self.plan.gate("apps.get_app").await?;
        self.inner.get_app(app_id).await
    }
    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError> {
        self.plan.gate("apps.add_secret").await?;
        self.inner.add_secret(secret).await
    }
    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError> {
        self.plan.gate("apps.list_secrets").await?;
        self.inner.list_secrets(app_id).await
    }
    async fn delete_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
    ) -> Result<bool, StoreError> {
        self.plan.gate("apps.delete_secret").await?;
        self.inner.delete_secret(app_id, secret_id).await
    }
    async fn touch_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.plan.gate("apps.touch_secret").await?;
        self.inner.touch_secret(app_id, secret_id, at).await
    }
}

#[async_trait]
impl ConfigStore for Faulty<MemoryStore> {
    async fn put_config(&self, config: &LoginConfig) -> Result<(), WriteError> {
        self.plan.gate("configs.put_config").await.map_err(write)?;
        self.inner.put_config(config).await
    }
    async fn get_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<Option<LoginConfig>, StoreError> {
        self.plan.gate("configs.get_config").await?;
        self.inner.get_config(app_id, config_id).await
    }
    async fn list_configs(&self, app_id: &AppId) -> Result<Vec<LoginConfig>, StoreError> {
        self.plan.gate("configs.list_configs").await?;
        self.inner.list_configs(app_id).await
    }
    async fn default_config(
        &self,
        app_id: &AppId,
        channel: Channel,
    ) -> Result<Option<LoginConfig>, StoreError> {
        self.plan.gate("configs.default_config").await?;
        self.inner.default_config(app_id, channel).await
    }
    async fn delete_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<bool, StoreError> {
        self.plan.gate("configs.delete_config").await?;
        self.inner.delete_config(app_id, config_id).await
    }
    async fn put_template(&self, template: &Template) -> Result<(), StoreError> {
        self.plan.gate("configs.put_template").await?;
        self.inner.put_template(template).await
    }
    async fn get_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        self.plan.gate("configs.get_template").await?;
        self.inner.get_template(app_id, template_id).await
    }
    async fn list_templates(&self, app_id: &AppId) -> Result<Vec<Template>, StoreError> {
        self.plan.gate("configs.list_templates").await?;
        self.inner.list_templates(app_id).await
    }
    async fn delete_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<bool, WriteError> {
        self.plan
            .gate("configs.delete_template")
            .await
            .map_err(write)?;
        self.inner.delete_template(app_id, template_id).await
    }
    async fn put_test_identifier(&self, test: &TestIdentifier) -> Result<(), WriteError> {
        self.plan
            .gate("configs.put_test_identifier")
            .await
            .map_err(write)?;
        self.inner.put_test_identifier(test).await
    }
    async fn list_test_identifiers(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<TestIdentifier>, StoreError> {
        self.plan.gate("configs.list_test_identifiers").await?;
        self.inner.list_test_identifiers(app_id).await
    }
    async fn find_test_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<TestIdentifier>, StoreError> {
        self.plan.gate("configs.find_test_identifier").await?;
        self.inner.find_test_identifier(app_id, identifier).await
    }
    async fn delete_test_identifier(
        &self,
        app_id: &AppId,
        id: &TestIdentifierId,
    ) -> Result<bool, StoreError> {
        self.plan.gate("configs.delete_test_identifier").await?;
        self.inner.delete_test_identifier(app_id, id).await
    }
    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<String>>, StoreError> {
        self.plan.gate("configs.get_sms_countries").await?;
        self.inner.get_sms_countries(app_id).await
    }
    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        calling_codes: Option<Vec<String>>,
    ) -> Result<(), StoreError> {
        self.plan.gate("configs.put_sms_countries").await?;
        self.inner.put_sms_countries(app_id, calling_codes).await
    }
}

#[async_trait]
impl UserStore for Faulty<MemoryStore> {
    async fn find_by_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<(User, MethodId)>, StoreError> {
        self.plan.gate("users.find_by_identifier").await?;
        self.inner.find_by_identifier(app_id, identifier).await
    }
    async fn create_user(&self, user: &User) -> Result<(), WriteError> {
        self.plan.gate("users.create_user").await.map_err(write)?;
        self.inner.create_user(user).await
    }
    async fn add_method(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        identifier: &Identifier,
    ) -> Result<User, WriteError> {
        self.plan.gate("users.add_method").await.map_err(write)?;
        self.inner
            .add_method(app_id, user_id, method_id, identifier)
            .await
    }
    async fn get_user(&self, app_id: &AppId, user_id: &UserId) -> Result<Option<User>, StoreError> {
        self.plan.gate("users.get_user").await?;
        self.inner.get_user(app_id, user_id).await
    }
    async fn find_by_method(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<User>, StoreError> {
        self.plan.gate("users.find_by_method").await?;
        self.inner.find_by_method(app_id, method_id).await
    }
    async fn record_success(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        now: Timestamp,
    ) -> Result<SuccessOutcome, StoreError> {
        self.plan.gate("users.record_success").await?;
        self.inner
            .record_success(app_id, user_id, method_id, now)
            .await
    }
    async fn record_failure(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        now: Timestamp,
        limit: u32,
        lock_seconds: i64,
    ) -> Result<FailureOutcome, StoreError> {
        self.plan.gate("users.record_failure").await?;
        self.inner
            .record_failure(app_id, user_id, now, limit, lock_seconds)
            .await
    }
    async fn delete_user(&self, app_id: &AppId, user_id: &UserId) -> Result<bool, StoreError> {
        self.plan.gate("users.delete_user").await?;
        self.inner.delete_user(app_id, user_id).await
    }
}

#[async_trait]
impl ChallengeStore for Faulty<MemoryStore> {
    async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        self.plan.gate("challenges.put_challenge").await?;
        self.inner.put_challenge(challenge).await
    }
    async fn get_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<Challenge>, StoreError> {
        self.plan.gate("challenges.get_challenge").await?;
        self.inner.get_challenge(app_id, method_id).await
    }
    async fn consume(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        self.plan.gate("challenges.consume").await?;
        self.inner
            .consume(app_id, method_id, challenge_id, now, max_attempts)
            .await
    }
    async fn record_wrong_attempt(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError> {
        self.plan.gate("challenges.record_wrong_attempt").await?;
        self.inner
            .record_wrong_attempt(app_id, method_id, challenge_id, now, max_attempts)
            .await
    }
    async fn restore(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<bool, StoreError> {
        self.plan.gate("challenges.restore").await?;
        self.inner.restore(app_id, method_id, challenge_id).await
    }
    async fn delete_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<(), StoreError> {
        self.plan.gate("challenges.delete_challenge").await?;
        self.inner
            .delete_challenge(app_id, method_id, challenge_id)
            .await
    }
    async fn delete_challenges(
        &self,
        app_id: &AppId,
        method_ids: &[MethodId],
    ) -> Result<(), StoreError> {
        self.plan.gate("challenges.delete_challenges").await?;
        self.inner.delete_challenges(app_id, method_ids).await
    }
}

#[async_trait]
impl SessionStore for Faulty<MemoryStore> {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.plan.gate("sessions.create_session").await?;
        self.inner.create_session(session).await
    }
    async fn get_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        self.plan.gate("sessions.get_session").await?;
        self.inner.get_session(app_id, session_id).await
    }
    async fn find_by_token_hash(
        &self,
        app_id: &AppId,
        token_hash: &Hash32,
    ) -> Result<Option<Session>, StoreError> {
        self.plan.gate("sessions.find_by_token_hash").await?;
        self.inner.find_by_token_hash(app_id, token_hash).await
    }
    async fn update_session(&self, session: &Session) -> Result<bool, StoreError> {
        self.plan.gate("sessions.update_session").await?;
        self.inner.update_session(session).await
    }
    async fn delete_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<bool, StoreError> {
        self.plan.gate("sessions.delete_session").await?;
        self.inner.delete_session(app_id, session_id).await
    }
    async fn list_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        self.plan.gate("sessions.list_sessions").await?;
        self.inner.list_sessions(app_id, user_id).await
    }
    async fn delete_user_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        self.plan.gate("sessions.delete_user_sessions").await?;
        self.inner.delete_user_sessions(app_id, user_id).await
    }
}

#[async_trait]
impl RateLimitStore for Faulty<MemoryStore> {
    async fn hit(
        &self,
        counters: &[RateCounter],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        for counter in counters {
            self.plan
                .longest_rate_key
                .fetch_max(counter.key.len(), Ordering::SeqCst);
        }
        self.plan.gate("rate_limits.hit").await?;
        self.inner.hit(counters, now).await
    }
    async fn give_back(&self, hits: &[RateHit]) -> Result<(), StoreError> {
        self.plan.gate("rate_limits.give_back").await?;
        self.inner.give_back(hits).await
    }
}

#[async_trait]
impl SmsSender for Faulty<Outbox> {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        self.plan
            .gate("sms.send_sms")
            .await
            .map_err(|e| DeliveryError(e.to_string()))?;
        self.inner.send_sms(message).await
    }
}

#[async_trait]
impl EmailSender for Faulty<Outbox> {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.plan
            .gate("email.send_email")
            .await
            .map_err(|e| DeliveryError(e.to_string()))?;
        self.inner.send_email(message).await
    }
}

// ---------------------------------------------------------------------------------------------
// Calling the handlers.

#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Management,
    Basic(String, String),
    /// The raw `Authorization` header value.
    Raw(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub raw: Vec<u8>,
    pub headers: HeaderMap,
}

pub fn auth_headers(auth: &Auth) -> HeaderMap {
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
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(header::AUTHORIZATION, value);
            }
        }
    }
    headers
}

/// One request: path parameters, query, headers and body exactly as given.
pub async fn raw_call(
    deps: &Deps,
    route: RouteId,
    path: &[(&str, &str)],
    query: &[(&str, &str)],
    headers: HeaderMap,
    body: Vec<u8>,
) -> Reply {
    let request = ApiRequest {
        method: Method::from_bytes(route.route().method.as_bytes()).unwrap(),
        path_params: path
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers,
        body,
        ..ApiRequest::default()
    };
    let response = handle(deps, route, request).await;
    Reply {
        status: response.status,
        body: response.json(),
        raw: response.body,
        headers: response.headers,
    }
}

/// A JSON request. `params` are path parameters, except `user_id` of `GET /v1/sessions`, which
/// is its query.
pub async fn call(
    deps: &Deps,
    route: RouteId,
    params: &[(&str, &str)],
    auth: &Auth,
    body: Option<Value>,
) -> Reply {
    let mut headers = auth_headers(auth);
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
    if route == RouteId::SessionsList {
        raw_call(deps, route, &[], params, headers, bytes).await
    } else {
        raw_call(deps, route, params, &[], headers, bytes).await
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes.

/// The Stytch error shape with this status and `error_type`.
#[track_caller]
pub fn assert_login_error(reply: &Reply, status: u16, error_type: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(
        reply.body["error_type"],
        json!(error_type),
        "{}",
        reply.body
    );
    assert_login_shape(reply);
}

/// The Prelude error shape with this status and `code`.
#[track_caller]
pub fn assert_management_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(reply.body["code"], json!(code), "{}", reply.body);
    assert_management_shape(reply);
}

fn request_id_ok(reply: &Reply) -> bool {
    let id = reply.body["request_id"].as_str();
    id.is_some_and(|id| id.starts_with("request-id-"))
        && reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            == id
}

/// Any Stytch-dialect response: `status_code` equal to the HTTP status, `request_id`, and for
/// errors `error_type`, `error_message` and `error_url`.
#[track_caller]
pub fn assert_login_shape(reply: &Reply) {
    let b = &reply.body;
    assert!(
        b.is_object(),
        "not a JSON object: {:?}",
        String::from_utf8_lossy(&reply.raw)
    );
    assert_eq!(b["status_code"], json!(reply.status.as_u16()), "{b}");
    assert!(request_id_ok(reply), "{b}");
    if !reply.status.is_success() {
        let error_type = b["error_type"].as_str().unwrap_or_else(|| panic!("{b}"));
        assert!(!error_type.is_empty(), "{b}");
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
    }
}

/// Any Prelude-dialect response: 204 without a body, else a JSON object with `request_id`, and
/// for errors `code`, `status` and `message`.
#[track_caller]
pub fn assert_management_shape(reply: &Reply) {
    if reply.status == StatusCode::NO_CONTENT {
        assert!(reply.raw.is_empty());
        return;
    }
    let b = &reply.body;
    assert!(
        b.is_object(),
        "not a JSON object: {:?}",
        String::from_utf8_lossy(&reply.raw)
    );
    assert!(request_id_ok(reply), "{b}");
    if !reply.status.is_success() {
        for field in ["code", "status", "message"] {
            assert!(
                b[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} in {b}"
            );
        }
    }
}

#[track_caller]
pub fn assert_dialect_shape(dialect: Dialect, reply: &Reply) {
    match dialect {
        Dialect::Management => assert_management_shape(reply),
        Dialect::Login | Dialect::Public => assert_login_shape(reply),
    }
}

/// A code that differs from `code` in its first digit.
pub fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

// ---------------------------------------------------------------------------------------------
// The world: one app with a default sms and a default email login config.

pub struct World {
    pub deps: Deps,
    pub store: Arc<MemoryStore>,
    pub outbox: Arc<Outbox>,
    pub clock: Arc<FakeClock>,
    pub plan: Arc<FaultPlan>,
    pub app_id: String,
    pub secret: String,
}

impl World {
    pub async fn new(limits: Limits) -> World {
        Self::seeded(limits, 42).await
    }

    pub async fn seeded(limits: Limits, seed: u64) -> World {
        let clock = Arc::new(FakeClock::new(START));
        let settings = Settings {
            public_base_url: BASE_URL.to_owned(),
            default_email_from: "no-reply@example.com".to_owned(),
            limits,
        };
        let mem = InMemory::with(
            keys(),
            settings,
            clock.clone(),
            Arc::new(SeededRandom::new(seed)),
        );
        let plan = Arc::new(FaultPlan::default());
        let faulty_store = Arc::new(Faulty {
            inner: mem.store.clone(),
            plan: plan.clone(),
        });
        let faulty_outbox = Arc::new(Faulty {
            inner: mem.outbox.clone(),
            plan: plan.clone(),
        });
        let mut deps = mem.deps.clone();
        deps.apps = faulty_store.clone();
        deps.configs = faulty_store.clone();
        deps.users = faulty_store.clone();
        deps.challenges = faulty_store.clone();
        deps.sessions = faulty_store.clone();
        deps.rate_limits = faulty_store;
        deps.sms = faulty_outbox.clone();
        deps.email = faulty_outbox;
        let mut world = World {
            deps,
            store: mem.store.clone(),
            outbox: mem.outbox.clone(),
            clock,
            plan,
            app_id: String::new(),
            secret: String::new(),
        };
        let (app_id, secret) = world.create_app("Acme").await;
        world.app_id = app_id;
        world.secret = secret;
        world
    }

    /// A new app with default sms and email configs; returns (app_id, secret).
    pub async fn create_app(&self, name: &str) -> (String, String) {
        let created = call(
            &self.deps,
            RouteId::CreateApp,
            &[],
            &Auth::Management,
            Some(json!({ "name": name })),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let app_id = created.body["app"]["id"].as_str().unwrap().to_owned();
        let secret = created.body["secret"].as_str().unwrap().to_owned();
        for channel in ["sms", "email"] {
            let r = call(
                &self.deps,
                RouteId::CreateLoginConfig,
                &[("app_id", &app_id)],
                &Auth::Management,
                Some(json!({"config_type": "otp", "channel_type": channel, "is_default": true})),
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        (app_id, secret)
    }

    pub fn basic(&self) -> Auth {
        Auth::Basic(self.app_id.clone(), self.secret.clone())
    }

    pub fn app(&self) -> AppId {
        AppId::parse(&self.app_id).unwrap()
    }

    /// A Login API call with this app's credentials.
    pub async fn login(&self, route: RouteId, body: Value) -> Reply {
        call(&self.deps, route, &[], &self.basic(), Some(body)).await
    }

    pub async fn login_as(&self, auth: &Auth, route: RouteId, body: Value) -> Reply {
        call(&self.deps, route, &[], auth, Some(body)).await
    }

    pub async fn get_user(&self, user_id: &str) -> Reply {
        call(
            &self.deps,
            RouteId::UsersGet,
            &[("user_id", user_id)],
            &self.basic(),
            None,
        )
        .await
    }

    pub async fn list_sessions(&self, user_id: &str) -> Reply {
        call(
            &self.deps,
            RouteId::SessionsList,
            &[("user_id", user_id)],
            &self.basic(),
            None,
        )
        .await
    }

    /// login_or_create by SMS; returns (user_id, phone_id, code).
    pub async fn sms_code(&self, phone: &str) -> (String, String, String) {
        self.sms_code_as(&self.basic(), phone).await
    }

    pub async fn sms_code_as(&self, auth: &Auth, phone: &str) -> (String, String, String) {
        let r = self
            .login_as(
                auth,
                RouteId::SmsLoginOrCreate,
                json!({"phone_number": phone}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let code = self.outbox.last_to(phone).unwrap().code;
        (
            r.body["user_id"].as_str().unwrap().to_owned(),
            r.body["phone_id"].as_str().unwrap().to_owned(),
            code,
        )
    }

    /// login_or_create by email; returns (user_id, email_id, code).
    pub async fn email_code(&self, email: &str) -> (String, String, String) {
        let r = self
            .login(RouteId::EmailLoginOrCreate, json!({ "email": email }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let code = self.outbox.last_to(&email.to_lowercase()).unwrap().code;
        (
            r.body["user_id"].as_str().unwrap().to_owned(),
            r.body["email_id"].as_str().unwrap().to_owned(),
            code,
        )
    }

    /// Authenticates with a 60-minute session; returns the success body.
    pub async fn authenticate(&self, method_id: &str, code: &str) -> Reply {
        self.login(
            RouteId::OtpAuthenticate,
            json!({"method_id": method_id, "code": code, "session_duration_minutes": 60}),
        )
        .await
    }

    /// A user with a session: (user_id, phone_id, authenticate body).
    pub async fn session_for(&self, phone: &str) -> (String, String, Value) {
        let (user_id, phone_id, code) = self.sms_code(phone).await;
        let r = self.authenticate(&phone_id, &code).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (user_id, phone_id, r.body)
    }

    /// The stored code of a method, read straight from the store.
    pub async fn challenge(&self, method_id: &str) -> Option<Challenge> {
        self.store
            .get_challenge(&self.app(), &MethodId::parse(method_id).unwrap())
            .await
            .unwrap()
    }

    pub async fn user_record(&self, user_id: &str) -> Option<User> {
        self.store
            .get_user(&self.app(), &UserId::parse(user_id).unwrap())
            .await
            .unwrap()
    }

    /// How many users of this world's store hold `identifier` (as their Debug form shows it).
    pub fn users_holding(&self, identifier: &str) -> usize {
        let needle = format!("{identifier:?}");
        self.store
            .dump_for_inspection()
            .lines()
            .filter(|line| line.starts_with("User {") && line.contains(&needle))
            .count()
    }

    /// Whether `code` is the stored code of the method (checked against the stored hash).
    pub async fn code_matches(&self, method_id: &str, code: &str) -> bool {
        match self.challenge(method_id).await {
            Some(c) => self
                .deps
                .keys
                .code_hasher
                .matches(&c.hash_context, code, &c.code_hash),
            None => false,
        }
    }
}
