//! The one place where errors become HTTP: status, `error_type`/`code`, and body shape.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::Error;

/// What the Login API says for an error: HTTP status and Stytch `error_type`.
pub fn login_error(error: &Error) -> (StatusCode, &'static str) {
    use Error::*;
    let (status, error_type) = match error {
        BadRequest(_) => (400, "bad_request"),
        Unauthorized => (401, "unauthorized_credentials"),
        NotFound(_) => (404, "not_found"),
        Conflict(_) => (409, "conflict"),
        PayloadTooLarge => (413, "payload_too_large"),
        UnsupportedMediaType => (415, "unsupported_media_type"),
        InvalidPhoneNumber | PhoneNumberCannotReceiveSms(_) => (400, "invalid_phone_number"),
        InvalidPhoneNumberCountryCode => (400, "invalid_phone_number_country_code"),
        InvalidEmail => (400, "invalid_email"),
        InvalidExpirationMinutes => (400, "invalid_expiration_minutes"),
        InvalidSessionDuration | SessionDurationAboveCap(_) => (400, "invalid_session_duration"),
        OriginNotAuthorized => (403, "origin_not_authorized"),
        NoLoginConfig(_) => (400, "no_login_config"),
        LoginConfigNotFound(_) => (404, "login_config_not_found"),
        TemplateNotFound(_) => (404, "template_not_found"),
        InvalidSessionCustomClaims(_) => (400, "invalid_session_custom_claims"),
        SessionUserMismatch => (400, "session_user_mismatch"),
        InvalidSessionJwt => (401, "invalid_session_jwt"),
        AppNotFound => (404, "app_not_found"),
        DuplicatePhoneNumber => (409, "duplicate_phone_number"),
        DuplicateEmail => (409, "duplicate_email"),
        PhoneNumberNotFound => (404, "phone_number_not_found"),
        EmailNotFound => (404, "email_not_found"),
        UserNotFound => (404, "user_not_found"),
        SessionNotFound => (404, "session_not_found"),
        OtpCodeNotFound { .. } => (404, "otp_code_not_found"),
        UnableToAuthOtpCode => (401, "unable_to_auth_otp_code"),
        TooManyRequests { .. } | SmsBudgetExhausted { .. } | SmsRegionPaused { .. } => {
            (429, "too_many_requests")
        }
        UserLockLimitReached { .. } => (429, "user_lock_limit_reached"),
        SmsDeliveryFailed => (502, "sms_delivery_failed"),
        EmailDeliveryFailed => (502, "email_delivery_failed"),
        ServiceUnavailable => (503, "service_unavailable"),
        Internal(_) => (500, "internal_server_error"),
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        error_type,
    )
}

/// What the Management API says: HTTP status and Prelude `code`.
pub fn management_error(error: &Error) -> (StatusCode, &'static str) {
    use Error::*;
    match error {
        Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        NotFound(_)
        | AppNotFound
        | UserNotFound
        | SessionNotFound
        | PhoneNumberNotFound
        | EmailNotFound
        | LoginConfigNotFound(_)
        | TemplateNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Conflict(_) | DuplicatePhoneNumber | DuplicateEmail => (StatusCode::CONFLICT, "conflict"),
        PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        TooManyRequests { .. } | SmsBudgetExhausted { .. } | SmsRegionPaused { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
        }
        ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        Internal(_)
        | SmsDeliveryFailed
        | EmailDeliveryFailed
        | OtpCodeNotFound { .. }
        | UnableToAuthOtpCode
        | UserLockLimitReached { .. }
        | InvalidSessionJwt
        | OriginNotAuthorized => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        BadRequest(_)
        | InvalidPhoneNumber
        | PhoneNumberCannotReceiveSms(_)
        | InvalidPhoneNumberCountryCode
        | InvalidEmail
        | InvalidExpirationMinutes
        | InvalidSessionDuration
        | SessionDurationAboveCap(_)
        | NoLoginConfig(_)
        | InvalidSessionCustomClaims(_)
        | SessionUserMismatch => (StatusCode::BAD_REQUEST, "invalid_request"),
    }
}

/// The message shown to the caller: internal details never leave the service.
fn public_message(error: &Error) -> String {
    match error {
        Error::Internal(_) => "an internal error occurred; it has been logged".to_owned(),
        other => other.to_string(),
    }
}

pub fn retry_after_seconds(error: &Error) -> Option<u64> {
    match error {
        Error::TooManyRequests {
            retry_after_seconds,
        }
        | Error::SmsBudgetExhausted {
            retry_after_seconds,
        }
        | Error::SmsRegionPaused {
            retry_after_seconds,
        }
        | Error::UserLockLimitReached {
            retry_after_seconds,
        } => Some(*retry_after_seconds),
        _ => None,
    }
}

/// The Stytch error body (Login API, JWKS, frontend API).
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginErrorBody {
    pub status_code: u16,
    pub request_id: String,
    pub error_type: String,
    pub error_message: String,
    pub error_url: String,
    /// Wrong codes left before the user is locked (`otp_code_not_found` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    /// The same as the `Retry-After` header (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Frontend API only: `attempts_remaining` and `retry_after_seconds` again, where the
    /// frontend SDK's error object keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetails>,
}

/// The extra fields of an error, as the frontend SDK reads them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// The Prelude error body (Management API).
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagementErrorBody {
    pub code: String,
    pub status: String,
    pub message: String,
    pub request_id: String,
    /// The same as the `Retry-After` header (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

fn to_json<T: Serialize>(body: &T) -> Value {
    // Plain strings and numbers: serializing them cannot fail.
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// The Stytch error body; `error_url` points into this deployment's errors reference
/// (`docs::ERRORS_PATH` below `public_base_url`).
pub fn login_error_body(
    error: &Error,
    request_id: &str,
    public_base_url: &str,
) -> (StatusCode, Value) {
    let (status, error_type) = login_error(error);
    let attempts_remaining = match error {
        Error::OtpCodeNotFound { attempts_remaining } => *attempts_remaining,
        _ => None,
    };
    let body = LoginErrorBody {
        status_code: status.as_u16(),
        request_id: request_id.to_owned(),
        error_type: error_type.to_owned(),
        error_message: public_message(error),
        error_url: super::docs::error_url(public_base_url, error_type),
        attempts_remaining,
        retry_after_seconds: retry_after_seconds(error),
        error_details: None,
    };
    (status, to_json(&body))
}

pub fn management_error_body(error: &Error, request_id: &str) -> (StatusCode, Value) {
    let (status, code) = management_error(error);
    // Prelude pairs `code` with a `status` word; they differ only for bad requests.
    let status_word = if code == "invalid_request" {
        "bad_request"
    } else {
        code
    };
    let body = ManagementErrorBody {
        code: code.to_owned(),
        status: status_word.to_owned(),
        message: public_message(error),
        request_id: request_id.to_owned(),
        retry_after_seconds: retry_after_seconds(error),
    };
    (status, to_json(&body))
}
