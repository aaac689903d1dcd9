//! The use cases. Each takes `&Deps` (the ports and the deployment's keys and settings) and
//! returns domain values or an `Error`; none knows HTTP or AWS.

use std::sync::Arc;

use crate::Error;
use crate::clock::{Clock, SystemClock};
use crate::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use crate::jwt::JwtKeys;
use crate::memory::{MemoryStore, Outbox};
use crate::model::SmsBudgets;
use crate::ports::{AppStore, ConfigStore, EmailSender, LoginStore, SmsSender, TestMessageSink};
use crate::random::{OsRandom, Random};
use crate::secrets::Secret;
use signing::OpenedKeys;

pub use app_cache::AppCache;

pub mod app_cache;
pub mod commit;
pub mod decide;
pub mod frontend;
pub mod management;
pub mod otp;
pub mod sessions;
pub mod signing;
pub mod users;

/// Attempt, lock and lifetime limits are the contract's; send limits are per deployment.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wrong attempts a code accepts before it is dead.
    pub max_code_attempts: u32,
    /// Consecutive wrong codes that lock a user.
    pub user_lock_threshold: u32,
    pub user_lock_seconds: i64,
    pub jwt_lifetime_seconds: i64,
    pub send: SendLimits,
    /// The SMS budgets of an app that has not set its own (management API `sms_budgets`).
    pub sms_budgets: SmsBudgets,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_code_attempts: 5,
            user_lock_threshold: 10,
            user_lock_seconds: 3600,
            jwt_lifetime_seconds: 300,
            send: SendLimits::default(),
            sms_budgets: SmsBudgets::default(),
        }
    }
}

/// Send rate limits, configurable per deployment. Only codes handed to delivery count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendLimits {
    /// At most one code per identifier per this many seconds.
    pub cooldown_seconds: i64,
    /// At most `window_max` codes per identifier per `window_seconds`.
    pub window_max: u32,
    pub window_seconds: i64,
    /// At most this many codes per end-user IP address (`attributes.ip_address`) per window.
    pub ip_window_max: u32,
}

impl Default for SendLimits {
    fn default() -> Self {
        SendLimits {
            cooldown_seconds: 30,
            window_max: 5,
            window_seconds: 600,
            ip_window_max: 20,
        }
    }
}

impl SendLimits {
    /// Reads `SEND_COOLDOWN_SECONDS`, `SEND_WINDOW_MAX`, `SEND_WINDOW_SECONDS` and
    /// `IP_WINDOW_MAX` through `lookup` (the environment); an unset one keeps its default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        // `minimum` is 0 for the cooldown (0 turns it off) and 1 for the others.
        fn read<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
            lookup: &impl Fn(&str) -> Option<String>,
            name: &str,
            default: T,
            minimum: T,
        ) -> Result<T, String> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<T>() {
                    Ok(value) if value >= minimum => Ok(value),
                    _ => Err(format!(
                        "{name} must be a whole number of at least {minimum}, not {text:?}"
                    )),
                },
            }
        }
        let defaults = SendLimits::default();
        Ok(SendLimits {
            cooldown_seconds: read(
                &lookup,
                "SEND_COOLDOWN_SECONDS",
                defaults.cooldown_seconds,
                0,
            )?,
            window_max: read(&lookup, "SEND_WINDOW_MAX", defaults.window_max, 1)?,
            window_seconds: read(&lookup, "SEND_WINDOW_SECONDS", defaults.window_seconds, 1)?,
            ip_window_max: read(&lookup, "IP_WINDOW_MAX", defaults.ip_window_max, 1)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The JWT `iss`: the service's public base URL without a trailing slash.
    pub public_base_url: String,
    /// From address of emails whose login config has no `sender_id`.
    pub default_email_from: String,
    pub limits: Limits,
    /// How long a warm instance keeps an app's credentials and settings (0: not at all).
    pub app_cache_seconds: i64,
    /// The development server: public tokens made here are `public-token-test-…` (a
    /// deployment's are `public-token-live-…`; both are accepted everywhere).
    pub test_environment: bool,
}

/// The app cache's lifetime when the deployment does not set `APP_CACHE_SECONDS`.
pub const DEFAULT_APP_CACHE_SECONDS: i64 = 30;

/// Reads `APP_CACHE_SECONDS` through `lookup` (the environment): whole seconds, 0 turns the
/// cache off; unset: [`DEFAULT_APP_CACHE_SECONDS`].
pub fn app_cache_seconds_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<i64, String> {
    match lookup("APP_CACHE_SECONDS").filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_APP_CACHE_SECONDS),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(seconds) if (0..=3600).contains(&seconds) => Ok(seconds),
            _ => Err(format!(
                "APP_CACHE_SECONDS must be a whole number of seconds from 0 to 3600, not {text:?}"
            )),
        },
    }
}

/// The deployment's secrets that this process was given (a deployed function gets only those
/// its route needs: `RouteId::secrets`). None of them is ever in the store.
#[derive(Debug, Default)]
pub struct Keys {
    pub management_key: Option<ManagementKeyHash>,
    pub code_hasher: Option<CodeHasher>,
    pub key_encryption: Option<KeyEncryptionKey>,
    pub legacy_signing: Option<Arc<JwtKeys>>,
    /// Apps' signing keys opened in this process.
    pub opened: OpenedKeys,
}

fn not_given(secret: Secret) -> Error {
    Error::Internal(format!(
        "this function was not given {} ({} / {})",
        secret.describe(),
        secret.arn_env(),
        secret.value_env()
    ))
}

impl Keys {
    /// Every key but the legacy signing key: the local server's and the tests' deployment.
    pub fn new(
        management_key: ManagementKeyHash,
        code_hasher: CodeHasher,
        key_encryption: KeyEncryptionKey,
    ) -> Self {
        Keys {
            management_key: Some(management_key),
            code_hasher: Some(code_hasher),
            key_encryption: Some(key_encryption),
            ..Keys::default()
        }
    }

    pub fn management_key(&self) -> Result<&ManagementKeyHash, Error> {
        self.management_key
            .as_ref()
            .ok_or_else(|| not_given(Secret::ManagementKey))
    }

    pub fn code_hasher(&self) -> Result<&CodeHasher, Error> {
        self.code_hasher
            .as_ref()
            .ok_or_else(|| not_given(Secret::CodeHashKey))
    }

    pub fn key_encryption(&self) -> Result<&KeyEncryptionKey, Error> {
        self.key_encryption
            .as_ref()
            .ok_or_else(|| not_given(Secret::KeyEncryptionKey))
    }

    /// The key of apps made before apps had their own.
    pub fn legacy_signing(&self) -> Result<Arc<JwtKeys>, Error> {
        self.legacy_signing.clone().ok_or_else(|| {
            Error::Internal(
                "this app has no signing key of its own and the deployment has no legacy key \
                 (JwtSigningKeyPem): rotate the app's keys"
                    .into(),
            )
        })
    }
}

#[derive(Clone)]
pub struct Deps {
    pub apps: Arc<dyn AppStore>,
    pub configs: Arc<dyn ConfigStore>,
    pub login: Arc<dyn LoginStore>,
    /// Apps' credentials and settings, per warm instance (see `AppCache`).
    pub app_cache: Arc<AppCache>,
    pub sms: Arc<dyn SmsSender>,
    pub email: Arc<dyn EmailSender>,
    pub test_messages: Arc<dyn TestMessageSink>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub keys: Arc<Keys>,
    pub settings: Settings,
}

impl Deps {
    /// The same deps for a request whose public base URL (the JWT issuer) is only known from
    /// the request itself: a deployment without a fixed `PUBLIC_BASE_URL`.
    pub fn with_public_base_url(&self, public_base_url: &str) -> Deps {
        let mut deps = self.clone();
        deps.settings.public_base_url = public_base_url.trim_end_matches('/').to_owned();
        deps
    }
}

/// Deps on the in-memory adapters, with handles to the store and the outbox.
pub struct InMemory {
    pub deps: Deps,
    pub store: Arc<MemoryStore>,
    pub outbox: Arc<Outbox>,
}

impl InMemory {
    pub fn new(keys: Keys, settings: Settings) -> Self {
        Self::with(keys, settings, Arc::new(SystemClock), Arc::new(OsRandom))
    }

    pub fn with(
        keys: Keys,
        settings: Settings,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> Self {
        let store = Arc::new(MemoryStore::new());
        let outbox = Arc::new(Outbox::new(clock.clone()));
        let deps = Deps {
            apps: store.clone(),
            configs: store.clone(),
            login: store.clone(),
            app_cache: Arc::new(AppCache::new(settings.app_cache_seconds)),
            sms: outbox.clone(),
            email: outbox.clone(),
            test_messages: outbox.clone(),
            clock,
            random,
            keys: Arc::new(keys),
            settings,
        };
        InMemory {
            deps,
            store,
            outbox,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_limits_read_from_the_environment() {
        let env = |name: &str| match name {
            "SEND_COOLDOWN_SECONDS" => Some("10".to_owned()),
            "IP_WINDOW_MAX" => Some(" 50 ".to_owned()),
            _ => None,
        };
        let limits = SendLimits::from_lookup(env).unwrap();
        assert_eq!(limits.cooldown_seconds, 10);
        assert_eq!(limits.ip_window_max, 50);
        assert_eq!(limits.window_max, 5);
        assert!(SendLimits::from_lookup(|_| Some("0".into())).is_err());
        let no_cooldown = |name: &str| (name == "SEND_COOLDOWN_SECONDS").then(|| "0".to_owned());
        assert_eq!(
            SendLimits::from_lookup(no_cooldown)
                .unwrap()
                .cooldown_seconds,
            0
        );
        assert!(SendLimits::from_lookup(|_| Some("many".into())).is_err());
    }

    #[test]
    fn app_cache_lifetime_read_from_the_environment() {
        assert_eq!(
            app_cache_seconds_from_lookup(|_| None),
            Ok(DEFAULT_APP_CACHE_SECONDS)
        );
        assert_eq!(app_cache_seconds_from_lookup(|_| Some("0".into())), Ok(0));
        assert_eq!(app_cache_seconds_from_lookup(|_| Some(" 5 ".into())), Ok(5));
        assert!(app_cache_seconds_from_lookup(|_| Some("-1".into())).is_err());
        assert!(app_cache_seconds_from_lookup(|_| Some("soon".into())).is_err());
    }
}
