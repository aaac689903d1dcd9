//! Apps' credentials and settings (the app, its secrets, login configs, templates and SMS
//! countries) kept per warm instance, so that a Login API request spends no store round on them.
//!
//! An entry is used for at most `ttl_seconds` after it was read, then read again; 0 turns the
//! cache off. Only apps that exist are kept (never a negative answer), so a new app is usable at
//! once. A change made through the management API is seen at once by the process that made it
//! (its entry is dropped) and by other warm instances within the lifetime: a deleted secret is
//! refused, and a new login config or SMS country list applies, after at most `ttl_seconds`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Timestamp;
use crate::ids::{AppId, SecretId};
use crate::ports::{AppData, AppStore, StoreError};

/// More apps than a deployment has; past it the cache starts again rather than grow.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    read_at: Timestamp,
    data: Arc<AppData>,
}

pub struct AppCache {
    ttl_seconds: i64,
    entries: Mutex<HashMap<AppId, Entry>>,
    /// Which app a public token names, as read at a time (kept like the apps' data).
    public_tokens: Mutex<HashMap<String, (Timestamp, AppId)>>,
}

impl std::fmt::Debug for AppCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppCache(ttl={}s)", self.ttl_seconds)
    }
}

impl AppCache {
    pub fn new(ttl_seconds: i64) -> Self {
        AppCache {
            ttl_seconds: ttl_seconds.max(0),
            entries: Mutex::new(HashMap::new()),
            public_tokens: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<AppId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The app's data as of at most `ttl_seconds` before `now`, read from `store` when the
    /// cache has nothing that fresh. `None`: no such app (not remembered).
    pub async fn get(
        &self,
        store: &dyn AppStore,
        app_id: &AppId,
        now: Timestamp,
    ) -> Result<Option<Arc<AppData>>, StoreError> {
        if self.ttl_seconds > 0
            && let Some(entry) = self.entries().get(app_id)
            && now.seconds() - entry.read_at.seconds() < self.ttl_seconds
            && entry.read_at <= now
        {
            return Ok(Some(entry.data.clone()));
        }
        let Some(data) = store.load_app(app_id).await? else {
            self.invalidate(app_id);
            return Ok(None);
        };
        let data = Arc::new(data);
        if self.ttl_seconds > 0 {
            let mut entries = self.entries();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                app_id.clone(),
                Entry {
                    read_at: now,
                    data: data.clone(),
                },
            );
        }
        Ok(Some(data))
    }

    /// The app a public token names, as of at most `ttl_seconds` before `now`. `None`: no app
    /// (not remembered, so a new token works at once). The caller still checks that the app's
    /// data lists the token: a deleted token is refused once the app's entry is fresh again.
    pub async fn app_for_public_token(
        &self,
        store: &dyn AppStore,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<AppId>, StoreError> {
        let tokens = || self.public_tokens.lock().unwrap_or_else(|p| p.into_inner());
        if self.ttl_seconds > 0
            && let Some((read_at, app_id)) = tokens().get(token)
            && now.seconds() - read_at.seconds() < self.ttl_seconds
            && *read_at <= now
        {
            return Ok(Some(app_id.clone()));
        }
        let found = store.find_public_token(token).await?;
        let mut tokens = tokens();
        match &found {
            Some(app_id) if self.ttl_seconds > 0 => {
                if tokens.len() >= MAX_ENTRIES {
                    tokens.clear();
                }
                tokens.insert(token.to_owned(), (now, app_id.clone()));
            }
            _ => {
                tokens.remove(token);
            }
        }
        Ok(found)
    }

    /// Forgets the app and its public tokens (after a change through the management API).
    pub fn invalidate(&self, app_id: &AppId) {
        self.entries().remove(app_id);
        self.public_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, id)| id != app_id);
    }

    /// Notes that a secret's `last_used_at` was written, so that this instance does not write
    /// it again before it is due.
    pub fn note_secret_used(&self, app_id: &AppId, secret_id: &SecretId, at: Timestamp) {
        if let Some(entry) = self.entries().get_mut(app_id) {
            let mut data = (*entry.data).clone();
            for secret in data.secrets.iter_mut().filter(|s| &s.id == secret_id) {
                secret.last_used_at = Some(at);
            }
            entry.data = Arc::new(data);
        }
    }
}
