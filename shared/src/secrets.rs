//! The deployment's secrets, and which route needs which. A deployed function reads only the
//! secrets its route needs, from AWS Secrets Manager (its environment holds their ARNs, never
//! their values); the local server and the tests give values directly.

use crate::api::RouteId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Secret {
    /// The SHA-256 (64 hex digits) of the management API's Bearer key.
    ManagementKey,
    /// The HMAC key under which codes are hashed before they are stored.
    CodeHashKey,
    /// Seals each app's JWT signing key in the table (AES-256-GCM under a key derived from it).
    KeyEncryptionKey,
    /// The one RSA key (PEM) that signed every app's JWTs before apps had their own: it still
    /// signs for apps made before, until their first key rotation. Optional.
    LegacySigningKey,
}

impl Secret {
    pub const ALL: [Secret; 4] = [
        Secret::ManagementKey,
        Secret::CodeHashKey,
        Secret::KeyEncryptionKey,
        Secret::LegacySigningKey,
    ];

    /// The environment variable that holds the value itself (local server, tests).
    pub fn value_env(self) -> &'static str {
        match self {
            Secret::ManagementKey => "MANAGEMENT_KEY_SHA256",
            Secret::CodeHashKey => "CODE_HASH_KEY",
            Secret::KeyEncryptionKey => "KEY_ENCRYPTION_KEY",
            Secret::LegacySigningKey => "JWT_SIGNING_KEY_PEM",
        }
    }

    /// The environment variable that holds the ARN of the Secrets Manager secret holding the
    /// value (deployed functions).
    pub fn arn_env(self) -> &'static str {
        match self {
            Secret::ManagementKey => "MANAGEMENT_KEY_SHA256_SECRET_ARN",
            Secret::CodeHashKey => "CODE_HASH_KEY_SECRET_ARN",
            Secret::KeyEncryptionKey => "KEY_ENCRYPTION_KEY_SECRET_ARN",
            Secret::LegacySigningKey => "JWT_SIGNING_KEY_SECRET_ARN",
        }
    }

    /// A deployment may have none (made after apps got their own keys).
    pub fn optional(self) -> bool {
        self == Secret::LegacySigningKey
    }

    pub fn describe(self) -> &'static str {
        match self {
            Secret::ManagementKey => "the management key's hash",
            Secret::CodeHashKey => "the code hash key",
            Secret::KeyEncryptionKey => "the key-encryption key",
            Secret::LegacySigningKey => "the deployment's legacy JWT signing key",
        }
    }
}

impl RouteId {
    /// The secrets a function serving this route reads at cold start, and no other.
    pub fn secrets(self) -> &'static [Secret] {
        use RouteId::*;
        use Secret::*;
        match self {
            // Makes the app's signing key, and seals it.
            CreateApp => &[ManagementKey, KeyEncryptionKey],
            // As CreateApp; an app's first rotation keeps the legacy key's public half.
            RotateKeys => &[ManagementKey, KeyEncryptionKey, LegacySigningKey],
            // Stores the fixed code of a test identifier as a hash.
            CreateTestIdentifier => &[ManagementKey, CodeHashKey],
            GetApp | CreateSecret | ListSecrets | DeleteSecret | CreateLoginConfig
            | ListLoginConfigs | ReplaceLoginConfig | DeleteLoginConfig | CreateTemplate
            | ListTemplates | ReplaceTemplate | DeleteTemplate | ListTestIdentifiers
            | DeleteTestIdentifier | PutSmsCountries | GetSmsCountries | PutSmsBudgets
            | GetSmsBudgets | ListSmsRegions | ResetSmsRegion | ListPublicTokens
            | CreatePublicToken | DeletePublicToken | GetFrontendSettings | PutFrontendSettings => {
                &[ManagementKey]
            }
            SmsLoginOrCreate
            | SmsSend
            | EmailLoginOrCreate
            | EmailSend
            | SdkSmsLoginOrCreate
            | SdkEmailLoginOrCreate => &[CodeHashKey],
            // Checks the code, then signs the new session's JWT.
            OtpAuthenticate | SdkOtpAuthenticate => {
                &[CodeHashKey, KeyEncryptionKey, LegacySigningKey]
            }
            // Signs a fresh JWT of the session.
            SessionsAuthenticate | SdkSessionsAuthenticate | SdkUsersMe => {
                &[KeyEncryptionKey, LegacySigningKey]
            }
            // Publishes the legacy key for apps that still sign with it; apps' own public keys
            // are in the table.
            SessionsJwks => &[LegacySigningKey],
            // JWTs are checked against public keys only.
            SessionsRevoke | SessionsList | UsersGet | UsersDelete => &[],
            // Public tokens and session tokens are looked up, never signed or hashed with a key.
            SdkBootstrap | SdkSessionsRevoke | SdkEvents | SdkPreflight => &[],
        }
    }
}
