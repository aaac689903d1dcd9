//! Deciding a send (`login_or_create` and `send`, SMS and email): from the app, the request and
//! what was read, to the error to answer, or the writes to commit, the message to deliver after
//! them, and what puts everything back if the delivery fails.

use crate::clock::Timestamp;
use crate::crypto::CodeHasher;
use crate::error::Error;
use crate::identifiers::Identifier;
use crate::ids::{AppId, ChallengeId, ConfigId, EmailId, MethodId, PhoneId, TemplateId, UserId};
use crate::model::{
    Challenge, Channel, Codes, LoginConfig, Owner, SendCounter, Template, TestIdentifier, User,
    UserStatus,
};
use crate::ports::{
    AppData, CodeForOutbox, EmailMessage, Expect, Key, SmsMessage, Versioned, Write,
};
use crate::random::{Random, random_digits};
use crate::service::Limits;
use crate::service::commit::{Decision, Need, Snapshot};
use crate::service::decide::budget::{self, Budget};
use crate::service::decide::rate::{self, CounterRule, Limit};
use crate::service::decide::retry_after;
use crate::templates::{Placeholders, render};

#[derive(Debug, Clone)]
pub enum SendMode {
    /// Finds the user with the identifier, or creates one.
    LoginOrCreate { create_user_as_pending: bool },
    /// Sends to an existing user's identifier, or adds it to the target user.
    Send { target: Option<SendTarget> },
}

/// Who a `send` adds the identifier to, when it is not already a user's.
#[derive(Debug, Clone)]
pub enum SendTarget {
    UserId(String),
    SessionToken(String),
    SessionJwt(String),
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub identifier: Identifier,
    pub mode: SendMode,
    pub expiration_minutes: Option<i64>,
    pub locale: Option<String>,
    pub login_config_id: Option<String>,
    pub login_template_id: Option<String>,
    pub signup_template_id: Option<String>,
    /// The end user's IP address (`attributes.ip_address`), for the per-IP send limit.
    pub ip_address: Option<String>,
    /// A send through the frontend API: the app's limit on those per hour.
    pub public_sends_per_hour: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub user_id: UserId,
    pub method_id: MethodId,
    pub user_created: bool,
}

/// The target of a `send`, as the service found it before reading: the user a `user_id` names,
/// or the session a token or JWT names (whose user the identifier is added to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRef {
    User(UserId),
    Session(Key),
    /// A JWT that verified but names no session of its user.
    MissingSession,
}

/// What a decision needs besides the request and the records: the app, the settings, the time
/// and randomness.
pub struct SendContext<'a> {
    pub app: &'a AppData,
    pub limits: &'a Limits,
    pub code_hasher: &'a CodeHasher,
    pub random: &'a dyn Random,
    pub default_email_from: &'a str,
    pub now: Timestamp,
}

/// The message to hand to delivery once the writes are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Sms(SmsMessage),
    Email(EmailMessage),
}

/// What a committed send leaves to do.
#[derive(Debug, Clone)]
pub struct SendPlan {
    pub outcome: SendOutcome,
    pub message: Outgoing,
    /// A test identifier's message: recorded, never delivered.
    pub test: bool,
    pub undo: Undo,
}

/// How to take a committed send back when its message could not be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    pub app_id: AppId,
    pub method_id: MethodId,
    pub challenge_id: ChallengeId,
    pub made: Made,
    /// The counters as the commit left them, and the time of the hits it added.
    pub counters: Vec<Versioned<SendCounter>>,
    /// The SMS budgets it counted on.
    pub budgets: Vec<Budget>,
    pub hit_at: Timestamp,
}

/// What the send made besides the code.
#[derive(Debug, Clone, PartialEq)]
pub enum Made {
    /// Only a new code for a method that had one before (or had none).
    Code,
    /// A new user with this one method (`owner_rev`: its owner record's revision after the
    /// commit).
    User {
        user_id: UserId,
        identifier: Identifier,
        owner_rev: u64,
    },
    /// The method, added to an existing user (`before` is the user as it was, and `rev` its
    /// revision after the commit).
    Method {
        before: User,
        rev: u64,
        identifier: Identifier,
        owner_rev: u64,
    },
}

fn channel_of(identifier: &Identifier) -> Channel {
    match identifier {
        Identifier::Phone(_) => Channel::Sms,
        Identifier::Email(_) => Channel::Email,
    }
}

fn duplicate(identifier: &Identifier) -> Error {
    match identifier {
        Identifier::Phone(_) => Error::DuplicatePhoneNumber,
        Identifier::Email(_) => Error::DuplicateEmail,
    }
}

/// The send-rate counters of a send: the identifier's (cooldown and window) and, when the
/// request names the end user's IP address, that address's window. An email address is counted
/// on its mailbox (without its `+tag`), so that tags of one mailbox share its limits; an IP
/// address on itself if IPv4 (IPv4-mapped IPv6 included), else on its /64.
pub fn counter_rules(
    app_id: &AppId,
    identifier: &Identifier,
    ip_address: Option<&str>,
    limits: &Limits,
) -> Vec<CounterRule> {
    let send = &limits.send;
    let counted = match identifier {
        Identifier::Email(email) => email.mailbox().as_str().to_owned(),
        Identifier::Phone(number) => number.as_str().to_owned(),
    };
    let mut rules = vec![CounterRule {
        key: format!("send#{app_id}#{counted}"),
        limits: vec![
            Limit {
                max: 1,
                window_seconds: send.cooldown_seconds,
            },
            Limit {
                max: send.window_max,
                window_seconds: send.window_seconds,
            },
        ],
    }];
    if let Some(ip) = ip_address.map(str::trim).filter(|ip| !ip.is_empty()) {
        let ip = crate::identifiers::IpAddress::parse(ip)
            .map_or_else(|| ip.to_owned(), |ip| ip.window_key());
        rules.push(CounterRule {
            key: format!("ip#{app_id}#{ip}"),
            limits: vec![Limit {
                max: send.ip_window_max,
                window_seconds: send.window_seconds,
            }],
        });
    }
    rules
}

/// The counters of a send: `counter_rules`, and for a send through the frontend API the app's
/// counter of those (one sliding hour).
pub fn send_rules(app_id: &AppId, request: &SendRequest, limits: &Limits) -> Vec<CounterRule> {
    let mut rules = counter_rules(
        app_id,
        &request.identifier,
        request.ip_address.as_deref(),
        limits,
    );
    if let Some(per_hour) = request.public_sends_per_hour {
        rules.push(CounterRule {
            key: format!("public#{app_id}"),
            limits: vec![Limit {
                // Never 0: a full window needs a hit to age out of it.
                max: per_hour.max(1),
                window_seconds: 3600,
            }],
        });
    }
    rules
}

/// Everything a send reads, in one batch: who holds the identifier, whether it is a test
/// identifier, the send counters, and the target (user, or session and its user).
pub fn keys_to_load(
    app_id: &AppId,
    request: &SendRequest,
    target: Option<&TargetRef>,
    limits: &Limits,
    now: Timestamp,
) -> Vec<Key> {
    let mut keys = vec![
        Key::Owner {
            app_id: app_id.clone(),
            identifier: request.identifier.clone(),
        },
        Key::TestIdentifier {
            app_id: app_id.clone(),
            identifier: request.identifier.clone(),
        },
    ];
    keys.extend(
        send_rules(app_id, request, limits)
            .into_iter()
            .map(|rule| Key::Counter { key: rule.key }),
    );
    if let Identifier::Phone(number) = &request.identifier {
        keys.extend(budget::floor_keys(app_id, number, now));
    }
    match target {
        Some(TargetRef::User(user_id)) => keys.push(Key::User {
            app_id: app_id.clone(),
            home: user_id.home(),
        }),
        Some(TargetRef::Session(key)) => {
            if let Key::Session { home, .. } = key {
                keys.push(Key::User {
                    app_id: app_id.clone(),
                    home: *home,
                });
            }
            keys.push(key.clone());
        }
        Some(TargetRef::MissingSession) | None => {}
    }
    keys
}

fn login_config<'a>(
    app: &'a AppData,
    channel: Channel,
    requested: Option<&str>,
) -> Result<&'a LoginConfig, Error> {
    match requested {
        Some(text) => {
            let not_found = || {
                Error::LoginConfigNotFound(format!(
                    "the app has no {} login config with that login_config_id",
                    channel.as_str()
                ))
            };
            let id = ConfigId::parse(text).ok_or_else(not_found)?;
            app.configs
                .iter()
                .find(|c| c.id == id && c.channel == channel)
                .ok_or_else(not_found)
        }
        None => app
            .configs
            .iter()
            .find(|c| c.channel == channel && c.is_default)
            .ok_or(Error::NoLoginConfig(channel)),
    }
}

fn email_template<'a>(
    app: &'a AppData,
    field: &str,
    id: Option<&str>,
) -> Result<Option<&'a Template>, Error> {
    let Some(text) = id else { return Ok(None) };
    let not_found =
        || Error::TemplateNotFound(format!("{field} must name an email template of this app"));
    let id = TemplateId::parse(text).ok_or_else(not_found)?;
    app.templates
        .iter()
        .find(|t| t.id == id && t.channel == Channel::Email)
        .map(Some)
        .ok_or_else(not_found)
}

/// Who the code goes to.
enum Recipient<'a> {
    /// A user that holds the identifier (read through its owner record only).
    Existing(&'a Versioned<Owner>),
    /// No user holds it for a login: `login_or_create` makes one (`taken` is the identifier's
    /// owner record when another user holds it attached but unverified: it is taken from them).
    NewUser {
        pending: bool,
        taken: Option<&'a Versioned<Owner>>,
    },
    /// `send` to a target user that does not hold it yet (`taken`: an abandoned attachment of
    /// another user).
    AddTo {
        target: &'a Versioned<User>,
        taken: Option<&'a Versioned<Owner>>,
    },
}

fn find_recipient<'a>(
    ctx: &SendContext<'_>,
    request: &SendRequest,
    target: Option<&TargetRef>,
    snapshot: &'a Snapshot,
) -> Result<Recipient<'a>, Error> {
    let app_id = &ctx.app.app.id;
    let identifier = &request.identifier;
    let owner = snapshot
        .owner(app_id, identifier)
        .ok_or_else(|| Error::Internal("the identifier's owner was not read".into()))?;
    let not_found = || match identifier {
        Identifier::Phone(_) => Error::PhoneNumberNotFound,
        Identifier::Email(_) => Error::EmailNotFound,
    };
    match &request.mode {
        // An identifier attached to a user but not verified routes nobody's login to that user:
        // the login makes its own user, taking the identifier.
        SendMode::LoginOrCreate {
            create_user_as_pending,
        } => Ok(match owner {
            Some(owner) if !owner.value.is_pending() => Recipient::Existing(owner),
            taken => Recipient::NewUser {
                pending: *create_user_as_pending,
                taken,
            },
        }),
        SendMode::Send { target: None } => match owner {
            Some(owner) if !owner.value.is_pending() => Ok(Recipient::Existing(owner)),
            _ => Err(not_found()),
        },
        SendMode::Send { target: Some(_) } => {
            let target_user = target_user(ctx, target, snapshot)?;
            match owner {
                Some(owner) if owner.value.user_id == target_user.value.id => {
                    Ok(Recipient::Existing(owner))
                }
                Some(owner) if owner.value.is_abandoned(ctx.now) => Ok(Recipient::AddTo {
                    target: target_user,
                    taken: Some(owner),
                }),
                Some(_) => Err(duplicate(identifier)),
                None => Ok(Recipient::AddTo {
                    target: target_user,
                    taken: None,
                }),
            }
        }
    }
}

/// The keys a send needs after its first read: the user an identifier is taken from (its
/// owner record says who). Empty when the first read was enough.
pub fn keys_to_load_next(
    app_id: &AppId,
    request: &SendRequest,
    snapshot: &Snapshot,
    now: Timestamp,
) -> Vec<Key> {
    let Some(Some(owner)) = snapshot.owner(app_id, &request.identifier) else {
        return Vec::new();
    };
    let taken = match &request.mode {
        SendMode::LoginOrCreate { .. } => owner.value.is_pending(),
        SendMode::Send { target: Some(_) } => owner.value.is_abandoned(now),
        SendMode::Send { target: None } => false,
    };
    let key = Key::User {
        app_id: app_id.clone(),
        home: owner.value.user_id.home(),
    };
    if taken && snapshot.get(&key).is_none() {
        vec![key]
    } else {
        Vec::new()
    }
}

/// The writes that take an identifier from the user it was attached to unverified: the method
/// goes from that user (as read), with its codes.
fn take_from(snapshot: &Snapshot, taken: &Versioned<Owner>) -> Result<Vec<Write>, Error> {
    let owner = &taken.value;
    let user = snapshot
        .user(&owner.app_id, owner.user_id.home())
        .ok_or_else(|| {
            Error::Internal("the user an identifier is taken from was not read".into())
        })?;
    let mut writes = vec![Write::DeleteCodes {
        app_id: owner.app_id.clone(),
        method_id: owner.method_id.clone(),
        expect: Expect::Any,
    }];
    if let Some(user) = user.filter(|u| u.value.id == owner.user_id) {
        let mut without = user.value.clone();
        without.remove_method(&owner.method_id);
        writes.push(Write::PutUser {
            user: without,
            expect: Expect::Rev(user.rev),
        });
    }
    Ok(writes)
}

/// The user a `send` with `user_id`, `session_token` or `session_jwt` names.
fn target_user<'a>(
    ctx: &SendContext<'_>,
    target: Option<&TargetRef>,
    snapshot: &'a Snapshot,
) -> Result<&'a Versioned<User>, Error> {
    let app_id = &ctx.app.app.id;
    let user_id = match target {
        Some(TargetRef::User(user_id)) => user_id.clone(),
        Some(TargetRef::Session(key)) => {
            let session = snapshot
                .session(key)
                .flatten()
                .filter(|s| s.value.is_live(ctx.now))
                .ok_or(Error::SessionNotFound)?;
            session.value.user_id.clone()
        }
        Some(TargetRef::MissingSession) => return Err(Error::SessionNotFound),
        None => return Err(Error::Internal("a send target was expected".into())),
    };
    snapshot
        .user(app_id, user_id.home())
        .flatten()
        .filter(|u| u.value.id == user_id)
        .ok_or(match target {
            Some(TargetRef::User(_)) => Error::UserNotFound,
            _ => Error::SessionNotFound,
        })
}

fn locked(user: &User, now: Timestamp) -> Option<Error> {
    user.active_lock(now)
        .map(|lock| Error::UserLockLimitReached {
            retry_after_seconds: retry_after(now, lock.expires_at),
        })
}

fn new_method_id(random: &dyn Random, user: &User, identifier: &Identifier) -> MethodId {
    let home = user.id.home();
    match identifier {
        Identifier::Phone(_) => MethodId::Phone(PhoneId::generate_in(random, home)),
        Identifier::Email(_) => MethodId::Email(EmailId::generate_in(random, home)),
    }
}

/// Decides a send on what was read. Refusals write nothing; otherwise the writes make the
/// recipient (a new user, or the identifier on the target user), put the new code in place of
/// the method's current one and count the send, all conditional on what the decision relied on.
pub fn decide_send(
    ctx: &SendContext<'_>,
    request: &SendRequest,
    target: Option<&TargetRef>,
    snapshot: &Snapshot,
) -> Decision<SendPlan> {
    let next = keys_to_load_next(&ctx.app.app.id, request, snapshot, ctx.now);
    if !next.is_empty() {
        return Decision::need(Need::Keys(next));
    }
    match decide(ctx, request, target, snapshot) {
        Ok((writes, plan)) => Decision::commit(writes, Ok(plan)),
        Err(
            error @ (Error::TooManyRequests { .. }
            | Error::SmsBudgetExhausted { .. }
            | Error::SmsRegionPaused { .. }),
        ) => {
            // A locked user is told so before being told to slow down; when the user was not
            // read, a commit of the lock's condition alone (it writes nothing) finds out.
            let app_id = &ctx.app.app.id;
            match snapshot.owner(app_id, &request.identifier).flatten() {
                Some(owner) if snapshot.user(app_id, owner.value.user_id.home()).is_none() => {
                    Decision::commit(
                        vec![Write::UserUnlocked {
                            app_id: app_id.clone(),
                            user_id: owner.value.user_id.clone(),
                            now: ctx.now,
                        }],
                        Err(error),
                    )
                }
                _ => Decision::refuse(error),
            }
        }
        Err(error) => Decision::refuse(error),
    }
}

fn decide(
    ctx: &SendContext<'_>,
    request: &SendRequest,
    target: Option<&TargetRef>,
    snapshot: &Snapshot,
) -> Result<(Vec<Write>, SendPlan), Error> {
    let app = ctx.app;
    let app_id = &app.app.id;
    let now = ctx.now;
    let identifier = &request.identifier;
    let channel = channel_of(identifier);
    if let Some(minutes) = request.expiration_minutes
        && !(1..=10).contains(&minutes)
    {
        return Err(Error::InvalidExpirationMinutes);
    }
    if let Identifier::Phone(number) = identifier
        && let Some(allowed) = &app.sms_countries
        && !number
            .region()
            .is_some_and(|region| allowed.contains(&region))
    {
        return Err(Error::InvalidPhoneNumberCountryCode);
    }
    let config = login_config(app, channel, request.login_config_id.as_deref())?;
    let login_template = email_template(
        app,
        "login_template_id",
        request.login_template_id.as_deref(),
    )?;
    let signup_template = email_template(
        app,
        "signup_template_id",
        request.signup_template_id.as_deref(),
    )?;

    let recipient = find_recipient(ctx, request, target, snapshot)?;
    match &recipient {
        Recipient::Existing(owner) => {
            // The owner record alone does not say whether the user is locked; a commit that
            // found it locked put the user in the snapshot.
            if let Some(Some(user)) = snapshot.user(app_id, owner.value.user_id.home())
                && user.value.id == owner.value.user_id
                && let Some(error) = locked(&user.value, now)
            {
                return Err(error);
            }
        }
        Recipient::AddTo { target, .. } => {
            if let Some(error) = locked(&target.value, now) {
                return Err(error);
            }
        }
        Recipient::NewUser { .. } => {}
    }

    // A test identifier is never delivered, so it uses up no send limit.
    let test: Option<&TestIdentifier> = snapshot
        .test_identifier(app_id, identifier)
        .flatten()
        .filter(|t| t.valid_until > now);
    let mut writes = Vec::new();
    let mut counters = Vec::new();
    if test.is_none() {
        let rules = send_rules(app_id, request, ctx.limits);
        let current: Vec<_> = rules
            .iter()
            .map(|rule| snapshot.counter(&rule.key).flatten())
            .collect();
        let counted =
            rate::count(&rules, &current, now).map_err(|retry_at| Error::TooManyRequests {
                retry_after_seconds: retry_after(now, retry_at),
            })?;
        writes.extend(counted.writes);
        counters = counted.after;
    }
    // SMS budgets and the verification floor (test identifiers use none).
    let mut budgets = Vec::new();
    if let (Identifier::Phone(number), None) = (identifier, test) {
        let settings = app.sms_budgets.unwrap_or(ctx.limits.sms_budgets);
        if let Some(until) = budget::paused(&settings, app_id, number, now, snapshot) {
            return Err(Error::SmsRegionPaused {
                retry_after_seconds: retry_after(now, until),
            });
        }
        budgets = budget::sms_budgets(&settings, number, now);
        if let Some(until) = budget::exhausted(app_id, &budgets, snapshot) {
            return Err(Error::SmsBudgetExhausted {
                retry_after_seconds: retry_after(now, until),
            });
        }
        writes.extend(budgets.iter().map(|b| budget::count(app_id, b)));
    }

    let expiration_minutes = request
        .expiration_minutes
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(config.expiration_minutes);
    let challenge_id = ChallengeId::generate(ctx.random);
    let (code, code_hash, hash_context) = match test {
        // A test identifier's code is fixed; its plaintext is not kept, so the message shows a mark.
        Some(t) => (
            "(test code)".to_owned(),
            t.code_hash,
            t.id.as_str().to_owned(),
        ),
        None => {
            let code = random_digits(ctx.random, config.code_length);
            let hash = ctx.code_hasher.hash(challenge_id.as_str(), &code);
            (code, hash, challenge_id.as_str().to_owned())
        }
    };
    let challenge_for = |user_id: &UserId, method_id: &MethodId| Challenge {
        id: challenge_id.clone(),
        app_id: app_id.clone(),
        user_id: user_id.clone(),
        method_id: method_id.clone(),
        channel,
        code_hash,
        hash_context: hash_context.clone(),
        config_id: config.id.clone(),
        grant_change_password: config.grant_change_password,
        created_at: now,
        expires_at: now.plus_minutes(i64::from(expiration_minutes)),
        attempts: 0,
        consumed: false,
        test_identifier: test.map(|t| t.id.clone()),
    };
    let first_code = |challenge: Challenge| Write::PutCodes {
        codes: Codes {
            app_id: app_id.clone(),
            method_id: challenge.method_id.clone(),
            current: Some(challenge),
            previous: Vec::new(),
        },
        expect: Expect::Absent,
    };
    // A new owner record: over the one taken (at its revision), or where there was none.
    let new_owner = |user_id: &UserId,
                     method_id: &MethodId,
                     pending_since: Option<Timestamp>,
                     taken: Option<&Versioned<Owner>>| Write::PutOwner {
        owner: Owner {
            app_id: app_id.clone(),
            identifier: identifier.clone(),
            user_id: user_id.clone(),
            method_id: method_id.clone(),
            pending_since,
        },
        expect: taken.map_or(Expect::Absent, |t| Expect::Rev(t.rev)),
    };
    let owner_rev = |taken: Option<&Versioned<Owner>>| taken.map_or(1, |t| t.rev + 1);

    let (user_id, method_id, made) = match recipient {
        Recipient::Existing(owner) => {
            let Owner {
                user_id, method_id, ..
            } = &owner.value;
            writes.push(Write::Check {
                key: Key::Owner {
                    app_id: app_id.clone(),
                    identifier: identifier.clone(),
                },
                expect: Expect::Rev(owner.rev),
            });
            writes.push(Write::UserUnlocked {
                app_id: app_id.clone(),
                user_id: user_id.clone(),
                now,
            });
            writes.push(Write::ReplaceCode {
                challenge: challenge_for(user_id, method_id),
            });
            (user_id.clone(), method_id.clone(), Made::Code)
        }
        Recipient::NewUser { pending, taken } => {
            if let Some(taken) = taken {
                writes.extend(take_from(snapshot, taken)?);
            }
            let mut user = User {
                id: UserId::generate(ctx.random),
                app_id: app_id.clone(),
                status: if pending {
                    UserStatus::Pending
                } else {
                    UserStatus::Active
                },
                created_at: now,
                phone_numbers: Vec::new(),
                emails: Vec::new(),
                failed_attempts: 0,
                lock: None,
            };
            let method_id = new_method_id(ctx.random, &user, identifier);
            user.add_method(method_id.clone(), identifier.clone());
            writes.push(new_owner(&user.id, &method_id, None, taken));
            writes.push(first_code(challenge_for(&user.id, &method_id)));
            let user_id = user.id.clone();
            writes.push(Write::PutUser {
                user,
                expect: Expect::Absent,
            });
            let made = Made::User {
                user_id: user_id.clone(),
                identifier: identifier.clone(),
                owner_rev: owner_rev(taken),
            };
            (user_id, method_id, made)
        }
        Recipient::AddTo { target, taken } => {
            if let Some(taken) = taken {
                writes.extend(take_from(snapshot, taken)?);
            }
            let before = target.value.clone();
            let method_id = new_method_id(ctx.random, &before, identifier);
            let mut user = before.clone();
            user.add_method(method_id.clone(), identifier.clone());
            // Attached, and pending until the user verifies it.
            writes.push(new_owner(&user.id, &method_id, Some(now), taken));
            writes.push(first_code(challenge_for(&user.id, &method_id)));
            let user_id = user.id.clone();
            writes.push(Write::PutUser {
                user,
                expect: Expect::Rev(target.rev),
            });
            let made = Made::Method {
                before,
                rev: target.rev + 1,
                identifier: identifier.clone(),
                owner_rev: owner_rev(taken),
            };
            (user_id, method_id, made)
        }
    };
    let user_created = matches!(made, Made::User { .. });

    let template = match (user_created, signup_template, login_template) {
        (true, Some(t), _) | (false, _, Some(t)) => Some(t),
        _ => config
            .template_id
            .as_ref()
            .and_then(|id| app.templates.iter().find(|t| &t.id == id)),
    };
    let rendered = render(
        channel,
        template,
        request.locale.as_deref(),
        &Placeholders {
            code: &code,
            app_name: &app.app.name,
            expiration_minutes,
        },
    );
    let message = match identifier {
        Identifier::Phone(number) => Outgoing::Sms(SmsMessage {
            to: number.clone(),
            sender_id: config.sender_id.clone(),
            text: with_autofill(&rendered.text, config, &code),
            code: CodeForOutbox(code),
        }),
        Identifier::Email(email) => Outgoing::Email(EmailMessage {
            to: email.clone(),
            from: config
                .sender_id
                .clone()
                .unwrap_or_else(|| ctx.default_email_from.to_owned()),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            code: CodeForOutbox(code),
        }),
    };
    let plan = SendPlan {
        outcome: SendOutcome {
            user_id,
            method_id: method_id.clone(),
            user_created,
        },
        message,
        test: test.is_some(),
        undo: Undo {
            app_id: app_id.clone(),
            method_id,
            challenge_id,
            made,
            counters,
            budgets,
            hit_at: now,
        },
    };
    Ok((writes, plan))
}

/// An SMS text with the lines that let the code fill itself in: the Android app's SMS Retriever
/// hash on its own line, and last the WebOTP line `@<domain> #<code>` (the Web OTP API reads
/// only the last line).
pub fn with_autofill(text: &str, config: &LoginConfig, code: &str) -> String {
    let mut lines = Vec::new();
    if let Some(hash) = &config.android_app_hash {
        lines.push(hash.clone());
    }
    if let Some(domain) = &config.webotp_domain {
        lines.push(format!("@{domain} #{code}"));
    }
    if lines.is_empty() {
        return text.to_owned();
    }
    format!("{}\n\n{}", text.trim_end(), lines.join("\n"))
}

/// The keys an undo reads first: the codes of the send's method.
pub fn undo_keys(undo: &Undo) -> Vec<Key> {
    vec![Key::Codes {
        app_id: undo.app_id.clone(),
        method_id: undo.method_id.clone(),
    }]
}

/// Takes back a committed send whose message was not delivered, decided on the records as they
/// are (the method's codes must have been read; the counters and the user are as the send left
/// them unless a conflict returned them). The send's code comes out of the method's codes: if it
/// was the current one, the code it replaced is current again (a resend that fails leaves the
/// code the user has; two that overlap and fail, in any order, leave it too). A user or method
/// the send made goes too when no other code is left for it (no other send relies on it) and it
/// is as the send made it. The counted hits go back. `landed`: whether the send's commit is
/// known to have been applied; when not (its answer was lost), a send whose code is not there is
/// taken for one that was not applied, and nothing is written.
pub fn decide_undo(undo: &Undo, snapshot: &Snapshot, landed: bool) -> Decision<()> {
    let app_id = &undo.app_id;
    let Some(codes) = snapshot.codes(app_id, &undo.method_id) else {
        return Decision::refuse(Error::Internal(
            "the codes of an undone send were not read".into(),
        ));
    };
    let found = codes.is_some_and(|c| c.value.holds(&undo.challenge_id));
    if !found && !landed {
        return Decision::commit(Vec::new(), Ok(()));
    }
    let mut writes = Vec::new();
    if let Some(codes) = codes.filter(|_| found) {
        let mut left = codes.value.clone();
        left.take_out(&undo.challenge_id);
        let (made_user, made_identifier, made_owner_rev) = match &undo.made {
            Made::Code => (None, None, 0),
            Made::User {
                user_id,
                identifier,
                owner_rev,
            } => (Some(user_id), Some(identifier), *owner_rev),
            Made::Method {
                before,
                identifier,
                owner_rev,
                ..
            } => (Some(&before.id), Some(identifier), *owner_rev),
        };
        // Nobody else's code for what the send made: it goes.
        let remove_made = left.is_empty() && made_identifier.is_some();
        if remove_made {
            writes.push(Write::DeleteCodes {
                app_id: app_id.clone(),
                method_id: undo.method_id.clone(),
                expect: Expect::Rev(codes.rev),
            });
        } else {
            writes.push(Write::PutCodes {
                codes: left,
                expect: Expect::Rev(codes.rev),
            });
        }
        if let (true, Some(user_id), Some(identifier)) = (remove_made, made_user, made_identifier) {
            let owner_unchanged = match snapshot.owner(app_id, identifier) {
                Some(Some(owner)) => {
                    owner.rev == made_owner_rev && owner.value.method_id == undo.method_id
                }
                Some(None) => false,
                None => true,
            };
            let user = snapshot.user(app_id, user_id.home());
            match &undo.made {
                Made::User { .. } => {
                    let user_unchanged = match user {
                        Some(Some(user)) => user.rev == 1,
                        Some(None) => false,
                        None => true,
                    };
                    if owner_unchanged && user_unchanged {
                        writes.push(owner_delete(undo, identifier, made_owner_rev));
                        writes.push(Write::DeleteUser {
                            app_id: app_id.clone(),
                            user_id: user_id.clone(),
                            expect: Expect::Rev(1),
                        });
                    }
                }
                Made::Method { before, rev, .. } => {
                    // The user without the method: as it was before the send, or, if it changed
                    // since, as it is now without the method.
                    let (without, expect) = match user {
                        Some(Some(current)) if current.rev != *rev => {
                            let mut without = current.value.clone();
                            without.remove_method(&undo.method_id);
                            (Some(without), Expect::Rev(current.rev))
                        }
                        Some(None) => (None, Expect::Any),
                        _ => (Some(before.clone()), Expect::Rev(*rev)),
                    };
                    if owner_unchanged && let Some(user) = without {
                        writes.push(owner_delete(undo, identifier, made_owner_rev));
                        writes.push(Write::PutUser { user, expect });
                    }
                }
                Made::Code => {}
            }
        }
    }
    for counter in &undo.counters {
        let current = match snapshot.counter(&counter.value.key) {
            Some(current) => current,
            None => Some(counter),
        };
        if let Some(write) = current.and_then(|c| rate::give_back(c, undo.hit_at)) {
            writes.push(write);
        }
    }
    writes.extend(undo.budgets.iter().map(|b| budget::uncount(app_id, b)));
    Decision::commit(writes, Ok(()))
}

fn owner_delete(undo: &Undo, identifier: &Identifier, rev: u64) -> Write {
    Write::DeleteOwner {
        app_id: undo.app_id.clone(),
        identifier: identifier.clone(),
        expect: Expect::Rev(rev),
    }
}

#[cfg(test)]
mod tests;
