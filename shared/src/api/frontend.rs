//! The frontend API (Stytch's `/sdk/v1`), called by the official frontend SDK from web pages.
//!
//! A request names its app by a public token (Basic `public_token:public_token`, or
//! `public_token:session_token` once signed in; the bootstrap route has it in its path) and comes
//! from one of the app's authorized origins: the `Origin` header, or for a same-origin request
//! without one the SDK's `X-SDK-Parent-Host`. Successes are `{"data": ...}`, errors the Stytch
//! error body; every answer to an authorized origin carries CORS headers for it. A preflight
//! carries no credentials, so it cannot name an app: it is answered for any well-formed origin,
//! and the request that follows is refused unless that origin is the app's.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::login::{EmptyResponse, OtpAuthenticateResponse, SessionsAuthenticateResponse};
use super::views::user_view;
use super::{
    Answer, ApiRequest, MAX_BODY_BYTES, RouteId, basic_credentials, is_json_content_type,
    parse_json,
};
use crate::error::Error;
use crate::identifiers::{EmailAddress, Identifier, IpAddress, PhoneNumber};
use crate::ids::{RequestId, UserId};
use crate::model::SessionAttributes;
use crate::ports::AppData;
use crate::service::frontend::{authenticate_public_token, check_origin, check_session_minutes};
use crate::service::otp::{self, AuthenticateRequest, SendMode, SendRequest};
use crate::service::sessions::{self, session_view};
use crate::service::{Deps, frontend};

/// The session length of a frontend login that names none (the Stytch UI's default).
const DEFAULT_SESSION_MINUTES: i64 = 30;
/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_SECONDS: u32 = 600;
const ALLOWED_HEADERS: &str = "authorization, content-type, x-sdk-client, x-sdk-parent-host";
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";

/// Who is calling: the app its public token names, the session token if signed in, and the
/// authorized origin the answer is for.
struct Caller {
    app: Arc<AppData>,
    session_token: Option<String>,
    request_id: RequestId,
    source_ip: Option<String>,
    user_agent: String,
}

impl Caller {
    fn session_token(&self) -> Result<&str, Error> {
        self.session_token.as_deref().ok_or(Error::Unauthorized)
    }

    fn attributes(&self) -> SessionAttributes {
        SessionAttributes {
            ip_address: self.source_ip.clone().unwrap_or_default(),
            user_agent: self.user_agent.clone(),
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The page's origin: `Origin`, else (a same-origin GET carries none) `X-SDK-Parent-Host`.
fn request_origin(headers: &HeaderMap) -> Option<&str> {
    header_text(headers, header::ORIGIN.as_str())
        .or_else(|| header_text(headers, "x-sdk-parent-host"))
}

/// The end user's address as the request came in (never a body field on this API), in its
/// canonical spelling.
fn source_ip(request: &ApiRequest) -> Option<String> {
    request
        .source_ip
        .as_deref()
        .and_then(IpAddress::parse)
        .map(|ip| ip.to_string())
}

const MAX_USER_AGENT_CHARS: usize = 1024;

fn user_agent(headers: &HeaderMap) -> String {
    header_text(headers, header::USER_AGENT.as_str())
        .unwrap_or("")
        .chars()
        .take(MAX_USER_AGENT_CHARS)
        .collect()
}

/// Finds the caller's app by public token and checks the origin. `Err` carries no origin: an
/// unknown token or a foreign origin gets no CORS headers.
async fn caller(
    deps: &Deps,
    route: RouteId,
    request: &ApiRequest,
    request_id: &RequestId,
) -> Result<(Caller, String), Error> {
    let credentials = basic_credentials(&request.headers);
    let (public_token, session_token) = match (route, credentials) {
        // The bootstrap names the token in its path; a session in its header does not matter.
        (RouteId::SdkBootstrap, _) => (request.path_param("public_token").to_owned(), None),
        (_, Some((user, password))) => {
            let session = (password != user && !password.is_empty()).then_some(password);
            (user, session)
        }
        (_, None) => return Err(Error::Unauthorized),
    };
    let app = authenticate_public_token(deps, &public_token).await?;
    let origin = check_origin(&app, request_origin(&request.headers))?;
    Ok((
        Caller {
            app,
            session_token,
            request_id: request_id.clone(),
            source_ip: source_ip(request),
            user_agent: user_agent(&request.headers),
        },
        origin,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SdkOtpSendRequest)]
pub(crate) struct SendBody {
    phone_number: Option<String>,
    email: Option<String>,
    expiration_minutes: Option<i64>,
    locale: Option<String>,
    login_template_id: Option<String>,
    signup_template_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SdkOtpAuthenticateRequest)]
pub(crate) struct AuthenticateBody {
    token: String,
    method_id: String,
    session_duration_minutes: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SdkSessionsAuthenticateRequest)]
pub(crate) struct SessionsAuthenticateBody {
    session_duration_minutes: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SdkSmsLoginOrCreateResponse)]
pub(crate) struct SmsLoginOrCreateResponse {
    user_id: UserId,
    method_id: String,
    phone_id: String,
    user_created: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SdkEmailLoginOrCreateResponse)]
pub(crate) struct EmailLoginOrCreateResponse {
    user_id: UserId,
    method_id: String,
    email_id: String,
    user_created: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CaptchaSettings {
    enabled: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RbacPolicy {
    #[schema(value_type = Vec<Object>)]
    roles: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    resources: Vec<Value>,
}

/// What the SDK reads of a project (the fields it maps, most of them off or empty here).
#[derive(Serialize, ToSchema)]
pub(crate) struct BootstrapResponse {
    project_name: String,
    disable_sdk_watermark: bool,
    cname_domain: Option<String>,
    email_domains: Vec<String>,
    captcha_settings: CaptchaSettings,
    dfp_protected_auth_enabled: bool,
    dfp_protected_auth_mode: Option<String>,
    pkce_required_for_email_magic_links: bool,
    pkce_required_for_password_resets: bool,
    pkce_required_for_oauth: bool,
    pkce_required_for_sso: bool,
    slug_pattern: Option<String>,
    create_organization_enabled: bool,
    #[schema(value_type = Option<Object>)]
    password_config: Option<Map<String, Value>>,
    siwe_required_for_crypto_wallets: bool,
    vertical: &'static str,
    rbac_policy: RbacPolicy,
}

/// A typed answer as the JSON the `{"data"}` envelope wraps.
fn to_value<T: Serialize>(body: T) -> Result<Value, Error> {
    serde_json::to_value(body)
        .map_err(|e| Error::Internal(format!("response body not serializable: {e}")))
}

fn required(value: Option<String>, field: &str) -> Result<String, Error> {
    value.ok_or_else(|| Error::BadRequest(format!("invalid request body: missing field `{field}`")))
}

async fn send(
    deps: &Deps,
    caller: &Caller,
    request: &ApiRequest,
    sms: bool,
) -> Result<Value, Error> {
    let app = &caller.app;
    let body: SendBody = parse_json(request)?;
    let identifier = if sms {
        let raw = required(body.phone_number, "phone_number")?;
        Identifier::Phone(PhoneNumber::parse(&raw)?)
    } else {
        let raw = required(body.email, "email")?;
        Identifier::Email(EmailAddress::parse(&raw).ok_or(Error::InvalidEmail)?)
    };
    let (login_template_id, signup_template_id) = if sms {
        (None, None)
    } else {
        (body.login_template_id, body.signup_template_id)
    };
    let outcome = otp::send_code(
        deps,
        app,
        &caller.request_id,
        SendRequest {
            identifier,
            mode: SendMode::LoginOrCreate {
                create_user_as_pending: false,
            },
            expiration_minutes: body.expiration_minutes,
            locale: body.locale,
            login_config_id: None,
            login_template_id,
            signup_template_id,
            ip_address: caller.source_ip.clone(),
            public_sends_per_hour: Some(app.frontend.public_sends_per_hour),
        },
    )
    .await?;
    let method_id = outcome.method_id.as_str().to_owned();
    if sms {
        to_value(SmsLoginOrCreateResponse {
            user_id: outcome.user_id,
            method_id: method_id.clone(),
            phone_id: method_id,
            user_created: outcome.user_created,
        })
    } else {
        to_value(EmailLoginOrCreateResponse {
            user_id: outcome.user_id,
            method_id: method_id.clone(),
            email_id: method_id,
            user_created: outcome.user_created,
        })
    }
}

async fn authenticate_otp(
    deps: &Deps,
    caller: &Caller,
    request: &ApiRequest,
) -> Result<Value, Error> {
    let app = &caller.app;
    let body: AuthenticateBody = parse_json(request)?;
    let minutes = body
        .session_duration_minutes
        .unwrap_or(DEFAULT_SESSION_MINUTES.min(app.frontend.max_session_minutes));
    check_session_minutes(app, Some(minutes))?;
    let request = |session_token: Option<String>| AuthenticateRequest {
        method_id: body.method_id.clone(),
        code: body.token.clone(),
        session_duration_minutes: Some(minutes),
        session_token,
        session_jwt: None,
        session_custom_claims: None,
        attributes: caller.attributes(),
    };
    // Signed in already: the code adds its factor to that session.
    let outcome = match otp::authenticate(
        deps,
        app,
        &caller.request_id,
        request(caller.session_token.clone()),
    )
    .await
    {
        // The SDK sends its session cookie with every request; a session that ended since
        // (revoked elsewhere, the user's sessions reset) must not stand in the way of a new
        // login. That refusal spent nothing, so the code is tried again on its own.
        Err(Error::SessionNotFound) if caller.session_token.is_some() => {
            otp::authenticate(deps, app, &caller.request_id, request(None)).await?
        }
        other => other?,
    };
    let issued = outcome
        .session
        .ok_or_else(|| Error::Internal("a frontend login started no session".into()))?;
    to_value(OtpAuthenticateResponse {
        user_id: outcome.user.id.clone(),
        method_id: outcome.method_id.as_str().to_owned(),
        session_token: issued.token,
        session_jwt: issued.jwt,
        session: Some(session_view(&issued.session)),
        user: user_view(&outcome.user, deps.clock.now()),
        reset_sessions: outcome.reset_sessions,
    })
}

/// The session of the caller's token (extended when `minutes` is given), with a fresh JWT.
async fn current_session(
    deps: &Deps,
    caller: &Caller,
    minutes: Option<i64>,
) -> Result<(sessions::IssuedSession, crate::model::User), Error> {
    let token = caller.session_token()?;
    check_session_minutes(&caller.app, minutes)?;
    sessions::authenticate(
        deps,
        &caller.app,
        &caller.request_id,
        Some(token),
        None,
        minutes,
        None,
    )
    .await
}

/// What the SDK reads of a project: captcha and device fingerprinting off, and every field it
/// maps present (a missing `password_config` makes it drop the whole answer, a missing
/// `captcha_settings` stops every login).
fn bootstrap(app: &AppData) -> BootstrapResponse {
    BootstrapResponse {
        project_name: app.app.name.clone(),
        disable_sdk_watermark: true,
        cname_domain: None,
        email_domains: Vec::new(),
        captcha_settings: CaptchaSettings { enabled: false },
        dfp_protected_auth_enabled: false,
        dfp_protected_auth_mode: None,
        pkce_required_for_email_magic_links: false,
        pkce_required_for_password_resets: false,
        pkce_required_for_oauth: false,
        pkce_required_for_sso: false,
        slug_pattern: None,
        create_organization_enabled: false,
        password_config: None,
        siwe_required_for_crypto_wallets: false,
        vertical: "CONSUMER",
        rbac_policy: RbacPolicy {
            roles: Vec::new(),
            resources: Vec::new(),
        },
    }
}

async fn dispatch(
    deps: &Deps,
    route: RouteId,
    caller: &Caller,
    request: &ApiRequest,
) -> Result<Value, Error> {
    match route {
        RouteId::SdkBootstrap => to_value(bootstrap(&caller.app)),
        RouteId::SdkSmsLoginOrCreate => send(deps, caller, request, true).await,
        RouteId::SdkEmailLoginOrCreate => send(deps, caller, request, false).await,
        RouteId::SdkOtpAuthenticate => authenticate_otp(deps, caller, request).await,
        RouteId::SdkSessionsAuthenticate => {
            let body: SessionsAuthenticateBody = parse_json(request)?;
            let (issued, user) =
                current_session(deps, caller, body.session_duration_minutes).await?;
            to_value(SessionsAuthenticateResponse {
                session: session_view(&issued.session),
                session_token: issued.token,
                session_jwt: issued.jwt,
                user: user_view(&user, deps.clock.now()),
            })
        }
        RouteId::SdkSessionsRevoke => {
            let token = caller.session_token()?;
            sessions::revoke(
                deps,
                &caller.app,
                &caller.request_id,
                None,
                Some(token),
                None,
            )
            .await?;
            to_value(EmptyResponse {})
        }
        RouteId::SdkUsersMe => {
            let (_, user) = current_session(deps, caller, None).await?;
            // The SDK reads the user flattened into `data`.
            to_value(user_view(&user, deps.clock.now()))
        }
        other => Err(Error::Internal(format!(
            "{other:?} is not a frontend route"
        ))),
    }
}

/// A session that is missing, expired or revoked is `unauthorized_credentials` here: the SDK
/// then forgets it, where any other error would make it retry for ever.
fn as_frontend_error(route: RouteId, error: Error) -> Error {
    let session_route = matches!(
        route,
        RouteId::SdkSessionsAuthenticate | RouteId::SdkSessionsRevoke | RouteId::SdkUsersMe
    );
    match error {
        Error::SessionNotFound | Error::InvalidSessionJwt if session_route => Error::Unauthorized,
        other => other,
    }
}

fn cors_headers(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// A well-formed origin of a preflight or an event (no app to check it against).
fn any_origin(headers: &HeaderMap) -> Option<String> {
    request_origin(headers).and_then(|o| frontend::parse_origin(o).ok())
}

/// Serves one frontend request; never fails (every error becomes an answer).
pub(super) async fn handle(
    deps: &Deps,
    route: RouteId,
    request: &ApiRequest,
    request_id: &RequestId,
) -> Answer {
    let data = |body: Value| {
        let mut body = body;
        if let Some(object) = body.as_object_mut() {
            object.insert("request_id".into(), json!(request_id));
            object.insert("status_code".into(), json!(200));
        }
        Some(json!({"data": body}))
    };
    // As on every route: the size first, then a body must be JSON.
    let refused = if request.body.len() > MAX_BODY_BYTES {
        Some(Error::PayloadTooLarge)
    } else if !request.body.iter().all(u8::is_ascii_whitespace)
        && !is_json_content_type(&request.headers)
    {
        Some(Error::UnsupportedMediaType)
    } else {
        None
    };
    if let Some(error) = refused {
        let (status, body) = super::errors::login_error_body(
            &error,
            request_id.as_str(),
            &deps.settings.public_base_url,
        );
        return Answer {
            status,
            body: Some(body),
            cors_origin: any_origin(&request.headers),
            retry_after: None,
            etag: None,
            preflight: false,
            document: None,
        };
    }
    match route {
        RouteId::SdkPreflight => {
            return Answer {
                status: StatusCode::NO_CONTENT,
                body: None,
                cors_origin: any_origin(&request.headers),
                retry_after: None,
                etag: None,
                preflight: true,
                document: None,
            };
        }
        // Telemetry the SDK sends without credentials: accepted and dropped.
        RouteId::SdkEvents => {
            return Answer {
                status: StatusCode::OK,
                body: data(json!({})),
                cors_origin: any_origin(&request.headers),
                retry_after: None,
                etag: None,
                preflight: false,
                document: None,
            };
        }
        _ => {}
    }
    let mut cors_origin = None;
    let result = async {
        let (caller, origin) = caller(deps, route, request, request_id).await?;
        cors_origin = Some(origin);
        dispatch(deps, route, &caller, request).await
    }
    .await;
    match result {
        Ok(body) => Answer {
            status: StatusCode::OK,
            body: data(body),
            cors_origin,
            retry_after: None,
            etag: None,
            preflight: false,
            document: None,
        },
        Err(error) => {
            let error = as_frontend_error(route, error);
            if let Error::Internal(detail) = &error {
                tracing::error!(request_id = %request_id, route = route.route().function, detail = %detail, "internal error");
            }
            let (status, mut body) = super::errors::login_error_body(
                &error,
                request_id.as_str(),
                &deps.settings.public_base_url,
            );
            // The SDK's error keeps only the Stytch fields and `error_details`: the attempts
            // left and the wait go there too, for the page to show.
            let details: serde_json::Map<String, Value> =
                ["attempts_remaining", "retry_after_seconds"]
                    .into_iter()
                    .filter_map(|field| Some((field.to_owned(), body.get(field)?.clone())))
                    .collect();
            if !details.is_empty() {
                body["error_details"] = Value::Object(details);
            }
            Answer {
                status,
                body: Some(body),
                cors_origin,
                retry_after: super::errors::retry_after_seconds(&error),
                etag: None,
                preflight: false,
                document: None,
            }
        }
    }
}

/// The CORS headers of an answer (and of a preflight, what it allows).
pub(super) fn add_cors_headers(headers: &mut HeaderMap, answer: &Answer) {
    let Some(origin) = &answer.cors_origin else {
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        return;
    };
    cors_headers(headers, origin);
    if answer.preflight {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(PREFLIGHT_MAX_AGE_SECONDS),
        );
    }
}
