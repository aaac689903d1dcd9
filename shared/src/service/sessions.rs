//! Sessions: an opaque token (stored as a hash) and a short-lived RS256 JWT over the same record.

use serde_json::{Map, Value, json};

use crate::clock::Timestamp;
use crate::crypto::{new_session_token, sha256};
use crate::error::Error;
use crate::identifiers::Identifier;
use crate::ids::{AppId, SessionId, UserId};
use crate::model::{AuthenticationFactor, Session, SessionAttributes, User};
use crate::service::Deps;

pub const SESSION_CLAIM: &str = "https://stytch.com/session";
const MIN_SESSION_MINUTES: i64 = 5;
const MAX_SESSION_MINUTES: i64 = 527_040;
const MAX_CUSTOM_CLAIMS_BYTES: usize = 4096;
const RESERVED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// A session as handed to the caller: the record, its token (empty when not known, i.e. when the
/// caller authenticated with the JWT alone) and a fresh JWT.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub session: Session,
    pub token: String,
    pub jwt: String,
}

pub fn validate_duration(minutes: i64) -> Result<i64, Error> {
    if (MIN_SESSION_MINUTES..=MAX_SESSION_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(Error::InvalidSessionDuration)
    }
}

pub fn validate_custom_claims(claims: &Map<String, Value>) -> Result<(), Error> {
    if let Some(reserved) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()) || k.starts_with("https://stytch.com/"))
    {
        return Err(Error::InvalidSessionCustomClaims(format!(
            "session_custom_claims may not set the reserved claim {reserved:?}"
        )));
    }
    let size = serde_json::to_vec(claims)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CUSTOM_CLAIMS_BYTES {
        return Err(Error::InvalidSessionCustomClaims(format!(
            "session_custom_claims is {size} bytes serialized; at most {MAX_CUSTOM_CLAIMS_BYTES} are allowed"
        )));
    }
    Ok(())
}

/// The claims after an update, without changing the original.
pub fn merged_claims(
    claims: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = claims.clone();
    merge_claims(&mut merged, patch);
    merged
}

/// Applies a claims update: a key set to `null` is removed, any other value replaces.
fn merge_claims(into: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            into.remove(key);
        } else {
            into.insert(key.clone(), value.clone());
        }
    }
}

pub fn factor_view(factor: &AuthenticationFactor) -> Value {
    let at = factor.last_authenticated_at;
    match &factor.identifier {
        Identifier::Phone(number) => json!({
            "type": "otp",
            "delivery_method": "sms",
            "last_authenticated_at": at,
            "created_at": at,
            "updated_at": at,
            "phone_number_factor": {"phone_id": factor.method_id.as_str(), "phone_number": number.as_str()},
        }),
        Identifier::Email(email) => json!({
            "type": "otp",
            "delivery_method": "email",
            "last_authenticated_at": at,
            "created_at": at,
            "updated_at": at,
            "email_factor": {"email_id": factor.method_id.as_str(), "email_address": email.as_str()},
        }),
    }
}

/// The Session object of the Login API.
pub fn session_view(session: &Session) -> Value {
    json!({
        "session_id": session.id,
        "user_id": session.user_id,
        "started_at": session.started_at,
        "last_accessed_at": session.last_accessed_at,
        "expires_at": session.expires_at,
        "attributes": session.attributes,
        "custom_claims": session.custom_claims,
        "roles": [],
        "granted_scopes": session.granted_scopes,
        "authentication_factors": session.authentication_factors.iter().map(factor_view).collect::<Vec<_>>(),
    })
}

pub fn mint_jwt(deps: &Deps, session: &Session) -> Result<String, Error> {
    let now = deps.clock.now();
    let mut claims = session.custom_claims.clone();
    claims.insert("aud".into(), json!(session.app_id));
    claims.insert("iss".into(), json!(deps.settings.public_base_url));
    claims.insert("sub".into(), json!(session.user_id));
    claims.insert("iat".into(), json!(now.seconds()));
    claims.insert("nbf".into(), json!(now.seconds()));
    // A JWT never outlives its session.
    let exp = now
        .plus_seconds(deps.settings.limits.jwt_lifetime_seconds)
        .min(session.expires_at);
    claims.insert("exp".into(), json!(exp.seconds()));
    claims.insert(
        SESSION_CLAIM.into(),
        json!({
            "id": session.id,
            "started_at": session.started_at,
            "last_accessed_at": session.last_accessed_at,
            "expires_at": session.expires_at,
            "attributes": session.attributes,
            "authentication_factors": session.authentication_factors.iter().map(factor_view).collect::<Vec<_>>(),
            "roles": [],
            "granted_scopes": session.granted_scopes,
        }),
    );
    deps.keys
        .jwt
        .sign(&Value::Object(claims))
        .map_err(|e| Error::Internal(e.to_string()))
}

fn issued(deps: &Deps, session: Session, token: String) -> Result<IssuedSession, Error> {
    let jwt = mint_jwt(deps, &session)?;
    Ok(IssuedSession {
        session,
        token,
        jwt,
    })
}

/// What a new or extended session records about the authentication that led to it.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    pub factor: AuthenticationFactor,
    pub scopes: Vec<String>,
    pub attributes: SessionAttributes,
}

pub async fn start(
    deps: &Deps,
    app_id: &AppId,
    user_id: &UserId,
    grant: SessionGrant,
    duration_minutes: i64,
    custom_claims: Map<String, Value>,
) -> Result<IssuedSession, Error> {
    let now = deps.clock.now();
    let (token, token_hash) = new_session_token(deps.random.as_ref());
    let mut claims = Map::new();
    merge_claims(&mut claims, &custom_claims);
    let session = Session {
        id: SessionId::generate(deps.random.as_ref()),
        app_id: app_id.clone(),
        user_id: user_id.clone(),
        token_hash,
        started_at: now,
        last_accessed_at: now,
        expires_at: now.plus_minutes(duration_minutes),
        attributes: grant.attributes,
        custom_claims: claims,
        authentication_factors: vec![grant.factor],
        granted_scopes: grant.scopes,
    };
    deps.sessions.create_session(&session).await?;
    tracing::info!(app_id = %app_id, user_id = %user_id, session_id = %session.id, "session started");
    issued(deps, session, token)
}

/// Records an access (and optionally a new factor, lifetime and claims) on a live session.
pub async fn extend(
    deps: &Deps,
    mut session: Session,
    token: String,
    grant: Option<SessionGrant>,
    duration_minutes: Option<i64>,
    claims_patch: Option<&Map<String, Value>>,
) -> Result<IssuedSession, Error> {
    let now = deps.clock.now();
    session.last_accessed_at = now;
    if let Some(minutes) = duration_minutes {
        session.expires_at = now.plus_minutes(minutes);
    }
    if let Some(patch) = claims_patch {
        merge_claims(&mut session.custom_claims, patch);
        validate_custom_claims(&session.custom_claims)?;
    }
    if let Some(grant) = grant {
        session
            .authentication_factors
            .retain(|f| f.method_id != grant.factor.method_id);
        session.authentication_factors.push(grant.factor);
        for scope in grant.scopes {
            if !session.granted_scopes.contains(&scope) {
                session.granted_scopes.push(scope);
            }
        }
    }
    if !deps.sessions.update_session(&session).await? {
        return Err(Error::SessionNotFound);
    }
    issued(deps, session, token)
}

/// Finds the live session a token or JWT names. Returns the token when one was presented.
pub async fn resolve(
    deps: &Deps,
    app_id: &AppId,
    session_token: Option<&str>,
    session_jwt: Option<&str>,
) -> Result<(Session, String), Error> {
    let now = deps.clock.now();
    let live = |s: Option<Session>| s.filter(|s| s.is_live(now)).ok_or(Error::SessionNotFound);
    if let Some(token) = session_token.filter(|t| !t.is_empty()) {
        let session = live(
            deps.sessions
                .find_by_token_hash(app_id, &sha256(token.as_bytes()))
                .await?,
        )?;
        return Ok((session, token.to_owned()));
    }
    if let Some(jwt) = session_jwt.filter(|t| !t.is_empty()) {
        let claims = deps
            .keys
            .jwt
            .verify(jwt, app_id.as_str(), &deps.settings.public_base_url)
            .map_err(|_| Error::InvalidSessionJwt)?;
        let session_id = claims
            .get(SESSION_CLAIM)
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
            .and_then(SessionId::parse)
            .ok_or(Error::InvalidSessionJwt)?;
        let session = live(deps.sessions.get_session(app_id, &session_id).await?)?;
        return Ok((session, String::new()));
    }
    Err(Error::BadRequest(
        "session_token or session_jwt is required".into(),
    ))
}

pub async fn authenticate(
    deps: &Deps,
    app_id: &AppId,
    session_token: Option<&str>,
    session_jwt: Option<&str>,
    duration_minutes: Option<i64>,
    claims_patch: Option<&Map<String, Value>>,
) -> Result<(IssuedSession, User), Error> {
    let duration_minutes = duration_minutes.map(validate_duration).transpose()?;
    if let Some(patch) = claims_patch {
        validate_custom_claims(patch)?;
    }
    let (session, token) = resolve(deps, app_id, session_token, session_jwt).await?;
    let user = deps
        .users
        .get_user(app_id, &session.user_id)
        .await?
        .ok_or(Error::SessionNotFound)?;
    let issued = extend(deps, session, token, None, duration_minutes, claims_patch).await?;
    Ok((issued, user))
}

pub async fn revoke(
    deps: &Deps,
    app_id: &AppId,
    session_id: Option<&str>,
    session_token: Option<&str>,
    session_jwt: Option<&str>,
) -> Result<(), Error> {
    let session_id = match session_id {
        Some(id) => SessionId::parse(id).ok_or(Error::SessionNotFound)?,
        None => {
            resolve(deps, app_id, session_token, session_jwt)
                .await?
                .0
                .id
        }
    };
    if !deps.sessions.delete_session(app_id, &session_id).await? {
        return Err(Error::SessionNotFound);
    }
    tracing::info!(app_id = %app_id, session_id = %session_id, "session revoked");
    Ok(())
}

pub async fn list(deps: &Deps, app_id: &AppId, user_id: &str) -> Result<Vec<Session>, Error> {
    let user_id = UserId::parse(user_id).ok_or(Error::UserNotFound)?;
    if deps.users.get_user(app_id, &user_id).await?.is_none() {
        return Err(Error::UserNotFound);
    }
    let now: Timestamp = deps.clock.now();
    Ok(deps
        .sessions
        .list_sessions(app_id, &user_id)
        .await?
        .into_iter()
        .filter(|s| s.is_live(now))
        .collect())
}
