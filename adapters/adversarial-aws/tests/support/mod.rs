//! What the tests of this crate share, adapted from `shared/tests/adversarial_support/mod.rs`: a
//! world (an app with default sms and email login configs) on `DynamoStore` over a fresh table in
//! moto, behind a wrapper that can fail the Nth store or delivery call; a capturing sender that
//! keeps every code it is handed (so no SNS or SES is needed to read codes back); a fake clock
//! started at the real time; helpers that drive `shared::api::handle` with Basic/Bearer
//! credentials; and reads of the table itself (`Scan`). Included by each file with `mod support;`.
//!
//! `World::new` returns `None`, after printing a notice, when `AWS_ENDPOINT_URL_DYNAMODB` is not
//! set: every test then passes without running (`scripts/with-moto.sh` starts moto and sets it).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, Dialect, RouteId, handle};
use shared::clock::{Clock, FakeClock, SystemClock, Timestamp};
use shared::crypto::{CodeHasher, Hash32, ManagementKeyHash};
use shared::identifiers::Identifier;
use shared::ids::{
    AppId, ChallengeId, ConfigId, MethodId, SecretId, SessionId, TemplateId, TestIdentifierId,
    UserId,
};
use shared::jwt::JwtKeys;
use shared::model::{
    App, AppSecret, Challenge, Channel, LoginConfig, Session, Template, TestIdentifier, User,
};
use shared::ports::{
    AppStore, ChallengeStore, ConfigStore, DeliveryError, EmailMessage, EmailSender,
    FailureOutcome, LogTestMessages, RateCounter, RateDecision, RateHit, RateLimitStore,
    SessionStore, SmsMessage, SmsSender, StoreError, SuccessOutcome, UserStore, WriteError,
};
use shared::random::OsRandom;
use shared::service::{Deps, Keys, Limits, SendLimits, Settings};
use store_dynamodb::{DynamoStore, create_table};

pub const SKIP: &str = "skipped: AWS_ENDPOINT_URL_DYNAMODB is not set, so the adversarial suite \
                        did not run on DynamoStore (scripts/with-moto.sh starts moto and sets \
                        it); shared/tests/adversarial_*.rs run it on the in-memory adapters";

pub const MANAGEMENT_KEY: &str = "adversarial-aws-management-key-7c1e4b";
/// The code-hashing key: distinctive bytes, so that a copy of it in the table would be seen.
pub const CODE_KEY: [u8; 32] = [0xA5; 32];
pub const PHONE: &str = "+12025550100";
pub const OTHER_PHONE: &str = "+12025550101";
pub const THIRD_PHONE: &str = "+12025550102";
pub const EMAIL: &str = "ann.lee@example.com";
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

pub fn keys() -> Keys {
    Keys {
        management_key: ManagementKeyHash::of_key(MANAGEMENT_KEY),
        code_hasher: CodeHasher::new(&CODE_KEY).expect("a 32-byte key"),
        jwt: JwtKeys::generate().expect("RSA key"),
    }
}

/// The DynamoDB endpoint, or `None` (after printing the notice) when the tests must skip.
pub fn dynamodb_endpoint() -> Option<String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .ok()
        .filter(|e| !e.is_empty());
    if endpoint.is_none() {
        eprintln!("{SKIP}");
    }
    endpoint
}

/// A table name nobody else in this moto uses.
pub fn unique_table() -> String {
    let nonce = UserId::generate(&OsRandom).as_str()["user-".len()..].replace('-', "");
    format!("otp-adversarial-{nonce}")
}

// ---------------------------------------------------------------------------------------------
// Fault injection: every store and delivery call passes through a `FaultPlan`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `StoreError::Unavailable` (503); a delivery call fails with `DeliveryError` either way.
    Unavailable,
    /// `StoreError::Other` (500).
    Other,
    /// The call is made (and does whatever it does in DynamoDB), then answers
    /// `StoreError::Unavailable` (a delivery: `DeliveryError`): a response lost after the write
    /// committed, as a timeout can do to any remote call.
    Lost,
}

#[derive(Default)]
struct PlanState {
    armed: bool,
    calls: Vec<&'static str>,
    fail_at: Option<(usize, FaultKind)>,
}

/// Counts the calls of the wrapped adapters while armed, and fails the chosen one (before it
/// reaches DynamoDB or the sender).
#[derive(Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
    /// The longest rate-limit counter key seen (armed or not).
    pub longest_rate_key: AtomicUsize,
}

impl FaultPlan {
    /// Starts counting from zero; `fail_at` is the 0-based index of the call to fail.
    pub fn arm(&self, fail_at: Option<(usize, FaultKind)>) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *s = PlanState {
            armed: true,
            calls: Vec::new(),
            fail_at,
        };
    }

    /// Stops counting and failing; returns the calls seen since `arm`.
    pub fn disarm(&self) -> Vec<&'static str> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.armed = false;
        s.fail_at = None;
        std::mem::take(&mut s.calls)
    }

    fn gate(&self, name: &'static str) -> Result<Outcome, StoreError> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.armed {
            return Ok(Outcome { lost: None });
        }
        let index = s.calls.len();
        s.calls.push(name);
        match s.fail_at {
            Some((at, FaultKind::Unavailable)) if at == index => Err(StoreError::Unavailable(
                format!("injected: {name} throttled"),
            )),
            Some((at, FaultKind::Other)) if at == index => {
                Err(StoreError::Other(format!("injected: {name} broke")))
            }
            Some((at, FaultKind::Lost)) if at == index => Ok(Outcome { lost: Some(name) }),
            _ => Ok(Outcome { lost: None }),
        }
    }
}

/// What becomes of a call that was let through: its own result, or (`FaultKind::Lost`) an
/// error in place of the result of a call that did happen.
#[must_use]
pub struct Outcome {
    lost: Option<&'static str>,
}

impl Outcome {
    fn finish<T, E: From<StoreError>>(self, result: Result<T, E>) -> Result<T, E> {
        match self.lost {
            Some(name) => Err(StoreError::Unavailable(format!(
                "injected: the answer of {name} was lost"
            ))
            .into()),
            None => result,
        }
    }

    fn finish_delivery<T>(self, result: Result<T, DeliveryError>) -> Result<T, DeliveryError> {
        match self.lost {
            Some(name) => Err(DeliveryError(format!(
                "injected: the answer of {name} was lost"
            ))),
            None => result,
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
impl<T: AppStore> AppStore for Faulty<T> {
    async fn create_app(&self, app: &App, secret: &AppSecret) -> Result<(), StoreError> {
        let outcome = self.plan.gate("apps.create_app")?;
        outcome.finish(self.inner.create_app(app, secret).await)
    }
    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        let outcome = self.plan.gate("apps.get_app")?;
        outcome.finish(self.inner.get_app(app_id).await)
    }
    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError> {
        let outcome = self.plan.gate("apps.add_secret")?;
        outcome.finish(self.inner.add_secret(secret).await)
    }
    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError> {
        let outcome = self.plan.gate("apps.list_secrets")?;
        outcome.finish(self.inner.list_secrets(app_id).await)
    }
    async fn delete_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
    ) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("apps.delete_secret")?;
        outcome.finish(self.inner.delete_secret(app_id, secret_id).await)
    }
    async fn touch_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let outcome = self.plan.gate("apps.touch_secret")?;
        outcome.finish(self.inner.touch_secret(app_id, secret_id, at).await)
    }
}

#[async_trait]
impl<T: ConfigStore> ConfigStore for Faulty<T> {
    async fn put_config(&self, config: &LoginConfig) -> Result<(), WriteError> {
        let outcome = self.plan.gate("configs.put_config").map_err(write)?;
        outcome.finish(self.inner.put_config(config).await)
    }
    async fn get_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<Option<LoginConfig>, StoreError> {
        let outcome = self.plan.gate("configs.get_config")?;
        outcome.finish(self.inner.get_config(app_id, config_id).await)
    }
    async fn list_configs(&self, app_id: &AppId) -> Result<Vec<LoginConfig>, StoreError> {
        let outcome = self.plan.gate("configs.list_configs")?;
        outcome.finish(self.inner.list_configs(app_id).await)
    }
    async fn default_config(
        &self,
        app_id: &AppId,
        channel: Channel,
    ) -> Result<Option<LoginConfig>, StoreError> {
        let outcome = self.plan.gate("configs.default_config")?;
        outcome.finish(self.inner.default_config(app_id, channel).await)
    }
    async fn delete_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("configs.delete_config")?;
        outcome.finish(self.inner.delete_config(app_id, config_id).await)
    }
    async fn put_template(&self, template: &Template) -> Result<(), StoreError> {
        let outcome = self.plan.gate("configs.put_template")?;
        outcome.finish(self.inner.put_template(template).await)
    }
    async fn get_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        let outcome = self.plan.gate("configs.get_template")?;
        outcome.finish(self.inner.get_template(app_id, template_id).await)
    }
    async fn list_templates(&self, app_id: &AppId) -> Result<Vec<Template>, StoreError> {
        let outcome = self.plan.gate("configs.list_templates")?;
        outcome.finish(self.inner.list_templates(app_id).await)
    }
    async fn delete_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<bool, WriteError> {
        let outcome = self.plan.gate("configs.delete_template").map_err(write)?;
        outcome.finish(self.inner.delete_template(app_id, template_id).await)
    }
    async fn put_test_identifier(&self, test: &TestIdentifier) -> Result<(), WriteError> {
        let outcome = self
            .plan
            .gate("configs.put_test_identifier")
            .map_err(write)?;
        outcome.finish(self.inner.put_test_identifier(test).await)
    }
    async fn list_test_identifiers(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<TestIdentifier>, StoreError> {
        let outcome = self.plan.gate("configs.list_test_identifiers")?;
        outcome.finish(self.inner.list_test_identifiers(app_id).await)
    }
    async fn find_test_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<TestIdentifier>, StoreError> {
        let outcome = self.plan.gate("configs.find_test_identifier")?;
        outcome.finish(self.inner.find_test_identifier(app_id, identifier).await)
    }
    async fn delete_test_identifier(
        &self,
        app_id: &AppId,
        id: &TestIdentifierId,
    ) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("configs.delete_test_identifier")?;
        outcome.finish(self.inner.delete_test_identifier(app_id, id).await)
    }
    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<String>>, StoreError> {
        let outcome = self.plan.gate("configs.get_sms_countries")?;
        outcome.finish(self.inner.get_sms_countries(app_id).await)
    }
    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        calling_codes: Option<Vec<String>>,
    ) -> Result<(), StoreError> {
        let outcome = self.plan.gate("configs.put_sms_countries")?;
        outcome.finish(self.inner.put_sms_countries(app_id, calling_codes).await)
    }
}

#[async_trait]
impl<T: UserStore> UserStore for Faulty<T> {
    async fn find_by_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<(User, MethodId)>, StoreError> {
        let outcome = self.plan.gate("users.find_by_identifier")?;
        outcome.finish(self.inner.find_by_identifier(app_id, identifier).await)
    }
    async fn create_user(&self, user: &User) -> Result<(), WriteError> {
        let outcome = self.plan.gate("users.create_user").map_err(write)?;
        outcome.finish(self.inner.create_user(user).await)
    }
    async fn add_method(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        identifier: &Identifier,
    ) -> Result<User, WriteError> {
        let outcome = self.plan.gate("users.add_method").map_err(write)?;
        outcome.finish(
            self.inner
                .add_method(app_id, user_id, method_id, identifier)
                .await,
        )
    }
    async fn get_user(&self, app_id: &AppId, user_id: &UserId) -> Result<Option<User>, StoreError> {
        let outcome = self.plan.gate("users.get_user")?;
        outcome.finish(self.inner.get_user(app_id, user_id).await)
    }
    async fn find_by_method(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<User>, StoreError> {
        let outcome = self.plan.gate("users.find_by_method")?;
        outcome.finish(self.inner.find_by_method(app_id, method_id).await)
    }
    async fn record_success(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        now: Timestamp,
    ) -> Result<SuccessOutcome, StoreError> {
        let outcome = self.plan.gate("users.record_success")?;
        outcome.finish(
            self.inner
                .record_success(app_id, user_id, method_id, now)
                .await,
        )
    }
    async fn record_failure(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        now: Timestamp,
        limit: u32,
        lock_seconds: i64,
    ) -> Result<FailureOutcome, StoreError> {
        let outcome = self.plan.gate("users.record_failure")?;
        outcome.finish(
            self.inner
                .record_failure(app_id, user_id, now, limit, lock_seconds)
                .await,
        )
    }
    async fn delete_user(&self, app_id: &AppId, user_id: &UserId) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("users.delete_user")?;
        outcome.finish(self.inner.delete_user(app_id, user_id).await)
    }
}

#[async_trait]
impl<T: ChallengeStore> ChallengeStore for Faulty<T> {
    async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        let outcome = self.plan.gate("challenges.put_challenge")?;
        outcome.finish(self.inner.put_challenge(challenge).await)
    }
    async fn get_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<Challenge>, StoreError> {
        let outcome = self.plan.gate("challenges.get_challenge")?;
        outcome.finish(self.inner.get_challenge(app_id, method_id).await)
    }
    async fn consume(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("challenges.consume")?;
        outcome.finish(
            self.inner
                .consume(app_id, method_id, challenge_id, now, max_attempts)
                .await,
        )
    }
    async fn record_wrong_attempt(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError> {
        let outcome = self.plan.gate("challenges.record_wrong_attempt")?;
        outcome.finish(
            self.inner
                .record_wrong_attempt(app_id, method_id, challenge_id, now, max_attempts)
                .await,
        )
    }
    async fn restore(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("challenges.restore")?;
        outcome.finish(self.inner.restore(app_id, method_id, challenge_id).await)
    }
    async fn delete_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<(), StoreError> {
        let outcome = self.plan.gate("challenges.delete_challenge")?;
        outcome.finish(
            self.inner
                .delete_challenge(app_id, method_id, challenge_id)
                .await,
        )
    }
    async fn delete_challenges(
        &self,
        app_id: &AppId,
        method_ids: &[MethodId],
    ) -> Result<(), StoreError> {
        let outcome = self.plan.gate("challenges.delete_challenges")?;
        outcome.finish(self.inner.delete_challenges(app_id, method_ids).await)
    }
}

#[async_trait]
impl<T: SessionStore> SessionStore for Faulty<T> {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let outcome = self.plan.gate("sessions.create_session")?;
        outcome.finish(self.inner.create_session(session).await)
    }
    async fn get_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        let outcome = self.plan.gate("sessions.get_session")?;
        outcome.finish(self.inner.get_session(app_id, session_id).await)
    }
    async fn find_by_token_hash(
        &self,
        app_id: &AppId,
        token_hash: &Hash32,
    ) -> Result<Option<Session>, StoreError> {
        let outcome = self.plan.gate("sessions.find_by_token_hash")?;
        outcome.finish(self.inner.find_by_token_hash(app_id, token_hash).await)
    }
    async fn update_session(&self, session: &Session) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("sessions.update_session")?;
        outcome.finish(self.inner.update_session(session).await)
    }
    async fn delete_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<bool, StoreError> {
        let outcome = self.plan.gate("sessions.delete_session")?;
        outcome.finish(self.inner.delete_session(app_id, session_id).await)
    }
    async fn list_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        let outcome = self.plan.gate("sessions.list_sessions")?;
        outcome.finish(self.inner.list_sessions(app_id, user_id).await)
    }
    async fn delete_user_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        let outcome = self.plan.gate("sessions.delete_user_sessions")?;
        outcome.finish(self.inner.delete_user_sessions(app_id, user_id).await)
    }
}

#[async_trait]
impl<T: RateLimitStore> RateLimitStore for Faulty<T> {
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
        let outcome = self.plan.gate("rate_limits.hit")?;
        outcome.finish(self.inner.hit(counters, now).await)
    }
    async fn give_back(&self, hits: &[RateHit]) -> Result<(), StoreError> {
        let outcome = self.plan.gate("rate_limits.give_back")?;
        outcome.finish(self.inner.give_back(hits).await)
    }
}

#[async_trait]
impl<T: SmsSender> SmsSender for Faulty<T> {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        let outcome = self
            .plan
            .gate("sms.send_sms")
            .map_err(|e| DeliveryError(e.to_string()))?;
        outcome.finish_delivery(self.inner.send_sms(message).await)
    }
}

#[async_trait]
impl<T: EmailSender> EmailSender for Faulty<T> {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let outcome = self
            .plan
            .gate("email.send_email")
            .map_err(|e| DeliveryError(e.to_string()))?;
        outcome.finish_delivery(self.inner.send_email(message).await)
    }
}

// ---------------------------------------------------------------------------------------------
// A sender that delivers nothing and keeps every message with its code.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub channel: Channel,
    /// The phone number or (lower-cased) email address.
    pub to: String,
    pub code: String,
}

/// Stands in for SNS and SES: keeps what it was handed, in order.
#[derive(Debug, Default)]
pub struct Capture(Mutex<Vec<Sent>>);

impl Capture {
    fn push(&self, sent: Sent) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sent);
    }

    /// Every message, oldest first.
    pub fn messages(&self) -> Vec<Sent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The codes sent to `to`, oldest first.
    pub fn codes_to(&self, to: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.to == to)
            .map(|m| m.code)
            .collect()
    }

    /// The newest code sent to `to`.
    pub fn last_to(&self, to: &str) -> Option<String> {
        self.codes_to(to).pop()
    }
}

#[async_trait]
impl SmsSender for Capture {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        self.push(Sent {
            channel: Channel::Sms,
            to: message.to.as_str().to_owned(),
            code: message.code.0.clone(),
        });
        Ok(())
    }
}

#[async_trait]
impl EmailSender for Capture {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.push(Sent {
            channel: Channel::Email,
            to: message.to.as_str().to_owned(),
            code: message.code.0.clone(),
        });
        Ok(())
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

pub fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// The table as it is.

pub type Item = HashMap<String, AttributeValue>;

/// Every item of the table (strongly consistent `Scan`, every page).
pub async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan");
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return items,
        }
    }
}

/// Calls `visit` with every scalar value in `value`, lists, maps and sets taken apart.
pub fn for_each_scalar(value: &AttributeValue, visit: &mut dyn FnMut(&AttributeValue)) {
    match value {
        AttributeValue::L(values) => values.iter().for_each(|v| for_each_scalar(v, visit)),
        AttributeValue::M(map) => map.values().for_each(|v| for_each_scalar(v, visit)),
        AttributeValue::Ss(values) => values
            .iter()
            .for_each(|v| visit(&AttributeValue::S(v.clone()))),
        AttributeValue::Ns(values) => values
            .iter()
            .for_each(|v| visit(&AttributeValue::N(v.clone()))),
        AttributeValue::Bs(values) => values
            .iter()
            .for_each(|v| visit(&AttributeValue::B(v.clone()))),
        other => visit(other),
    }
}

fn item_text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The world: one app with a default sms and a default email login config, on a fresh table.

pub struct World {
    pub deps: Deps,
    /// The store itself (not through the fault plan), for reads that check the outcome.
    pub store: Arc<DynamoStore>,
    pub client: aws_sdk_dynamodb::Client,
    pub outbox: Arc<Capture>,
    pub clock: Arc<FakeClock>,
    /// The clock's start: the real time when the world was made.
    pub start: Timestamp,
    pub plan: Arc<FaultPlan>,
    pub app_id: String,
    pub secret: String,
}

impl World {
    /// A world on a fresh table, or `None` (the test skips) without a DynamoDB endpoint.
    pub async fn new(limits: Limits) -> Option<World> {
        dynamodb_endpoint()?;
        let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
        let client = DynamoStore::client(&aws);
        let table = unique_table();
        create_table(&client, &table).await.expect("create_table");
        let store = Arc::new(DynamoStore::new(client.clone(), table));
        let start = SystemClock.now();
        let clock = Arc::new(FakeClock::new(start));
        let settings = Settings {
            public_base_url: BASE_URL.to_owned(),
            default_email_from: "no-reply@example.com".to_owned(),
            limits,
        };
        let plan = Arc::new(FaultPlan::default());
        let outbox = Arc::new(Capture::default());
        let faulty_store = Arc::new(Faulty {
            inner: store.clone(),
            plan: plan.clone(),
        });
        let faulty_outbox = Arc::new(Faulty {
            inner: outbox.clone(),
            plan: plan.clone(),
        });
        let deps = Deps {
            apps: faulty_store.clone(),
            configs: faulty_store.clone(),
            users: faulty_store.clone(),
            challenges: faulty_store.clone(),
            sessions: faulty_store.clone(),
            rate_limits: faulty_store,
            sms: faulty_outbox.clone(),
            email: faulty_outbox,
            test_messages: Arc::new(LogTestMessages),
            clock: clock.clone(),
            random: Arc::new(OsRandom),
            keys: Arc::new(keys()),
            settings,
        };
        let mut world = World {
            deps,
            store,
            client,
            outbox,
            clock,
            start,
            plan,
            app_id: String::new(),
            secret: String::new(),
        };
        let (app_id, secret) = world.create_app("Acme").await;
        world.app_id = app_id;
        world.secret = secret;
        Some(world)
    }

    pub fn table(&self) -> &str {
        self.store.table_name()
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
        let code = self.outbox.last_to(phone).unwrap();
        (s(&r.body["user_id"]), s(&r.body["phone_id"]), code)
    }

    /// login_or_create by email; returns (user_id, email_id, code).
    pub async fn email_code(&self, email: &str) -> (String, String, String) {
        let r = self
            .login(RouteId::EmailLoginOrCreate, json!({ "email": email }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let code = self.outbox.last_to(&email.to_lowercase()).unwrap();
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

    /// A user with a session: (user_id, phone_id, authenticate body).
    pub async fn session_for(&self, phone: &str) -> (String, String, Value) {
        let (user_id, phone_id, code) = self.sms_code(phone).await;
        let r = self.authenticate(&phone_id, &code).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (user_id, phone_id, r.body)
    }

    /// The stored code of a method, read straight from DynamoDB.
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

    /// The user holding `identifier` in this app and its method, straight from DynamoDB.
    pub async fn holder(&self, identifier: &str) -> Option<(String, String)> {
        self.store
            .find_by_identifier(&self.app(), &Identifier::parse(identifier).unwrap())
            .await
            .unwrap()
            .map(|(u, m)| (u.id.as_str().to_owned(), m.as_str().to_owned()))
    }

    /// How many user items of this world's app hold `identifier` (normalized: E.164 or a
    /// lower-cased email), found by scanning every attribute of every `USER` item.
    pub async fn users_holding(&self, identifier: &str) -> usize {
        let keyed = [format!("phone#{identifier}"), format!("email#{identifier}")];
        let users_of_app = format!("APP#{}#USER#", self.app_id);
        scan(&self.client, self.table())
            .await
            .iter()
            .filter(|item| item_text(item, "sk").as_deref() == Some("USER"))
            .filter(|item| item_text(item, "pk").is_some_and(|pk| pk.starts_with(&users_of_app)))
            .filter(|item| {
                let mut found = false;
                for value in item.values() {
                    for_each_scalar(value, &mut |v| {
                        if let AttributeValue::S(text) = v {
                            found |= text == identifier || keyed.contains(text);
                        }
                    });
                }
                found
            })
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
