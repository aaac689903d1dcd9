//! Ports: what the domain needs from storage and delivery. Each has an in-memory adapter
//! (`memory`) and, for deployment, an AWS adapter. Every operation that must be atomic says so;
//! adapters implement it with one conditional write or transaction, never read-then-write.
//!
//! The login path goes through `LoginStore`: load (one batched read), decide (a pure function
//! of the domain), commit (one atomic write whose conditions re-check what was read).

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::crypto::Hash32;
use crate::identifiers::{Identifier, Region};
use crate::ids::{AppId, ConfigId, Home, MethodId, SecretId, TemplateId, TestIdentifierId, UserId};
use crate::model::{
    App, AppSecret, Challenge, Codes, FrontendSettings, LoginConfig, Owner, SendCounter, Session,
    SigningKey, SmsBudgets, Tally, Template, TestIdentifier, User,
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

/// Everything about an app that authenticating a Login API request and deciding a send needs:
/// the app's own small partition, read in one go and cached per warm instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppData {
    pub app: App,
    pub secrets: Vec<AppSecret>,
    pub configs: Vec<LoginConfig>,
    pub templates: Vec<Template>,
    /// The regions whose numbers the app sends SMS to; `None`: every region the deployment
    /// allows.
    pub sms_countries: Option<Vec<Region>>,
    /// `None`: the deployment's defaults (`SmsBudgets::default`).
    pub sms_budgets: Option<SmsBudgets>,
    /// Newest first. Empty: an app made before apps had their own keys, which the deployment's
    /// legacy key signs for until its first rotation.
    pub signing_keys: Vec<SigningKey>,
    /// Public tokens, authorized origins and limits of the frontend API.
    pub frontend: FrontendSettings,
}

#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates the app together with its first secret, its signing key and its frontend
    /// settings (stored when their revision is above 0, with a lookup of each public token).
    async fn create_app(
        &self,
        app: &App,
        secret: &AppSecret,
        signing_keys: &[SigningKey],
        frontend: &FrontendSettings,
    ) -> Result<(), StoreError>;
    /// The app a public token names, if any.
    async fn find_public_token(&self, token: &str) -> Result<Option<AppId>, StoreError>;
    /// Replaces the app's frontend settings if their revision is still `expected_revision`
    /// (0: none stored), together with the public-token lookups of `added` and `removed`;
    /// else `Conflict`. `settings.revision` is the new revision.
    async fn replace_frontend(
        &self,
        app_id: &AppId,
        expected_revision: u64,
        settings: &FrontendSettings,
        added: Option<&str>,
        removed: Option<&str>,
    ) -> Result<(), WriteError>;
    /// Replaces the app's signing keys if its current key is still `expected_current` (`None`:
    /// it has none yet, an app made before keys); else `Conflict`, e.g. a concurrent rotation.
    async fn replace_signing_keys(
        &self,
        app_id: &AppId,
        expected_current: Option<&str>,
        signing_keys: &[SigningKey],
    ) -> Result<(), WriteError>;
    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError>;
    /// The app with its secrets, login configs, templates and SMS countries, in one consistent
    /// read.
    async fn load_app(&self, app_id: &AppId) -> Result<Option<AppData>, StoreError>;
    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError>;
    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError>;
    /// Deletes a secret unless it is the app's last one (`Conflict`), atomically: of two
    /// concurrent deletes of an app's last two secrets exactly one succeeds. `Ok(false)` when
    /// the secret does not exist.
    async fn delete_secret(&self, app_id: &AppId, secret_id: &SecretId)
    -> Result<bool, WriteError>;
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

    /// The regions the app sends SMS to; `None`: every region the deployment allows. A list of
    /// country calling codes stored by an earlier version reads as the regions of those codes.
    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<Region>>, StoreError>;
    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        regions: Option<Vec<Region>>,
    ) -> Result<(), StoreError>;

    /// `None`: the deployment's defaults.
    async fn get_sms_budgets(&self, app_id: &AppId) -> Result<Option<SmsBudgets>, StoreError>;
    async fn put_sms_budgets(&self, app_id: &AppId, budgets: &SmsBudgets)
    -> Result<(), StoreError>;
}

/// A record as read, with the revision its next conditional write must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    /// 1 for a new record, one more on every write.
    pub rev: u64,
}

impl<T> Versioned<T> {
    pub fn new(value: T, rev: u64) -> Self {
        Versioned { value, rev }
    }
}

/// The records a login request reads and writes, by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The user whose home this is (a home holds at most one user).
    User { app_id: AppId, home: Home },
    /// The codes of a method, in the home its id names.
    Codes { app_id: AppId, method_id: MethodId },
    /// A session by the hash of its token, in the home the token names.
    Session {
        app_id: AppId,
        home: Home,
        token_hash: Hash32,
    },
    /// Who holds an identifier.
    Owner {
        app_id: AppId,
        identifier: Identifier,
    },
    /// A test identifier (written by the management API, only read here).
    TestIdentifier {
        app_id: AppId,
        identifier: Identifier,
    },
    /// A send-rate counter.
    Counter { key: String },
    /// A count in a fixed window (SMS budgets, a region's sends and verifications).
    Tally { app_id: AppId, name: String },
}

// Records and writes are short-lived values moved a few times per request; boxing the larger
// variants would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    User(Versioned<User>),
    Codes(Versioned<Codes>),
    Session(Versioned<Session>),
    Owner(Versioned<Owner>),
    TestIdentifier(TestIdentifier),
    Counter(Versioned<SendCounter>),
    Tally(Tally),
}

impl Record {
    pub fn key(&self) -> Key {
        match self {
            Record::User(u) => Key::User {
                app_id: u.value.app_id.clone(),
                home: u.value.id.home(),
            },
            Record::Codes(c) => Key::Codes {
                app_id: c.value.app_id.clone(),
                method_id: c.value.method_id.clone(),
            },
            Record::Session(s) => Key::Session {
                app_id: s.value.app_id.clone(),
                home: s.value.user_id.home(),
                token_hash: s.value.token_hash,
            },
            Record::Owner(o) => Key::Owner {
                app_id: o.value.app_id.clone(),
                identifier: o.value.identifier.clone(),
            },
            Record::TestIdentifier(t) => Key::TestIdentifier {
                app_id: t.app_id.clone(),
                identifier: t.identifier.clone(),
            },
            Record::Counter(c) => Key::Counter {
                key: c.value.key.clone(),
            },
            Record::Tally(t) => Key::Tally {
                app_id: t.app_id.clone(),
                name: t.name.clone(),
            },
        }
    }

    /// The revision, for the records that have one (all but test identifiers).
    pub fn rev(&self) -> Option<u64> {
        match self {
            Record::User(v) => Some(v.rev),
            Record::Codes(v) => Some(v.rev),
            Record::Session(v) => Some(v.rev),
            Record::Owner(v) => Some(v.rev),
            Record::Counter(v) => Some(v.rev),
            Record::TestIdentifier(_) | Record::Tally(_) => None,
        }
    }
}

/// What a conditional write requires of the record it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// There is no such record (a put then makes revision 1).
    Absent,
    /// The record is at this revision, i.e. unchanged since it was read.
    Rev(u64),
    /// The record exists, at any revision (deletes only).
    Present,
    /// Whatever is there (deletes only).
    Any,
}

/// One write of a commit. Puts replace the whole record and set its revision to one more than
/// expected (1 when `Absent`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    PutUser {
        user: User,
        expect: Expect,
    },
    DeleteUser {
        app_id: AppId,
        user_id: UserId,
        expect: Expect,
    },
    /// Only a condition: the user exists and is not locked at `now`. For a request that writes
    /// for a user it did not read (a send to a known identifier).
    UserUnlocked {
        app_id: AppId,
        user_id: UserId,
        now: Timestamp,
    },
    PutOwner {
        owner: Owner,
        expect: Expect,
    },
    /// The identifier's first verification: its owner stops being pending, on condition that it
    /// is still the method's (the owner need not have been read).
    ConfirmOwner {
        app_id: AppId,
        identifier: Identifier,
        method_id: MethodId,
    },
    DeleteOwner {
        app_id: AppId,
        identifier: Identifier,
        expect: Expect,
    },
    /// Only a condition: the record is as expected.
    Check {
        key: Key,
        expect: Expect,
    },
    PutCodes {
        codes: Codes,
        expect: Expect,
    },
    /// A new code for the method, unconditionally: the current code (if any) becomes the newest
    /// previous one and the oldest beyond `MAX_PREVIOUS_CODES` goes, whatever they are (they
    /// need not have been read); the revision goes up.
    ReplaceCode {
        challenge: Challenge,
    },
    DeleteCodes {
        app_id: AppId,
        method_id: MethodId,
        expect: Expect,
    },
    PutSession {
        session: Session,
        expect: Expect,
    },
    DeleteSession {
        app_id: AppId,
        home: Home,
        token_hash: Hash32,
        expect: Expect,
    },
    PutCounter {
        counter: SendCounter,
        expect: Expect,
    },
    /// Adds `add` to a tally, unconditionally or, with `limit`, only if it stays within it (a
    /// negative `add` never takes it below 0); the tally need not have been read. `expires_at`:
    /// when the store may forget it.
    Tally {
        app_id: AppId,
        name: String,
        add: i64,
        limit: Option<u64>,
        expires_at: Timestamp,
    },
    DeleteTally {
        app_id: AppId,
        name: String,
    },
    /// Only a condition: the test identifier exists, is still `id`, and is valid at `now`.
    TestIdentifierValid {
        app_id: AppId,
        identifier: Identifier,
        id: TestIdentifierId,
        now: Timestamp,
    },
}

impl Write {
    /// The record this write writes or checks.
    pub fn key(&self) -> Key {
        match self {
            Write::PutUser { user, .. } => Key::User {
                app_id: user.app_id.clone(),
                home: user.id.home(),
            },
            Write::DeleteUser {
                app_id, user_id, ..
            }
            | Write::UserUnlocked {
                app_id, user_id, ..
            } => Key::User {
                app_id: app_id.clone(),
                home: user_id.home(),
            },
            Write::PutOwner { owner, .. } => Key::Owner {
                app_id: owner.app_id.clone(),
                identifier: owner.identifier.clone(),
            },
            Write::DeleteOwner {
                app_id, identifier, ..
            }
            | Write::ConfirmOwner {
                app_id, identifier, ..
            } => Key::Owner {
                app_id: app_id.clone(),
                identifier: identifier.clone(),
            },
            Write::Check { key, .. } => key.clone(),
            Write::PutCodes { codes, .. } => Key::Codes {
                app_id: codes.app_id.clone(),
                method_id: codes.method_id.clone(),
            },
            Write::ReplaceCode { challenge } => Key::Codes {
                app_id: challenge.app_id.clone(),
                method_id: challenge.method_id.clone(),
            },
            Write::DeleteCodes {
                app_id, method_id, ..
            } => Key::Codes {
                app_id: app_id.clone(),
                method_id: method_id.clone(),
            },
            Write::PutSession { session, .. } => Key::Session {
                app_id: session.app_id.clone(),
                home: session.user_id.home(),
                token_hash: session.token_hash,
            },
            Write::DeleteSession {
                app_id,
                home,
                token_hash,
                ..
            } => Key::Session {
                app_id: app_id.clone(),
                home: *home,
                token_hash: *token_hash,
            },
            Write::PutCounter { counter, .. } => Key::Counter {
                key: counter.key.clone(),
            },
            Write::Tally { app_id, name, .. } | Write::DeleteTally { app_id, name } => Key::Tally {
                app_id: app_id.clone(),
                name: name.clone(),
            },
            Write::TestIdentifierValid {
                app_id, identifier, ..
            } => Key::TestIdentifier {
                app_id: app_id.clone(),
                identifier: identifier.clone(),
            },
        }
    }
}

/// Names one commit, so that a retry of a commit whose answer was lost is recognised and
/// applied at most once: derived from the request id and the attempt (at most 36 characters, as
/// DynamoDB's `ClientRequestToken`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitToken(String);

impl CommitToken {
    pub fn derive(request_id: &str, attempt: u32) -> Self {
        let digest = crate::crypto::sha256(format!("{request_id}#{attempt}").as_bytes());
        CommitToken(crate::crypto::to_hex(&digest[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A write whose condition did not hold, and its record as it is now (absent: `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub index: usize,
    pub current: Option<Record>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommitError {
    /// Nothing was written: these writes' conditions did not hold.
    #[error("conditions failed at {0:?}")]
    Conflict(Vec<Conflict>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user's home as one consistent read: the user, its codes and its sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HomeRecords {
    pub user: Option<Versioned<User>>,
    pub codes: Vec<Versioned<Codes>>,
    pub sessions: Vec<Versioned<Session>>,
}

/// The store of the login path: every request reads what it needs in one batched read, decides,
/// and writes in one atomic commit whose conditions re-check what the decision relied on.
#[async_trait]
pub trait LoginStore: Send + Sync {
    /// The records at `keys`, in order, in one consistent batched read.
    async fn load(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError>;
    /// Everything in a home, in one consistent read.
    async fn load_home(&self, app_id: &AppId, home: Home) -> Result<HomeRecords, StoreError>;
    /// Applies every write or none. A commit repeated with the same token (a retry after a lost
    /// answer) changes nothing more and succeeds. `Conflict` lists every write whose condition
    /// failed, with its record as it is now.
    async fn commit(&self, writes: &[Write], token: &CommitToken) -> Result<(), CommitError>;
    /// Records an access to a session in one step, if it exists and is live at `now`: sets
    /// `last_accessed_at` to `now` and, when given, `expires_at`. Returns the session as it is
    /// after, or `None` when it is missing or expired (nothing written). Repeating it is harmless.
    async fn touch_session(
        &self,
        app_id: &AppId,
        home: Home,
        token_hash: &Hash32,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<Option<Versioned<Session>>, StoreError>;
    /// The app's tallies whose names start with `prefix`, in one consistent read.
    async fn list_tallies(&self, app_id: &AppId, prefix: &str) -> Result<Vec<Tally>, StoreError>;
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
