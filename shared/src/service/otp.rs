//! Sending codes and authenticating them.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::identifiers::Identifier;
use crate::ids::{ChallengeId, ConfigId, EmailId, MethodId, PhoneId, TemplateId, UserId};
use crate::model::{
    App, AuthenticationFactor, Challenge, Channel, LoginConfig, SessionAttributes, Template,
    TestIdentifier, User, UserStatus,
};
use crate::ports::{
    CodeForOutbox, EmailMessage, FailureOutcome, RateCounter, RateDecision, RateHit, SmsMessage,
    SuccessOutcome, WriteError,
};
use crate::random::random_digits;
use crate::service::Deps;
use crate::service::sessions::{self, IssuedSession, SessionGrant};
use crate::templates::{Placeholders, render};

/// Who a `send` adds the identifier to, when it is not already a user's.
#[derive(Debug, Clone)]
pub enum SendTarget {
    UserId(String),
    SessionToken(String),
    SessionJwt(String),
}

#[derive(Debug, Clone)]
pub enum SendMode {
    /// Finds the user with the identifier, or creates one.
    LoginOrCreate { create_user_as_pending: bool },
    /// Sends to an existing user's identifier, or adds it to the target user.
    Send { target: Option<SendTarget> },
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
}

#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub user_id: UserId,
    pub method_id: MethodId,
    pub user_created: bool,
}

fn channel_of(identifier: &Identifier) -> Channel {
    match identifier {
        Identifier::Phone(_) => Channel::Sms,
        Identifier::Email(_) => Channel::Email,
    }
}

fn new_method_id(deps: &Deps, identifier: &Identifier) -> MethodId {
    match identifier {
        Identifier::Phone(_) => MethodId::Phone(PhoneId::generate(deps.random.as_ref())),
        Identifier::Email(_) => MethodId::Email(EmailId::generate(deps.random.as_ref())),
    }
}

fn duplicate(identifier: &Identifier) -> Error {
    match identifier {
        Identifier::Phone(_) => Error::DuplicatePhoneNumber,
        Identifier::Email(_) => Error::DuplicateEmail,
    }
}

async fn login_config(
    deps: &Deps,
    app: &App,
    channel: Channel,
    requested: Option<&str>,
) -> Result<LoginConfig, Error> {
    match requested {
        Some(text) => {
            let not_found = || {
                Error::LoginConfigNotFound(format!(
                    "the app has no {} login config with that login_config_id",
                    channel.as_str()
                ))
            };
            let id = ConfigId::parse(text).ok_or_else(not_found)?;
            match deps.configs.get_config(&app.id, &id).await? {
                Some(config) if config.channel == channel => Ok(config),
                _ => Err(not_found()),
            }
        }
        None => deps
            .configs
            .default_config(&app.id, channel)
            .await?
            .ok_or(Error::NoLoginConfig(channel)),
    }
}

async fn email_template(
    deps: &Deps,
    app: &App,
    field: &str,
    id: Option<&str>,
) -> Result<Option<Template>, Error> {
    let Some(text) = id else { return Ok(None) };
    let not_found =
        || Error::TemplateNotFound(format!("{field} must name an email template of this app"));
    let id = TemplateId::parse(text).ok_or_else(not_found)?;
    match deps.configs.get_template(&app.id, &id).await? {
        Some(t) if t.channel == Channel::Email => Ok(Some(t)),
        _ => Err(not_found()),
    }
}

/// Who the code goes to, as far as reading tells: nothing is written yet.
enum Recipient {
    Existing(User, MethodId),
    /// No user has the identifier: `login_or_create` creates one.
    NewUser {
        pending: bool,
    },
    /// `send` with a target user that does not have the identifier yet.
    AddTo(User),
}

impl Recipient {
    /// The existing user whose lock applies to this send.
    fn known_user(&self) -> Option<&User> {
        match self {
            Recipient::Existing(user, _) | Recipient::AddTo(user) => Some(user),
            Recipient::NewUser { .. } => None,
        }
    }
}

async fn find_recipient(deps: &Deps, app: &App, request: &SendRequest) -> Result<Recipient, Error> {
    let identifier = &request.identifier;
    let owner = deps.users.find_by_identifier(&app.id, identifier).await?;
    match &request.mode {
        SendMode::LoginOrCreate {
            create_user_as_pending,
        } => Ok(match owner {
            Some((user, method_id)) => Recipient::Existing(user, method_id),
            None => Recipient::NewUser {
                pending: *create_user_as_pending,
            },
        }),
        SendMode::Send { target: None } => match owner {
            Some((user, method_id)) => Ok(Recipient::Existing(user, method_id)),
            None => Err(match identifier {
                Identifier::Phone(_) => Error::PhoneNumberNotFound,
                Identifier::Email(_) => Error::EmailNotFound,
            }),
        },
        SendMode::Send {
            target: Some(target),
        } => {
            let target_user = target_user(deps, app, target).await?;
            match owner {
                Some((user, method_id)) if user.id == target_user.id => {
                    Ok(Recipient::Existing(user, method_id))
                }
                Some(_) => Err(duplicate(identifier)),
                None => Ok(Recipient::AddTo(target_user)),
            }
        }
    }
}

/// Writes what the recipient needs (a new user, or the identifier on the target user); a
/// concurrent request that wrote it first is used instead. Returns the user, the method and
/// whether the user was created.
async fn materialize(
    deps: &Deps,
    app: &App,
    identifier: &Identifier,
    recipient: Recipient,
) -> Result<(User, MethodId, bool), Error> {
    let method_id = new_method_id(deps, identifier);
    let written = match recipient {
        Recipient::Existing(user, method_id) => return Ok((user, method_id, false)),
        Recipient::NewUser { pending } => {
            let mut user = User {
                id: UserId::generate(deps.random.as_ref()),
                app_id: app.id.clone(),
                status: if pending {
                    UserStatus::Pending
                } else {
                    UserStatus::Active
                },
                created_at: deps.clock.now(),
                phone_numbers: Vec::new(),
                emails: Vec::new(),
                failed_attempts: 0,
                lock: None,
            };
            user.add_method(method_id.clone(), identifier.clone());
            match deps.users.create_user(&user).await {
                Ok(()) => {
                    tracing::info!(app_id = %app.id, user_id = %user.id, "user created");
                    return Ok((user, method_id, true));
                }
                Err(e) => (e, None),
            }
        }
        Recipient::AddTo(target) => {
            match deps
                .users
                .add_method(&app.id, &target.id, &method_id, identifier)
                .await
            {
                Ok(user) => return Ok((user, method_id, false)),
                Err(e) => (e, Some(target.id)),
            }
        }
    };
    match written {
        // Someone else wrote the identifier first: it is theirs now, or the target's.
        (WriteError::Conflict(_), target) => {
            match deps.users.find_by_identifier(&app.id, identifier).await? {
                Some((user, method_id)) if target.as_ref().is_none_or(|t| *t == user.id) => {
                    Ok((user, method_id, false))
                }
                Some(_) => Err(duplicate(identifier)),
                None if target.is_some() => Err(Error::UserNotFound),
                None => Err(Error::ServiceUnavailable),
            }
        }
        (WriteError::Store(e), _) => Err(e.into()),
    }
}

async fn target_user(deps: &Deps, app: &App, target: &SendTarget) -> Result<User, Error> {
    let user_id = match target {
        SendTarget::UserId(id) => UserId::parse(id).ok_or(Error::UserNotFound)?,
        SendTarget::SessionToken(token) => {
            sessions::resolve(deps, &app.id, Some(token), None)
                .await?
                .0
                .user_id
        }
        SendTarget::SessionJwt(jwt) => {
            sessions::resolve(deps, &app.id, None, Some(jwt))
                .await?
                .0
                .user_id
        }
    };
    deps.users
        .get_user(&app.id, &user_id)
        .await?
        .ok_or(Error::UserNotFound)
}

/// Counts one send against the identifier's cooldown and window and the end user's IP window,
/// all or nothing.
async fn count_send(
    deps: &Deps,
    app: &App,
    identifier: &Identifier,
    ip_address: Option<&str>,
    now: crate::clock::Timestamp,
) -> Result<Vec<RateHit>, Error> {
    let limits = &deps.settings.limits.send;
    let subject = format!("{}#{}", app.id, identifier.as_str());
    let mut counters = vec![
        RateCounter {
            key: format!("cooldown#{subject}"),
            limit: 1,
            window_seconds: limits.cooldown_seconds,
        },
        RateCounter {
            key: format!("window#{subject}"),
            limit: limits.window_max,
            window_seconds: limits.window_seconds,
        },
    ];
    if let Some(ip) = ip_address.map(str::trim).filter(|ip| !ip.is_empty()) {
        counters.push(RateCounter {
            key: format!("ip#{}#{ip}", app.id),
            limit: limits.ip_window_max,
            window_seconds: limits.window_seconds,
        });
    }
    match deps.rate_limits.hit(&counters, now).await? {
        RateDecision::Counted(hits) => Ok(hits),
        RateDecision::Limited { retry_at } => Err(Error::TooManyRequests {
            retry_after_seconds: retry_after(now, retry_at),
        }),
    }
}

async fn give_back(deps: &Deps, hits: &[RateHit]) {
    if !hits.is_empty()
        && let Err(e) = deps.rate_limits.give_back(hits).await
    {
        tracing::warn!(error = %e, "could not give back rate-limit hits");
    }
}

fn retry_after(now: crate::clock::Timestamp, until: crate::clock::Timestamp) -> u64 {
    u64::try_from(until.seconds() - now.seconds())
        .unwrap_or(0)
        .max(1)
}

/// Sends a new code to the identifier, replacing any earlier code of that method.
pub async fn send_code(deps: &Deps, app: &App, request: SendRequest) -> Result<SendOutcome, Error> {
    let now = deps.clock.now();
    let channel = channel_of(&request.identifier);
    if let Some(minutes) = request.expiration_minutes
        && !(1..=10).contains(&minutes)
    {
        return Err(Error::InvalidExpirationMinutes);
    }
    if let Identifier::Phone(number) = &request.identifier
        && let Some(allowed) = deps.configs.get_sms_countries(&app.id).await?
        && !allowed.contains(&number.calling_code())
    {
        return Err(Error::InvalidPhoneNumberCountryCode);
    }
    let config = login_config(deps, app, channel, request.login_config_id.as_deref()).await?;
    let login_template = email_template(
        deps,
        app,
        "login_template_id",
        request.login_template_id.as_deref(),
    )
    .await?;
    let signup_template = email_template(
        deps,
        app,
        "signup_template_id",
        request.signup_template_id.as_deref(),
    )
    .await?;

    let recipient = find_recipient(deps, app, &request).await?;
    if let Some(lock) = recipient.known_user().and_then(|u| u.active_lock(now)) {
        return Err(Error::UserLockLimitReached {
            retry_after_seconds: retry_after(now, lock.expires_at),
        });
    }
    let test = deps
        .configs
        .find_test_identifier(&app.id, &request.identifier)
        .await?
        .filter(|t| t.valid_until > now);
    // Counted before anything is written, given back if the code is not handed to delivery.
    // Test identifiers are never delivered, so they use up no send limit.
    let hits = match test {
        Some(_) => Vec::new(),
        None => {
            count_send(
                deps,
                app,
                &request.identifier,
                request.ip_address.as_deref(),
                now,
            )
            .await?
        }
    };
    let prepared = Prepared {
        recipient,
        channel,
        config,
        login_template,
        signup_template,
        test,
        now,
    };
    let outcome = write_and_deliver(deps, app, &request, prepared).await;
    if outcome.is_err() {
        give_back(deps, &hits).await;
    }
    outcome
}

/// What `send_code` has checked before counting the send.
struct Prepared {
    recipient: Recipient,
    channel: Channel,
    config: LoginConfig,
    login_template: Option<Template>,
    signup_template: Option<Template>,
    test: Option<TestIdentifier>,
    now: crate::clock::Timestamp,
}

async fn write_and_deliver(
    deps: &Deps,
    app: &App,
    request: &SendRequest,
    prepared: Prepared,
) -> Result<SendOutcome, Error> {
    let Prepared {
        recipient,
        channel,
        config,
        login_template,
        signup_template,
        test,
        now,
    } = prepared;
    let (user, method_id, user_created) =
        materialize(deps, app, &request.identifier, recipient).await?;
    let template = match (user_created, signup_template, login_template) {
        (true, Some(t), _) | (false, _, Some(t)) => Some(t),
        _ => match &config.template_id {
            Some(id) => deps.configs.get_template(&app.id, id).await?,
            None => None,
        },
    };
    let expiration_minutes = request
        .expiration_minutes
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(config.expiration_minutes);

    let challenge_id = ChallengeId::generate(deps.random.as_ref());
    let (code, code_hash, hash_context) = match &test {
        // A test identifier's code is fixed; its plaintext is not kept, so the message shows a mark.
        Some(t) => (
            "(test code)".to_owned(),
            t.code_hash,
            t.id.as_str().to_owned(),
        ),
        None => {
            let code = random_digits(deps.random.as_ref(), config.code_length);
            let hash = deps.keys.code_hasher.hash(challenge_id.as_str(), &code);
            (code, hash, challenge_id.as_str().to_owned())
        }
    };
    let challenge = Challenge {
        id: challenge_id,
        app_id: app.id.clone(),
        user_id: user.id.clone(),
        method_id: method_id.clone(),
        channel,
        code_hash,
        hash_context,
        config_id: config.id.clone(),
        grant_change_password: config.grant_change_password,
        created_at: now,
        expires_at: now.plus_minutes(i64::from(expiration_minutes)),
        attempts: 0,
        consumed: false,
        test_identifier: test.as_ref().map(|t| t.id.clone()),
    };
    if let Err(error) = deps.challenges.put_challenge(&challenge).await {
        // The write may have landed with its answer lost: a code nobody received must not stay
        // usable. The delete only removes this challenge, never a newer one.
        if let Err(cleanup) = deps
            .challenges
            .delete_challenge(&app.id, &method_id, &challenge.id)
            .await
        {
            tracing::warn!(app_id = %app.id, method_id = %method_id, error = %cleanup, "could not remove a code whose write failed");
        }
        return Err(error.into());
    }

    let message = render(
        channel,
        template.as_ref(),
        request.locale.as_deref(),
        &Placeholders {
            code: &code,
            app_name: &app.name,
            expiration_minutes,
        },
    );
    let delivered = deliver(
        deps,
        &request.identifier,
        &config,
        message,
        code,
        test.as_ref(),
    )
    .await;
    if let Err(error) = delivered {
        // The code never reached anyone: remove it so nothing half-sent stays usable.
        if let Err(cleanup) = deps
            .challenges
            .delete_challenge(&app.id, &method_id, &challenge.id)
            .await
        {
            tracing::error!(app_id = %app.id, method_id = %method_id, error = %cleanup, "could not remove undelivered code");
        }
        return Err(error);
    }
    tracing::info!(
        app_id = %app.id,
        user_id = %user.id,
        method_id = %method_id,
        channel = channel.as_str(),
        to = %request.identifier.redacted(),
        test = test.is_some(),
        "code sent"
    );
    Ok(SendOutcome {
        user_id: user.id,
        method_id,
        user_created,
    })
}

async fn deliver(
    deps: &Deps,
    identifier: &Identifier,
    config: &LoginConfig,
    message: crate::templates::RenderedMessage,
    code: String,
    test: Option<&TestIdentifier>,
) -> Result<(), Error> {
    match identifier {
        Identifier::Phone(number) => {
            let sms = SmsMessage {
                to: number.clone(),
                sender_id: config.sender_id.clone(),
                text: message.text,
                code: CodeForOutbox(code),
            };
            if test.is_some() {
                deps.test_messages.record_sms(&sms);
                return Ok(());
            }
            deps.sms.send_sms(&sms).await.map_err(|e| {
                tracing::warn!(to = %number.redacted(), error = %e, "SMS delivery failed");
                Error::SmsDeliveryFailed
            })
        }
        Identifier::Email(email) => {
            let mail = EmailMessage {
                to: email.clone(),
                from: config
                    .sender_id
                    .clone()
                    .unwrap_or_else(|| deps.settings.default_email_from.clone()),
                subject: message.subject,
                text: message.text,
                html: message.html,
                code: CodeForOutbox(code),
            };
            if test.is_some() {
                deps.test_messages.record_email(&mail);
                return Ok(());
            }
            deps.email.send_email(&mail).await.map_err(|e| {
                tracing::warn!(to = %email.redacted(), error = %e, "email delivery failed");
                Error::EmailDeliveryFailed
            })
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuthenticateRequest {
    pub method_id: String,
    pub code: String,
    pub session_duration_minutes: Option<i64>,
    pub session_token: Option<String>,
    pub session_jwt: Option<String>,
    pub session_custom_claims: Option<Map<String, Value>>,
    pub attributes: SessionAttributes,
}

#[derive(Debug, Clone)]
pub struct AuthenticateOutcome {
    pub user: User,
    pub method_id: MethodId,
    pub session: Option<IssuedSession>,
}

/// Checks a code. Of any number of concurrent calls with the right code at most one succeeds
/// (exactly one, unless the user is locked); none succeeds while the user is locked, and of any
/// number of concurrent wrong codes at most the lock threshold are answered 404 per lock. A code
/// consumed by a request that then fails is given back, so that the retry works.
pub async fn authenticate(
    deps: &Deps,
    app: &App,
    request: AuthenticateRequest,
) -> Result<AuthenticateOutcome, Error> {
    let limits = &deps.settings.limits;
    let duration = request
        .session_duration_minutes
        .map(sessions::validate_duration)
        .transpose()?;
    if let Some(claims) = &request.session_custom_claims {
        sessions::validate_custom_claims(claims)?;
    }
    let not_found = Error::OtpCodeNotFound {
        attempts_remaining: None,
    };
    let Some(method_id) = MethodId::parse(&request.method_id) else {
        return Err(not_found);
    };
    let Some(user) = deps.users.find_by_method(&app.id, &method_id).await? else {
        return Err(not_found);
    };
    // The session to extend must exist and be this user's before the code is spent.
    let extending = if request.session_token.is_some() || request.session_jwt.is_some() {
        let (session, token) = sessions::resolve(
            deps,
            &app.id,
            request.session_token.as_deref(),
            request.session_jwt.as_deref(),
        )
        .await?;
        if session.user_id != user.id {
            return Err(Error::SessionUserMismatch);
        }
        // The claims the extended session would carry must be valid before the code is spent.
        if let Some(patch) = &request.session_custom_claims {
            sessions::validate_custom_claims(&sessions::merged_claims(
                &session.custom_claims,
                patch,
            ))?;
        }
        Some((session, token))
    } else {
        None
    };
    let now = deps.clock.now();
    // A quick refusal on the user as read (which may be stale): the lock is enforced
    // atomically by `record_failure` and `record_success` below.
    if let Some(lock) = user.active_lock(now) {
        return Err(Error::UserLockLimitReached {
            retry_after_seconds: retry_after(now, lock.expires_at),
        });
    }
    let Some(challenge) = deps.challenges.get_challenge(&app.id, &method_id).await? else {
        return Err(not_found);
    };
    if !challenge.is_live(now, limits.max_code_attempts) {
        return Err(Error::UnableToAuthOtpCode);
    }
    // A test identifier's code stops working when the test identifier ends or is deleted.
    let test_valid = match &challenge.test_identifier {
        None => true,
        // One lookup by the method's identifier (a GetItem), not a listing of the app's.
        Some(id) => match user.identifier_of(&method_id) {
            Some(identifier) => deps
                .configs
                .find_test_identifier(&app.id, &identifier)
                .await?
                .is_some_and(|t| &t.id == id && t.valid_until > now),
            None => false,
        },
    };
    let matches = test_valid
        && deps.keys.code_hasher.matches(
            &challenge.hash_context,
            request.code.trim(),
            &challenge.code_hash,
        );

    if !matches {
        let Some(attempts) = deps
            .challenges
            .record_wrong_attempt(
                &app.id,
                &method_id,
                &challenge.id,
                now,
                limits.max_code_attempts,
            )
            .await?
        else {
            return Err(Error::UnableToAuthOtpCode);
        };
        // The user's count is the gate: it counts only while the user is not locked, so of any
        // number of concurrent wrong codes at most `user_lock_threshold` are answered 404 per
        // lock, whatever the (possibly stale) user read above said.
        return match deps
            .users
            .record_failure(
                &app.id,
                &user.id,
                now,
                limits.user_lock_threshold,
                limits.user_lock_seconds,
            )
            .await?
        {
            FailureOutcome::Counted { locked_now, .. } => {
                if locked_now {
                    tracing::warn!(app_id = %app.id, user_id = %user.id, "user locked after too many wrong codes");
                }
                Err(Error::OtpCodeNotFound {
                    attempts_remaining: Some(limits.max_code_attempts.saturating_sub(attempts)),
                })
            }
            FailureOutcome::AlreadyLocked(lock) => Err(Error::UserLockLimitReached {
                retry_after_seconds: retry_after(now, lock.expires_at),
            }),
            FailureOutcome::UserGone => Err(not_found),
        };
    }
    if !deps
        .challenges
        .consume(
            &app.id,
            &method_id,
            &challenge.id,
            now,
            limits.max_code_attempts,
        )
        .await?
    {
        return Err(Error::UnableToAuthOtpCode);
    }
    let outcome = complete(
        deps, app, &user.id, &method_id, &challenge, now, &request, extending, duration,
    )
    .await;
    if let Err(error) = &outcome {
        // Nothing was granted for the spent code: give it back, so that the retry works. The
        // answer stays the original error, whatever happens here.
        match deps
            .challenges
            .restore(&app.id, &method_id, &challenge.id)
            .await
        {
            Ok(restored) => {
                tracing::info!(app_id = %app.id, method_id = %method_id, restored, error = %error, "authenticate failed after the code was consumed");
            }
            Err(e) => {
                tracing::error!(app_id = %app.id, method_id = %method_id, error = %e, original = %error, "could not give back a consumed code after a failed authenticate");
            }
        }
    }
    outcome
}

/// What follows a consumed code: records the success (unless the user is locked) and starts or
/// extends the session. On an error the caller gives the code back.
#[allow(clippy::too_many_arguments)]
async fn complete(
    deps: &Deps,
    app: &App,
    user_id: &UserId,
    method_id: &MethodId,
    challenge: &Challenge,
    now: crate::clock::Timestamp,
    request: &AuthenticateRequest,
    extending: Option<(crate::model::Session, String)>,
    duration: Option<i64>,
) -> Result<AuthenticateOutcome, Error> {
    let user = match deps
        .users
        .record_success(&app.id, user_id, method_id, now)
        .await?
    {
        SuccessOutcome::Recorded(user) => user,
        SuccessOutcome::Locked(lock) => {
            return Err(Error::UserLockLimitReached {
                retry_after_seconds: retry_after(now, lock.expires_at),
            });
        }
        SuccessOutcome::UserGone => return Err(Error::UserNotFound),
    };
    let identifier = user.identifier_of(method_id).ok_or(Error::UserNotFound)?;
    let grant = SessionGrant {
        factor: AuthenticationFactor {
            method_id: method_id.clone(),
            identifier,
            last_authenticated_at: now,
        },
        scopes: if challenge.grant_change_password {
            vec![crate::model::PASSWORD_WRITE_SCOPE.to_owned()]
        } else {
            Vec::new()
        },
        attributes: request.attributes.clone(),
    };
    let session = match (extending, duration) {
        (Some((session, token)), duration) => Some(
            sessions::extend(
                deps,
                session,
                token,
                Some(grant),
                duration,
                request.session_custom_claims.as_ref(),
            )
            .await?,
        ),
        (None, Some(minutes)) => Some(
            sessions::start(
                deps,
                &app.id,
                &user.id,
                grant,
                minutes,
                request.session_custom_claims.clone().unwrap_or_default(),
            )
            .await?,
        ),
        (None, None) => None,
    };
    tracing::info!(app_id = %app.id, user_id = %user.id, method_id = %method_id, "code authenticated");
    Ok(AuthenticateOutcome {
        user,
        method_id: method_id.clone(),
        session,
    })
}
