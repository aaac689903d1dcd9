//! In-memory adapters: the store behind one mutex (so every operation is as atomic as a
//! DynamoDB conditional write or transaction), and the outbox that stands in for SNS and SES.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::Serialize;

use crate::clock::{Clock, Timestamp};
use crate::crypto::Hash32;
use crate::identifiers::Identifier;
use crate::ids::{
    AppId, ChallengeId, ConfigId, MethodId, SecretId, SessionId, TemplateId, TestIdentifierId,
    UserId,
};
use crate::model::{
    App, AppSecret, Challenge, Channel, LoginConfig, Session, Template, TestIdentifier, User,
};
use crate::ports::{
    AppStore, ChallengeStore, ConfigStore, DeliveryError, EmailMessage, EmailSender,
    FailureOutcome, RateCounter, RateDecision, RateHit, RateLimitStore, SessionStore, SmsMessage,
    SmsSender, StoreError, SuccessOutcome, TestMessageSink, UserStore, WriteError,
};

#[derive(Default)]
struct State {
    apps: HashMap<AppId, App>,
    secrets: HashMap<AppId, BTreeMap<SecretId, AppSecret>>,
    configs: HashMap<AppId, BTreeMap<ConfigId, LoginConfig>>,
    templates: HashMap<AppId, BTreeMap<TemplateId, Template>>,
    test_identifiers: HashMap<AppId, BTreeMap<TestIdentifierId, TestIdentifier>>,
    sms_countries: HashMap<AppId, Option<Vec<String>>>,
    users: HashMap<(AppId, UserId), User>,
    identifiers: HashMap<(AppId, Identifier), (UserId, MethodId)>,
    methods: HashMap<(AppId, MethodId), UserId>,
    challenges: HashMap<(AppId, MethodId), Challenge>,
    sessions: HashMap<(AppId, SessionId), Session>,
    session_tokens: HashMap<(AppId, Hash32), SessionId>,
    /// Rate limits: key -> times of the hits still inside some window.
    rate_hits: HashMap<String, Vec<Timestamp>>,
}

/// Every store port over one in-process map.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: every operation
        // computes first and mutates last.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every stored hash and every stored string, for tests that prove no plaintext secret,
    /// code or token is kept.
    pub fn dump_for_inspection(&self) -> String {
        let s = self.state();
        let mut out = String::new();
        for app in s.apps.values() {
            out.push_str(&format!("{app:?}\n"));
        }
        for secrets in s.secrets.values() {
            out.push_str(&format!("{secrets:?}\n"));
        }
        for configs in s.configs.values() {
            out.push_str(&format!("{configs:?}\n"));
        }
        for tests in s.test_identifiers.values() {
            out.push_str(&format!("{tests:?}\n"));
        }
        for user in s.users.values() {
            out.push_str(&format!("{user:?}\n"));
        }
        for challenge in s.challenges.values() {
            out.push_str(&format!("{challenge:?}\n"));
        }
        for session in s.sessions.values() {
            out.push_str(&format!("{session:?}\n"));
        }
        out
    }
}

#[async_trait]
impl AppStore for MemoryStore {
    async fn create_app(&self, app: &App, secret: &AppSecret) -> Result<(), StoreError> {
        let mut s = self.state();
        s.apps.insert(app.id.clone(), app.clone());
        s.secrets
            .entry(app.id.clone())
            .or_default()
            .insert(secret.id.clone(), secret.clone());
        Ok(())
    }

    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        Ok(self.state().apps.get(app_id).cloned())
    }

    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError> {
        self.state()
            .secrets
            .entry(secret.app_id.clone())
            .or_default()
            .insert(secret.id.clone(), secret.clone());
        Ok(())
    }

    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError> {
        Ok(self
            .state()
            .secrets
            .get(app_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
    ) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .secrets
            .get_mut(app_id)
            .and_then(|m| m.remove(secret_id))
            .is_some())
    }

    async fn touch_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if let Some(secret) = self
            .state()
            .secrets
            .get_mut(app_id)
            .and_then(|m| m.get_mut(secret_id))
        {
            secret.last_used_at = Some(at);
        }
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for MemoryStore {
    async fn put_config(&self, config: &LoginConfig) -> Result<(), WriteError> {
        let mut s = self.state();
        if let Some(template_id) = &config.template_id {
            let exists = s
                .templates
                .get(&config.app_id)
                .is_some_and(|t| t.contains_key(template_id));
            if !exists {
                return Err(WriteError::Conflict("template"));
            }
        }
        let configs = s.configs.entry(config.app_id.clone()).or_default();
        if config.is_default {
            for other in configs.values_mut() {
                if other.channel == config.channel && other.id != config.id {
                    other.is_default = false;
                }
            }
        }
        configs.insert(config.id.clone(), config.clone());
        Ok(())
    }

    async fn get_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<Option<LoginConfig>, StoreError> {
        Ok(self
            .state()
            .configs
            .get(app_id)
            .and_then(|m| m.get(config_id))
            .cloned())
    }

    async fn list_configs(&self, app_id: &AppId) -> Result<Vec<LoginConfig>, StoreError> {
        Ok(self
            .state()
            .configs
            .get(app_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn default_config(
        &self,
        app_id: &AppId,
        channel: Channel,
    ) -> Result<Option<LoginConfig>, StoreError> {
        Ok(self.state().configs.get(app_id).and_then(|m| {
            m.values()
                .find(|c| c.channel == channel && c.is_default)
                .cloned()
        }))
    }

    async fn delete_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .configs
            .get_mut(app_id)
            .and_then(|m| m.remove(config_id))
            .is_some())
    }

    async fn put_template(&self, template: &Template) -> Result<(), StoreError> {
        self.state()
            .templates
            .entry(template.app_id.clone())
            .or_default()
            .insert(template.id.clone(), template.clone());
        Ok(())
    }

    async fn get_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        Ok(self
            .state()
            .templates
            .get(app_id)
            .and_then(|m| m.get(template_id))
            .cloned())
    }

    async fn list_templates(&self, app_id: &AppId) -> Result<Vec<Template>, StoreError> {
        Ok(self
            .state()
            .templates
            .get(app_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<bool, WriteError> {
        let mut s = self.state();
        let in_use = s.configs.get(app_id).is_some_and(|m| {
            m.values()
                .any(|c| c.template_id.as_ref() == Some(template_id))
        });
        if in_use {
            return Err(WriteError::Conflict("template in use"));
        }
        Ok(s.templates
            .get_mut(app_id)
            .and_then(|m| m.remove(template_id))
            .is_some())
    }

    async fn put_test_identifier(&self, test: &TestIdentifier) -> Result<(), WriteError> {
        let mut s = self.state();
        let tests = s.test_identifiers.entry(test.app_id.clone()).or_default();
        if tests
            .values()
            .any(|t| t.identifier == test.identifier && t.id != test.id)
        {
            return Err(WriteError::Conflict("test identifier exists"));
        }
        tests.insert(test.id.clone(), test.clone());
        Ok(())
    }

    async fn list_test_identifiers(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<TestIdentifier>, StoreError> {
        Ok(self
            .state()
            .test_identifiers
            .get(app_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn find_test_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<TestIdentifier>, StoreError> {
        Ok(self
            .state()
            .test_identifiers
            .get(app_id)
            .and_then(|m| m.values().find(|t| &t.identifier == identifier).cloned()))
    }

    async fn delete_test_identifier(
        &self,
        app_id: &AppId,
        id: &TestIdentifierId,
    ) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .test_identifiers
            .get_mut(app_id)
            .and_then(|m| m.remove(id))
            .is_some())
    }

    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.state().sms_countries.get(app_id).cloned().flatten())
    }

    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        calling_codes: Option<Vec<String>>,
    ) -> Result<(), StoreError> {
        self.state()
            .sms_countries
            .insert(app_id.clone(), calling_codes);
        Ok(())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn find_by_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<(User, MethodId)>, StoreError> {
        let s = self.state();
        Ok(s.identifiers
            .get(&(app_id.clone(), identifier.clone()))
            .and_then(|(user_id, method_id)| {
                s.users
                    .get(&(app_id.clone(), user_id.clone()))
                    .map(|u| (u.clone(), method_id.clone()))
            }))
    }

    async fn create_user(&self, user: &User) -> Result<(), WriteError> {
        let mut s = self.state();
        let methods: Vec<(MethodId, Identifier)> = user
            .method_ids()
            .into_iter()
            .filter_map(|m| user.identifier_of(&m).map(|i| (m, i)))
            .collect();
        if methods.iter().any(|(_, i)| {
            s.identifiers
                .contains_key(&(user.app_id.clone(), i.clone()))
        }) {
            return Err(WriteError::Conflict("identifier taken"));
        }
        for (method_id, identifier) in methods {
            s.identifiers.insert(
                (user.app_id.clone(), identifier),
                (user.id.clone(), method_id.clone()),
            );
            s.methods
                .insert((user.app_id.clone(), method_id), user.id.clone());
        }
        s.users
            .insert((user.app_id.clone(), user.id.clone()), user.clone());
        Ok(())
    }

    async fn add_method(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        identifier: &Identifier,
    ) -> Result<User, WriteError> {
        let mut s = self.state();
        let key = (app_id.clone(), identifier.clone());
        if s.identifiers.contains_key(&key) {
            return Err(WriteError::Conflict("identifier taken"));
        }
        let Some(user) = s.users.get_mut(&(app_id.clone(), user_id.clone())) else {
            return Err(WriteError::Conflict("user gone"));
        };
        user.add_method(method_id.clone(), identifier.clone());
        let updated = user.clone();
        s.identifiers
            .insert(key, (user_id.clone(), method_id.clone()));
        s.methods
            .insert((app_id.clone(), method_id.clone()), user_id.clone());
        Ok(updated)
    }

    async fn get_user(&self, app_id: &AppId, user_id: &UserId) -> Result<Option<User>, StoreError> {
        Ok(self
            .state()
            .users
            .get(&(app_id.clone(), user_id.clone()))
            .cloned())
    }

    async fn find_by_method(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<User>, StoreError> {
        let s = self.state();
        Ok(s.methods
            .get(&(app_id.clone(), method_id.clone()))
            .and_then(|user_id| s.users.get(&(app_id.clone(), user_id.clone())))
            .cloned())
    }

    async fn record_success(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        now: Timestamp,
    ) -> Result<SuccessOutcome, StoreError> {
        let mut s = self.state();
        let Some(user) = s.users.get_mut(&(app_id.clone(), user_id.clone())) else {
            return Ok(SuccessOutcome::UserGone);
        };
        if let Some(lock) = user.active_lock(now) {
            return Ok(SuccessOutcome::Locked(lock));
        }
        user.record_success(method_id);
        Ok(SuccessOutcome::Recorded(user.clone()))
    }

    async fn record_failure(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        now: Timestamp,
        limit: u32,
        lock_seconds: i64,
    ) -> Result<FailureOutcome, StoreError> {
        let mut s = self.state();
        let Some(user) = s.users.get_mut(&(app_id.clone(), user_id.clone())) else {
            return Ok(FailureOutcome::UserGone);
        };
        if let Some(lock) = user.active_lock(now) {
            return Ok(FailureOutcome::AlreadyLocked(lock));
        }
        let locked_now = user.failed_attempts.saturating_add(1) >= limit;
        user.record_failure(now, limit, lock_seconds);
        Ok(FailureOutcome::Counted {
            user: user.clone(),
            locked_now,
        })
    }

    async fn delete_user(&self, app_id: &AppId, user_id: &UserId) -> Result<bool, StoreError> {
        let mut s = self.state();
        let Some(user) = s.users.remove(&(app_id.clone(), user_id.clone())) else {
            return Ok(false);
        };
        for method_id in user.method_ids() {
            if let Some(identifier) = user.identifier_of(&method_id) {
                s.identifiers.remove(&(app_id.clone(), identifier));
            }
            s.methods.remove(&(app_id.clone(), method_id));
        }
        Ok(true)
    }
}

#[async_trait]
impl ChallengeStore for MemoryStore {
    async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        self.state().challenges.insert(
            (challenge.app_id.clone(), challenge.method_id.clone()),
            challenge.clone(),
        );
        Ok(())
    }

    async fn get_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<Challenge>, StoreError> {
        Ok(self
            .state()
            .challenges
            .get(&(app_id.clone(), method_id.clone()))
            .cloned())
    }

    async fn consume(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let mut s = self.state();
        match s.challenges.get_mut(&(app_id.clone(), method_id.clone())) {
            Some(c) if &c.id == challenge_id && c.is_live(now, max_attempts) => {
                c.consumed = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_wrong_attempt(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError> {
        let mut s = self.state();
        match s.challenges.get_mut(&(app_id.clone(), method_id.clone())) {
            Some(c) if &c.id == challenge_id && c.is_live(now, max_attempts) => {
                c.attempts += 1;
                Ok(Some(c.attempts))
            }
            _ => Ok(None),
        }
    }

    async fn restore(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<bool, StoreError> {
        let mut s = self.state();
        match s.challenges.get_mut(&(app_id.clone(), method_id.clone())) {
            Some(c) if &c.id == challenge_id && c.consumed => {
                c.consumed = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        let key = (app_id.clone(), method_id.clone());
        if s.challenges
            .get(&key)
            .is_some_and(|c| &c.id == challenge_id)
        {
            s.challenges.remove(&key);
        }
        Ok(())
    }

    async fn delete_challenges(
        &self,
        app_id: &AppId,
        method_ids: &[MethodId],
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        for method_id in method_ids {
            s.challenges.remove(&(app_id.clone(), method_id.clone()));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut s = self.state();
        s.session_tokens.insert(
            (session.app_id.clone(), session.token_hash),
            session.id.clone(),
        );
        s.sessions.insert(
            (session.app_id.clone(), session.id.clone()),
            session.clone(),
        );
        Ok(())
    }

    async fn get_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self
            .state()
            .sessions
            .get(&(app_id.clone(), session_id.clone()))
            .cloned())
    }

    async fn find_by_token_hash(
        &self,
        app_id: &AppId,
        token_hash: &Hash32,
    ) -> Result<Option<Session>, StoreError> {
        let s = self.state();
        Ok(s.session_tokens
            .get(&(app_id.clone(), *token_hash))
            .and_then(|id| s.sessions.get(&(app_id.clone(), id.clone())))
            .cloned())
    }

    async fn update_session(&self, session: &Session) -> Result<bool, StoreError> {
        let mut s = self.state();
        match s
            .sessions
            .get_mut(&(session.app_id.clone(), session.id.clone()))
        {
            Some(stored) => {
                *stored = session.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<bool, StoreError> {
        let mut s = self.state();
        match s.sessions.remove(&(app_id.clone(), session_id.clone())) {
            Some(session) => {
                s.session_tokens
                    .remove(&(app_id.clone(), session.token_hash));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn list_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions: Vec<Session> = self
            .state()
            .sessions
            .values()
            .filter(|s| &s.app_id == app_id && &s.user_id == user_id)
            .cloned()
            .collect();
        sessions.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(sessions)
    }

    async fn delete_user_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        let doomed: Vec<Session> = s
            .sessions
            .values()
            .filter(|x| &x.app_id == app_id && &x.user_id == user_id)
            .cloned()
            .collect();
        for session in doomed {
            s.sessions.remove(&(app_id.clone(), session.id.clone()));
            s.session_tokens
                .remove(&(app_id.clone(), session.token_hash));
        }
        Ok(())
    }
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn hit(
        &self,
        counters: &[RateCounter],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        let mut s = self.state();
        let mut retry_at: Option<Timestamp> = None;
        for counter in counters {
            let hits = s.rate_hits.entry(counter.key.clone()).or_default();
            hits.retain(|at| at.plus_seconds(counter.window_seconds) > now);
            hits.sort();
            let live = hits.len();
            if live >= counter.limit as usize {
                // Room again when enough of the oldest hits have aged out.
                let oldest_needed = hits[live - counter.limit as usize];
                let at = oldest_needed.plus_seconds(counter.window_seconds);
                retry_at = Some(retry_at.map_or(at, |r| r.max(at)));
            }
        }
        if let Some(retry_at) = retry_at {
            return Ok(RateDecision::Limited { retry_at });
        }
        let mut counted = Vec::with_capacity(counters.len());
        for counter in counters {
            s.rate_hits
                .entry(counter.key.clone())
                .or_default()
                .push(now);
            counted.push(RateHit {
                key: counter.key.clone(),
                at: now,
            });
        }
        Ok(RateDecision::Counted(counted))
    }

    async fn give_back(&self, hits: &[RateHit]) -> Result<(), StoreError> {
        let mut s = self.state();
        for hit in hits {
            if let Some(times) = s.rate_hits.get_mut(&hit.key)
                && let Some(position) = times.iter().position(|at| *at == hit.at)
            {
                times.remove(position);
            }
        }
        Ok(())
    }
}

/// One message as the development outbox shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutboxMessage {
    pub channel: Channel,
    pub to: String,
    pub subject: Option<String>,
    pub text: String,
    pub code: String,
    pub sent_at: Timestamp,
    /// The message went to a test identifier (it would not be delivered in production either).
    pub test: bool,
}

/// Stands in for SNS and SES: keeps every message, newest first on read.
pub struct Outbox {
    clock: Arc<dyn Clock>,
    messages: Mutex<Vec<OutboxMessage>>,
}

impl Outbox {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Outbox {
            clock,
            messages: Mutex::new(Vec::new()),
        }
    }

    pub fn messages(&self) -> Vec<OutboxMessage> {
        let mut messages = self
            .messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        messages.reverse();
        messages
    }

    /// The newest message sent to `to` (a phone number or email), for tests.
    pub fn last_to(&self, to: &str) -> Option<OutboxMessage> {
        self.messages().into_iter().find(|m| m.to == to)
    }

    fn push(&self, message: OutboxMessage) {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    fn sms(&self, message: &SmsMessage, test: bool) {
        self.push(OutboxMessage {
            channel: Channel::Sms,
            to: message.to.as_str().to_owned(),
            subject: None,
            text: message.text.clone(),
            code: message.code.0.clone(),
            sent_at: self.clock.now(),
            test,
        });
    }

    fn email(&self, message: &EmailMessage, test: bool) {
        self.push(OutboxMessage {
            channel: Channel::Email,
            to: message.to.as_str().to_owned(),
            subject: Some(message.subject.clone()),
            text: message.text.clone(),
            code: message.code.0.clone(),
            sent_at: self.clock.now(),
            test,
        });
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        self.sms(message, false);
        Ok(())
    }
}

#[async_trait]
impl EmailSender for Outbox {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.email(message, false);
        Ok(())
    }
}

impl TestMessageSink for Outbox {
    fn record_sms(&self, message: &SmsMessage) {
        self.sms(message, true);
    }

    fn record_email(&self, message: &EmailMessage) {
        self.email(message, true);
    }
}
