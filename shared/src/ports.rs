//! Ports: what the domain needs from storage and delivery. Each has an in-memory adapter
//! (`memory`) and, for deployment, an AWS adapter. Every operation that must be atomic says so;
//! adapters implement it with one conditional write or transaction, never read-then-write.

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::crypto::Hash32;
use crate::identifiers::Identifier;
use crate::ids::{
    AppId, ChallengeId, ConfigId, MethodId, SecretId, SessionId, TemplateId, TestIdentifierId,
    UserId,
};
use crate::model::{
    App, AppSecret, Challenge, Channel, Lock, LoginConfig, Session, Template, TestIdentifier, User,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Throttled or unreachable after the adapter's retries: answered 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0}")]
    Other(String),
}

/// The outcome of a write that a condition can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The condition failed: the thing is taken, in use, or no longer there.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates the app together with its first secret.
    async fn create_app(&self, app: &App, secret: &AppSecret) -> Result<(), StoreError>;
    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError>;
    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError>;
    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError>;
    /// Returns whether the secret existed.
    async fn delete_secret(&self, app_id: &AppId, secret_id: &SecretId)
    -> Result<bool, StoreError>;
    async fn touch_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
        at: Timestamp,
    ) -> Result<(), StoreError>;
}

#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// Creates or fully replaces a login config. Atomically: when `is_default`, every other
    /// config of the app and channel stops being default; when `template_id` is set, that
    /// template must still exist (else `Conflict`).
    async fn put_config(&self, config: &LoginConfig) -> Result<(), WriteError>;
    async fn get_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<Option<LoginConfig>, StoreError>;
    async fn list_configs(&self, app_id: &AppId) -> Result<Vec<LoginConfig>, StoreError>;
    async fn default_config(
        &self,
        app_id: &AppId,
        channel: Channel,
    ) -> Result<Option<LoginConfig>, StoreError>;
    async fn delete_config(&self, app_id: &AppId, config_id: &ConfigId)
    -> Result<bool, StoreError>;

    async fn put_template(&self, template: &Template) -> Result<(), StoreError>;
    async fn get_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<Option<Template>, StoreError>;
    async fn list_templates(&self, app_id: &AppId) -> Result<Vec<Template>, StoreError>;
    /// Deletes unless a login config uses it (`Conflict`); `Ok(false)` when it did not exist.
    async fn delete_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<bool, WriteError>;

    async fn put_test_identifier(&self, test: &TestIdentifier) -> Result<(), WriteError>;
    async fn list_test_identifiers(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<TestIdentifier>, StoreError>;
    async fn find_test_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<TestIdentifier>, StoreError>;
    async fn delete_test_identifier(
        &self,
        app_id: &AppId,
        id: &TestIdentifierId,
    ) -> Result<bool, StoreError>;

    /// `None`: every country the deployment allows.
    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<String>>, StoreError>;
    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        calling_codes: Option<Vec<String>>,
    ) -> Result<(), StoreError>;
}

/// What `UserStore::record_failure` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The wrong code was counted. `user` is as it is after the count; `locked_now` says that
    /// this failure reached the limit and locked the user (whose count started again).
    Counted { user: User, locked_now: bool },
    /// The user was locked: nothing was counted.
    AlreadyLocked(Lock),
    /// There is no such user: nothing was counted.
    UserGone,
}

/// What `UserStore::record_success` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessOutcome {
    /// Recorded; the user as it is after the update.
    Recorded(User),
    /// The user was locked: nothing was written.
    Locked(Lock),
    /// There is no such user: nothing was written.
    UserGone,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// The user that holds the identifier in this app, and the method id for it.
    async fn find_by_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<(User, MethodId)>, StoreError>;
    /// Creates a user holding exactly one method. Atomically refuses (`Conflict`) when any user
    /// of the app already holds the identifier.
    async fn create_user(&self, user: &User) -> Result<(), WriteError>;
    /// Adds a method to an existing user. Atomically refuses (`Conflict`) when the identifier is
    /// held by any user (including this one) or the user is gone.
    async fn add_method(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        identifier: &Identifier,
    ) -> Result<User, WriteError>;
    async fn get_user(&self, app_id: &AppId, user_id: &UserId) -> Result<Option<User>, StoreError>;
    async fn find_by_method(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<User>, StoreError>;
    /// Atomically, unless the user is locked at `now`: marks the method verified, a pending
    /// user active, and clears the failure count. A locked user is left as it is (`Locked`), so
    /// that no right code gets through a lock, however recent.
    async fn record_success(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        now: Timestamp,
    ) -> Result<SuccessOutcome, StoreError>;
    /// Atomically counts one wrong code, unless the user is locked at `now` (`AlreadyLocked`,
    /// nothing counted). The failure that brings the count to `limit` locks the user for
    /// `lock_seconds` from `now` and starts the count again (`locked_now`). Of any number of
    /// concurrent calls on an unlocked user whose count is `c`, exactly `limit - c` are
    /// `Counted` (the last of them with `locked_now`) and the rest `AlreadyLocked`.
    async fn record_failure(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        now: Timestamp,
        limit: u32,
        lock_seconds: i64,
    ) -> Result<FailureOutcome, StoreError>;
    /// Deletes the user and its identifiers; returns whether it existed.
    async fn delete_user(&self, app_id: &AppId, user_id: &UserId) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Stores the method's code, replacing any earlier one.
    async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError>;
    async fn get_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<Challenge>, StoreError>;
    /// Atomically marks the code used, if it is still the method's current code, unused,
    /// unexpired at `now` and has fewer than `max_attempts` wrong attempts. Exactly one of any
    /// number of concurrent calls returns `true`.
    async fn consume(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<bool, StoreError>;
    /// Atomically counts one wrong attempt under the same conditions as `consume`; returns the
    /// new count, or `None` when the code was no longer live (nothing counted).
    async fn record_wrong_attempt(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError>;
    /// Atomically undoes a `consume` whose request then failed: marks the code unused again, if
    /// it is still the method's code `challenge_id` and marked used. Returns whether it did (a
    /// replaced, deleted or unused code is left alone). Attempts and expiry are not touched, so
    /// a restored code is live again only if it would have been without the consume.
    async fn restore(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<bool, StoreError>;
    /// Deletes the method's code if it is still `challenge_id` (a newer one is kept).
    async fn delete_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<(), StoreError>;
    async fn delete_challenges(
        &self,
        app_id: &AppId,
        method_ids: &[MethodId],
    ) -> Result<(), StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    async fn get_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<Option<Session>, StoreError>;
    async fn find_by_token_hash(
        &self,
        app_id: &AppId,
        token_hash: &Hash32,
    ) -> Result<Option<Session>, StoreError>;
    /// Replaces a session that still exists; `Ok(false)` when it was revoked meanwhile.
    async fn update_session(&self, session: &Session) -> Result<bool, StoreError>;
    async fn delete_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<bool, StoreError>;
    async fn list_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError>;
    async fn delete_user_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<(), StoreError>;
}

/// One rate limit: at most `limit` hits within any `window_seconds` (a sliding window, so a
/// limit of 1 is a cooldown counted from the last accepted hit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCounter {
    pub key: String,
    pub limit: u32,
    pub window_seconds: i64,
}

/// A hit that was counted, to be given back if what it paid for did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHit {
    pub key: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateDecision {
    /// One hit counted on every counter.
    Counted(Vec<RateHit>),
    /// Nothing counted: a counter is full until `retry_at` (the latest such time).
    Limited { retry_at: Timestamp },
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Atomically, on all counters or none: counts one hit at `now` on each, unless one of them
    /// already holds `limit` hits younger than `window_seconds`.
    async fn hit(
        &self,
        counters: &[RateCounter],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError>;
    /// Takes back counted hits (the send they paid for was refused or not delivered).
    async fn give_back(&self, hits: &[RateHit]) -> Result<(), StoreError>;
}

/// The code travels with the message only so that the development outbox can show it;
/// its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeForOutbox(pub String);

impl std::fmt::Debug for CodeForOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeForOutbox(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    pub to: crate::identifiers::PhoneNumber,
    pub sender_id: Option<String>,
    pub text: String,
    pub code: CodeForOutbox,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    pub to: crate::identifiers::EmailAddress,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub code: CodeForOutbox,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery failed: {0}")]
pub struct DeliveryError(pub String);

#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError>;
}

#[async_trait]
pub trait EmailSender: Send + Sync {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError>;
}

/// Where messages to test identifiers go instead of SNS/SES.
pub trait TestMessageSink: Send + Sync {
    fn record_sms(&self, message: &SmsMessage);
    fn record_email(&self, message: &EmailMessage);
}

/// Where test messages go when there is no outbox (a deployment): the log, marked
/// `test: true`, with the recipient redacted and without the text.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogTestMessages;

impl TestMessageSink for LogTestMessages {
    fn record_sms(&self, message: &SmsMessage) {
        tracing::info!(test = true, channel = "sms", to = %message.to.redacted(), "test identifier: SMS recorded, not sent");
    }

    fn record_email(&self, message: &EmailMessage) {
        tracing::info!(test = true, channel = "email", to = %message.to.redacted(), "test identifier: email recorded, not sent");
    }
}
