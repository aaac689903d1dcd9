//! The records the service keeps. Secrets, codes and tokens appear only as hashes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Timestamp;
use crate::crypto::Hash32;
use crate::identifiers::{EmailAddress, Identifier, PhoneNumber};
use crate::ids::{
    AppId, ChallengeId, ConfigId, EmailId, MethodId, PhoneId, SecretId, SessionId, TemplateId,
    TestIdentifierId, UserId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub created_at: Timestamp,
}

/// A public token: it names an app to the frontend API (`/sdk/v1`) and is no secret (it ships in
/// web pages). `public-token-live-<uuid>`, or `-test-` on the development server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicToken {
    pub token: String,
    pub created_at: Timestamp,
}

/// Most public tokens an app holds at once (room to rotate: add one, move, delete the old).
pub const MAX_PUBLIC_TOKENS: usize = 5;
/// Most authorized origins an app lists.
pub const MAX_AUTHORIZED_ORIGINS: usize = 20;
/// The longest session a frontend login starts unless the app allows longer (one day).
pub const DEFAULT_FRONTEND_SESSION_MINUTES: i64 = 1440;
/// Codes the frontend API sends per app per hour unless the app sets its own.
pub const DEFAULT_PUBLIC_SENDS_PER_HOUR: u32 = 100;

/// An app's frontend API settings: the public tokens that name it, the web origins that may
/// call it, and the limits of logins started there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendSettings {
    pub public_tokens: Vec<PublicToken>,
    /// Exact origins (`https://app.example.com`, `http://localhost:5173`).
    pub authorized_origins: Vec<String>,
    /// The longest `session_duration_minutes` a frontend route accepts.
    pub max_session_minutes: i64,
    /// Codes the frontend API sends for the app per hour, over every identifier.
    pub public_sends_per_hour: u32,
    /// Bumped by every change and checked by the next one; 0: never stored (an app made
    /// before the frontend API, or no settings yet).
    pub revision: u64,
}

impl Default for FrontendSettings {
    fn default() -> Self {
        FrontendSettings {
            public_tokens: Vec::new(),
            authorized_origins: Vec::new(),
            max_session_minutes: DEFAULT_FRONTEND_SESSION_MINUTES,
            public_sends_per_hour: DEFAULT_PUBLIC_SENDS_PER_HOUR,
            revision: 0,
        }
    }
}

impl FrontendSettings {
    pub fn has_public_token(&self, token: &str) -> bool {
        self.public_tokens.iter().any(|t| t.token == token)
    }

    pub fn authorizes_origin(&self, origin: &str) -> bool {
        self.authorized_origins.iter().any(|o| o == origin)
    }
}

/// One of an app's JWT signing keys (RS256). An app's keys are newest first: the first one
/// that is not retired signs, the retired ones stay in its JWKS until every JWT they signed has
/// expired.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The JWK `kid` (RFC 7638 thumbprint of the public key).
    pub kid: String,
    /// The RSA public key's modulus and exponent, base64url (JWK `n`, `e`).
    pub n: String,
    pub e: String,
    /// The PKCS#8 private key, sealed under the deployment's key-encryption key (bound to the
    /// app and the kid). `None`: the deployment's legacy key, kept here only so that the JWTs
    /// it signed before the app's first rotation still verify.
    pub sealed_private_key: Option<Vec<u8>>,
    pub created_at: Timestamp,
    /// When it stopped signing; `None` for the current key.
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("sealed", &self.sealed_private_key.is_some())
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl SigningKey {
    /// Still in the JWKS at `now`: current, or retired less than `jwt_lifetime_seconds` ago
    /// (a JWT it signed just before may still be unexpired).
    pub fn published_at(&self, now: Timestamp, jwt_lifetime_seconds: i64) -> bool {
        match self.retired_at {
            None => true,
            Some(retired) => now.seconds() < retired.seconds() + jwt_lifetime_seconds,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSecret {
    pub id: SecretId,
    pub app_id: AppId,
    pub hash: Hash32,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    pub id: ConfigId,
    pub app_id: AppId,
    pub channel: Channel,
    pub is_default: bool,
    pub template_id: Option<TemplateId>,
    pub sender_id: Option<String>,
    /// SMS only: the origin whose web page fills the code in by itself (a WebOTP line
    /// `@<domain> #<code>` ends the message).
    pub webotp_domain: Option<String>,
    /// SMS only: the Android app's 11-character SMS Retriever hash, on its own line, so that
    /// the app reads the code without asking.
    pub android_app_hash: Option<String>,
    pub grant_change_password: bool,
    pub code_length: u32,
    pub expiration_minutes: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl LoginConfig {
    pub fn granted_scopes(&self) -> Vec<String> {
        if self.grant_change_password {
            vec![PASSWORD_WRITE_SCOPE.to_owned()]
        } else {
            Vec::new()
        }
    }
}

pub const PASSWORD_WRITE_SCOPE: &str = "password:write";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: TemplateId,
    pub app_id: AppId,
    pub channel: Channel,
    pub locale: String,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A phone number or email with a fixed code, for app-store reviewers and automated tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestIdentifier {
    pub id: TestIdentifierId,
    pub app_id: AppId,
    pub identifier: Identifier,
    /// The fixed code, hashed with the test identifier's id as context.
    pub code_hash: Hash32,
    pub valid_until: Timestamp,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneMethod {
    pub id: PhoneId,
    pub phone_number: PhoneNumber,
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMethod {
    pub id: EmailId,
    pub email: EmailAddress,
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub app_id: AppId,
    pub status: UserStatus,
    pub created_at: Timestamp,
    pub phone_numbers: Vec<PhoneMethod>,
    pub emails: Vec<EmailMethod>,
    /// Consecutive wrong codes across all of the user's methods since the last success or lock.
    pub failed_attempts: u32,
    pub lock: Option<Lock>,
}

impl User {
    /// The lock in force at `now`, if any (an expired lock is no lock).
    pub fn active_lock(&self, now: Timestamp) -> Option<Lock> {
        self.lock.filter(|lock| lock.expires_at > now)
    }

    pub fn identifier_of(&self, method_id: &MethodId) -> Option<Identifier> {
        match method_id {
            MethodId::Phone(id) => self
                .phone_numbers
                .iter()
                .find(|p| &p.id == id)
                .map(|p| Identifier::Phone(p.phone_number.clone())),
            MethodId::Email(id) => self
                .emails
                .iter()
                .find(|e| &e.id == id)
                .map(|e| Identifier::Email(e.email.clone())),
        }
    }

    pub fn method_for(&self, identifier: &Identifier) -> Option<MethodId> {
        match identifier {
            Identifier::Phone(number) => self
                .phone_numbers
                .iter()
                .find(|p| &p.phone_number == number)
                .map(|p| MethodId::Phone(p.id.clone())),
            Identifier::Email(email) => self
                .emails
                .iter()
                .find(|e| &e.email == email)
                .map(|e| MethodId::Email(e.id.clone())),
        }
    }

    pub fn method_ids(&self) -> Vec<MethodId> {
        self.phone_numbers
            .iter()
            .map(|p| MethodId::Phone(p.id.clone()))
            .chain(self.emails.iter().map(|e| MethodId::Email(e.id.clone())))
            .collect()
    }

    /// Adds the method for an identifier (no-op when the user already has it).
    pub fn add_method(&mut self, method_id: MethodId, identifier: Identifier) {
        if self.method_for(&identifier).is_some() {
            return;
        }
        match (method_id, identifier) {
            (MethodId::Phone(id), Identifier::Phone(phone_number)) => {
                self.phone_numbers.push(PhoneMethod {
                    id,
                    phone_number,
                    verified: false,
                })
            }
            (MethodId::Email(id), Identifier::Email(email)) => self.emails.push(EmailMethod {
                id,
                email,
                verified: false,
            }),
            _ => {}
        }
    }

    /// Whether the method is verified (false for a method the user does not have).
    pub fn is_verified(&self, method_id: &MethodId) -> bool {
        match method_id {
            MethodId::Phone(id) => self.phone_numbers.iter().any(|p| &p.id == id && p.verified),
            MethodId::Email(id) => self.emails.iter().any(|e| &e.id == id && e.verified),
        }
    }

    /// Whether a method other than this one is verified (the user may have sessions).
    pub fn has_other_verified(&self, method_id: &MethodId) -> bool {
        self.method_ids()
            .iter()
            .any(|m| m != method_id && self.is_verified(m))
    }

    /// Removes a method (a send that added it was not delivered).
    pub fn remove_method(&mut self, method_id: &MethodId) {
        match method_id {
            MethodId::Phone(id) => self.phone_numbers.retain(|p| &p.id != id),
            MethodId::Email(id) => self.emails.retain(|e| &e.id != id),
        }
    }

    /// A successful authentication: method verified, user active, failure count cleared.
    pub fn record_success(&mut self, method_id: &MethodId) {
        match method_id {
            MethodId::Phone(id) => self
                .phone_numbers
                .iter_mut()
                .filter(|p| &p.id == id)
                .for_each(|p| p.verified = true),
            MethodId::Email(id) => self
                .emails
                .iter_mut()
                .filter(|e| &e.id == id)
                .for_each(|e| e.verified = true),
        }
        self.status = UserStatus::Active;
        self.failed_attempts = 0;
    }

    /// A wrong code: counts it, and locks the user when the count reaches `limit`.
    pub fn record_failure(&mut self, now: Timestamp, limit: u32, lock_seconds: i64) {
        self.failed_attempts += 1;
        if self.failed_attempts >= limit {
            self.failed_attempts = 0;
            self.lock = Some(Lock {
                created_at: now,
                expires_at: now.plus_seconds(lock_seconds),
            });
        }
    }
}

/// One code sent to one method. A method has at most one; a new one replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: ChallengeId,
    pub app_id: AppId,
    pub user_id: UserId,
    pub method_id: MethodId,
    pub channel: Channel,
    pub code_hash: Hash32,
    /// The string the code was hashed with: the challenge id, or a test identifier's id.
    pub hash_context: String,
    pub config_id: ConfigId,
    pub grant_change_password: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub attempts: u32,
    pub consumed: bool,
    /// Set when the code is a test identifier's fixed code.
    pub test_identifier: Option<TestIdentifierId>,
}

impl Challenge {
    /// Whether the code can still be tried: not used, not expired, attempts left.
    pub fn is_live(&self, now: Timestamp, max_attempts: u32) -> bool {
        !self.consumed && self.expires_at > now && self.attempts < max_attempts
    }
}

/// The codes of one method: the current one, the only one that authenticates, and the ones it
/// replaced (newest first, at most [`MAX_PREVIOUS_CODES`]), kept so that a resend whose delivery
/// fails can put back the code the user has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codes {
    pub app_id: AppId,
    pub method_id: MethodId,
    pub current: Option<Challenge>,
    pub previous: Vec<Challenge>,
}

/// Replaced codes a method keeps: enough for two resends in flight at once to fail and still
/// leave the code before them (sends to one identifier are 30 seconds apart by default).
pub const MAX_PREVIOUS_CODES: usize = 2;

impl Codes {
    /// Takes a code out, wherever it is: if it was the current one, the newest previous code
    /// becomes current. Returns whether it was there.
    pub fn take_out(&mut self, challenge_id: &ChallengeId) -> bool {
        if self.current.as_ref().is_some_and(|c| &c.id == challenge_id) {
            self.current = if self.previous.is_empty() {
                None
            } else {
                Some(self.previous.remove(0))
            };
            return true;
        }
        let before = self.previous.len();
        self.previous.retain(|c| &c.id != challenge_id);
        self.previous.len() != before
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.previous.is_empty()
    }

    /// Whether the code is the current one or one it replaced.
    pub fn holds(&self, challenge_id: &ChallengeId) -> bool {
        self.current
            .iter()
            .chain(self.previous.iter())
            .any(|c| &c.id == challenge_id)
    }
}

/// Who holds an identifier in an app: identifiers are unique per app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub app_id: AppId,
    pub identifier: Identifier,
    pub user_id: UserId,
    pub method_id: MethodId,
    /// Set while the identifier is attached to an existing user (a `send` with a target) and not
    /// yet verified: until then it routes nobody else's login to that user, and after
    /// [`PENDING_ATTACH_SECONDS`] unverified it is abandoned (free for another user).
    pub pending_since: Option<Timestamp>,
}

/// How long an identifier attached to an existing user stays reserved for it unverified: the
/// longest a code lives.
pub const PENDING_ATTACH_SECONDS: i64 = 600;

impl Owner {
    /// Attached to its user and not verified (a login must not be routed to that user).
    pub fn is_pending(&self) -> bool {
        self.pending_since.is_some()
    }

    /// Pending for longer than [`PENDING_ATTACH_SECONDS`]: another user may take it.
    pub fn is_abandoned(&self, now: Timestamp) -> bool {
        self.pending_since
            .is_some_and(|since| since.plus_seconds(PENDING_ATTACH_SECONDS) <= now)
    }
}

/// A sliding-window send counter: the times of the sends it still counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCounter {
    pub key: String,
    pub hits: Vec<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionAttributes {
    pub ip_address: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationFactor {
    pub method_id: MethodId,
    pub identifier: Identifier,
    pub last_authenticated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub app_id: AppId,
    pub user_id: UserId,
    pub token_hash: Hash32,
    pub started_at: Timestamp,
    pub last_accessed_at: Timestamp,
    pub expires_at: Timestamp,
    pub attributes: SessionAttributes,
    pub custom_claims: serde_json::Map<String, serde_json::Value>,
    pub authentication_factors: Vec<AuthenticationFactor>,
    pub granted_scopes: Vec<String>,
}

impl Session {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

/// At most so many SMS codes per hour and per day (`None` or left out: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct WindowLimits {
    pub hour: Option<u32>,
    pub day: Option<u32>,
}

/// The verification floor: SMS to a region pauses when, over the window (this UTC day and the
/// one before), at least `min_sent` codes were sent there and fewer than `min_rate_percent` of
/// them were verified: codes sent and never entered are the signature of SMS pumping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerificationFloor {
    pub min_rate_percent: u32,
    pub min_sent: u32,
}

/// An app's SMS budgets, above the per-identifier and per-IP limits: for the whole app, per
/// region (the number's ISO country) and per number prefix (its first `prefix_digits` digits,
/// country code included), and the verification floor per region. Test identifiers use none.
/// A field left out of a request takes its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct SmsBudgets {
    pub app: WindowLimits,
    pub region: WindowLimits,
    pub prefix: WindowLimits,
    pub prefix_digits: u32,
    pub verification_floor: Option<VerificationFloor>,
}

impl SmsBudgets {
    /// No budget and no floor: for tests about something else.
    pub fn unlimited() -> Self {
        let none = WindowLimits {
            hour: None,
            day: None,
        };
        SmsBudgets {
            app: none,
            region: none,
            prefix: none,
            prefix_digits: 8,
            verification_floor: None,
        }
    }
}

impl Default for SmsBudgets {
    fn default() -> Self {
        SmsBudgets {
            app: WindowLimits {
                hour: Some(1_000),
                day: Some(10_000),
            },
            region: WindowLimits {
                hour: Some(300),
                day: Some(3_000),
            },
            prefix: WindowLimits {
                hour: Some(20),
                day: Some(100),
            },
            prefix_digits: 8,
            verification_floor: Some(VerificationFloor {
                min_rate_percent: 10,
                min_sent: 100,
            }),
        }
    }
}

/// A count in a fixed window (an SMS budget's, or a region's sends and verifications), only
/// ever added to: `name` says what and which window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub app_id: AppId,
    pub name: String,
    pub count: u64,
}
