//! JSON views of the records, in the field names of the contract.

use serde_json::{Value, json};

use crate::clock::Timestamp;
use crate::model::{
    App, AppSecret, FrontendSettings, LoginConfig, PublicToken, SigningKey, Template,
    TestIdentifier, User, UserStatus,
};

pub fn app_view(app: &App) -> Value {
    json!({"id": app.id, "name": app.name, "created_at": app.created_at})
}

pub fn secret_view(secret: &AppSecret) -> Value {
    json!({"secret_id": secret.id, "created_at": secret.created_at, "last_used_at": secret.last_used_at})
}

pub fn public_token_view(token: &PublicToken) -> Value {
    json!({"public_token": token.token, "created_at": token.created_at})
}

/// The frontend settings without their tokens (listed on their own route).
pub fn frontend_settings_view(settings: &FrontendSettings) -> Value {
    json!({
        "authorized_origins": settings.authorized_origins,
        "max_session_duration_minutes": settings.max_session_minutes,
        "public_sends_per_hour": settings.public_sends_per_hour,
    })
}

pub fn config_view(config: &LoginConfig) -> Value {
    json!({
        "id": config.id,
        "config_type": "otp",
        "channel_type": config.channel,
        "is_default": config.is_default,
        "template_id": config.template_id,
        "sender_id": config.sender_id,
        "webotp_domain": config.webotp_domain,
        "android_app_hash": config.android_app_hash,
        "grant_change_password": config.grant_change_password,
        "code_length": config.code_length,
        "expiration_minutes": config.expiration_minutes,
        "granted_scopes": config.granted_scopes(),
        "created_at": config.created_at,
        "updated_at": config.updated_at,
    })
}

pub fn template_view(template: &Template) -> Value {
    json!({
        "id": template.id,
        "channel_type": template.channel,
        "locale": template.locale,
        "subject": template.subject,
        "text": template.text,
        "html": template.html,
        "created_at": template.created_at,
        "updated_at": template.updated_at,
    })
}

pub fn test_identifier_view(test: &TestIdentifier) -> Value {
    json!({
        "id": test.id,
        "identifier": test.identifier.as_str(),
        "valid_until": test.valid_until,
        "created_at": test.created_at,
    })
}

/// The Stytch User object, with the always-empty lists the SDKs require.
pub fn user_view(user: &User, now: Timestamp) -> Value {
    let lock = user.active_lock(now);
    json!({
        "user_id": user.id,
        "status": match user.status { UserStatus::Active => "active", UserStatus::Pending => "pending" },
        "emails": user.emails.iter().map(|e| json!({"email_id": e.id, "email": e.email, "verified": e.verified})).collect::<Vec<_>>(),
        "phone_numbers": user.phone_numbers.iter().map(|p| json!({"phone_id": p.id, "phone_number": p.phone_number, "verified": p.verified})).collect::<Vec<_>>(),
        "name": null,
        "created_at": user.created_at,
        "is_locked": lock.is_some(),
        "lock_created_at": lock.map(|l| l.created_at),
        "lock_expires_at": lock.map(|l| l.expires_at),
        "trusted_metadata": {},
        "untrusted_metadata": {},
        "roles": [],
        "webauthn_registrations": [],
        "providers": [],
        "totps": [],
        "crypto_wallets": [],
        "biometric_registrations": [],
    })
}

/// A region's SMS over the verification floor's window (this UTC day and the one before).
pub fn region_view(stats: &crate::service::management::RegionStats) -> Value {
    let rate = (stats.sent > 0).then(|| stats.verified.saturating_mul(100) / stats.sent);
    json!({
        "region": stats.region,
        "sent": stats.sent,
        "verified": stats.verified,
        "verification_rate_percent": rate,
        "paused": stats.paused,
    })
}

/// One of an app's signing keys, as the rotation answers: never any private part.
pub fn signing_key_view(deps: &crate::service::Deps, key: &SigningKey) -> Value {
    json!({
        "kid": key.kid,
        "status": if key.retired_at.is_none() { "current" } else { "retired" },
        "created_at": key.created_at,
        "retired_at": key.retired_at,
        "in_jwks_until": crate::service::signing::unpublished_at(deps, key),
    })
}
