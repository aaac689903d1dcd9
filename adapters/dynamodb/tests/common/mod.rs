//! Fixtures of the integration tests: records with fresh random ids, valid as the domain would
//! write them, in their user's home.

#![allow(dead_code)]

use shared::clock::{Clock, SystemClock, Timestamp};
use shared::identifiers::Identifier;
use shared::ids::{
    AppId, ChallengeId, ConfigId, EmailId, MethodId, PhoneId, RequestId, SessionId, TemplateId,
    UserId,
};
use shared::model::{
    Challenge, Channel, LoginConfig, Owner, Session, SessionAttributes, Template, User, UserStatus,
};
use shared::ports::CommitToken;
use shared::random::OsRandom;

pub fn now() -> Timestamp {
    SystemClock.now()
}

/// A fresh commit token.
pub fn token() -> CommitToken {
    CommitToken::derive(RequestId::generate(&OsRandom).as_str(), 0)
}

/// `+1 202 555 01nn`.
pub fn phone(n: u8) -> Identifier {
    Identifier::parse(&format!("+120255501{:02}", n % 100)).expect("valid fixture")
}

pub fn email(local: &str) -> Identifier {
    Identifier::parse(&format!("{local}@example.com")).expect("valid fixture")
}

/// A new active user of `app` holding `identifier`, its method in its home.
pub fn user_with(app: &AppId, identifier: &Identifier) -> User {
    let mut user = User {
        id: UserId::generate(&OsRandom),
        app_id: app.clone(),
        status: UserStatus::Active,
        created_at: now(),
        phone_numbers: Vec::new(),
        emails: Vec::new(),
        failed_attempts: 0,
        lock: None,
    };
    let home = user.id.home();
    let method = match identifier {
        Identifier::Phone(_) => MethodId::Phone(PhoneId::generate_in(&OsRandom, home)),
        Identifier::Email(_) => MethodId::Email(EmailId::generate_in(&OsRandom, home)),
    };
    user.add_method(method, identifier.clone());
    user
}

/// The owner record of the user's `index`-th method.
pub fn owner_of(user: &User, index: usize) -> Owner {
    let method_id = user.method_ids()[index].clone();
    Owner {
        app_id: user.app_id.clone(),
        identifier: user.identifier_of(&method_id).expect("the user's method"),
        user_id: user.id.clone(),
        method_id,
        pending_since: None,
    }
}

pub fn challenge(user: &User, method: &MethodId, at: Timestamp) -> Challenge {
    let id = ChallengeId::generate(&OsRandom);
    Challenge {
        hash_context: id.as_str().to_owned(),
        id,
        app_id: user.app_id.clone(),
        user_id: user.id.clone(),
        method_id: method.clone(),
        channel: match method {
            MethodId::Phone(_) => Channel::Sms,
            MethodId::Email(_) => Channel::Email,
        },
        code_hash: [7u8; 32],
        config_id: ConfigId::generate(&OsRandom, at),
        grant_change_password: false,
        created_at: at,
        expires_at: at.plus_seconds(120),
        attempts: 0,
        consumed: false,
        test_identifier: None,
    }
}

pub fn session(user: &User, at: Timestamp, token_hash: [u8; 32]) -> Session {
    Session {
        id: SessionId::generate_in(&OsRandom, user.id.home()),
        app_id: user.app_id.clone(),
        user_id: user.id.clone(),
        token_hash,
        started_at: at,
        last_accessed_at: at,
        expires_at: at.plus_minutes(30),
        attributes: SessionAttributes::default(),
        custom_claims: serde_json::Map::new(),
        authentication_factors: Vec::new(),
        granted_scopes: Vec::new(),
    }
}

pub fn template_of(app: &AppId) -> Template {
    let at = now();
    Template {
        id: TemplateId::generate(&OsRandom, at),
        app_id: app.clone(),
        channel: Channel::Sms,
        locale: "en".to_owned(),
        subject: None,
        text: "{{code}}".to_owned(),
        html: None,
        created_at: at,
        updated_at: at,
    }
}

pub fn config_of(app: &AppId, template: Option<&TemplateId>) -> LoginConfig {
    let at = now();
    LoginConfig {
        id: ConfigId::generate(&OsRandom, at),
        app_id: app.clone(),
        channel: Channel::Sms,
        is_default: true,
        template_id: template.cloned(),
        sender_id: None,
        webotp_domain: None,
        android_app_hash: None,
        grant_change_password: false,
        code_length: 6,
        expiration_minutes: 2,
        created_at: at,
        updated_at: at,
    }
}
