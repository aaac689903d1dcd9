//! Each app's JWT signing keys. An app gets its own RSA key when it is made; the private key is
//! kept in the table only sealed under the deployment's key-encryption key (bound to the app
//! and the key id), and opened once per warm instance. A rotation makes a new key that signs
//! from then on; the previous one loses its private half and stays:
//! - in the app's JWKS while a JWT it signed may be unexpired (the JWT lifetime, plus the app
//!   cache's lifetime during which another instance may still sign with it);
//! - for this service's own checks of presented JWTs (an expired JWT of a live session is
//!   accepted, as Stytch does) as long as a session can live.
//!
//! Apps made before apps had keys have none: the deployment's legacy key signs for them until
//! their first rotation, which keeps its public half like any retired key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::Error;
use crate::clock::Timestamp;
use crate::ids::AppId;
use crate::jwt::{self, Jwk, JwtKeys};
use crate::model::SigningKey;
use crate::ports::{AppData, WriteError};
use crate::service::Deps;
use crate::service::sessions::MAX_SESSION_MINUTES;

/// Keys an app keeps (current and retired) at most: past it the oldest retired ones go.
pub const MAX_SIGNING_KEYS: usize = 10;
/// More opened keys than a deployment has apps signing at once; past it the cache starts again.
const MAX_OPENED: usize = 10_000;

/// Apps' private keys opened in this process, by app and key id (a key id never changes key).
#[derive(Default)]
pub struct OpenedKeys(Mutex<HashMap<(AppId, String), Arc<JwtKeys>>>);

impl std::fmt::Debug for OpenedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenedKeys(..)")
    }
}

impl OpenedKeys {
    fn entries(&self) -> MutexGuard<'_, HashMap<(AppId, String), Arc<JwtKeys>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, app_id: &AppId, kid: &str) -> Option<Arc<JwtKeys>> {
        self.entries()
            .get(&(app_id.clone(), kid.to_owned()))
            .cloned()
    }

    fn insert(&self, app_id: &AppId, keys: Arc<JwtKeys>) {
        let mut entries = self.entries();
        if entries.len() >= MAX_OPENED {
            entries.clear();
        }
        entries.insert((app_id.clone(), keys.jwk().kid.clone()), keys);
    }
}

/// What a sealed private key is bound to: it opens only for this app and key id.
fn binding(app_id: &AppId, kid: &str) -> Vec<u8> {
    format!("otp-login/signing-key/v1\0{app_id}\0{kid}").into_bytes()
}

/// A retired key stays in the JWKS this long after it stopped signing.
fn publish_seconds(deps: &Deps) -> i64 {
    deps.settings.limits.jwt_lifetime_seconds + deps.settings.app_cache_seconds
}

/// A retired key verifies presented JWTs this long after it stopped signing.
const VERIFY_SECONDS: i64 = MAX_SESSION_MINUTES * 60;

fn published(key: &SigningKey, deps: &Deps, now: Timestamp) -> bool {
    key.retired_at
        .is_none_or(|retired| now.seconds() < retired.seconds() + publish_seconds(deps))
}

fn verifies(key: &SigningKey, now: Timestamp) -> bool {
    key.retired_at
        .is_none_or(|retired| now.seconds() < retired.seconds() + VERIFY_SECONDS)
}

fn current(keys: &[SigningKey]) -> Option<&SigningKey> {
    keys.iter().find(|k| k.retired_at.is_none())
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::Internal(error.to_string())
}

/// A new key for `app_id`, its private half sealed; the opened key is kept for signing.
pub fn new_signing_key(deps: &Deps, app_id: &AppId, now: Timestamp) -> Result<SigningKey, Error> {
    let sealer = deps.keys.key_encryption()?;
    let (keys, pkcs8) = JwtKeys::generate_with_pkcs8().map_err(internal)?;
    let jwk = keys.jwk().clone();
    let mut nonce = [0u8; 12];
    deps.random.fill_bytes(&mut nonce);
    let sealed = sealer
        .seal(nonce, &binding(app_id, &jwk.kid), &pkcs8)
        .map_err(internal)?;
    deps.keys.opened.insert(app_id, Arc::new(keys));
    Ok(SigningKey {
        kid: jwk.kid,
        n: jwk.n,
        e: jwk.e,
        sealed_private_key: Some(sealed),
        created_at: now,
        retired_at: None,
    })
}

/// The key that signs `app`'s new JWTs.
pub fn signer(deps: &Deps, app: &AppData) -> Result<Arc<JwtKeys>, Error> {
    let Some(key) = current(&app.signing_keys) else {
        return deps.keys.legacy_signing();
    };
    let Some(sealed) = &key.sealed_private_key else {
        return Err(internal(format!(
            "app {}: its current signing key {} has no private key",
            app.app.id, key.kid
        )));
    };
    if let Some(opened) = deps.keys.opened.get(&app.app.id, &key.kid) {
        return Ok(opened);
    }
    let pkcs8 = deps
        .keys
        .key_encryption()?
        .open(&binding(&app.app.id, &key.kid), sealed)
        .ok_or_else(|| {
            internal(format!(
                "app {}: signing key {} does not open under this deployment's key-encryption key",
                app.app.id, key.kid
            ))
        })?;
    let keys = Arc::new(JwtKeys::from_pkcs8_der(&pkcs8).map_err(internal)?);
    if keys.jwk().kid != key.kid {
        return Err(internal(format!(
            "app {}: signing key {} opened to another key",
            app.app.id, key.kid
        )));
    }
    deps.keys.opened.insert(&app.app.id, keys.clone());
    Ok(keys)
}

/// The public keys of `app`'s JWKS at `now`: the current key, and each retired one while a JWT
/// it signed may still be unexpired.
pub fn published_keys(deps: &Deps, app: &AppData, now: Timestamp) -> Result<Vec<Jwk>, Error> {
    if app.signing_keys.is_empty() {
        return Ok(vec![deps.keys.legacy_signing()?.jwk().clone()]);
    }
    Ok(app
        .signing_keys
        .iter()
        .filter(|k| published(k, deps, now))
        .map(|k| Jwk::rsa(&k.kid, &k.n, &k.e))
        .collect())
}

/// The claims of `token` if one of `app`'s keys signed it for `app` (audience) and this
/// service (issuer). Expiry is not checked here (an expired JWT of a live session is fine).
pub fn verify(deps: &Deps, app: &AppData, token: &str, now: Timestamp) -> Option<Value> {
    let issuer = deps.settings.public_base_url.as_str();
    let audience = app.app.id.as_str();
    if app.signing_keys.is_empty() {
        let legacy = deps.keys.legacy_signing().ok()?;
        return legacy.verify(token, audience, issuer).ok();
    }
    let kid = jwt::header_kid(token)?;
    let key = app
        .signing_keys
        .iter()
        .find(|k| k.kid == kid && verifies(k, now))?;
    jwt::verify_with_public_key(&key.n, &key.e, token, audience, issuer).ok()
}

/// `POST /v2/session/apps/{app_id}/keys/rotate`: a new current key; the previous one retired
/// (its private half dropped). The app's keys are read fresh, not from the cache, and
/// replaced only if nobody rotated meanwhile.
pub async fn rotate(deps: &Deps, app_id: &str) -> Result<Vec<SigningKey>, Error> {
    let not_found = || Error::NotFound("no app has that id".into());
    let id = AppId::parse(app_id).ok_or_else(not_found)?;
    let app = deps.apps.load_app(&id).await?.ok_or_else(not_found)?;
    let now = deps.clock.now();
    let mut keys = vec![new_signing_key(deps, &id, now)?];
    if app.signing_keys.is_empty()
        && let Ok(legacy) = deps.keys.legacy_signing()
    {
        // What the legacy key signed for this app stays verifiable.
        let jwk = legacy.jwk();
        keys.push(SigningKey {
            kid: jwk.kid.clone(),
            n: jwk.n.clone(),
            e: jwk.e.clone(),
            sealed_private_key: None,
            created_at: app.app.created_at,
            retired_at: Some(now),
        });
    }
    for key in &app.signing_keys {
        let retired = SigningKey {
            sealed_private_key: None,
            retired_at: Some(key.retired_at.unwrap_or(now)),
            ..key.clone()
        };
        if verifies(&retired, now) {
            keys.push(retired);
        }
    }
    keys.truncate(MAX_SIGNING_KEYS);
    let expected = current(&app.signing_keys).map(|k| k.kid.as_str());
    match deps.apps.replace_signing_keys(&id, expected, &keys).await {
        Ok(()) => {}
        Err(WriteError::Conflict(_)) => {
            return Err(Error::Conflict(
                "the app's keys were rotated at the same time; try again".into(),
            ));
        }
        Err(WriteError::Store(e)) => return Err(e.into()),
    }
    deps.app_cache.invalidate(&id);
    tracing::info!(app_id = %id, kid = %keys[0].kid, "app signing key rotated");
    Ok(keys)
}

/// When a key leaves the JWKS (`None`: it is current).
pub fn unpublished_at(deps: &Deps, key: &SigningKey) -> Option<Timestamp> {
    key.retired_at
        .map(|retired| retired.plus_seconds(publish_seconds(deps)))
}
