//! What the behaviours share: a world (an app with default sms and email login configs) on a
//! fresh store of the backend, behind [`Faulty`], which can fail any store or delivery call or
//! yield to the scheduler before each; a fake clock started at the real time; helpers that drive
//! `crate::api::handle` with Basic/Bearer credentials; and reads of what is stored, straight
//! from the store's own ports or its dump.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use super::{BelowStore, Corpus, Held, Ports, Target};
use crate::api::{ApiRequest, Dialect, RouteId, handle};
use crate::clock::{Clock, FakeClock, SystemClock, Timestamp};
use crate::crypto::{CodeHasher, Hash32, KeyEncryptionKey, ManagementKeyHash};
use crate::identifiers::{Identifier, Region};
use crate::ids::{AppId, ConfigId, Home, MethodId, SecretId, TemplateId, TestIdentifierId, UserId};
use crate::memory::Outbox;
use crate::model::{
    App, AppSecret, Challenge, FrontendSettings, LoginConfig, Session, SigningKey, Template,
    TestIdentifier, User,
};
use crate::ports::{
    AppData, AppStore, CommitError, CommitToken, ConfigStore, DeliveryError, EmailMessage,
    EmailSender, HomeRecords, Key, LoginStore, Record, SmsMessage, SmsSender, StoreError,
    Versioned, Write, WriteError,
};
use crate::random::OsRandom;
use crate::service::{AppCache, Deps, Keys, Limits, SendLimits, Settings};

pub const MANAGEMENT_KEY: &str = "adversarial-management-key-5f2a9c";
/// The code-hashing key: distinctive bytes, so that a copy of it in the store would be seen.
pub const CODE_KEY: [u8; 32] = [0xA5; 32];
/// The deployment's key-encryption key in the suite (seals the apps' signing keys).
pub const KEY_ENCRYPTION_KEY: &str = "adversarial-suite-key-encryption-key-0123456789";
pub const PHONE: &str = "+12025550100";
pub const OTHER_PHONE: &str = "+12025550101";
pub const THIRD_PHONE: &str = "+12025550102";
pub const EMAIL: &str = "ann.lee@example.com";
pub const BASE_URL: &str = "http://127.0.0.1:3000";
/// The web page origin every app of the suite authorizes for its frontend API; `raw_call` sends
/// it on frontend requests that name no origin of their own.
pub const WEB_ORIGIN: &str = "https://app.example.com";

/// Send limits out of the way, for tests about something else.
/// The deployment's send limits, without SMS budgets (the `budgets` behaviours test those).
pub fn send_limits() -> Limits {
    Limits {
        sms_budgets: crate::model::SmsBudgets::unlimited(),
        ..Limits::default()
    }
}

pub fn relaxed() -> Limits {
    Limits {
        send: SendLimits {
            cooldown_seconds: 0,
            window_max: 1000,
            window_seconds: 600,
            ip_window_max: 1000,
        },
        sms_budgets: crate::model::SmsBudgets::unlimited(),
        ..Limits::default()
    }
}

/// The deployment's keys, one set per test binary: generating an RSA key takes long.
fn keys() -> Arc<Keys> {
    static KEYS: OnceLock<Arc<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Arc::new(Keys::new(
            ManagementKeyHash::of_key(MANAGEMENT_KEY),
            CodeHasher::new(&CODE_KEY).expect("a 32-byte key"),
            KeyEncryptionKey::from_secret(KEY_ENCRYPTION_KEY).expect("a long enough key"),
        ))
    })
    .clone()
}

// ---------------------------------------------------------------------------------------------
// Faults above the store: every store and delivery call passes through a `FaultPlan`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The call is not made: `StoreError::Unavailable` (what an adapter answers once its own
    /// retries of throttling or conflicts are spent: 503); a delivery fails.
    Unavailable,
    /// The call is not made: `StoreError::Other` (500); a delivery fails.
    Other,
    /// The call is made (and does what it does), then answers `StoreError::Unavailable` (for
    /// `commit`, `CommitError::Store`; a delivery, `DeliveryError`): an answer lost after the
    /// write, as a timeout can do to any remote call.
    Lost,
}

pub const KINDS: [FaultKind; 3] = [FaultKind::Unavailable, FaultKind::Other, FaultKind::Lost];

#[derive(Default)]
struct PlanState {
    armed: bool,
    calls: Vec<&'static str>,
    fail_at: Option<(usize, FaultKind)>,
}

/// Counts the calls of [`Faulty`] while armed, and fails the chosen one.
#[derive(Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
    yield_each: AtomicBool,
    /// Calls made while yielding, to vary the number of yields.
    yields: AtomicUsize,
    /// The longest send-counter key read or written (armed or not).
    pub longest_counter_key: AtomicUsize,
}

enum Gate {
    Pass,
    Fail(StoreError),
    Lose,
}

impl FaultPlan {
    fn state(&self) -> MutexGuard<'_, PlanState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts counting from zero; `fail_at` is the 0-based index of the call to fail.
    pub fn arm(&self, fail_at: Option<(usize, FaultKind)>) {
        *self.state() = PlanState {
            armed: true,
            calls: Vec::new(),
            fail_at,
        };
    }

    /// Stops counting and failing; returns the calls seen since `arm`.
    pub fn disarm(&self) -> Vec<&'static str> {
        let mut s = self.state();
        s.armed = false;
        s.fail_at = None;
        std::mem::take(&mut s.calls)
    }

    /// Yield to the scheduler around every call (one to four times before it, once after), so
    /// that concurrent requests interleave at every store operation, in varying orders: a store
    /// in memory never suspends, so without this each request would run to its end at once.
    pub fn set_yield(&self, on: bool) {
        self.yield_each.store(on, Ordering::SeqCst);
    }

    fn yielding(&self) -> bool {
        self.yield_each.load(Ordering::SeqCst)
    }

    async fn yield_some(&self) {
        // A cheap spread of 1 to 4 (Knuth's multiplicative hash of the call's number).
        let call = self.yields.fetch_add(1, Ordering::SeqCst) as u32;
        let times = 1 + (call.wrapping_mul(2_654_435_761) >> 30);
        for _ in 0..times {
            tokio::task::yield_now().await;
        }
    }

    async fn gate(&self, name: &'static str) -> Gate {
        if self.yielding() {
            self.yield_some().await;
        }
        let mut s = self.state();
        if !s.armed {
            return Gate::Pass;
        }
        let index = s.calls.len();
        s.calls.push(name);
        match s.fail_at {
            Some((at, FaultKind::Unavailable)) if at == index => Gate::Fail(
                StoreError::Unavailable(format!("injected: {name} throttled")),
            ),
            Some((at, FaultKind::Other)) if at == index => {
                Gate::Fail(StoreError::Other(format!("injected: {name} broke")))
            }
            Some((at, FaultKind::Lost)) if at == index => Gate::Lose,
            _ => Gate::Pass,
        }
    }

    /// Runs `call` through the gate named `name`.
    async fn run<T, E: From<StoreError>>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let result = match self.gate(name).await {
            Gate::Pass => call.await,
            Gate::Fail(error) => Err(error.into()),
            Gate::Lose => {
                let _ = call.await;
                Err(
                    StoreError::Unavailable(format!("injected: the answer of {name} was lost"))
                        .into(),
                )
            }
        };
        if self.yielding() {
            tokio::task::yield_now().await;
        }
        result
    }

    fn note_counter_key(&self, key: &str) {
        self.longest_counter_key
            .fetch_max(key.len(), Ordering::SeqCst);
    }
}

/// The store's ports and the senders, each call through a [`FaultPlan`].
pub struct Faulty {
    pub ports: Ports,
    pub sms: Arc<dyn SmsSender>,
    pub email: Arc<dyn EmailSender>,
    pub plan: Arc<FaultPlan>,
}

#[async_trait]
impl AppStore for Faulty {
    async fn create_app(
        &self,
        app: &App,
        secret: &AppSecret,
        signing_keys: &[SigningKey],
        frontend: &FrontendSettings,
    ) -> Result<(), StoreError> {
        let call = self
            .ports
            .apps
            .create_app(app, secret, signing_keys, frontend);
        self.plan.run("apps.create_app", call).await
    }
    async fn find_public_token(&self, token: &str) -> Result<Option<AppId>, StoreError> {
        let call = self.ports.apps.find_public_token(token);
        self.plan.run("apps.find_public_token", call).await
    }
    async fn replace_frontend(
        &self,
        app_id: &AppId,
        expected_revision: u64,
        settings: &FrontendSettings,
        added: Option<&str>,
        removed: Option<&str>,
    ) -> Result<(), WriteError> {
        let call =
            self.ports
                .apps
                .replace_frontend(app_id, expected_revision, settings, added, removed);
        self.plan.run("apps.replace_frontend", call).await
    }
    async fn replace_signing_keys(
        &self,
        app_id: &AppId,
        expected_current: Option<&str>,
        signing_keys: &[SigningKey],
    ) -> Result<(), WriteError> {
        let call = self
            .ports
            .apps
            .replace_signing_keys(app_id, expected_current, signing_keys);
        self.plan.run("apps.replace_signing_keys", call).await
    }
    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        let call = self.ports.apps.get_app(app_id);
        self.plan.run("apps.get_app", call).await
    }
    async fn load_app(&self, app_id: &AppId) -> Result<Option<AppData>, StoreError> {
        let call = self.ports.apps.load_app(app_id);
        self.plan.run("apps.load_app", call).await
    }
    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError> {
        let call = self.ports.apps.add_secret(secret);
        self.plan.run("apps.add_secret", call).await
    }
    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError> {
        let call = self.ports.apps.list_secrets(app_id);
        self.plan.run("apps.list_secrets", call).await
    }
    async fn delete_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
    ) -> Result<bool, WriteError> {
        let call = self.ports.apps.delete_secret(app_id, secret_id);
        self.plan.run("apps.delete_secret", call).await
    }
    async fn touch_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let call = self.ports.apps.touch_secret(app_id, secret_id, at);
        self.plan.run("apps.touch_secret", call).await
    }
}

#[async_trait]
impl ConfigStore for Faulty {
    async fn put_config(&self, config: &LoginConfig) -> Result<(), WriteError> {
        let call = self.ports.configs.put_config(config);
        self.plan.run("configs.put_config", call).await
    }
    async fn get_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<Option<LoginConfig>, StoreError> {
        let call = self.ports.configs.get_config(app_id, config_id);
        self.plan.run("configs.get_config", call).await
    }
    async fn list_configs(&self, app_id: &AppId) -> Result<Vec<LoginConfig>, StoreError> {
        let call = self.ports.configs.list_configs(app_id);
        self.plan.run("configs.list_configs", call).await
    }
    async fn delete_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<bool, StoreError> {
        let call = self.ports.configs.delete_config(app_id, config_id);
        self.plan.run("configs.delete_config", call).await
    }
    async fn put_template(&self, template: &Template) -> Result<(), StoreError> {
        let call = self.ports.configs.put_template(template);
        self.plan.run("configs.put_template", call).await
    }
    async fn get_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        let call = self.ports.configs.get_template(app_id, template_id);
        self.plan.run("configs.get_template", call).await
    }
    async fn list_templates(&self, app_id: &AppId) -> Result<Vec<Template>, StoreError> {
        let call = self.ports.configs.list_templates(app_id);
        self.plan.run("configs.list_templates", call).await
    }
    async fn delete_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<bool, WriteError> {
        let call = self.ports.configs.delete_template(app_id, template_id);
        self.plan.run("configs.delete_template", call).await
    }
    async fn put_test_identifier(&self, test: &TestIdentifier) -> Result<(), WriteError> {
        let call = self.ports.configs.put_test_identifier(test);
        self.plan.run("configs.put_test_identifier", call).await
    }
    async fn list_test_identifiers(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<TestIdentifier>, StoreError> {
        let call = self.ports.configs.list_test_identifiers(app_id);
        self.plan.run("configs.list_test_identifiers", call).await
    }
    async fn find_test_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<TestIdentifier>, StoreError> {
        let call = self.ports.configs.find_test_identifier(app_id, identifier);
        self.plan.run("configs.find_test_identifier", call).await
    }
    async fn delete_test_identifier(
        &self,
        app_id: &AppId,
        id: &TestIdentifierId,
    ) -> Result<bool, StoreError> {
        let call = self.ports.configs.delete_test_identifier(app_id, id);
        self.plan.run("configs.delete_test_identifier", call).await
    }
    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<Region>>, StoreError> {
        let call = self.ports.configs.get_sms_countries(app_id);
        self.plan.run("configs.get_sms_countries", call).await
    }
    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        regions: Option<Vec<Region>>,
    ) -> Result<(), StoreError> {
        let call = self.ports.configs.put_sms_countries(app_id, regions);
        self.plan.run("configs.put_sms_countries", call).await
    }
    async fn get_sms_budgets(
        &self,
        app_id: &AppId,
    ) -> Result<Option<crate::model::SmsBudgets>, StoreError> {
        let call = self.ports.configs.get_sms_budgets(app_id);
        self.plan.run("configs.get_sms_budgets", call).await
    }
    async fn put_sms_budgets(
        &self,
        app_id: &AppId,
        budgets: &crate::model::SmsBudgets,
    ) -> Result<(), StoreError> {
        let call = self.ports.configs.put_sms_budgets(app_id, budgets);
        self.plan.run("configs.put_sms_budgets", call).await
    }
}

#[async_trait]
impl LoginStore for Faulty {
    async fn load(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        for key in keys {
            if let Key::Counter { key } = key {
                self.plan.note_counter_key(key);
            }
        }
        let call = self.ports.login.load(keys);
        self.plan.run("login.load", call).await
    }
    async fn load_home(&self, app_id: &AppId, home: Home) -> Result<HomeRecords, StoreError> {
        let call = self.ports.login.load_home(app_id, home);
        self.plan.run("login.load_home", call).await
    }
    async fn commit(&self, writes: &[Write], token: &CommitToken) -> Result<(), CommitError> {
        for write in writes {
            if let Write::PutCounter { counter, .. } = write {
                self.plan.note_counter_key(&counter.key);
            }
        }
        let call = self.ports.login.commit(writes, token);
        self.plan.run("login.commit", call).await
    }
    async fn touch_session(
        &self,
        app_id: &AppId,
        home: Home,
        token_hash: &Hash32,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<Option<Versioned<Session>>, StoreError> {
        let call = self
            .ports
            .login
            .touch_session(app_id, home, token_hash, now, expires_at);
        self.plan.run("login.touch_session", call).await
    }
    async fn list_tallies(
        &self,
        app_id: &AppId,
        prefix: &str,
    ) -> Result<Vec<crate::model::Tally>, StoreError> {
        let call = self.ports.login.list_tallies(app_id, prefix);
        self.plan.run("login.list_tallies", call).await
    }
}

fn delivery(result: Result<(), StoreError>) -> Result<(), DeliveryError> {
    result.map_err(|e| DeliveryError(e.to_string()))
}

#[async_trait]
impl SmsSender for Faulty {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        let call = async {
            self.sms
                .send_sms(message)
                .await
                .map_err(|e| StoreError::Other(e.0))
        };
        delivery(self.plan.run("sms.send_sms", call).await)
    }
}

#[async_trait]
impl EmailSender for Faulty {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let call = async {
            self.email
                .send_email(message)
                .await
                .map_err(|e| StoreError::Other(e.0))
        };
        delivery(self.plan.run("email.send_email", call).await)
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
    let mut set = |value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::AUTHORIZATION, value);
        }
    };
    match auth {
        Auth::None => {}
        Auth::Management => set(&format!("Bearer {MANAGEMENT_KEY}")),
        Auth::Basic(user, password) => {
            set(&format!(
                "Basic {}",
                STANDARD.encode(format!("{user}:{password}"))
            ));
        }
        Auth::Raw(value) => {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(header::AUTHORIZATION, value);
            }
        }
    }
    headers
}

/// Headers with credentials and `Content-Type: application/json`.
pub fn json_headers(auth: &Auth) -> HeaderMap {
    let mut headers = auth_headers(auth);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

/// One request: path parameters, query, headers and body exactly as given.
pub async fn raw_call(
    deps: &Deps,
    route: RouteId,
    path: &[(&str, &str)],
    query: &[(&str, &str)],
    mut headers: HeaderMap,
    body: Vec<u8>,
) -> Reply {
    if route.route().dialect == Dialect::Frontend && !headers.contains_key(header::ORIGIN) {
        headers.insert(header::ORIGIN, HeaderValue::from_static(WEB_ORIGIN));
    }
    let request = ApiRequest {
        method: Method::from_bytes(route.route().method.as_bytes()).expect("a route's method"),
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
    let (headers, bytes) = match body {
        Some(v) => (
            json_headers(auth),
            serde_json::to_vec(&v).expect("a JSON body"),
        ),
        None => (auth_headers(auth), Vec::new()),
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
        Dialect::Frontend => assert_frontend_shape(reply),
    }
}

/// Any frontend-API response: a preflight's 204 without a body, a success as `{"data": ...}`
/// whose `request_id` and `status_code` are the response's, an error in the Stytch shape.
#[track_caller]
pub fn assert_frontend_shape(reply: &Reply) {
    if reply.status == StatusCode::NO_CONTENT {
        assert!(reply.raw.is_empty());
        return;
    }
    if !reply.status.is_success() {
        return assert_login_shape(reply);
    }
    let data = Reply {
        body: reply.body["data"].clone(),
        ..reply.clone()
    };
    assert_login_shape(&data);
}

/// A code that differs from `code` in its first digit.
pub fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

/// A JSON string's text.
#[track_caller]
pub fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Reading the dump.

/// The user ids in a line.
pub fn user_ids(line: &str) -> Vec<UserId> {
    const PREFIX: &str = "user-";
    const LENGTH: usize = PREFIX.len() + 36;
    line.match_indices(PREFIX)
        .filter(|(at, _)| {
            !line[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '-')
        })
        .filter_map(|(at, _)| line.get(at..at + LENGTH).and_then(UserId::parse))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The world: one app with a default sms and a default email login config, on a fresh store.

pub struct World {
    /// Every port through [`Faulty`].
    pub deps: Deps,
    /// The store's own ports (not through the fault plan), for reads that check outcomes.
    pub ports: Ports,
    /// Every message handed to delivery (or recorded for a test identifier), with its code.
    pub outbox: Arc<Outbox>,
    pub clock: Arc<FakeClock>,
    /// The clock's start: the real time when the world was made.
    pub start: Timestamp,
    pub plan: Arc<FaultPlan>,
    pub corpus: Corpus,
    held: Arc<dyn Held>,
    pub app_id: String,
    pub secret: String,
    /// The app's public token (frontend API).
    pub public_token: String,
}

impl World {
    /// A world on a fresh store of `target`, or `None` (the test passes without running) when
    /// the backend cannot run here.
    pub async fn new(target: &Target, limits: Limits) -> Option<World> {
        let (ports, held) = target.fresh().await?;
        let start = SystemClock.now();
        let clock = Arc::new(FakeClock::new(start));
        let outbox = Arc::new(Outbox::new(clock.clone()));
        let plan = Arc::new(FaultPlan::default());
        let faulty = Arc::new(Faulty {
            ports: ports.clone(),
            sms: outbox.clone(),
            email: outbox.clone(),
            plan: plan.clone(),
        });
        let settings = Settings {
            public_base_url: BASE_URL.to_owned(),
            default_email_from: "no-reply@example.com".to_owned(),
            limits,
            // Every request reads its app: a fault sweep then meets that read too.
            app_cache_seconds: 0,
            test_environment: false,
        };
        let deps = Deps {
            apps: faulty.clone(),
            configs: faulty.clone(),
            login: faulty.clone(),
            app_cache: Arc::new(AppCache::new(settings.app_cache_seconds)),
            sms: faulty.clone(),
            email: faulty,
            test_messages: outbox.clone(),
            clock: clock.clone(),
            random: Arc::new(OsRandom),
            keys: keys(),
            settings,
        };
        let mut world = World {
            deps,
            ports,
            outbox,
            clock,
            start,
            plan,
            corpus: target.corpus(),
            held,
            app_id: String::new(),
            secret: String::new(),
            public_token: String::new(),
        };
        let (app_id, secret, public_token) = world.create_app_with_token("Acme").await;
        world.app_id = app_id;
        world.secret = secret;
        world.public_token = public_token;
        Some(world)
    }

    /// A new app with default sms and email configs; returns (app_id, secret).
    pub async fn create_app(&self, name: &str) -> (String, String) {
        let (app_id, secret, _) = self.create_app_with_token(name).await;
        (app_id, secret)
    }

    /// A new app with default sms and email configs, whose frontend API authorizes
    /// [`WEB_ORIGIN`]; returns (app_id, secret, public_token).
    pub async fn create_app_with_token(&self, name: &str) -> (String, String, String) {
        let created = call(
            &self.deps,
            RouteId::CreateApp,
            &[],
            &Auth::Management,
            Some(json!({ "name": name })),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let app_id = s(&created.body["app"]["id"]);
        let secret = s(&created.body["secret"]);
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
        let r = call(
            &self.deps,
            RouteId::PutFrontendSettings,
            &[("app_id", &app_id)],
            &Auth::Management,
            Some(json!({"authorized_origins": [WEB_ORIGIN]})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let public_token = s(&created.body["public_token"]);
        (app_id, secret, public_token)
    }

    pub fn basic(&self) -> Auth {
        Auth::Basic(self.app_id.clone(), self.secret.clone())
    }

    pub fn app(&self) -> AppId {
        AppId::parse(&self.app_id).expect("the world's app id")
    }

    /// Everything stored, as the backend dumps it.
    pub async fn dump(&self) -> String {
        self.held.dump().await
    }

    /// Faults below the store, if the backend has them.
    pub fn below(&self) -> Option<&dyn BelowStore> {
        self.held.below()
    }

    /// Stores this app's SMS countries as earlier versions did (calling codes), behind the
    /// ports; `false` when the backend cannot.
    pub async fn put_sms_calling_codes_as_before(&self, calling_codes: &[&str]) -> bool {
        let codes: Vec<String> = calling_codes.iter().map(|c| c.to_string()).collect();
        self.held
            .put_sms_calling_codes_as_before(&self.app(), &codes)
            .await
    }

    /// A Login API call with this app's credentials.
    pub async fn login(&self, route: RouteId, body: Value) -> Reply {
        call(&self.deps, route, &[], &self.basic(), Some(body)).await
    }

    pub async fn login_as(&self, auth: &Auth, route: RouteId, body: Value) -> Reply {
        call(&self.deps, route, &[], auth, Some(body)).await
    }

    /// A management call.
    pub async fn manage(
        &self,
        route: RouteId,
        params: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        call(&self.deps, route, params, &Auth::Management, body).await
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

    pub async fn delete_user(&self, user_id: &str) -> Reply {
        call(
            &self.deps,
            RouteId::UsersDelete,
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

    /// How many live sessions the API lists for the user.
    pub async fn session_count(&self, user_id: &str) -> usize {
        let r = self.list_sessions(user_id).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["sessions"].as_array().map_or(0, Vec::len)
    }

    /// The codes handed to delivery for `to` (a phone number or lower-cased email), oldest
    /// first, test identifiers' marks left out.
    pub fn codes_to(&self, to: &str) -> Vec<String> {
        let mut codes: Vec<String> = self
            .outbox
            .messages()
            .into_iter()
            .filter(|m| m.to == to && !m.test)
            .map(|m| m.code)
            .collect();
        codes.reverse();
        codes
    }

    /// The newest code handed to delivery for `to`.
    #[track_caller]
    pub fn last_code(&self, to: &str) -> String {
        self.codes_to(to)
            .pop()
            .unwrap_or_else(|| panic!("no code was sent to {to}"))
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
        let code = self
            .outbox
            .last_to(phone)
            .expect("a message to the number")
            .code;
        (s(&r.body["user_id"]), s(&r.body["phone_id"]), code)
    }

    /// login_or_create by email; returns (user_id, email_id, code).
    pub async fn email_code(&self, email: &str) -> (String, String, String) {
        let r = self
            .login(RouteId::EmailLoginOrCreate, json!({ "email": email }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let code = self
            .outbox
            .last_to(&email.to_lowercase())
            .expect("a message to the address")
            .code;
        (s(&r.body["user_id"]), s(&r.body["email_id"]), code)
    }

    /// Authenticates with a 60-minute session.
    pub async fn authenticate(&self, method_id: &str, code: &str) -> Reply {
        self.login(
            RouteId::OtpAuthenticate,
            json!({"method_id": method_id, "code": code, "session_duration_minutes": 60}),
        )
        .await
    }

    /// Tries a code without asking for a session.
    pub async fn try_code(&self, method_id: &str, code: &str) -> Reply {
        self.login(
            RouteId::OtpAuthenticate,
            json!({"method_id": method_id, "code": code}),
        )
        .await
    }

    /// Adds a phone number or email to a user (`send` with its `user_id`); returns the new
    /// method's id and the code sent to it.
    pub async fn add_identifier(&self, user_id: &str, identifier: &str) -> (String, String) {
        let (route, field, method) = if identifier.starts_with('+') {
            (RouteId::SmsSend, "phone_number", "phone_id")
        } else {
            (RouteId::EmailSend, "email", "email_id")
        };
        let r = self
            .login(route, json!({ field: identifier, "user_id": user_id }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (
            s(&r.body[method]),
            self.last_code(&identifier.to_lowercase()),
        )
    }

    /// Makes `identifier` a test identifier of this app with a fixed code; returns its id.
    pub async fn add_test_identifier(
        &self,
        identifier: &str,
        code: &str,
        valid_until: Timestamp,
    ) -> String {
        let r = self
            .manage(
                RouteId::CreateTestIdentifier,
                &[("app_id", &self.app_id)],
                Some(json!({"identifier": identifier, "code": code, "valid_until": valid_until.to_rfc3339()})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{identifier}: {}", r.body);
        assert!(
            !r.body.to_string().contains(code),
            "the code is never echoed: {}",
            r.body
        );
        s(&r.body["test_identifier"]["id"])
    }

    /// A user with a session: (user_id, phone_id, authenticate body).
    pub async fn session_for(&self, phone: &str) -> (String, String, Value) {
        let (user_id, phone_id, code) = self.sms_code(phone).await;
        let r = self.authenticate(&phone_id, &code).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (user_id, phone_id, r.body)
    }

    /// The current code of a method, read straight from the store.
    pub async fn challenge(&self, method_id: &str) -> Option<Challenge> {
        let method_id = MethodId::parse(method_id).expect("a method id");
        let key = Key::Codes {
            app_id: self.app(),
            method_id,
        };
        match self.load_one(key).await {
            Some(Record::Codes(codes)) => codes.value.current,
            _ => None,
        }
    }

    /// The user record, read straight from the store.
    pub async fn user_record(&self, user_id: &str) -> Option<User> {
        let user_id = UserId::parse(user_id).expect("a user id");
        let key = Key::User {
            app_id: self.app(),
            home: user_id.home(),
        };
        match self.load_one(key).await {
            Some(Record::User(user)) if user.value.id == user_id => Some(user.value),
            _ => None,
        }
    }

    /// Who holds `identifier` in this app (user id, method id), straight from the store.
    pub async fn holder(&self, identifier: &str) -> Option<(String, String)> {
        let identifier = Identifier::parse(identifier).expect("an identifier");
        let key = Key::Owner {
            app_id: self.app(),
            identifier,
        };
        match self.load_one(key).await {
            Some(Record::Owner(owner)) => Some((
                owner.value.user_id.as_str().to_owned(),
                owner.value.method_id.as_str().to_owned(),
            )),
            _ => None,
        }
    }

    /// The sends the identifier's counter still counts (the cooldown and window counter).
    pub async fn counted_sends(&self, identifier: &str) -> usize {
        let identifier = Identifier::parse(identifier).expect("an identifier");
        let rules = crate::service::decide::send::counter_rules(
            &self.app(),
            &identifier,
            None,
            &self.deps.settings.limits,
        );
        let key = Key::Counter {
            key: rules[0].key.clone(),
        };
        match self.load_one(key).await {
            Some(Record::Counter(counter)) => counter.value.hits.len(),
            _ => 0,
        }
    }

    async fn load_one(&self, key: Key) -> Option<Record> {
        self.ports
            .login
            .load(std::slice::from_ref(&key))
            .await
            .expect("a read of the store")
            .pop()
            .flatten()
    }

    /// How many users of this app the store holds with `identifier` (normalized: E.164 or a
    /// lower-cased email). No port lists users, so the dump names the candidates (the user ids
    /// of the app's records that mention the identifier), and each candidate's own record, read
    /// through the store's port, must hold it.
    pub async fn users_holding(&self, identifier: &str) -> usize {
        let parsed = Identifier::parse(identifier).expect("an identifier");
        let dump = self.dump().await;
        let mut candidates: Vec<UserId> = dump
            .lines()
            .filter(|line| line.contains(&self.app_id) && line.contains(identifier))
            .flat_map(user_ids)
            .collect();
        candidates.sort();
        candidates.dedup();
        let mut holding = 0;
        for user_id in candidates {
            if let Some(user) = self.user_record(user_id.as_str()).await
                && user.method_for(&parsed).is_some()
            {
                holding += 1;
            }
        }
        holding
    }

    /// Whether `code` is the current code of the method (checked against the stored hash).
    pub async fn code_matches(&self, method_id: &str, code: &str) -> bool {
        match self.challenge(method_id).await {
            Some(c) => self
                .deps
                .keys
                .code_hasher()
                .expect("the code hash key")
                .matches(&c.hash_context, code, &c.code_hash),
            None => false,
        }
    }

    /// Whether `code` is the current code of the method and can still be tried.
    pub async fn code_is_live(&self, method_id: &str, code: &str) -> bool {
        let now = self.clock.now();
        let max = self.deps.settings.limits.max_code_attempts;
        self.code_matches(method_id, code).await
            && self
                .challenge(method_id)
                .await
                .is_some_and(|c| c.is_live(now, max))
    }
}
