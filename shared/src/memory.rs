//! In-memory adapters: the store behind one mutex (so every operation is as atomic as a
//! DynamoDB conditional write or transaction), and the outbox that stands in for SNS and SES.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::Serialize;

use crate::clock::{Clock, Timestamp};
use crate::crypto::Hash32;
use crate::identifiers::{Identifier, Region};
use crate::ids::{AppId, ConfigId, Home, SecretId, TemplateId, TestIdentifierId};
use crate::model::{
    App, AppSecret, Channel, Codes, FrontendSettings, LoginConfig, MAX_PREVIOUS_CODES, Session,
    SigningKey, SmsBudgets, Tally, Template, TestIdentifier,
};
use crate::ports::{
    AppData, AppStore, CommitError, CommitToken, ConfigStore, Conflict, DeliveryError,
    EmailMessage, EmailSender, Expect, HomeRecords, Key, LoginStore, Record, SmsMessage, SmsSender,
    StoreError, TestMessageSink, Versioned, Write, WriteError,
};

#[derive(Default)]
struct State {
    apps: HashMap<AppId, App>,
    secrets: HashMap<AppId, BTreeMap<SecretId, AppSecret>>,
    configs: HashMap<AppId, BTreeMap<ConfigId, LoginConfig>>,
    templates: HashMap<AppId, BTreeMap<TemplateId, Template>>,
    test_identifiers: HashMap<AppId, BTreeMap<TestIdentifierId, TestIdentifier>>,
    sms_countries: HashMap<AppId, StoredSmsCountries>,
    sms_budgets: HashMap<AppId, SmsBudgets>,
    signing_keys: HashMap<AppId, Vec<SigningKey>>,
    frontend: HashMap<AppId, FrontendSettings>,
    /// Which app each public token names.
    public_tokens: HashMap<String, AppId>,
    /// The login path's records (users, codes, sessions, owners, counters) by key.
    login: HashMap<Key, Record>,
    /// Tokens of applied commits, with a fingerprint of their writes.
    tokens: HashMap<CommitToken, Hash32>,
    token_order: VecDeque<CommitToken>,
}

/// An app's SMS countries as kept: regions, or (written by an earlier version, which kept
/// country calling codes) calling codes, read as the regions that have them.
#[derive(Debug, Clone)]
enum StoredSmsCountries {
    Regions(Vec<Region>),
    CallingCodes(Vec<String>),
}

impl StoredSmsCountries {
    fn regions(&self) -> Vec<Region> {
        match self {
            StoredSmsCountries::Regions(regions) => regions.clone(),
            StoredSmsCountries::CallingCodes(codes) => Region::of_calling_codes(codes),
        }
    }
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

    /// FOR TESTS: stores an app's SMS countries as an earlier version did, as country calling
    /// codes, so that tests can show they read back as regions.
    pub fn put_sms_calling_codes_as_before(&self, app_id: &AppId, calling_codes: Vec<String>) {
        self.state().sms_countries.insert(
            app_id.clone(),
            StoredSmsCountries::CallingCodes(calling_codes),
        );
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
        for record in s.login.values() {
            out.push_str(&format!("{record:?}\n"));
        }
        out
    }
}

#[async_trait]
impl AppStore for MemoryStore {
    async fn create_app(
        &self,
        app: &App,
        secret: &AppSecret,
        signing_keys: &[SigningKey],
        frontend: &FrontendSettings,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        s.apps.insert(app.id.clone(), app.clone());
        if frontend.revision > 0 {
            for token in &frontend.public_tokens {
                s.public_tokens.insert(token.token.clone(), app.id.clone());
            }
            s.frontend.insert(app.id.clone(), frontend.clone());
        }
        s.secrets
            .entry(app.id.clone())
            .or_default()
            .insert(secret.id.clone(), secret.clone());
        if !signing_keys.is_empty() {
            s.signing_keys.insert(app.id.clone(), signing_keys.to_vec());
        }
        Ok(())
    }

    async fn replace_signing_keys(
        &self,
        app_id: &AppId,
        expected_current: Option<&str>,
        signing_keys: &[SigningKey],
    ) -> Result<(), WriteError> {
        let mut s = self.state();
        let current = s
            .signing_keys
            .get(app_id)
            .and_then(|keys| keys.iter().find(|k| k.retired_at.is_none()))
            .map(|k| k.kid.as_str());
        if current != expected_current {
            return Err(WriteError::Conflict("the app's signing keys changed"));
        }
        s.signing_keys.insert(app_id.clone(), signing_keys.to_vec());
        Ok(())
    }

    async fn find_public_token(&self, token: &str) -> Result<Option<AppId>, StoreError> {
        Ok(self.state().public_tokens.get(token).cloned())
    }

    async fn replace_frontend(
        &self,
        app_id: &AppId,
        expected_revision: u64,
        settings: &FrontendSettings,
        added: Option<&str>,
        removed: Option<&str>,
    ) -> Result<(), WriteError> {
        let mut s = self.state();
        if !s.apps.contains_key(app_id) {
            return Err(WriteError::Conflict("the app is gone"));
        }
        let current = s.frontend.get(app_id).map_or(0, |f| f.revision);
        if current != expected_revision {
            return Err(WriteError::Conflict("the app's frontend settings changed"));
        }
        if let Some(token) = added {
            if s.public_tokens.contains_key(token) {
                return Err(WriteError::Conflict("the public token exists"));
            }
            s.public_tokens.insert(token.to_owned(), app_id.clone());
        }
        if let Some(token) = removed {
            s.public_tokens.remove(token);
        }
        s.frontend.insert(app_id.clone(), settings.clone());
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

    async fn load_app(&self, app_id: &AppId) -> Result<Option<AppData>, StoreError> {
        let s = self.state();
        let Some(app) = s.apps.get(app_id).cloned() else {
            return Ok(None);
        };
        Ok(Some(AppData {
            app,
            secrets: s
                .secrets
                .get(app_id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            configs: s
                .configs
                .get(app_id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            templates: s
                .templates
                .get(app_id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            sms_countries: s.sms_countries.get(app_id).map(StoredSmsCountries::regions),
            sms_budgets: s.sms_budgets.get(app_id).copied(),
            signing_keys: s.signing_keys.get(app_id).cloned().unwrap_or_default(),
            frontend: s.frontend.get(app_id).cloned().unwrap_or_default(),
        }))
    }

    async fn delete_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
    ) -> Result<bool, WriteError> {
        let mut s = self.state();
        let Some(secrets) = s.secrets.get_mut(app_id) else {
            return Ok(false);
        };
        if !secrets.contains_key(secret_id) {
            return Ok(false);
        }
        if secrets.len() == 1 {
            return Err(WriteError::Conflict("the app's last secret"));
        }
        secrets.remove(secret_id);
        Ok(true)
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

    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<Region>>, StoreError> {
        Ok(self
            .state()
            .sms_countries
            .get(app_id)
            .map(StoredSmsCountries::regions))
    }

    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        regions: Option<Vec<Region>>,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        match regions {
            Some(regions) => {
                s.sms_countries
                    .insert(app_id.clone(), StoredSmsCountries::Regions(regions));
            }
            None => {
                s.sms_countries.remove(app_id);
            }
        }
        Ok(())
    }

    async fn get_sms_budgets(&self, app_id: &AppId) -> Result<Option<SmsBudgets>, StoreError> {
        Ok(self.state().sms_budgets.get(app_id).copied())
    }

    async fn put_sms_budgets(
        &self,
        app_id: &AppId,
        budgets: &SmsBudgets,
    ) -> Result<(), StoreError> {
        self.state().sms_budgets.insert(app_id.clone(), *budgets);
        Ok(())
    }
}

/// The newest commit tokens remembered for idempotency (DynamoDB keeps them ten minutes).
const REMEMBERED_TOKENS: usize = 100_000;

impl State {
    fn record(&self, key: &Key) -> Option<Record> {
        match key {
            Key::TestIdentifier { app_id, identifier } => self
                .test_identifiers
                .get(app_id)
                .and_then(|m| m.values().find(|t| &t.identifier == identifier))
                .cloned()
                .map(Record::TestIdentifier),
            _ => self.login.get(key).cloned(),
        }
    }

    /// The revision of what is at `key` (0 for a record without one: a test identifier).
    fn rev(&self, key: &Key) -> Option<u64> {
        self.record(key).map(|r| r.rev().unwrap_or(0))
    }

    /// Whether `write`'s condition holds now.
    fn holds(&self, write: &Write) -> Result<bool, StoreError> {
        let key = write.key();
        let expect = |expect: &Expect| match (expect, self.rev(&key)) {
            (Expect::Absent, current) => current.is_none(),
            (Expect::Rev(rev), current) => current == Some(*rev),
            (Expect::Present, current) => current.is_some(),
            (Expect::Any, _) => true,
        };
        Ok(match write {
            Write::PutUser { expect: e, .. }
            | Write::PutOwner { expect: e, .. }
            | Write::PutCodes { expect: e, .. }
            | Write::PutSession { expect: e, .. }
            | Write::PutCounter { expect: e, .. } => {
                if !matches!(e, Expect::Absent | Expect::Rev(_)) {
                    return Err(StoreError::Other(
                        "a put must expect Absent or a revision".into(),
                    ));
                }
                expect(e)
            }
            Write::DeleteUser { expect: e, .. }
            | Write::DeleteOwner { expect: e, .. }
            | Write::DeleteCodes { expect: e, .. }
            | Write::DeleteSession { expect: e, .. }
            | Write::Check { expect: e, .. } => expect(e),
            Write::UserUnlocked { user_id, now, .. } => match self.login.get(&key) {
                Some(Record::User(user)) => {
                    &user.value.id == user_id && user.value.active_lock(*now).is_none()
                }
                _ => false,
            },
            Write::ReplaceCode { .. } | Write::DeleteTally { .. } => true,
            Write::Tally { add, limit, .. } => {
                let count = match self.login.get(&key) {
                    Some(Record::Tally(tally)) => tally.count,
                    _ => 0,
                };
                let within = limit
                    .is_none_or(|limit| i128::from(count) + i128::from(*add) <= i128::from(limit));
                within && i128::from(count) + i128::from(*add) >= 0
            }
            Write::ConfirmOwner { method_id, .. } => match self.login.get(&key) {
                Some(Record::Owner(owner)) => &owner.value.method_id == method_id,
                _ => false,
            },
            Write::TestIdentifierValid { id, now, .. } => match self.record(&key) {
                Some(Record::TestIdentifier(test)) => &test.id == id && test.valid_until > *now,
                _ => false,
            },
        })
    }

    fn apply(&mut self, write: &Write) {
        let key = write.key();
        let next_rev = self.rev(&key).map_or(1, |rev| rev + 1);
        let record = match write {
            Write::PutUser { user, .. } => {
                Some(Record::User(Versioned::new(user.clone(), next_rev)))
            }
            Write::PutOwner { owner, .. } => {
                Some(Record::Owner(Versioned::new(owner.clone(), next_rev)))
            }
            Write::Tally {
                app_id, name, add, ..
            } => {
                let count = match self.login.get(&key) {
                    Some(Record::Tally(tally)) => tally.count,
                    _ => 0,
                };
                let count = u64::try_from(i128::from(count) + i128::from(*add)).unwrap_or(0);
                self.login.insert(
                    key,
                    Record::Tally(Tally {
                        app_id: app_id.clone(),
                        name: name.clone(),
                        count,
                    }),
                );
                return;
            }
            Write::DeleteTally { .. } => {
                self.login.remove(&key);
                return;
            }
            Write::ConfirmOwner { .. } => match self.login.get(&key) {
                Some(Record::Owner(owner)) => {
                    let mut owner = owner.value.clone();
                    owner.pending_since = None;
                    Some(Record::Owner(Versioned::new(owner, next_rev)))
                }
                _ => return,
            },
            Write::PutCodes { codes, .. } => {
                Some(Record::Codes(Versioned::new(codes.clone(), next_rev)))
            }
            Write::PutSession { session, .. } => {
                Some(Record::Session(Versioned::new(session.clone(), next_rev)))
            }
            Write::PutCounter { counter, .. } => {
                Some(Record::Counter(Versioned::new(counter.clone(), next_rev)))
            }
            Write::ReplaceCode { challenge } => {
                let mut previous = match self.login.get(&key) {
                    Some(Record::Codes(codes)) => codes.value.previous.clone(),
                    _ => Vec::new(),
                };
                if let Some(Record::Codes(codes)) = self.login.get(&key)
                    && let Some(current) = &codes.value.current
                {
                    previous.insert(0, current.clone());
                }
                previous.truncate(MAX_PREVIOUS_CODES);
                Some(Record::Codes(Versioned::new(
                    Codes {
                        app_id: challenge.app_id.clone(),
                        method_id: challenge.method_id.clone(),
                        current: Some(challenge.clone()),
                        previous,
                    },
                    next_rev,
                )))
            }
            Write::DeleteUser { .. }
            | Write::DeleteOwner { .. }
            | Write::DeleteCodes { .. }
            | Write::DeleteSession { .. } => {
                self.login.remove(&key);
                return;
            }
            Write::UserUnlocked { .. }
            | Write::Check { .. }
            | Write::TestIdentifierValid { .. } => {
                return;
            }
        };
        if let Some(record) = record {
            self.login.insert(key, record);
        }
    }
}

#[async_trait]
impl LoginStore for MemoryStore {
    async fn load(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        let s = self.state();
        Ok(keys.iter().map(|key| s.record(key)).collect())
    }

    async fn load_home(&self, app_id: &AppId, home: Home) -> Result<HomeRecords, StoreError> {
        let s = self.state();
        let mut records = HomeRecords::default();
        for (key, record) in &s.login {
            match (key, record) {
                (Key::User { app_id: a, home: h }, Record::User(user))
                    if a == app_id && *h == home =>
                {
                    records.user = Some(user.clone());
                }
                (
                    Key::Codes {
                        app_id: a,
                        method_id,
                    },
                    Record::Codes(codes),
                ) if a == app_id && method_id.home() == home => {
                    records.codes.push(codes.clone());
                }
                (
                    Key::Session {
                        app_id: a, home: h, ..
                    },
                    Record::Session(session),
                ) if a == app_id && *h == home => {
                    records.sessions.push(session.clone());
                }
                _ => {}
            }
        }
        records.sessions.sort_by_key(|s| s.value.token_hash);
        Ok(records)
    }

    async fn commit(&self, writes: &[Write], token: &CommitToken) -> Result<(), CommitError> {
        let mut s = self.state();
        let fingerprint = crate::crypto::sha256(format!("{writes:?}").as_bytes());
        if let Some(seen) = s.tokens.get(token) {
            return if *seen == fingerprint {
                Ok(())
            } else {
                Err(
                    StoreError::Other("a commit token was used again for other writes".into())
                        .into(),
                )
            };
        }
        let keys: HashSet<Key> = writes.iter().map(Write::key).collect();
        if keys.len() != writes.len() {
            return Err(StoreError::Other("two writes of one commit on one record".into()).into());
        }
        let mut conflicts = Vec::new();
        for (index, write) in writes.iter().enumerate() {
            if !s.holds(write)? {
                conflicts.push(Conflict {
                    index,
                    current: s.record(&write.key()),
                });
            }
        }
        if !conflicts.is_empty() {
            return Err(CommitError::Conflict(conflicts));
        }
        for write in writes {
            s.apply(write);
        }
        if s.token_order.len() >= REMEMBERED_TOKENS
            && let Some(oldest) = s.token_order.pop_front()
        {
            s.tokens.remove(&oldest);
        }
        s.tokens.insert(token.clone(), fingerprint);
        s.token_order.push_back(token.clone());
        Ok(())
    }

    async fn list_tallies(&self, app_id: &AppId, prefix: &str) -> Result<Vec<Tally>, StoreError> {
        let s = self.state();
        let mut tallies: Vec<Tally> = s
            .login
            .values()
            .filter_map(|record| match record {
                Record::Tally(t) if &t.app_id == app_id && t.name.starts_with(prefix) => {
                    Some(t.clone())
                }
                _ => None,
            })
            .collect();
        tallies.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tallies)
    }

    async fn touch_session(
        &self,
        app_id: &AppId,
        home: Home,
        token_hash: &Hash32,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<Option<Versioned<Session>>, StoreError> {
        let mut s = self.state();
        let key = Key::Session {
            app_id: app_id.clone(),
            home,
            token_hash: *token_hash,
        };
        let Some(Record::Session(session)) = s.login.get_mut(&key) else {
            return Ok(None);
        };
        if !session.value.is_live(now) {
            return Ok(None);
        }
        session.value.last_accessed_at = now;
        if let Some(expires_at) = expires_at {
            session.value.expires_at = expires_at;
        }
        session.rev += 1;
        Ok(Some(session.clone()))
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
