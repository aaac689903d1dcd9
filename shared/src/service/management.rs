//! The management use cases: apps and their secrets, login configs, templates, test
//! identifiers and SMS countries.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::clock::Timestamp;
use crate::crypto::{constant_time_eq, new_app_secret, sha256};
use crate::error::Error;
use crate::identifiers::{EmailAddress, Identifier, PhoneNumber, PhoneNumberError, Region};
use crate::ids::RequestId;
use crate::ids::{AppId, ConfigId, SecretId, TemplateId, TestIdentifierId};
use crate::model::SmsBudgets;
use crate::model::{App, AppSecret, Channel, LoginConfig, Template, TestIdentifier};
use crate::ports::{AppData, CommitError, CommitToken, Record, Write, WriteError};
use crate::service::commit::Snapshot;
use crate::service::decide::budget;
use crate::service::{Deps, frontend, signing};
use crate::templates::{MAX_SMS_CHARS, Placeholders, substitute};
use crate::text::{check_multi_line, check_single_line};

const MAX_TEST_IDENTIFIER_DAYS: i64 = 90;
/// `last_used_at` is written at most this often per secret, to keep auth to one read.
const SECRET_TOUCH_INTERVAL_SECONDS: i64 = 60;

fn app_not_found() -> Error {
    Error::NotFound("no app has that id".into())
}

/// A new app with the credentials shown only now (the secret) or listed later (the public
/// token).
#[derive(Debug)]
pub struct CreatedApp {
    pub app: App,
    pub secret: String,
    pub secret_id: SecretId,
    pub public_token: String,
}

pub async fn create_app(deps: &Deps, name: &str) -> Result<CreatedApp, Error> {
    let name = name.trim();
    let length = name.chars().count();
    if !(1..=100).contains(&length) {
        return Err(Error::BadRequest("name must be 1 to 100 characters".into()));
    }
    check_single_line("name", name)?;
    let now = deps.clock.now();
    let app = App {
        id: AppId::generate(deps.random.as_ref()),
        name: name.to_owned(),
        created_at: now,
    };
    let (secret, record) = new_secret_record(deps, &app.id, now);
    let signing_key = signing::new_signing_key(deps, &app.id, now)?;
    let frontend = frontend::initial_settings(deps, now);
    deps.apps
        .create_app(&app, &record, std::slice::from_ref(&signing_key), &frontend)
        .await?;
    tracing::info!(app_id = %app.id, "app created");
    let public_token = frontend
        .public_tokens
        .first()
        .map(|t| t.token.clone())
        .unwrap_or_default();
    Ok(CreatedApp {
        app,
        secret,
        secret_id: record.id,
        public_token,
    })
}

fn new_secret_record(deps: &Deps, app_id: &AppId, now: Timestamp) -> (String, AppSecret) {
    let (secret, hash) = new_app_secret(deps.random.as_ref());
    let record = AppSecret {
        id: SecretId::generate(deps.random.as_ref(), now),
        app_id: app_id.clone(),
        hash,
        created_at: now,
        last_used_at: None,
    };
    (secret, record)
}

pub async fn get_app(deps: &Deps, app_id: &str) -> Result<App, Error> {
    let Some(id) = AppId::parse(app_id) else {
        return Err(app_not_found());
    };
    deps.apps.get_app(&id).await?.ok_or_else(app_not_found)
}

pub async fn add_secret(deps: &Deps, app_id: &str) -> Result<(String, SecretId), Error> {
    let app = get_app(deps, app_id).await?;
    let (secret, record) = new_secret_record(deps, &app.id, deps.clock.now());
    deps.apps.add_secret(&record).await?;
    deps.app_cache.invalidate(&app.id);
    tracing::info!(app_id = %app.id, secret_id = %record.id, "app secret added");
    Ok((secret, record.id))
}

pub async fn list_secrets(deps: &Deps, app_id: &str) -> Result<Vec<AppSecret>, Error> {
    let app = get_app(deps, app_id).await?;
    Ok(deps.apps.list_secrets(&app.id).await?)
}

pub async fn delete_secret(deps: &Deps, app_id: &str, secret_id: &str) -> Result<(), Error> {
    let app = get_app(deps, app_id).await?;
    let not_found = || Error::NotFound("the app has no secret with that id".into());
    let secret_id = SecretId::parse(secret_id).ok_or_else(not_found)?;
    // One atomic delete that refuses the last secret: of two concurrent deletes of an app's
    // last two secrets exactly one succeeds.
    match deps.apps.delete_secret(&app.id, &secret_id).await {
        Ok(true) => {}
        Ok(false) => return Err(not_found()),
        Err(WriteError::Conflict(_)) => {
            return Err(Error::Conflict(
                "an app keeps at least one secret: add a new one before deleting this one".into(),
            ));
        }
        Err(WriteError::Store(e)) => return Err(e.into()),
    }
    deps.app_cache.invalidate(&app.id);
    tracing::info!(app_id = %app.id, secret_id = %secret_id, "app secret deleted");
    Ok(())
}

/// An authenticated Login API caller: its app, and the secret whose `last_used_at` is due to
/// be written (at most once a minute per secret and instance), which the caller writes beside
/// the request's own reads.
#[derive(Debug)]
pub struct AuthenticatedApp {
    pub data: Arc<AppData>,
    pub touch: Option<SecretId>,
}

/// Checks Basic credentials: the app exists and the secret's hash matches one of its secrets,
/// compared in constant time against every one. The app's data comes from the per-instance
/// cache (`AppCache`), read from the store when it is not fresh.
pub async fn authenticate_app(
    deps: &Deps,
    app_id: &str,
    secret: &str,
) -> Result<AuthenticatedApp, Error> {
    let id = AppId::parse(app_id).ok_or(Error::Unauthorized)?;
    let now = deps.clock.now();
    let data = deps
        .app_cache
        .get(deps.apps.as_ref(), &id, now)
        .await?
        .ok_or(Error::Unauthorized)?;
    let presented = sha256(secret.as_bytes());
    // Compare against every secret so that timing does not tell which one matched.
    let matched = data
        .secrets
        .iter()
        .fold(None, |found, s| {
            if constant_time_eq(&s.hash, &presented) {
                Some(s)
            } else {
                found
            }
        })
        .ok_or(Error::Unauthorized)?;
    let due = matched
        .last_used_at
        .is_none_or(|t| now.seconds() - t.seconds() >= SECRET_TOUCH_INTERVAL_SECONDS);
    let touch = due.then(|| matched.id.clone());
    Ok(AuthenticatedApp { data, touch })
}

/// Writes a secret's `last_used_at` (bookkeeping: a failure is logged, never answered).
pub async fn touch_secret(deps: &Deps, app_id: &AppId, secret_id: &SecretId) {
    let now = deps.clock.now();
    match deps.apps.touch_secret(app_id, secret_id, now).await {
        Ok(()) => deps.app_cache.note_secret_used(app_id, secret_id, now),
        Err(e) => {
            tracing::warn!(app_id = %app_id, secret_id = %secret_id, error = %e, "could not record a secret's last use")
        }
    }
}

/// The body of create and replace (the Prelude OTP login config fields plus two extensions).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LoginConfigInput {
    pub config_type: String,
    pub channel_type: Channel,
    pub is_default: bool,
    #[serde(default)]
    pub template_id: Option<String>,
    #[serde(default)]
    pub sender_id: Option<String>,
    /// Extension (SMS): the origin of the web page that fills the code in (WebOTP).
    #[serde(default)]
    pub webotp_domain: Option<String>,
    /// Extension (SMS): the Android app's SMS Retriever hash (11 characters).
    #[serde(default)]
    pub android_app_hash: Option<String>,
    #[serde(default)]
    pub grant_change_password: Option<bool>,
    #[serde(default)]
    pub code_length: Option<u32>,
    #[serde(default)]
    pub expiration_minutes: Option<u32>,
}

/// A DNS host name (lower-cased): labels of letters, digits and hyphens, at least two of them.
fn valid_hostname(text: &str) -> Option<String> {
    let host = text.trim().to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let valid = host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    valid.then_some(host)
}

/// An Android SMS Retriever app hash: 11 characters of base64.
fn valid_app_hash(text: &str) -> bool {
    text.len() == 11
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn valid_sms_sender_id(sender: &str) -> bool {
    (1..=11).contains(&sender.len())
        && sender.bytes().all(|b| b.is_ascii_alphanumeric())
        && sender.bytes().any(|b| b.is_ascii_alphabetic())
}

async fn validated_config(
    deps: &Deps,
    app: &App,
    input: LoginConfigInput,
    id: ConfigId,
    created_at: Timestamp,
) -> Result<LoginConfig, Error> {
    if input.config_type != "otp" {
        return Err(Error::BadRequest("config_type must be \"otp\"".into()));
    }
    let template_id = match input.template_id.as_deref() {
        None => None,
        Some(text) => {
            let bad = || {
                Error::BadRequest(format!(
                    "template_id must name a {} template of this app",
                    input.channel_type.as_str()
                ))
            };
            let template_id = TemplateId::parse(text).ok_or_else(bad)?;
            match deps.configs.get_template(&app.id, &template_id).await? {
                Some(t) if t.channel == input.channel_type => Some(template_id),
                _ => return Err(bad()),
            }
        }
    };
    let sender_id = match input.sender_id {
        None => None,
        Some(sender) => match input.channel_type {
            Channel::Sms if valid_sms_sender_id(&sender) => Some(sender),
            Channel::Sms => {
                return Err(Error::BadRequest(
                    "sender_id for sms must be 1 to 11 letters or digits, at least one a letter"
                        .into(),
                ));
            }
            Channel::Email => Some(
                EmailAddress::parse(&sender)
                    .ok_or_else(|| {
                        Error::BadRequest(
                            "sender_id for email must be a valid From email address".into(),
                        )
                    })?
                    .as_str()
                    .to_owned(),
            ),
        },
    };
    let sms_only =
        |field: &str| Error::BadRequest(format!("{field} is only for sms login configs"));
    let webotp_domain = match input.webotp_domain {
        None => None,
        Some(_) if input.channel_type != Channel::Sms => return Err(sms_only("webotp_domain")),
        Some(domain) => Some(valid_hostname(&domain).ok_or_else(|| {
            Error::BadRequest(
                "webotp_domain must be the host name of the page that asks for the code, such as login.example.com"
                    .into(),
            )
        })?),
    };
    let android_app_hash = match input.android_app_hash {
        None => None,
        Some(_) if input.channel_type != Channel::Sms => {
            return Err(sms_only("android_app_hash"));
        }
        Some(hash) if valid_app_hash(&hash) => Some(hash),
        Some(_) => {
            return Err(Error::BadRequest(
                "android_app_hash must be the 11-character hash of the Android app (SMS Retriever API)"
                    .into(),
            ));
        }
    };
    let code_length = input.code_length.unwrap_or(6);
    if !(6..=8).contains(&code_length) {
        return Err(Error::BadRequest("code_length must be 6, 7 or 8".into()));
    }
    let expiration_minutes = input.expiration_minutes.unwrap_or(2);
    if !(1..=10).contains(&expiration_minutes) {
        return Err(Error::BadRequest(
            "expiration_minutes must be between 1 and 10".into(),
        ));
    }
    Ok(LoginConfig {
        id,
        app_id: app.id.clone(),
        channel: input.channel_type,
        is_default: input.is_default,
        template_id,
        sender_id,
        webotp_domain,
        android_app_hash,
        grant_change_password: input.grant_change_password.unwrap_or(false),
        code_length,
        expiration_minutes,
        created_at,
        updated_at: deps.clock.now(),
    })
}

fn config_write_error(error: WriteError) -> Error {
    match error {
        WriteError::Conflict(_) => Error::Conflict(
            "the template was deleted while the config was being written; retry".into(),
        ),
        WriteError::Store(e) => e.into(),
    }
}

pub async fn create_config(
    deps: &Deps,
    app_id: &str,
    input: LoginConfigInput,
) -> Result<LoginConfig, Error> {
    let app = get_app(deps, app_id).await?;
    let now = deps.clock.now();
    let id = ConfigId::generate(deps.random.as_ref(), now);
    let config = validated_config(deps, &app, input, id, now).await?;
    deps.configs
        .put_config(&config)
        .await
        .map_err(config_write_error)?;
    deps.app_cache.invalidate(&app.id);
    tracing::info!(app_id = %app.id, config_id = %config.id, channel = config.channel.as_str(), "login config created");
    Ok(config)
}

fn config_not_found() -> Error {
    Error::NotFound("the app has no login config with that id".into())
}

pub async fn replace_config(
    deps: &Deps,
    app_id: &str,
    config_id: &str,
    input: LoginConfigInput,
) -> Result<LoginConfig, Error> {
    let app = get_app(deps, app_id).await?;
    let id = ConfigId::parse(config_id).ok_or_else(config_not_found)?;
    let existing = deps
        .configs
        .get_config(&app.id, &id)
        .await?
        .ok_or_else(config_not_found)?;
    let config = validated_config(deps, &app, input, id, existing.created_at).await?;
    deps.configs
        .put_config(&config)
        .await
        .map_err(config_write_error)?;
    deps.app_cache.invalidate(&app.id);
    tracing::info!(app_id = %app.id, config_id = %config.id, "login config replaced");
    Ok(config)
}

pub async fn list_configs(deps: &Deps, app_id: &str) -> Result<Vec<LoginConfig>, Error> {
    let app = get_app(deps, app_id).await?;
    Ok(deps.configs.list_configs(&app.id).await?)
}

pub async fn delete_config(deps: &Deps, app_id: &str, config_id: &str) -> Result<(), Error> {
    let app = get_app(deps, app_id).await?;
    let id = ConfigId::parse(config_id).ok_or_else(config_not_found)?;
    if !deps.configs.delete_config(&app.id, &id).await? {
        return Err(config_not_found());
    }
    deps.app_cache.invalidate(&app.id);
    tracing::info!(app_id = %app.id, config_id = %id, "login config deleted");
    Ok(())
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TemplateInput {
    pub channel_type: Channel,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
}

fn valid_locale(locale: &str) -> bool {
    let mut parts = locale.split(['-', '_']);
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    language_ok
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn validated_template(
    app: &App,
    input: TemplateInput,
    id: TemplateId,
    created_at: Timestamp,
    now: Timestamp,
) -> Result<Template, Error> {
    let bad = |m: &str| Err(Error::BadRequest(m.to_owned()));
    let locale = input.locale.unwrap_or_else(|| "en".to_owned());
    if !valid_locale(&locale) {
        return bad("locale must be a language tag such as \"en\" or \"pt-br\"");
    }
    if !input.text.contains("{{code}}") {
        return bad("text must contain the placeholder {{code}}");
    }
    if input.text.chars().count() > 10_000 {
        return bad("text must be at most 10000 characters");
    }
    check_multi_line("text", &input.text)?;
    if let Some(subject) = &input.subject {
        check_single_line("subject", subject)?;
    }
    if let Some(html) = &input.html {
        check_multi_line("html", html)?;
    }
    match input.channel_type {
        Channel::Sms => {
            if input.subject.is_some() || input.html.is_some() {
                return bad("subject and html are only for email templates");
            }
            // The longest the text can get: an 8-digit code and a 2-digit lifetime.
            let longest = substitute(
                &input.text,
                &Placeholders {
                    code: "00000000",
                    app_name: &app.name,
                    expiration_minutes: 10,
                },
            );
            if longest.chars().count() > MAX_SMS_CHARS {
                return Err(Error::BadRequest(format!(
                    "the SMS text is {} characters after substitution; at most {MAX_SMS_CHARS} are allowed",
                    longest.chars().count()
                )));
            }
        }
        Channel::Email => {
            match input.subject.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() && s.chars().count() <= 200 => {}
                _ => return bad("subject is required for email templates (1 to 200 characters)"),
            }
            if input
                .html
                .as_ref()
                .is_some_and(|h| h.chars().count() > 100_000)
            {
                return bad("html must be at most 100000 characters");
            }
        }
    }
    Ok(Template {
        id,
        app_id: app.id.clone(),
        channel: input.channel_type,
        locale: locale.to_ascii_lowercase(),
        subject: input.subject,
        text: input.text,
        html: input.html,
        created_at,
        updated_at: now,
    })
}

fn template_not_found() -> Error {
    Error::NotFound("the app has no template with that id".into())
}

pub async fn create_template(
    deps: &Deps,
    app_id: &str,
    input: TemplateInput,
) -> Result<Template, Error> {
    let app = get_app(deps, app_id).await?;
    let now = deps.clock.now();
    let id = TemplateId::generate(deps.random.as_ref(), now);
    let template = validated_template(&app, input, id, now, now)?;
    deps.configs.put_template(&template).await?;
    deps.app_cache.invalidate(&app.id);
    Ok(template)
}

pub async fn replace_template(
    deps: &Deps,
    app_id: &str,
    template_id: &str,
    input: TemplateInput,
) -> Result<Template, Error> {
    let app = get_app(deps, app_id).await?;
    let id = TemplateId::parse(template_id).ok_or_else(template_not_found)?;
    let existing = deps
        .configs
        .get_template(&app.id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    if existing.channel != input.channel_type {
        let in_use = deps
            .configs
            .list_configs(&app.id)
            .await?
            .iter()
            .any(|c| c.template_id.as_ref() == Some(&id));
        if in_use {
            return Err(Error::Conflict(
                "a login config uses this template; its channel cannot change".into(),
            ));
        }
    }
    let template = validated_template(&app, input, id, existing.created_at, deps.clock.now())?;
    deps.configs.put_template(&template).await?;
    deps.app_cache.invalidate(&app.id);
    Ok(template)
}

pub async fn list_templates(deps: &Deps, app_id: &str) -> Result<Vec<Template>, Error> {
    let app = get_app(deps, app_id).await?;
    Ok(deps.configs.list_templates(&app.id).await?)
}

pub async fn delete_template(deps: &Deps, app_id: &str, template_id: &str) -> Result<(), Error> {
    let app = get_app(deps, app_id).await?;
    let id = TemplateId::parse(template_id).ok_or_else(template_not_found)?;
    match deps.configs.delete_template(&app.id, &id).await {
        Ok(true) => {
            deps.app_cache.invalidate(&app.id);
            Ok(())
        }
        Ok(false) => Err(template_not_found()),
        Err(WriteError::Conflict(_)) => Err(Error::Conflict(
            "a login config uses this template; change or delete the config first".into(),
        )),
        Err(WriteError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TestIdentifierInput {
    pub identifier: String,
    pub code: String,
    pub valid_until: String,
}

pub async fn create_test_identifier(
    deps: &Deps,
    app_id: &str,
    input: TestIdentifierInput,
) -> Result<TestIdentifier, Error> {
    let app = get_app(deps, app_id).await?;
    // A test identifier is one the login API would accept: a number that cannot receive SMS is
    // refused there, so it could never be used.
    let invalid = || {
        Error::BadRequest("identifier must be a valid E.164 phone number or email address".into())
    };
    let identifier = if input.identifier.trim_start().starts_with('+') {
        match PhoneNumber::parse(&input.identifier) {
            Ok(number) => Identifier::Phone(number),
            Err(PhoneNumberError::Invalid) => return Err(invalid()),
            Err(refused @ PhoneNumberError::CannotReceiveSms(_)) => {
                return Err(Error::BadRequest(format!(
                    "identifier: {refused}; the login API refuses such numbers"
                )));
            }
        }
    } else {
        Identifier::Email(EmailAddress::parse(&input.identifier).ok_or_else(invalid)?)
    };
    if !(6..=8).contains(&input.code.len()) || !input.code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadRequest("code must be 6 to 8 digits".into()));
    }
    let now = deps.clock.now();
    let valid_until = Timestamp::parse_rfc3339(&input.valid_until)
        .ok_or_else(|| Error::BadRequest("valid_until must be an RFC 3339 timestamp".into()))?;
    if valid_until <= now || valid_until > now.plus_seconds(MAX_TEST_IDENTIFIER_DAYS * 86_400) {
        return Err(Error::BadRequest(
            "valid_until must be in the future and at most 90 days ahead".into(),
        ));
    }
    let id = TestIdentifierId::generate(deps.random.as_ref(), now);
    let test = TestIdentifier {
        code_hash: deps.keys.code_hasher()?.hash(id.as_str(), &input.code),
        id,
        app_id: app.id.clone(),
        identifier,
        valid_until,
        created_at: now,
    };
    match deps.configs.put_test_identifier(&test).await {
        Ok(()) => {
            tracing::info!(app_id = %app.id, test_identifier_id = %test.id, "test identifier created");
            Ok(test)
        }
        Err(WriteError::Conflict(_)) => Err(Error::Conflict(
            "that identifier is already a test identifier of this app; delete it first".into(),
        )),
        Err(WriteError::Store(e)) => Err(e.into()),
    }
}

pub async fn list_test_identifiers(
    deps: &Deps,
    app_id: &str,
) -> Result<Vec<TestIdentifier>, Error> {
    let app = get_app(deps, app_id).await?;
    Ok(deps.configs.list_test_identifiers(&app.id).await?)
}

pub async fn delete_test_identifier(deps: &Deps, app_id: &str, id: &str) -> Result<(), Error> {
    let app = get_app(deps, app_id).await?;
    let not_found = || Error::NotFound("the app has no test identifier with that id".into());
    let id = TestIdentifierId::parse(id).ok_or_else(not_found)?;
    if !deps.configs.delete_test_identifier(&app.id, &id).await? {
        return Err(not_found());
    }
    Ok(())
}

/// An app's SMS countries as the management API takes them: ISO regions, or (the older shape)
/// country calling codes, each standing for every region that has it, so that a list of calling
/// codes means what it meant before. `None` or an empty list: every region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsCountriesInput {
    Regions(Option<Vec<String>>),
    CallingCodes(Option<Vec<String>>),
}

/// How much of a caller's value an error message repeats.
fn shown(value: &str) -> String {
    let short: String = value.chars().take(16).collect();
    format!("{short:?}")
}

/// The regions the app sends SMS to; `None`: every region the deployment allows.
pub async fn get_sms_countries(deps: &Deps, app_id: &str) -> Result<Option<Vec<Region>>, Error> {
    let app = get_app(deps, app_id).await?;
    Ok(deps.configs.get_sms_countries(&app.id).await?)
}

/// Replaces the app's SMS countries; returns them as stored (regions, sorted, each once).
pub async fn put_sms_countries(
    deps: &Deps,
    app_id: &str,
    input: SmsCountriesInput,
) -> Result<Option<Vec<Region>>, Error> {
    let app = get_app(deps, app_id).await?;
    let regions = match input {
        SmsCountriesInput::Regions(None) | SmsCountriesInput::CallingCodes(None) => None,
        SmsCountriesInput::Regions(Some(list)) | SmsCountriesInput::CallingCodes(Some(list))
            if list.is_empty() =>
        {
            None
        }
        SmsCountriesInput::Regions(Some(list)) => {
            let mut regions = Vec::with_capacity(list.len());
            for text in &list {
                regions.push(Region::parse(text).ok_or_else(|| {
                    Error::BadRequest(format!(
                        "regions must be ISO 3166-1 alpha-2 codes of regions that have phone \
                         numbers, such as \"US\" or \"GB\"; got {}",
                        shown(text)
                    ))
                })?);
            }
            regions.sort();
            regions.dedup();
            Some(regions)
        }
        SmsCountriesInput::CallingCodes(Some(list)) => {
            for code in &list {
                match Region::of_calling_code(code) {
                    Some(regions) if !regions.is_empty() => {}
                    Some(_) => {
                        return Err(Error::BadRequest(format!(
                            "calling_codes: {} is the calling code of no country or region",
                            shown(code)
                        )));
                    }
                    None => {
                        return Err(Error::BadRequest(format!(
                            "calling_codes must be country calling codes such as \"1\" or \"44\"; got {}",
                            shown(code)
                        )));
                    }
                }
            }
            Some(Region::of_calling_codes(&list))
        }
    };
    deps.configs
        .put_sms_countries(&app.id, regions.clone())
        .await?;
    deps.app_cache.invalidate(&app.id);
    Ok(regions)
}

/// The app's SMS budgets as they apply: its own, or the deployment's defaults.
pub async fn get_sms_budgets(deps: &Deps, app_id: &str) -> Result<SmsBudgets, Error> {
    let app = get_app(deps, app_id).await?;
    Ok(deps
        .configs
        .get_sms_budgets(&app.id)
        .await?
        .unwrap_or(deps.settings.limits.sms_budgets))
}

fn validated_budgets(budgets: SmsBudgets) -> Result<SmsBudgets, Error> {
    if !(4..=15).contains(&budgets.prefix_digits) {
        return Err(Error::BadRequest(
            "prefix_digits must be between 4 and 15".into(),
        ));
    }
    if let Some(floor) = budgets.verification_floor
        && (!(1..=100).contains(&floor.min_rate_percent) || floor.min_sent == 0)
    {
        return Err(Error::BadRequest(
            "verification_floor needs min_rate_percent from 1 to 100 and min_sent of at least 1"
                .into(),
        ));
    }
    Ok(budgets)
}

/// Replaces the app's SMS budgets (every field; `null` limits are no limit, a `null` floor
/// none).
pub async fn put_sms_budgets(
    deps: &Deps,
    app_id: &str,
    budgets: SmsBudgets,
) -> Result<SmsBudgets, Error> {
    let app = get_app(deps, app_id).await?;
    let budgets = validated_budgets(budgets)?;
    deps.configs.put_sms_budgets(&app.id, &budgets).await?;
    deps.app_cache.invalidate(&app.id);
    tracing::info!(app_id = %app.id, "SMS budgets replaced");
    Ok(budgets)
}

/// What a region's SMS look like over the verification floor's window (this UTC day and the
/// one before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionStats {
    pub region: String,
    pub sent: u64,
    pub verified: u64,
    /// Paused by the floor: new SMS to the region are refused until it is reset, or the
    /// window moves on.
    pub paused: bool,
}

/// Every region the app sent SMS to over the window, with its counts and whether the floor
/// pauses it.
pub async fn list_sms_regions(deps: &Deps, app_id: &str) -> Result<Vec<RegionStats>, Error> {
    let app = get_app(deps, app_id).await?;
    let budgets = deps
        .configs
        .get_sms_budgets(&app.id)
        .await?
        .unwrap_or(deps.settings.limits.sms_budgets);
    let now = deps.clock.now();
    let (sent, verified) = tokio::join!(
        deps.login.list_tallies(&app.id, budget::REGION_TALLIES),
        deps.login.list_tallies(&app.id, budget::VERIFIED_TALLIES)
    );
    let mut snapshot = Snapshot::new();
    let mut regions = std::collections::BTreeSet::new();
    for tally in sent?.into_iter().chain(verified?) {
        if let Some((_, region, _)) = budget::parse_region_tally(&tally.name) {
            regions.insert(region);
        }
        snapshot.put(Record::Tally(tally));
    }
    Ok(regions
        .into_iter()
        .filter_map(|region| {
            let (sent, verified) = budget::region_rate(&app.id, &region, now, &snapshot);
            (sent > 0 || verified > 0).then(|| RegionStats {
                paused: budgets
                    .verification_floor
                    .is_some_and(|floor| budget::below_floor(&floor, sent, verified)),
                region,
                sent,
                verified,
            })
        })
        .collect())
}

/// Forgets a region's counts over the floor's window (the operator judged it legitimate): SMS
/// to it resume. Its day budget starts again too.
pub async fn reset_sms_region(
    deps: &Deps,
    app_id: &str,
    region: &str,
) -> Result<RegionStats, Error> {
    let app = get_app(deps, app_id).await?;
    let region = region.trim().to_ascii_uppercase();
    if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::NotFound(
            "region must be an ISO 3166-1 alpha-2 code such as US".into(),
        ));
    }
    let writes: Vec<Write> = budget::region_tally_names(&region, deps.clock.now())
        .into_iter()
        .map(|name| Write::DeleteTally {
            app_id: app.id.clone(),
            name,
        })
        .collect();
    let token = CommitToken::derive(RequestId::generate(deps.random.as_ref()).as_str(), 0);
    deps.login
        .commit(&writes, &token)
        .await
        .map_err(|e| match e {
            CommitError::Store(e) => Error::from(e),
            CommitError::Conflict(_) => {
                Error::Internal("an unconditional delete conflicted".into())
            }
        })?;
    tracing::warn!(app_id = %app.id, region = %region, "SMS region reset by the operator");
    Ok(RegionStats {
        region,
        sent: 0,
        verified: 0,
        paused: false,
    })
}
