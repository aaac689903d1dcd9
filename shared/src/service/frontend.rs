//! The frontend API's settings (public tokens, authorized origins, limits), managed through the
//! management API, and how a frontend request finds its app: by public token, then origin.

use std::sync::Arc;

use serde::Deserialize;
use url::Url;
use utoipa::ToSchema;

use crate::clock::Timestamp;
use crate::error::Error;
use crate::ids::{AppId, is_public_token, new_public_token};
use crate::model::{
    DEFAULT_FRONTEND_SESSION_MINUTES, DEFAULT_PUBLIC_SENDS_PER_HOUR, FrontendSettings,
    MAX_AUTHORIZED_ORIGINS, MAX_PUBLIC_TOKENS, PublicToken,
};
use crate::ports::{AppData, WriteError};
use crate::service::Deps;
use crate::service::sessions::{MAX_SESSION_MINUTES, MIN_SESSION_MINUTES};

/// Most codes per hour an app may let its frontend send: the hour's sends are one counter item
/// (a sliding window of hits, about 10 bytes each), read and written by every frontend send.
pub const MAX_PUBLIC_SENDS_PER_HOUR: u32 = 1000;
/// Optimistic attempts of a settings change before it answers 409.
const ATTEMPTS: usize = 3;

/// A new app's settings: one public token, no origin yet, the default limits.
pub fn initial_settings(deps: &Deps, now: Timestamp) -> FrontendSettings {
    FrontendSettings {
        public_tokens: vec![PublicToken {
            token: new_public_token(deps.random.as_ref(), deps.settings.test_environment),
            created_at: now,
        }],
        revision: 1,
        ..FrontendSettings::default()
    }
}

fn app_not_found() -> Error {
    Error::NotFound("no app has that id".into())
}

/// The app's stored data, read consistently (not from the cache: the management API answers
/// with what is stored).
async fn load(deps: &Deps, app_id: &str) -> Result<AppData, Error> {
    let id = AppId::parse(app_id).ok_or_else(app_not_found)?;
    deps.apps.load_app(&id).await?.ok_or_else(app_not_found)
}

/// Applies `change` to the app's settings as stored, and stores the result if nobody changed
/// them meanwhile (else reads and tries again). `change` answers the new settings and the
/// public token it adds or removes.
async fn change_settings<F>(deps: &Deps, app_id: &str, change: F) -> Result<FrontendSettings, Error>
where
    F: Fn(&FrontendSettings) -> Result<Change, Error>,
{
    for _ in 0..ATTEMPTS {
        let data = load(deps, app_id).await?;
        let current = &data.frontend;
        let Change {
            mut settings,
            added,
            removed,
        } = change(current)?;
        settings.revision = current.revision + 1;
        match deps
            .apps
            .replace_frontend(
                &data.app.id,
                current.revision,
                &settings,
                added.as_deref(),
                removed.as_deref(),
            )
            .await
        {
            Ok(()) => {
                deps.app_cache.invalidate(&data.app.id);
                return Ok(settings);
            }
            Err(WriteError::Conflict(_)) => continue,
            Err(WriteError::Store(e)) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(
        "the app's frontend settings changed meanwhile; retry".into(),
    ))
}

struct Change {
    settings: FrontendSettings,
    added: Option<String>,
    removed: Option<String>,
}

pub async fn list_public_tokens(deps: &Deps, app_id: &str) -> Result<Vec<PublicToken>, Error> {
    Ok(load(deps, app_id).await?.frontend.public_tokens)
}

/// Adds a public token (to rotate: add one, move the pages to it, delete the old one).
pub async fn create_public_token(deps: &Deps, app_id: &str) -> Result<PublicToken, Error> {
    let now = deps.clock.now();
    let token = PublicToken {
        token: new_public_token(deps.random.as_ref(), deps.settings.test_environment),
        created_at: now,
    };
    change_settings(deps, app_id, |current| {
        if current.public_tokens.len() >= MAX_PUBLIC_TOKENS {
            return Err(Error::Conflict(format!(
                "an app holds at most {MAX_PUBLIC_TOKENS} public tokens; delete one first"
            )));
        }
        let mut settings = current.clone();
        settings.public_tokens.push(token.clone());
        Ok(Change {
            settings,
            added: Some(token.token.clone()),
            removed: None,
        })
    })
    .await?;
    tracing::info!(app_id, "public token created");
    Ok(token)
}

/// Deletes a public token: pages that use it stop working (within the app cache's lifetime on
/// other warm instances). Deleting the last one turns the app's frontend API off.
pub async fn delete_public_token(deps: &Deps, app_id: &str, token: &str) -> Result<(), Error> {
    change_settings(deps, app_id, |current| {
        if !current.has_public_token(token) {
            return Err(Error::NotFound("the app has no such public token".into()));
        }
        let mut settings = current.clone();
        settings.public_tokens.retain(|t| t.token != token);
        Ok(Change {
            settings,
            added: None,
            removed: Some(token.to_owned()),
        })
    })
    .await?;
    tracing::info!(app_id, "public token deleted");
    Ok(())
}

pub async fn get_settings(deps: &Deps, app_id: &str) -> Result<FrontendSettings, Error> {
    Ok(load(deps, app_id).await?.frontend)
}

/// The body of `PUT .../frontend_settings`: the whole of the settings (an absent limit is its
/// default).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    pub authorized_origins: Vec<String>,
    #[serde(default)]
    pub max_session_duration_minutes: Option<i64>,
    #[serde(default)]
    pub public_sends_per_hour: Option<u32>,
}

/// An exact web origin in its one serialization (`https://app.example.com`,
/// `http://localhost:5173`): what a browser sends in `Origin`.
pub fn parse_origin(text: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Error::BadRequest(format!(
            "authorized_origins: {text:?} is not an origin ({why}); give scheme and host, and a port unless the default, e.g. https://app.example.com or http://localhost:5173"
        ))
    };
    let url = Url::parse(text).map_err(|_| bad("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != text {
        return Err(bad(&format!(
            "its origin is {origin}: no path, query, user, default port or upper case"
        )));
    }
    Ok(origin)
}

pub async fn put_settings(
    deps: &Deps,
    app_id: &str,
    input: SettingsInput,
) -> Result<FrontendSettings, Error> {
    if input.authorized_origins.len() > MAX_AUTHORIZED_ORIGINS {
        return Err(Error::BadRequest(format!(
            "authorized_origins: at most {MAX_AUTHORIZED_ORIGINS}"
        )));
    }
    let mut origins = Vec::with_capacity(input.authorized_origins.len());
    for text in &input.authorized_origins {
        let origin = parse_origin(text)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let minutes = input
        .max_session_duration_minutes
        .unwrap_or(DEFAULT_FRONTEND_SESSION_MINUTES);
    if !(MIN_SESSION_MINUTES..=MAX_SESSION_MINUTES).contains(&minutes) {
        return Err(Error::BadRequest(format!(
            "max_session_duration_minutes must be between {MIN_SESSION_MINUTES} and {MAX_SESSION_MINUTES}"
        )));
    }
    let sends = input
        .public_sends_per_hour
        .unwrap_or(DEFAULT_PUBLIC_SENDS_PER_HOUR);
    if !(1..=MAX_PUBLIC_SENDS_PER_HOUR).contains(&sends) {
        return Err(Error::BadRequest(format!(
            "public_sends_per_hour must be between 1 and {MAX_PUBLIC_SENDS_PER_HOUR} (to turn the frontend API off, delete the app's public tokens)"
        )));
    }
    let settings = change_settings(deps, app_id, |current| {
        Ok(Change {
            settings: FrontendSettings {
                authorized_origins: origins.clone(),
                max_session_minutes: minutes,
                public_sends_per_hour: sends,
                ..current.clone()
            },
            added: None,
            removed: None,
        })
    })
    .await?;
    tracing::info!(
        app_id,
        origins = settings.authorized_origins.len(),
        "frontend settings replaced"
    );
    Ok(settings)
}

/// The app a public token names, if the token is current: from the per-instance cache, read
/// again once when the cached app does not list it yet (a token made a moment ago).
pub async fn authenticate_public_token(deps: &Deps, token: &str) -> Result<Arc<AppData>, Error> {
    if !is_public_token(token) {
        return Err(Error::Unauthorized);
    }
    let now = deps.clock.now();
    let app_id = deps
        .app_cache
        .app_for_public_token(deps.apps.as_ref(), token, now)
        .await?
        .ok_or(Error::Unauthorized)?;
    let data = deps
        .app_cache
        .get(deps.apps.as_ref(), &app_id, now)
        .await?
        .ok_or(Error::Unauthorized)?;
    if data.frontend.has_public_token(token) {
        return Ok(data);
    }
    deps.app_cache.invalidate(&app_id);
    let data = deps
        .app_cache
        .get(deps.apps.as_ref(), &app_id, now)
        .await?
        .ok_or(Error::Unauthorized)?;
    if data.frontend.has_public_token(token) {
        Ok(data)
    } else {
        Err(Error::Unauthorized)
    }
}

/// The request's `Origin`, if the app authorizes it; else `OriginNotAuthorized`.
pub fn check_origin(app: &AppData, origin: Option<&str>) -> Result<String, Error> {
    match origin {
        Some(origin) if app.frontend.authorizes_origin(origin) => Ok(origin.to_owned()),
        _ => Err(Error::OriginNotAuthorized),
    }
}

/// `session_duration_minutes` of a frontend login: the app's cap refuses longer.
pub fn check_session_minutes(app: &AppData, minutes: Option<i64>) -> Result<(), Error> {
    match minutes {
        Some(m) if m > app.frontend.max_session_minutes => Err(Error::SessionDurationAboveCap(
            app.frontend.max_session_minutes,
        )),
        _ => Ok(()),
    }
}
