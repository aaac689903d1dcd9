//! Login API handlers (the Stytch dialect): parse, call the use case, shape the reply.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::views::{UserView, user_view};
use super::{ApiRequest, Caller, Reply, RouteId, parse_json};
use crate::error::Error;
use crate::identifiers::{EmailAddress, Identifier, IpAddress, PhoneNumber};
use crate::ids::{AppId, UserId};
use crate::jwt::Jwk;
use crate::model::SessionAttributes;
use crate::service::otp::{
    self, AuthenticateRequest, SendMode, SendOutcome, SendRequest, SendTarget,
};
use crate::service::sessions::{self, SessionView, session_view};
use crate::service::signing;
use crate::service::{Deps, users};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub(crate) struct Attributes {
    ip_address: Option<String>,
    user_agent: Option<String>,
}

const MAX_USER_AGENT_CHARS: usize = 1024;

/// Checks the end user's attributes: an IP address must be one (it keys a rate limit), and a
/// user agent is kept to a sane length. Absent values are empty strings. The IP address is
/// recorded in its one canonical spelling (an IPv4-mapped IPv6 address as its IPv4 address).
fn session_attributes(attributes: Option<Attributes>) -> Result<SessionAttributes, Error> {
    let a = attributes.unwrap_or_default();
    let ip_address = match a.ip_address.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(text) => IpAddress::parse(text)
            .ok_or_else(|| {
                Error::BadRequest("attributes.ip_address must be an IPv4 or IPv6 address".into())
            })?
            .to_string(),
    };
    let user_agent = a.user_agent.unwrap_or_default();
    if user_agent.chars().count() > MAX_USER_AGENT_CHARS {
        return Err(Error::BadRequest(format!(
            "attributes.user_agent must be at most {MAX_USER_AGENT_CHARS} characters"
        )));
    }
    Ok(SessionAttributes {
        ip_address,
        user_agent,
    })
}

/// The body of all four send endpoints; which fields apply depends on the endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OtpSendRequest)]
pub(crate) struct SendBody {
    phone_number: Option<String>,
    email: Option<String>,
    expiration_minutes: Option<i64>,
    attributes: Option<Attributes>,
    create_user_as_pending: Option<bool>,
    locale: Option<String>,
    login_config_id: Option<String>,
    login_template_id: Option<String>,
    signup_template_id: Option<String>,
    user_id: Option<String>,
    session_token: Option<String>,
    session_jwt: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OtpAuthenticateRequest)]
pub(crate) struct AuthenticateBody {
    method_id: String,
    code: String,
    session_duration_minutes: Option<i64>,
    session_token: Option<String>,
    session_jwt: Option<String>,
    #[schema(value_type = Option<Object>)]
    session_custom_claims: Option<Map<String, Value>>,
    attributes: Option<Attributes>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SessionsAuthenticateRequest)]
pub(crate) struct SessionsAuthenticateBody {
    session_token: Option<String>,
    session_jwt: Option<String>,
    session_duration_minutes: Option<i64>,
    #[schema(value_type = Option<Object>)]
    session_custom_claims: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SessionsRevokeRequest)]
pub(crate) struct RevokeBody {
    session_id: Option<String>,
    session_token: Option<String>,
    session_jwt: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SmsLoginOrCreateResponse {
    user_id: UserId,
    phone_id: String,
    user_created: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SmsSendResponse {
    user_id: UserId,
    phone_id: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EmailLoginOrCreateResponse {
    user_id: UserId,
    email_id: String,
    user_created: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EmailSendResponse {
    user_id: UserId,
    email_id: String,
}

/// A login: the session is `null` (and its token and JWT empty) when the code only verified a
/// method without starting one.
#[derive(Serialize, ToSchema)]
pub(crate) struct OtpAuthenticateResponse {
    pub(crate) user_id: UserId,
    pub(crate) method_id: String,
    pub(crate) session_token: String,
    pub(crate) session_jwt: String,
    pub(crate) session: Option<SessionView>,
    pub(crate) user: UserView,
    pub(crate) reset_sessions: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SessionsAuthenticateResponse {
    pub(crate) session: SessionView,
    pub(crate) session_token: String,
    pub(crate) session_jwt: String,
    pub(crate) user: UserView,
}

/// Nothing but what every answer carries.
#[derive(Serialize, ToSchema)]
pub(crate) struct EmptyResponse {}

#[derive(Serialize, ToSchema)]
pub(crate) struct SessionsListResponse {
    sessions: Vec<SessionView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct JwksResponse {
    keys: Vec<Jwk>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UsersDeleteResponse {
    user_id: UserId,
}

fn ok<T: Serialize>(body: T) -> Result<Reply, Error> {
    Reply::typed(StatusCode::OK, &body)
}

fn required(value: Option<String>, field: &str) -> Result<String, Error> {
    value.ok_or_else(|| Error::BadRequest(format!("invalid request body: missing field `{field}`")))
}

async fn send(
    deps: &Deps,
    caller: &Caller,
    request: &ApiRequest,
    sms: bool,
    login_or_create: bool,
) -> Result<SendOutcome, Error> {
    let app = caller.app()?;
    let body: SendBody = parse_json(request)?;
    let attributes = session_attributes(body.attributes)?;
    let identifier = if sms {
        let raw = required(body.phone_number, "phone_number")?;
        Identifier::Phone(PhoneNumber::parse(&raw)?)
    } else {
        let raw = required(body.email, "email")?;
        Identifier::Email(EmailAddress::parse(&raw).ok_or(Error::InvalidEmail)?)
    };
    let mode = if login_or_create {
        SendMode::LoginOrCreate {
            create_user_as_pending: body.create_user_as_pending.unwrap_or(false),
        }
    } else {
        let target = match (body.user_id, body.session_token, body.session_jwt) {
            (Some(id), _, _) => Some(SendTarget::UserId(id)),
            (None, Some(token), _) => Some(SendTarget::SessionToken(token)),
            (None, None, Some(jwt)) => Some(SendTarget::SessionJwt(jwt)),
            (None, None, None) => None,
        };
        SendMode::Send { target }
    };
    let (login_template_id, signup_template_id) = if sms {
        (None, None)
    } else {
        (body.login_template_id, body.signup_template_id)
    };
    otp::send_code(
        deps,
        app,
        &caller.request_id,
        SendRequest {
            identifier,
            mode,
            expiration_minutes: body.expiration_minutes,
            locale: body.locale,
            login_config_id: body.login_config_id,
            login_template_id,
            signup_template_id,
            ip_address: Some(attributes.ip_address).filter(|ip| !ip.is_empty()),
            public_sends_per_hour: None,
        },
    )
    .await
}

async fn authenticate_otp(
    deps: &Deps,
    caller: &Caller,
    request: &ApiRequest,
) -> Result<Reply, Error> {
    let app = caller.app()?;
    let body: AuthenticateBody = parse_json(request)?;
    let outcome = otp::authenticate(
        deps,
        app,
        &caller.request_id,
        AuthenticateRequest {
            method_id: body.method_id,
            code: body.code,
            session_duration_minutes: body.session_duration_minutes,
            session_token: body.session_token,
            session_jwt: body.session_jwt,
            session_custom_claims: body.session_custom_claims,
            attributes: session_attributes(body.attributes)?,
        },
    )
    .await?;
    let now = deps.clock.now();
    let (token, jwt, session) = match &outcome.session {
        Some(issued) => (
            issued.token.clone(),
            issued.jwt.clone(),
            Some(session_view(&issued.session)),
        ),
        None => (String::new(), String::new(), None),
    };
    ok(OtpAuthenticateResponse {
        user_id: outcome.user.id.clone(),
        method_id: outcome.method_id.as_str().to_owned(),
        session_token: token,
        session_jwt: jwt,
        session,
        user: user_view(&outcome.user, now),
        reset_sessions: outcome.reset_sessions,
    })
}

/// The app's published public keys; an unknown app is `app_not_found`.
async fn jwks(deps: &Deps, app_id: &str) -> Result<Reply, Error> {
    let now = deps.clock.now();
    let app = match AppId::parse(app_id) {
        Some(id) => deps.app_cache.get(deps.apps.as_ref(), &id, now).await?,
        None => None,
    };
    let app = app.ok_or(Error::AppNotFound)?;
    ok(JwksResponse {
        keys: signing::published_keys(deps, &app, now)?,
    })
}

pub(super) async fn handle(
    deps: &Deps,
    caller: &Caller,
    route: RouteId,
    request: &ApiRequest,
) -> Result<Reply, Error> {
    match route {
        RouteId::SmsLoginOrCreate => {
            let outcome = send(deps, caller, request, true, true).await?;
            ok(SmsLoginOrCreateResponse {
                user_id: outcome.user_id,
                phone_id: outcome.method_id.as_str().to_owned(),
                user_created: outcome.user_created,
            })
        }
        RouteId::SmsSend => {
            let outcome = send(deps, caller, request, true, false).await?;
            ok(SmsSendResponse {
                user_id: outcome.user_id,
                phone_id: outcome.method_id.as_str().to_owned(),
            })
        }
        RouteId::EmailLoginOrCreate => {
            let outcome = send(deps, caller, request, false, true).await?;
            ok(EmailLoginOrCreateResponse {
                user_id: outcome.user_id,
                email_id: outcome.method_id.as_str().to_owned(),
                user_created: outcome.user_created,
            })
        }
        RouteId::EmailSend => {
            let outcome = send(deps, caller, request, false, false).await?;
            ok(EmailSendResponse {
                user_id: outcome.user_id,
                email_id: outcome.method_id.as_str().to_owned(),
            })
        }
        RouteId::OtpAuthenticate => authenticate_otp(deps, caller, request).await,
        RouteId::SessionsAuthenticate => {
            let app = caller.app()?;
            let body: SessionsAuthenticateBody = parse_json(request)?;
            let (issued, user) = sessions::authenticate(
                deps,
                app,
                &caller.request_id,
                body.session_token.as_deref(),
                body.session_jwt.as_deref(),
                body.session_duration_minutes,
                body.session_custom_claims.as_ref(),
            )
            .await?;
            ok(SessionsAuthenticateResponse {
                session: session_view(&issued.session),
                session_token: issued.token,
                session_jwt: issued.jwt,
                user: user_view(&user, deps.clock.now()),
            })
        }
        RouteId::SessionsRevoke => {
            let app = caller.app()?;
            let body: RevokeBody = parse_json(request)?;
            sessions::revoke(
                deps,
                app,
                &caller.request_id,
                body.session_id.as_deref(),
                body.session_token.as_deref(),
                body.session_jwt.as_deref(),
            )
            .await?;
            ok(EmptyResponse {})
        }
        RouteId::SessionsList => {
            let app = caller.app()?;
            let user_id = request.query.get("user_id").ok_or_else(|| {
                Error::BadRequest("the query parameter user_id is required".into())
            })?;
            let list = sessions::list(deps, &app.app.id, user_id).await?;
            ok(SessionsListResponse {
                sessions: list.iter().map(session_view).collect(),
            })
        }
        RouteId::SessionsJwks => jwks(deps, request.path_param("app_id")).await,
        RouteId::ErrorsReference => Ok(Reply::Document {
            content_type: "text/html; charset=utf-8",
            body: super::docs::errors_page(),
        }),
        RouteId::UsersGet => {
            let app = caller.app()?;
            let user = users::get(deps, &app.app.id, request.path_param("user_id")).await?;
            // The SDK's GetResponse is the User flattened at top level.
            ok(user_view(&user, deps.clock.now()))
        }
        RouteId::UsersDelete => {
            let app = caller.app()?;
            let user_id = users::delete(
                deps,
                &app.app.id,
                &caller.request_id,
                request.path_param("user_id"),
            )
            .await?;
            ok(UsersDeleteResponse { user_id })
        }
        other => Err(Error::Internal(format!("{other:?} is not a login route"))),
    }
}
