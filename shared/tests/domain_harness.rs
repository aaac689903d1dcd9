//! The setup the `domain_*` tests share: use cases on the in-memory adapters, a clock the test
//! moves and seeded randomness. Included by each of them with `#[path]`; on its own it is an
//! empty test target.
#![allow(dead_code)]

use std::sync::Arc;

use shared::Error;
use shared::clock::{Clock, FakeClock, Timestamp};
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::identifiers::Identifier;
use shared::ids::{MethodId, RequestId};
use shared::model::{App, Channel, LoginConfig};
use shared::ports::AppData;
use shared::random::SeededRandom;
use shared::service::management::{self, LoginConfigInput};
use shared::service::otp::{
    self, AuthenticateOutcome, AuthenticateRequest, SendMode, SendOutcome, SendRequest,
};
use shared::service::{Deps, InMemory, Keys, Limits, Settings};

pub const START: Timestamp = Timestamp(1_800_000_000);
pub const PHONE: &str = "+12025550100";
pub const OTHER_PHONE: &str = "+12025550101";
pub const EMAIL: &str = "ann@example.com";
/// The default send cooldown of the contract: one code per identifier per 30 seconds. Tests that
/// send twice to one identifier wait it out, and stay within 5 codes per 10 minutes.
pub const COOLDOWN_SECONDS: i64 = 30;

pub struct Harness {
    pub mem: InMemory,
    pub clock: Arc<FakeClock>,
    pub app: App,
    pub secret: String,
    pub sms_config: LoginConfig,
    pub email_config: LoginConfig,
}

pub fn keys() -> Keys {
    Keys::new(
        ManagementKeyHash::of_key("test-management-key"),
        CodeHasher::new(&[7u8; 32]).expect("a 32-byte key"),
        KeyEncryptionKey::from_secret(&"k".repeat(32)).expect("a long enough key"),
    )
}

pub fn settings() -> Settings {
    Settings {
        public_base_url: "http://127.0.0.1:3000".to_owned(),
        default_email_from: "no-reply@example.com".to_owned(),
        limits: Limits::default(),
        app_cache_seconds: shared::service::DEFAULT_APP_CACHE_SECONDS,
        test_environment: false,
    }
}

pub fn config_input(channel: Channel, is_default: bool) -> LoginConfigInput {
    LoginConfigInput {
        config_type: "otp".to_owned(),
        channel_type: channel,
        is_default,
        template_id: None,
        sender_id: None,
        webotp_domain: None,
        android_app_hash: None,
        grant_change_password: None,
        code_length: None,
        expiration_minutes: None,
    }
}

pub fn identifier(text: &str) -> Identifier {
    Identifier::parse(text).expect("a valid identifier")
}

pub fn request(to: &str, mode: SendMode) -> SendRequest {
    SendRequest {
        identifier: identifier(to),
        mode,
        expiration_minutes: None,
        locale: None,
        login_config_id: None,
        login_template_id: None,
        signup_template_id: None,
        ip_address: None,
        public_sends_per_hour: None,
    }
}

pub fn login_or_create(to: &str) -> SendRequest {
    request(
        to,
        SendMode::LoginOrCreate {
            create_user_as_pending: false,
        },
    )
}

/// A code of the same length that is certainly not `code`.
pub fn wrong(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

impl Harness {
    /// An app with a default sms and a default email config (6 digits, 2 minutes).
    pub async fn new(seed: u64) -> Harness {
        let clock = Arc::new(FakeClock::new(START));
        let mem = InMemory::with(
            keys(),
            settings(),
            clock.clone(),
            Arc::new(SeededRandom::new(seed)),
        );
        let created = management::create_app(&mem.deps, "Test app")
            .await
            .expect("create_app");
        let (app, secret) = (created.app, created.secret);
        let sms_config =
            management::create_config(&mem.deps, app.id.as_str(), config_input(Channel::Sms, true))
                .await
                .expect("sms config");
        let email_config = management::create_config(
            &mem.deps,
            app.id.as_str(),
            config_input(Channel::Email, true),
        )
        .await
        .expect("email config");
        Harness {
            mem,
            clock,
            app,
            secret,
            sms_config,
            email_config,
        }
    }

    pub fn clock_now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Waits out the send cooldown (one code per identifier per 30 seconds by default), so that
    /// the next send to the same identifier is allowed.
    pub fn cooldown(&self) {
        self.clock.advance_seconds(COOLDOWN_SECONDS);
    }

    pub fn deps(&self) -> &Deps {
        &self.mem.deps
    }

    /// The app as a Login API request sees it (through the per-instance cache).
    pub async fn app_data(&self) -> Arc<AppData> {
        self.deps()
            .app_cache
            .get(self.deps().apps.as_ref(), &self.app.id, self.clock_now())
            .await
            .expect("load_app")
            .expect("the app exists")
    }

    /// Another app's data, as a Login API request of that app sees it.
    pub async fn app_data_of(&self, app: &App) -> Arc<AppData> {
        self.deps()
            .app_cache
            .get(self.deps().apps.as_ref(), &app.id, self.clock_now())
            .await
            .expect("load_app")
            .expect("the app exists")
    }

    pub fn request_id(&self) -> RequestId {
        RequestId::generate(self.deps().random.as_ref())
    }

    pub async fn send(&self, request: SendRequest) -> Result<SendOutcome, Error> {
        otp::send_code(
            self.deps(),
            &*self.app_data().await,
            &self.request_id(),
            request,
        )
        .await
    }

    /// Sends with login_or_create and returns the outcome and the code that was delivered.
    pub async fn send_code(&self, to: &str) -> (SendOutcome, String) {
        let outcome = self.send(login_or_create(to)).await.expect("send_code");
        (outcome, self.last_code(to))
    }

    pub fn last_code(&self, to: &str) -> String {
        self.mem
            .outbox
            .last_to(to)
            .expect("a message was sent")
            .code
    }

    pub fn outbox_len(&self) -> usize {
        self.mem.outbox.messages().len()
    }

    pub async fn auth(
        &self,
        method_id: &MethodId,
        code: &str,
    ) -> Result<AuthenticateOutcome, Error> {
        self.auth_with(method_id, code, None).await
    }

    pub async fn auth_with(
        &self,
        method_id: &MethodId,
        code: &str,
        session_duration_minutes: Option<i64>,
    ) -> Result<AuthenticateOutcome, Error> {
        otp::authenticate(
            self.deps(),
            &*self.app_data().await,
            &self.request_id(),
            AuthenticateRequest {
                method_id: method_id.as_str().to_owned(),
                code: code.to_owned(),
                session_duration_minutes,
                ..AuthenticateRequest::default()
            },
        )
        .await
    }

    /// A wrong code that must be answered 404 with `remaining` attempts left.
    pub async fn expect_wrong(&self, method_id: &MethodId, code: &str, remaining: u32) {
        let result = self.auth(method_id, &wrong(code)).await;
        assert!(
            matches!(
                result,
                Err(Error::OtpCodeNotFound { attempts_remaining: Some(r) }) if r == remaining
            ),
            "expected OtpCodeNotFound with {remaining} attempts remaining, got {result:?}"
        );
    }
}
