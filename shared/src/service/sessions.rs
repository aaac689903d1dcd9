//! Sessions: an opaque token (stored as a hash) and a short-lived RS256 JWT over the same record.

use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::clock::Timestamp;
use crate::crypto::{new_session_token, sha256};
use crate::error::Error;
use crate::identifiers::{EmailAddress, Identifier, PhoneNumber};
use crate::ids::{AppId, Home, RequestId, SessionId, UserId};
use crate::model::{AuthenticationFactor, Session, SessionAttributes, User};
use crate::ports::{AppData, Expect, Key, Record, Write};
use crate::random::Random;
use crate::service::commit::{Decision, Snapshot, decide_and_commit};
use crate::service::{Deps, signing};

pub const SESSION_CLAIM: &str = "https://stytch.com/session";
pub const MIN_SESSION_MINUTES: i64 = 5;
pub const MAX_SESSION_MINUTES: i64 = 527_040;
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

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumberFactor {
    pub phone_id: String,
    pub phone_number: PhoneNumber,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailFactor {
    pub email_id: String,
    pub email_address: EmailAddress,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMethod {
    Sms,
    Email,
}

/// A Stytch authentication factor: the phone or the email one is there, never both.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuthenticationFactor)]
pub struct FactorView {
    /// Always `otp`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub delivery_method: DeliveryMethod,
    pub last_authenticated_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_factor: Option<PhoneNumberFactor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_factor: Option<EmailFactor>,
}

pub fn factor_view(factor: &AuthenticationFactor) -> FactorView {
    let at = factor.last_authenticated_at;
    let method_id = factor.method_id.as_str().to_owned();
    let (delivery_method, phone_number_factor, email_factor) = match &factor.identifier {
        Identifier::Phone(number) => (
            DeliveryMethod::Sms,
            Some(PhoneNumberFactor {
                phone_id: method_id,
                phone_number: number.clone(),
            }),
            None,
        ),
        Identifier::Email(email) => (
            DeliveryMethod::Email,
            None,
            Some(EmailFactor {
                email_id: method_id,
                email_address: email.clone(),
            }),
        ),
    };
    FactorView {
        kind: "otp",
        delivery_method,
        last_authenticated_at: at,
        created_at: at,
        updated_at: at,
        phone_number_factor,
        email_factor,
    }
}

/// The Session object of the Login API.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub started_at: Timestamp,
    pub last_accessed_at: Timestamp,
    pub expires_at: Timestamp,
    pub attributes: SessionAttributes,
    #[schema(value_type = Object)]
    pub custom_claims: Map<String, Value>,
    /// Always empty.
    pub roles: Vec<String>,
    pub granted_scopes: Vec<String>,
    pub authentication_factors: Vec<FactorView>,
}

pub fn session_view(session: &Session) -> SessionView {
    SessionView {
        session_id: session.id.clone(),
        user_id: session.user_id.clone(),
        started_at: session.started_at,
        last_accessed_at: session.last_accessed_at,
        expires_at: session.expires_at,
        attributes: session.attributes.clone(),
        custom_claims: session.custom_claims.clone(),
        roles: Vec::new(),
        granted_scopes: session.granted_scopes.clone(),
        authentication_factors: session
            .authentication_factors
            .iter()
            .map(factor_view)
            .collect(),
    }
}

pub fn mint_jwt(deps: &Deps, app: &AppData, session: &Session) -> Result<String, Error> {
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
    signing::signer(deps, app)?
        .sign(&Value::Object(claims))
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The session as handed to the caller, with a fresh JWT.
pub fn issue(
    deps: &Deps,
    app: &AppData,
    session: Session,
    token: String,
) -> Result<IssuedSession, Error> {
    let jwt = mint_jwt(deps, app, &session)?;
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

/// A new session of `user` for `duration_minutes` from `now`, and its token (the session is in
/// the user's home, and so is the token's hash).
pub fn new_session(
    random: &dyn Random,
    user: &User,
    grant: SessionGrant,
    duration_minutes: i64,
    custom_claims: Map<String, Value>,
    now: Timestamp,
) -> (Session, String) {
    let home = user.id.home();
    let (token, token_hash) = new_session_token(random, home);
    let mut claims = Map::new();
    merge_claims(&mut claims, &custom_claims);
    let session = Session {
        id: SessionId::generate_in(random, home),
        app_id: user.app_id.clone(),
        user_id: user.id.clone(),
        token_hash,
        started_at: now,
        last_accessed_at: now,
        expires_at: now.plus_minutes(duration_minutes),
        attributes: grant.attributes,
        custom_claims: claims,
        authentication_factors: vec![grant.factor],
        granted_scopes: grant.scopes,
    };
    (session, token)
}

/// The session after an access at `now`: optionally a new factor (replacing one of the same
/// method), a new lifetime and a claims update (checked against the limits).
pub fn accessed(
    mut session: Session,
    now: Timestamp,
    grant: Option<SessionGrant>,
    duration_minutes: Option<i64>,
    claims_patch: Option<&Map<String, Value>>,
) -> Result<Session, Error> {
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
    Ok(session)
}

/// The session a JWT names: it must verify (signature, audience, issuer; an expired JWT of a
/// live session is fine), and name a session id and user.
fn session_named_by_jwt(deps: &Deps, app: &AppData, jwt: &str) -> Result<SessionId, Error> {
    let claims =
        signing::verify(deps, app, jwt, deps.clock.now()).ok_or(Error::InvalidSessionJwt)?;
    claims
        .get(SESSION_CLAIM)
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .and_then(SessionId::parse)
        .ok_or(Error::InvalidSessionJwt)
}

/// Where a presented session token or JWT points, before anything is read.
#[derive(Debug, Clone)]
pub enum SessionRef {
    /// The key of the session a token names (the token itself is the credential).
    Token { key: Key, token: String },
    /// The session id a verified JWT names (found by reading its home).
    Jwt(SessionId),
}

/// Parses the credential of a request about a session: a token, else a JWT (verified here).
pub fn session_ref(
    deps: &Deps,
    app: &AppData,
    session_token: Option<&str>,
    session_jwt: Option<&str>,
) -> Result<SessionRef, Error> {
    if let Some(token) = session_token.filter(|t| !t.is_empty()) {
        let home = Home::of_session_token(token).ok_or(Error::SessionNotFound)?;
        return Ok(SessionRef::Token {
            key: Key::Session {
                app_id: app.app.id.clone(),
                home,
                token_hash: sha256(token.as_bytes()),
            },
            token: token.to_owned(),
        });
    }
    if let Some(jwt) = session_jwt.filter(|t| !t.is_empty()) {
        return Ok(SessionRef::Jwt(session_named_by_jwt(deps, app, jwt)?));
    }
    Err(Error::BadRequest(
        "session_token or session_jwt is required".into(),
    ))
}

/// The key of the session a JWT's session id names, found in one read of its home, and what
/// that read found (the user and the home's sessions). `None`: no such session.
pub async fn find_by_id(
    deps: &Deps,
    app_id: &AppId,
    session_id: &SessionId,
) -> Result<(Option<Key>, Snapshot), Error> {
    let home = session_id.home();
    let records = deps.login.load_home(app_id, home).await?;
    let mut snapshot = Snapshot::new();
    snapshot.set(
        Key::User {
            app_id: app_id.clone(),
            home,
        },
        records.user.map(Record::User),
    );
    let mut found = None;
    for session in records.sessions {
        if &session.value.id == session_id {
            found = Some(Record::Session(session.clone()).key());
        }
        snapshot.put(Record::Session(session));
    }
    Ok((found, snapshot))
}

/// `sessions.authenticate`. By token alone, one step: the access is recorded on the live
/// session while the user is read beside it. A JWT is first resolved to its session by
/// reading its home; a claims update is decided on the session as read and committed on
/// condition that it did not change.
pub async fn authenticate(
    deps: &Deps,
    app: &AppData,
    request_id: &RequestId,
    session_token: Option<&str>,
    session_jwt: Option<&str>,
    duration_minutes: Option<i64>,
    claims_patch: Option<&Map<String, Value>>,
) -> Result<(IssuedSession, User), Error> {
    let app_id = &app.app.id;
    let duration_minutes = duration_minutes.map(validate_duration).transpose()?;
    if let Some(patch) = claims_patch {
        validate_custom_claims(patch)?;
    }
    let mut snapshot = Snapshot::new();
    let (key, token) = match session_ref(deps, app, session_token, session_jwt)? {
        SessionRef::Token { key, token } => (key, token),
        SessionRef::Jwt(session_id) => {
            let (found, read) = find_by_id(deps, app_id, &session_id).await?;
            snapshot = read;
            (found.ok_or(Error::SessionNotFound)?, String::new())
        }
    };
    let Key::Session {
        home, token_hash, ..
    } = &key
    else {
        return Err(Error::Internal("a session key was expected".into()));
    };
    let now = deps.clock.now();
    let user_key = Key::User {
        app_id: app_id.clone(),
        home: *home,
    };
    if claims_patch.is_none() {
        let expires_at = duration_minutes.map(|m| now.plus_minutes(m));
        let touch = deps
            .login
            .touch_session(app_id, *home, token_hash, now, expires_at);
        let (touched, user) = match snapshot.user(app_id, *home) {
            Some(user) => (touch.await?, user.cloned()),
            None => {
                let (touched, loaded) =
                    tokio::join!(touch, deps.login.load(std::slice::from_ref(&user_key)));
                let user = match loaded?.pop().flatten() {
                    Some(Record::User(user)) => Some(user),
                    _ => None,
                };
                (touched?, user)
            }
        };
        let session = touched.ok_or(Error::SessionNotFound)?.value;
        let user = user
            .filter(|u| u.value.id == session.user_id)
            .ok_or(Error::SessionNotFound)?
            .value;
        return Ok((issue(deps, app, session, token)?, user));
    }
    let keys = [key.clone(), user_key];
    let missing: Vec<Key> = keys
        .iter()
        .filter(|k| snapshot.get(k).is_none())
        .cloned()
        .collect();
    if !missing.is_empty() {
        let loaded = deps.login.load(&missing).await?;
        snapshot.extend(&missing, loaded);
    }
    let (answer, _) = decide_and_commit(deps, request_id, "session", &mut snapshot, |snapshot| {
        let Some(session) = snapshot
            .session(&key)
            .flatten()
            .filter(|s| s.value.is_live(now))
        else {
            return Decision::refuse(Error::SessionNotFound);
        };
        let Some(user) = snapshot
            .user(app_id, *home)
            .flatten()
            .filter(|u| u.value.id == session.value.user_id)
        else {
            return Decision::refuse(Error::SessionNotFound);
        };
        match accessed(
            session.value.clone(),
            now,
            None,
            duration_minutes,
            claims_patch,
        ) {
            Ok(updated) => Decision::commit(
                vec![Write::PutSession {
                    session: updated.clone(),
                    expect: Expect::Rev(session.rev),
                }],
                Ok((updated, user.value.clone())),
            ),
            Err(error) => Decision::refuse(error),
        }
    })
    .await?;
    let (session, user) = answer?;
    Ok((issue(deps, app, session, token)?, user))
}

/// `sessions.revoke` by session id, token or JWT: the session is deleted if it is still live
/// and unchanged since it was read.
pub async fn revoke(
    deps: &Deps,
    app: &AppData,
    request_id: &RequestId,
    session_id: Option<&str>,
    session_token: Option<&str>,
    session_jwt: Option<&str>,
) -> Result<(), Error> {
    let app_id = &app.app.id;
    let mut snapshot = Snapshot::new();
    let by_id = match session_id {
        Some(id) => Some(SessionId::parse(id).ok_or(Error::SessionNotFound)?),
        None => match session_ref(deps, app, session_token, session_jwt)? {
            SessionRef::Jwt(id) => Some(id),
            SessionRef::Token { key, .. } => {
                let loaded = deps.login.load(std::slice::from_ref(&key)).await?;
                snapshot.extend(std::slice::from_ref(&key), loaded);
                revoke_key(deps, request_id, &mut snapshot, key).await?;
                return Ok(());
            }
        },
    };
    if let Some(id) = by_id {
        let (found, read) = find_by_id(deps, app_id, &id).await?;
        snapshot = read;
        revoke_key(
            deps,
            request_id,
            &mut snapshot,
            found.ok_or(Error::SessionNotFound)?,
        )
        .await?;
    }
    Ok(())
}

async fn revoke_key(
    deps: &Deps,
    request_id: &RequestId,
    snapshot: &mut Snapshot,
    key: Key,
) -> Result<(), Error> {
    let now = deps.clock.now();
    let (answer, _) = decide_and_commit(deps, request_id, "revoke", snapshot, |snapshot| {
        let Some(session) = snapshot
            .session(&key)
            .flatten()
            .filter(|s| s.value.is_live(now))
        else {
            return Decision::refuse(Error::SessionNotFound);
        };
        let Key::Session {
            app_id,
            home,
            token_hash,
        } = &key
        else {
            return Decision::refuse(Error::Internal("a session key was expected".into()));
        };
        Decision::commit(
            vec![Write::DeleteSession {
                app_id: app_id.clone(),
                home: *home,
                token_hash: *token_hash,
                expect: Expect::Rev(session.rev),
            }],
            Ok(session.value.id.clone()),
        )
    })
    .await?;
    let session_id = answer?;
    tracing::info!(session_id = %session_id, "session revoked");
    Ok(())
}

/// The user's live sessions, oldest first, from one consistent read of its home.
pub async fn list(deps: &Deps, app_id: &AppId, user_id: &str) -> Result<Vec<Session>, Error> {
    let user_id = UserId::parse(user_id).ok_or(Error::UserNotFound)?;
    let records = deps.login.load_home(app_id, user_id.home()).await?;
    if records.user.is_none_or(|u| u.value.id != user_id) {
        return Err(Error::UserNotFound);
    }
    let now = deps.clock.now();
    let mut sessions: Vec<Session> = records
        .sessions
        .into_iter()
        .map(|s| s.value)
        .filter(|s| s.user_id == user_id && s.is_live(now))
        .collect();
    sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    Ok(sessions)
}
