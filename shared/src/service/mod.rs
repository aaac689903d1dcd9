//! The use cases. Each takes `&Deps` (the ports and the deployment's keys and settings) and
//! returns domain values or an `Error`; none knows HTTP or AWS.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::crypto::{CodeHasher, ManagementKeyHash};
use crate::jwt::JwtKeys;
use crate::memory::{MemoryStore, Outbox};
use crate::ports::{
    AppStore, ChallengeStore, ConfigStore, EmailSender, SessionStore, SmsSender, TestMessageSink,
    UserStore,
};
use crate::random::{OsRandom, Random};

pub mod management;
pub mod otp;
pub mod sessions;
pub mod users;

/// Fixed by the contract; not configurable per deployment.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wrong attempts a code accepts before it is dead.
    pub max_code_attempts: u32,
    /// Consecutive wrong codes that lock a user.
    pub user_lock_threshold: u32,
    pub user_lock_seconds: i64,
    pub jwt_lifetime_seconds: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_code_attempts: 5,
            user_lock_threshold: 10,
            user_lock_seconds: 3600,
            jwt_lifetime_seconds: 300,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The JWT `iss`: the service's public base URL without a trailing slash.
    pub public_base_url: String,
    /// From address of emails whose login config has no `sender_id`.
    pub default_email_from: String,
    pub limits: Limits,
}

/// The deployment's secrets. None of them is ever in the store.
#[derive(Debug)]
pub struct Keys {
    pub management_key: ManagementKeyHash,
    pub code_hasher: CodeHasher,
    pub jwt: JwtKeys,
}

pub struct Deps {
    pub apps: Arc<dyn AppStore>,
    pub configs: Arc<dyn ConfigStore>,
    pub users: Arc<dyn UserStore>,
    pub challenges: Arc<dyn ChallengeStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub sms: Arc<dyn SmsSender>,
    pub email: Arc<dyn EmailSender>,
    pub test_messages: Arc<dyn TestMessageSink>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub keys: Keys,
    pub settings: Settings,
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
            users: store.clone(),
            challenges: store.clone(),
            sessions: store.clone(),
            sms: outbox.clone(),
            email: outbox.clone(),
            test_messages: outbox.clone(),
            clock,
            random,
            keys,
            settings,
        };
        InMemory {
            deps,
            store,
            outbox,
        }
    }
}
