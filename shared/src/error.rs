//! The service's one error type. `api::errors` renders it in the Stytch (login) or the Prelude
//! (management) shape; the variants name what went wrong, not how it is shown.

use crate::model::Channel;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed JSON, a wrong type, a missing or invalid field. The message names the field.
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than 16 KB")]
    PayloadTooLarge,
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,

    #[error("the phone number is not a valid number for its country; use E.164, e.g. +12025550100")]
    InvalidPhoneNumber,
    /// A valid number of a kind that cannot receive SMS (premium-rate, landline, satellite...):
    /// answered as `invalid_phone_number`, saying which kind (never the number).
    #[error("the phone number cannot receive SMS: it is {0}; use a mobile number")]
    PhoneNumberCannotReceiveSms(crate::identifiers::NumberKind),
    #[error("this app does not send SMS to numbers of that country or region")]
    InvalidPhoneNumberCountryCode,
    #[error(
        "the email address is not valid; give a plain address such as ann@example.com (a domain \
         name, not an IP address; a local part in ASCII that needs no quotes)"
    )]
    InvalidEmail,
    #[error("expiration_minutes must be between 1 and 10")]
    InvalidExpirationMinutes,
    #[error("session_duration_minutes must be between 5 and 527040")]
    InvalidSessionDuration,
    #[error(
        "session_duration_minutes must be at most {0} for a login through the frontend API (the app's max_session_duration_minutes)"
    )]
    SessionDurationAboveCap(i64),
    #[error(
        "this origin is not one of the app's authorized origins (Origin header); add it with PUT /v2/session/apps/{{app_id}}/frontend_settings"
    )]
    OriginNotAuthorized,
    #[error("the app has no default {} login config; create one or pass login_config_id", .0.as_str())]
    NoLoginConfig(Channel),
    #[error("{0}")]
    LoginConfigNotFound(String),
    #[error("{0}")]
    TemplateNotFound(String),
    #[error("{0}")]
    InvalidSessionCustomClaims(String),
    #[error("the session to extend belongs to another user")]
    SessionUserMismatch,
    #[error("the session JWT does not verify for this app")]
    InvalidSessionJwt,
    #[error("no app has that id")]
    AppNotFound,
    #[error("the phone number belongs to another user")]
    DuplicatePhoneNumber,
    #[error("the email address belongs to another user")]
    DuplicateEmail,
    #[error("no user of this app has that phone number")]
    PhoneNumberNotFound,
    #[error("no user of this app has that email address")]
    EmailNotFound,
    #[error("no user of this app has that user_id")]
    UserNotFound,
    #[error("the session was not found, has expired or was revoked")]
    SessionNotFound,
    #[error("the code is wrong, or no code was sent to this method")]
    OtpCodeNotFound { attempts_remaining: Option<u32> },
    #[error("the code has expired, was already used, or has no attempts left; send a new code")]
    UnableToAuthOtpCode,
    #[error("too many codes requested; retry in {retry_after_seconds} seconds")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error(
        "the app's SMS budget for this number (its region, its prefix or the app's) is spent for now; retry in {retry_after_seconds} seconds"
    )]
    SmsBudgetExhausted { retry_after_seconds: u64 },
    #[error(
        "SMS to this number's region is paused: few codes sent there are verified, the signature of SMS pumping (the operator can reset it); retry in {retry_after_seconds} seconds"
    )]
    SmsRegionPaused { retry_after_seconds: u64 },
    #[error(
        "the user is locked after too many wrong codes; retry in {retry_after_seconds} seconds"
    )]
    UserLockLimitReached { retry_after_seconds: u64 },
    #[error("the SMS could not be delivered; retry the request")]
    SmsDeliveryFailed,
    #[error("the email could not be delivered; retry the request")]
    EmailDeliveryFailed,
    #[error("the service is temporarily unavailable; retry the request")]
    ServiceUnavailable,
    /// Logged in full, answered with a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::identifiers::PhoneNumberError> for Error {
    fn from(error: crate::identifiers::PhoneNumberError) -> Self {
        match error {
            crate::identifiers::PhoneNumberError::Invalid => Error::InvalidPhoneNumber,
            crate::identifiers::PhoneNumberError::CannotReceiveSms(kind) => {
                Error::PhoneNumberCannotReceiveSms(kind)
            }
        }
    }
}

impl From<crate::ports::StoreError> for Error {
    fn from(error: crate::ports::StoreError) -> Self {
        match error {
            crate::ports::StoreError::Unavailable(_) => Error::ServiceUnavailable,
            crate::ports::StoreError::Other(message) => Error::Internal(message),
        }
    }
}
