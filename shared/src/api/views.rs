//! JSON views of the records, in the field names of the contract: typed, so that the OpenAPI
//! document describes exactly what is sent.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::clock::Timestamp;
use crate::identifiers::{EmailAddress, PhoneNumber, Region};
use crate::ids::{
    AppId, ConfigId, EmailId, PhoneId, SecretId, TemplateId, TestIdentifierId, UserId,
};
use crate::model::{
    App, AppSecret, Channel, FrontendSettings, LoginConfig, PublicToken, SigningKey, SmsBudgets,
    Template, TestIdentifier, User, UserStatus,
};

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = App)]
pub struct AppView {
    pub id: AppId,
    pub name: String,
    pub created_at: Timestamp,
}

pub fn app_view(app: &App) -> AppView {
    AppView {
        id: app.id.clone(),
        name: app.name.clone(),
        created_at: app.created_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Secret)]
pub struct SecretView {
    pub secret_id: SecretId,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

pub fn secret_view(secret: &AppSecret) -> SecretView {
    SecretView {
        secret_id: secret.id.clone(),
        created_at: secret.created_at,
        last_used_at: secret.last_used_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PublicToken)]
pub struct PublicTokenView {
    pub public_token: String,
    pub created_at: Timestamp,
}

pub fn public_token_view(token: &PublicToken) -> PublicTokenView {
    PublicTokenView {
        public_token: token.token.clone(),
        created_at: token.created_at,
    }
}

/// The frontend settings without their tokens (listed on their own route).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FrontendSettings)]
pub struct FrontendSettingsView {
    pub authorized_origins: Vec<String>,
    pub max_session_duration_minutes: i64,
    pub public_sends_per_hour: u32,
}

pub fn frontend_settings_view(settings: &FrontendSettings) -> FrontendSettingsView {
    FrontendSettingsView {
        authorized_origins: settings.authorized_origins.clone(),
        max_session_duration_minutes: settings.max_session_minutes,
        public_sends_per_hour: settings.public_sends_per_hour,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LoginConfig)]
pub struct LoginConfigView {
    pub id: ConfigId,
    /// Always `otp`.
    pub config_type: &'static str,
    pub channel_type: Channel,
    pub is_default: bool,
    pub template_id: Option<TemplateId>,
    pub sender_id: Option<String>,
    pub webotp_domain: Option<String>,
    pub android_app_hash: Option<String>,
    pub grant_change_password: bool,
    pub code_length: u32,
    pub expiration_minutes: u32,
    pub granted_scopes: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub fn config_view(config: &LoginConfig) -> LoginConfigView {
    LoginConfigView {
        id: config.id.clone(),
        config_type: "otp",
        channel_type: config.channel,
        is_default: config.is_default,
        template_id: config.template_id.clone(),
        sender_id: config.sender_id.clone(),
        webotp_domain: config.webotp_domain.clone(),
        android_app_hash: config.android_app_hash.clone(),
        grant_change_password: config.grant_change_password,
        code_length: config.code_length,
        expiration_minutes: config.expiration_minutes,
        granted_scopes: config.granted_scopes(),
        created_at: config.created_at,
        updated_at: config.updated_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Template)]
pub struct TemplateView {
    pub id: TemplateId,
    pub channel_type: Channel,
    pub locale: String,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub fn template_view(template: &Template) -> TemplateView {
    TemplateView {
        id: template.id.clone(),
        channel_type: template.channel,
        locale: template.locale.clone(),
        subject: template.subject.clone(),
        text: template.text.clone(),
        html: template.html.clone(),
        created_at: template.created_at,
        updated_at: template.updated_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TestIdentifier)]
pub struct TestIdentifierView {
    pub id: TestIdentifierId,
    /// The phone number (E.164) or email address.
    pub identifier: String,
    pub valid_until: Timestamp,
    pub created_at: Timestamp,
}

pub fn test_identifier_view(test: &TestIdentifier) -> TestIdentifierView {
    TestIdentifierView {
        id: test.id.clone(),
        identifier: test.identifier.as_str().to_owned(),
        valid_until: test.valid_until,
        created_at: test.created_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserEmail {
    pub email_id: EmailId,
    pub email: EmailAddress,
    pub verified: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPhoneNumber {
    pub phone_id: PhoneId,
    pub phone_number: PhoneNumber,
    pub verified: bool,
}

/// The Stytch User object, with the always-empty lists the SDKs require.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub user_id: UserId,
    pub status: UserStatus,
    pub emails: Vec<UserEmail>,
    pub phone_numbers: Vec<UserPhoneNumber>,
    /// Always `null`: the service keeps no names.
    #[schema(value_type = Option<Object>)]
    pub name: Option<Value>,
    pub created_at: Timestamp,
    pub is_locked: bool,
    pub lock_created_at: Option<Timestamp>,
    pub lock_expires_at: Option<Timestamp>,
    #[schema(value_type = Object)]
    pub trusted_metadata: Map<String, Value>,
    #[schema(value_type = Object)]
    pub untrusted_metadata: Map<String, Value>,
    #[schema(value_type = Vec<Object>)]
    pub roles: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub webauthn_registrations: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub providers: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub totps: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub crypto_wallets: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub biometric_registrations: Vec<Value>,
}

pub fn user_view(user: &User, now: Timestamp) -> UserView {
    let lock = user.active_lock(now);
    UserView {
        user_id: user.id.clone(),
        status: user.status,
        emails: user
            .emails
            .iter()
            .map(|e| UserEmail {
                email_id: e.id.clone(),
                email: e.email.clone(),
                verified: e.verified,
            })
            .collect(),
        phone_numbers: user
            .phone_numbers
            .iter()
            .map(|p| UserPhoneNumber {
                phone_id: p.id.clone(),
                phone_number: p.phone_number.clone(),
                verified: p.verified,
            })
            .collect(),
        name: None,
        created_at: user.created_at,
        is_locked: lock.is_some(),
        lock_created_at: lock.map(|l| l.created_at),
        lock_expires_at: lock.map(|l| l.expires_at),
        trusted_metadata: Map::new(),
        untrusted_metadata: Map::new(),
        roles: Vec::new(),
        webauthn_registrations: Vec::new(),
        providers: Vec::new(),
        totps: Vec::new(),
        crypto_wallets: Vec::new(),
        biometric_registrations: Vec::new(),
    }
}

/// A region's SMS over the verification floor's window (this UTC day and the one before).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SmsRegion)]
pub struct RegionView {
    pub region: String,
    pub sent: u64,
    pub verified: u64,
    /// `null` while nothing was sent.
    pub verification_rate_percent: Option<u64>,
    pub paused: bool,
}

pub fn region_view(stats: &crate::service::management::RegionStats) -> RegionView {
    RegionView {
        region: stats.region.clone(),
        sent: stats.sent,
        verified: stats.verified,
        verification_rate_percent: (stats.sent > 0)
            .then(|| stats.verified.saturating_mul(100) / stats.sent),
        paused: stats.paused,
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SigningKeyStatus {
    Current,
    Retired,
}

/// One of an app's signing keys, as the rotation answers: never any private part.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SigningKey)]
pub struct SigningKeyView {
    pub kid: String,
    pub status: SigningKeyStatus,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    /// When a retired key leaves the JWKS.
    pub in_jwks_until: Option<Timestamp>,
}

pub fn signing_key_view(deps: &crate::service::Deps, key: &SigningKey) -> SigningKeyView {
    SigningKeyView {
        kid: key.kid.clone(),
        status: if key.retired_at.is_none() {
            SigningKeyStatus::Current
        } else {
            SigningKeyStatus::Retired
        },
        created_at: key.created_at,
        retired_at: key.retired_at,
        in_jwks_until: crate::service::signing::unpublished_at(deps, key),
    }
}

/// The regions SMS may go to, and their calling codes for readers of the older shape (`null`
/// for both: every region).
#[derive(Debug, Serialize, ToSchema)]
pub struct SmsCountries {
    pub regions: Option<Vec<Region>>,
    pub calling_codes: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmsCountriesResponse {
    pub sms_countries: SmsCountries,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmsBudgetsResponse {
    pub sms_budgets: SmsBudgets,
}
