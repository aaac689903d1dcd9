//! Round trips per request. Drives every route of `shared::api::ROUTES` through
//! `shared::api::handle` over the real adapters (`DynamoStore`, `SnsSms`, `SesEmail`) against moto,
//! with an SDK interceptor on the three clients that records every operation, and fails when an
//! endpoint makes more calls than the table in README.md (between `<!-- round-trips:start -->`
//! and `<!-- round-trips:end -->`) documents, or when a route has no row there.
//!
//! What is counted: SDK operations (executions), per service. Every SDK call in this codebase is
//! awaited before the next one starts, so a request's operations are also the sequential round
//! trips it waits for; the interceptor checks that assumption (it fails the test if two
//! operations of one request are ever in flight at once). The SDK's retries (up to 3 attempts
//! per operation) add round trips that are not operations: attempts are recorded and printed,
//! not held to the budget. The store's optimistic retries after a lost race are operations and
//! would exceed it; nothing races here.
//!
//! The state is realistic: the app has its default SMS config (naming a template) and email
//! config, an SMS country list, users with live codes and sessions. The clock is a `FakeClock`
//! (started at the real time) moved forward by a minute before every Login API request, so that
//! each one also pays the `last_used_at` touch of its app secret (written at most once a minute
//! per secret): the measured numbers are the maxima of the happy path.
//!
//! Skips, with a notice, unless `AWS_ENDPOINT_URL` (SNS and SES; also DynamoDB when
//! `AWS_ENDPOINT_URL_DYNAMODB` is unset) is set: `scripts/with-moto.sh` starts moto and sets both.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{
    ConfigBag, Credentials, Intercept, Region, RuntimeComponents, SharedCredentialsProvider,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use delivery_aws::{SesEmail, SnsSms};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, Dialect, ROUTES, RouteId, handle};
use shared::clock::{Clock, FakeClock, SystemClock};
use shared::crypto::{CodeHasher, ManagementKeyHash};
use shared::ids::UserId;
use shared::jwt::JwtKeys;
use shared::ports::{
    DeliveryError, EmailMessage, EmailSender, LogTestMessages, SmsMessage, SmsSender,
};
use shared::random::OsRandom;
use shared::service::{Deps, Keys, Limits, Settings};
use store_dynamodb::{DynamoStore, create_table};

const SKIP: &str = "skipped: AWS_ENDPOINT_URL is not set (scripts/with-moto.sh starts moto and \
                    sets it and AWS_ENDPOINT_URL_DYNAMODB); round trips were not measured";

const START_MARKER: &str = "<!-- round-trips:start -->";
const END_MARKER: &str = "<!-- round-trips:end -->";

/// The service name the SDK's operation metadata gives DynamoDB (`Metadata::service`).
const DYNAMODB: &str = "DynamoDB";
/// The delivery services: SNS (`Publish`) and SES v2 (`SendEmail`).
const DELIVERY: &[&str] = &["SNS", "SESv2"];

/// An app secret's `last_used_at` is written when it is at least this old (see
/// `service::management::authenticate_app`); the clock moves this far before every Login API
/// request so that every one of them pays the write.
const SECRET_TOUCH_INTERVAL_SECONDS: i64 = 60;

const MANAGEMENT_KEY: &str = "round-trips-management-key";
const PHONE: &str = "+12025550142";
const TEST_PHONE: &str = "+12025550199";
const IP_ADDRESS: &str = "203.0.113.7";

// ---------------------------------------------------------------------------------------------
// The counting interceptor.

#[derive(Debug, Clone)]
struct Call {
    service: String,
    operation: String,
}

/// What the clients did since the last `take`.
#[derive(Debug, Default)]
struct CallLog {
    /// One per operation (execution), in the order they started.
    calls: Vec<Call>,
    /// HTTP requests sent: one per operation unless the SDK retried.
    attempts: usize,
    in_flight: usize,
    /// Two operations were in flight at once: the calls were not all sequential.
    overlapped: bool,
}

impl CallLog {
    fn count(&self, services: &[&str]) -> usize {
        self.calls
            .iter()
            .filter(|c| services.contains(&c.service.as_str()))
            .count()
    }

    fn operations(&self, services: &[&str]) -> Vec<&str> {
        self.calls
            .iter()
            .filter(|c| services.contains(&c.service.as_str()))
            .map(|c| c.operation.as_str())
            .collect()
    }
}

/// An SDK interceptor shared by the DynamoDB, SNS and SES v2 clients: records every operation
/// with its service and name (from the operation's `Metadata` in the config bag).
#[derive(Debug, Clone, Default)]
struct CallRecorder(Arc<Mutex<CallLog>>);

impl CallRecorder {
    fn log(&self) -> MutexGuard<'_, CallLog> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns what was recorded and starts afresh.
    fn take(&self) -> CallLog {
        std::mem::take(&mut *self.log())
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    // Once per execution, like `read_before_execution`, but late enough for the operation's
    // configuration (which holds its `Metadata`) to be in the bag: a client interceptor's
    // `read_before_execution` runs before the operation's runtime plugins are applied.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(m) => (m.service().to_owned(), m.name().to_owned()),
            None => ("unknown".to_owned(), "unknown".to_owned()),
        };
        let mut log = self.log();
        log.calls.push(Call { service, operation });
        log.in_flight += 1;
        if log.in_flight > 1 {
            log.overlapped = true;
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.log().attempts += 1;
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut log = self.log();
        log.in_flight = log.in_flight.saturating_sub(1);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery that also keeps the code, so that the test can authenticate it (SNS and SES in moto
// keep messages only where reading them back is slow).

#[derive(Debug, Default)]
struct SentCodes(Mutex<HashMap<String, String>>);

impl SentCodes {
    fn put(&self, to: &str, code: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(to.to_owned(), code.to_owned());
    }

    fn last_to(&self, to: &str) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(to)
            .cloned()
            .unwrap_or_else(|| panic!("no code was delivered to {to}"))
    }
}

struct Keeping<S> {
    inner: S,
    codes: Arc<SentCodes>,
}

#[async_trait]
impl SmsSender for Keeping<SnsSms> {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        self.inner.send_sms(message).await?;
        self.codes.put(message.to.as_str(), &message.code.0);
        Ok(())
    }
}

#[async_trait]
impl EmailSender for Keeping<SesEmail> {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.inner.send_email(message).await?;
        self.codes.put(message.to.as_str(), &message.code.0);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The README's table.

/// A measured request: a route, in a case (`""` for the route's one row).
type Case = (RouteId, String);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Budget {
    dynamodb: usize,
    delivery: usize,
}

/// `` `METHOD /path` `` or `` `METHOD /path` (case) `` → the route and the case.
fn parse_endpoint(cell: &str) -> Result<Case, String> {
    let rest = cell
        .trim()
        .strip_prefix('`')
        .ok_or_else(|| format!("the endpoint {cell:?} does not start with `METHOD /path`"))?;
    let (endpoint, case) = rest
        .split_once('`')
        .ok_or_else(|| format!("the endpoint {cell:?} has no closing backtick"))?;
    let (method, path) = endpoint
        .split_once(' ')
        .ok_or_else(|| format!("the endpoint {cell:?} is not `METHOD /path`"))?;
    let route = ROUTES
        .iter()
        .find(|r| r.method == method.trim() && r.path == path.trim())
        .ok_or_else(|| format!("{method} {path} is not a route of shared::api::ROUTES"))?;
    let case = case.trim();
    let case = if case.is_empty() {
        String::new()
    } else {
        case.strip_prefix('(')
            .and_then(|c| c.strip_suffix(')'))
            .ok_or_else(|| format!("the case after {cell:?} must be in parentheses"))?
            .trim()
            .to_owned()
    };
    Ok((route.id, case))
}

/// The leading number of a cell (`3`, `1 (SNS)`).
fn leading_number(cell: &str) -> Result<usize, String> {
    let digits: String = cell
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .map_err(|_| format!("{cell:?} does not start with a number"))
}

/// The table between the markers: endpoint, DynamoDB calls, delivery calls, what they are.
fn parse_budgets(readme: &str) -> Result<BTreeMap<String, (Case, Budget)>, String> {
    let start = readme
        .find(START_MARKER)
        .ok_or_else(|| format!("README.md has no {START_MARKER}"))?;
    let end = readme
        .find(END_MARKER)
        .filter(|&end| end > start)
        .ok_or_else(|| format!("README.md has no {END_MARKER} after {START_MARKER}"))?;
    let mut budgets = BTreeMap::new();
    let mut header_seen = false;
    for line in readme[start + START_MARKER.len()..end].lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))) {
            continue; // the separator row
        }
        if !header_seen {
            header_seen = true; // the header row
            continue;
        }
        if cells.len() < 4 {
            return Err(format!("a row needs 4 cells: {line}"));
        }
        let case = parse_endpoint(cells[0])?;
        let budget = Budget {
            dynamodb: leading_number(cells[1])?,
            delivery: leading_number(cells[2])?,
        };
        let key = row_key(&case);
        if budgets.insert(key.clone(), (case, budget)).is_some() {
            return Err(format!("two rows for {key}"));
        }
    }
    Ok(budgets)
}

fn row_key((route, case): &Case) -> String {
    let r = route.route();
    if case.is_empty() {
        format!("{} {}", r.method, r.path)
    } else {
        format!("{} {} ({case})", r.method, r.path)
    }
}

/// The endpoint cell of a row: `` `METHOD /path` `` and the case, if any, in parentheses.
fn endpoint_cell((route, case): &Case) -> String {
    let r = route.route();
    if case.is_empty() {
        format!("`{} {}`", r.method, r.path)
    } else {
        format!("`{} {}` ({case})", r.method, r.path)
    }
}

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn readme_table_has_a_row_for_every_route() {
    let budgets = parse_budgets(&readme()).unwrap_or_else(|e| panic!("{e}"));
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|r| !budgets.values().any(|((id, _), _)| *id == r.id))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's round-trip table has no row for: {missing:?}"
    );
}

#[test]
fn table_rows_name_a_route_a_case_and_two_numbers() {
    let readme = "intro\n<!-- round-trips:start -->\n\
        | endpoint | DynamoDB calls | delivery calls | what |\n|---|---|---|---|\n\
        | `GET /v1/users/{user_id}` | 4 | 0 | auth (3); `GetItem` user |\n\
        | `POST /v1/otps/sms/send` (existing user) | 12 | 1 (SNS) | ... |\n\
        <!-- round-trips:end -->\n| `GET /nope` | x | y | outside |\n";
    let budgets = parse_budgets(readme).expect("parses");
    assert_eq!(budgets.len(), 2);
    let (case, budget) = &budgets["POST /v1/otps/sms/send (existing user)"];
    assert_eq!(case, &(RouteId::SmsSend, "existing user".to_owned()));
    assert_eq!(
        budget,
        &Budget {
            dynamodb: 12,
            delivery: 1
        }
    );
    assert_eq!(
        budgets["GET /v1/users/{user_id}"].1,
        Budget {
            dynamodb: 4,
            delivery: 0
        }
    );

    let table = |row: &str| {
        format!("{START_MARKER}\n| endpoint | a | b | c |\n|---|---|---|---|\n{row}\n{END_MARKER}")
    };
    for bad in [
        "| `GET /v1/nothing` | 1 | 0 | no such route |",
        "| GET /v1/users/{user_id} | 1 | 0 | no backticks |",
        "| `GET /v1/users/{user_id}` | many | 0 | not a number |",
        "| `GET /v1/users/{user_id}` existing | 1 | 0 | case without parentheses |",
        "| `GET /v1/users/{user_id}` | 1 | 0 |",
    ] {
        assert!(parse_budgets(&table(bad)).is_err(), "{bad}");
    }
    assert!(parse_budgets("no markers").is_err());
}

// ---------------------------------------------------------------------------------------------
// The world the requests run in.

fn sdk_config(endpoint: &str) -> SdkConfig {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test",
            "test",
            None,
            None,
            "round-trips",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// The endpoints: (DynamoDB, SNS and SES), or `None` (skip).
fn endpoints() -> Option<(String, String)> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let delivery = set("AWS_ENDPOINT_URL")?;
    let dynamodb = set("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|| delivery.clone());
    Some((dynamodb, delivery))
}

fn nonce() -> String {
    UserId::generate(&OsRandom).as_str()["user-".len()..].replace('-', "")
}

struct Measurement {
    case: Case,
    log: CallLog,
}

struct World {
    deps: Deps,
    recorder: CallRecorder,
    clock: Arc<FakeClock>,
    codes: Arc<SentCodes>,
    app: Option<(String, String)>,
    measurements: Vec<Measurement>,
}

impl World {
    /// A fresh table, a verified SES domain, and deps on clients that report to one recorder.
    async fn new(dynamodb_endpoint: &str, delivery_endpoint: &str) -> World {
        let recorder = CallRecorder::default();

        // The store's client as the service builds it, plus the recorder.
        let dynamodb = DynamoStore::client(&sdk_config(dynamodb_endpoint));
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            dynamodb
                .config()
                .to_builder()
                .interceptor(recorder.clone())
                .build(),
        );
        let table = format!("otp-round-trips-{}", nonce());
        create_table(&dynamodb, &table).await.expect("create_table");

        // The senders' clients as `from_sdk_config` builds them, plus the recorder.
        let delivery = sdk_config(delivery_endpoint);
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&delivery)
                .retry_config(
                    aws_sdk_sns::config::retry::RetryConfig::standard()
                        .with_max_attempts(delivery_aws::MAX_ATTEMPTS),
                )
                .interceptor(recorder.clone())
                .build(),
        );
        let ses = aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::config::Builder::from(&delivery)
                .retry_config(
                    aws_sdk_sesv2::config::retry::RetryConfig::standard()
                        .with_max_attempts(delivery_aws::MAX_ATTEMPTS),
                )
                .interceptor(recorder.clone())
                .build(),
        );
        // moto refuses mail from an unverified identity.
        let domain = format!("d{}.example.com", nonce());
        ses.create_email_identity()
            .email_identity(&domain)
            .send()
            .await
            .expect("CreateEmailIdentity");

        let store = Arc::new(DynamoStore::new(dynamodb, table));
        let codes = Arc::new(SentCodes::default());
        let clock = Arc::new(FakeClock::new(SystemClock.now()));
        let deps = Deps {
            apps: store.clone(),
            configs: store.clone(),
            users: store.clone(),
            challenges: store.clone(),
            sessions: store.clone(),
            rate_limits: store,
            sms: Arc::new(Keeping {
                inner: SnsSms::new(sns),
                codes: codes.clone(),
            }),
            email: Arc::new(Keeping {
                inner: SesEmail::new(ses, None),
                codes: codes.clone(),
            }),
            test_messages: Arc::new(LogTestMessages),
            clock: clock.clone(),
            random: Arc::new(OsRandom),
            keys: Arc::new(Keys {
                management_key: ManagementKeyHash::of_key(MANAGEMENT_KEY),
                code_hasher: CodeHasher::new(&[7u8; 32]).expect("code key"),
                jwt: JwtKeys::generate().expect("JWT keys"),
            }),
            settings: Settings {
                public_base_url: "http://127.0.0.1:3000".to_owned(),
                default_email_from: format!("no-reply@{domain}"),
                // The deployment defaults: every send below stays within them.
                limits: Limits::default(),
            },
        };
        recorder.take();
        World {
            deps,
            recorder,
            clock,
            codes,
            app: None,
            measurements: Vec::new(),
        }
    }

    fn app_id(&self) -> String {
        self.app
            .as_ref()
            .expect("the app is created first")
            .0
            .clone()
    }

    /// One request, with the credentials its route's dialect takes; asserts a 2xx answer.
    async fn call(
        &self,
        route: RouteId,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Value {
        let r = route.route();
        let mut headers = HeaderMap::new();
        let authorization = match r.dialect {
            Dialect::Management => Some(format!("Bearer {MANAGEMENT_KEY}")),
            Dialect::Login => {
                let (app_id, secret) = self.app.as_ref().expect("the app is created first");
                Some(format!(
                    "Basic {}",
                    STANDARD.encode(format!("{app_id}:{secret}"))
                ))
            }
            Dialect::Public => None,
        };
        if let Some(value) = authorization {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&value).expect("header value"),
            );
        }
        let bytes = match body {
            Some(body) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                serde_json::to_vec(&body).expect("JSON body")
            }
            None => Vec::new(),
        };
        let owned = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let request = ApiRequest {
            method: Method::from_bytes(r.method.as_bytes()).expect("method"),
            path_params: owned(params),
            query: owned(query),
            headers,
            body: bytes,
            base_url: None,
        };
        let response = handle(&self.deps, route, request).await;
        let reply = response.json();
        assert!(
            response.status.is_success(),
            "{} {} answered {}: {reply}",
            r.method,
            r.path,
            response.status
        );
        if response.status == StatusCode::NO_CONTENT {
            Value::Null
        } else {
            reply
        }
    }

    /// `call`, measured: records the SDK operations this one request makes.
    async fn measure(
        &mut self,
        route: RouteId,
        case: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Value {
        if route.route().dialect == Dialect::Login {
            self.clock.advance_seconds(SECRET_TOUCH_INTERVAL_SECONDS);
        }
        self.recorder.take();
        let reply = self.call(route, params, query, body).await;
        let log = self.recorder.take();
        self.measurements.push(Measurement {
            case: (route, case.to_owned()),
            log,
        });
        reply
    }
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {value}"))
        .to_owned()
}

/// Every route once (a few twice, in a second case), in a realistic state.
async fn drive_every_route(w: &mut World) {
    use RouteId::*;
    let none: &[(&str, &str)] = &[];

    // Management API: apps and secrets.
    let created = w
        .measure(CreateApp, "", none, none, Some(json!({"name": "Acme"})))
        .await;
    w.app = Some((text(&created, "/app/id"), text(&created, "/secret")));
    let app_id = w.app_id();
    let app = [("app_id", app_id.as_str())];
    w.measure(GetApp, "", &app, none, None).await;
    let second = w.measure(CreateSecret, "", &app, none, None).await;
    let secret_id = text(&second, "/secret_id");
    w.measure(ListSecrets, "", &app, none, None).await;
    w.measure(
        DeleteSecret,
        "",
        &[("app_id", &app_id), ("secret_id", &secret_id)],
        none,
        None,
    )
    .await;

    // Templates and login configs: the default SMS config names a template.
    let sms_template =
        json!({"channel_type": "sms", "locale": "en", "text": "Your {{app_name}} code: {{code}}"});
    let t = w
        .measure(CreateTemplate, "", &app, none, Some(sms_template.clone()))
        .await;
    let template_id = text(&t, "/template/id");
    w.measure(ListTemplates, "", &app, none, None).await;
    w.measure(
        ReplaceTemplate,
        "",
        &[("app_id", &app_id), ("template_id", &template_id)],
        none,
        Some(sms_template),
    )
    .await;
    let sms_config = json!({"config_type": "otp", "channel_type": "sms", "is_default": true,
        "template_id": template_id, "expiration_minutes": 10});
    let c = w
        .measure(CreateLoginConfig, "", &app, none, Some(sms_config.clone()))
        .await;
    let config_id = text(&c, "/login_config/id");
    w.call(
        CreateLoginConfig,
        &app,
        none,
        Some(json!({"config_type": "otp", "channel_type": "email", "is_default": true, "expiration_minutes": 10})),
    )
    .await;
    w.measure(ListLoginConfigs, "", &app, none, None).await;
    w.measure(
        ReplaceLoginConfig,
        "",
        &[("app_id", &app_id), ("config_id", &config_id)],
        none,
        Some(sms_config),
    )
    .await;
    let extra = w
        .call(
            CreateLoginConfig,
            &app,
            none,
            Some(json!({"config_type": "otp", "channel_type": "sms", "is_default": false})),
        )
        .await;
    let extra_config = text(&extra, "/login_config/id");
    w.measure(
        DeleteLoginConfig,
        "",
        &[("app_id", &app_id), ("config_id", &extra_config)],
        none,
        None,
    )
    .await;
    let unused = w
        .call(
            CreateTemplate,
            &app,
            none,
            Some(json!({"channel_type": "email", "subject": "Code", "text": "Code {{code}}"})),
        )
        .await;
    let unused_template = text(&unused, "/template/id");
    w.measure(
        DeleteTemplate,
        "",
        &[("app_id", &app_id), ("template_id", &unused_template)],
        none,
        None,
    )
    .await;

    // Test identifiers and SMS countries.
    let valid_until = w.clock.now().plus_seconds(86_400).to_rfc3339();
    let test = w
        .measure(
            CreateTestIdentifier,
            "",
            &app,
            none,
            Some(json!({"identifier": TEST_PHONE, "code": "123456", "valid_until": valid_until})),
        )
        .await;
    let test_id = text(&test, "/test_identifier/id");
    w.measure(ListTestIdentifiers, "", &app, none, None).await;
    w.measure(
        DeleteTestIdentifier,
        "",
        &[("app_id", &app_id), ("id", &test_id)],
        none,
        None,
    )
    .await;
    w.measure(
        PutSmsCountries,
        "",
        &app,
        none,
        Some(json!({"calling_codes": ["1", "44"]})),
    )
    .await;
    w.measure(GetSmsCountries, "", &app, none, None).await;

    // Login API: codes by SMS, a session.
    let attributes = json!({"ip_address": IP_ADDRESS, "user_agent": "round-trips"});
    let sms = json!({"phone_number": PHONE, "attributes": attributes});
    let sent = w
        .measure(SmsLoginOrCreate, "", none, none, Some(sms.clone()))
        .await;
    assert_eq!(sent["user_created"], json!(true), "{sent}");
    let user_id = text(&sent, "/user_id");
    let phone_id = text(&sent, "/phone_id");
    let again = w
        .measure(
            SmsLoginOrCreate,
            "existing user",
            none,
            none,
            Some(sms.clone()),
        )
        .await;
    assert_eq!(again["user_created"], json!(false), "{again}");
    let authenticated = w
        .measure(
            OtpAuthenticate,
            "",
            none,
            none,
            Some(
                json!({"method_id": phone_id, "code": w.codes.last_to(PHONE),
                "session_duration_minutes": 60, "attributes": attributes}),
            ),
        )
        .await;
    let token = text(&authenticated, "/session_token");
    w.measure(
        SessionsAuthenticate,
        "",
        none,
        none,
        Some(json!({"session_token": token})),
    )
    .await;
    w.measure(SessionsList, "", none, &[("user_id", &user_id)], None)
        .await;
    w.measure(SmsSend, "", none, none, Some(sms)).await;

    // Codes by email: a second user with a session and a live code, and an email added to the
    // first user.
    let email = format!("ann.{}@example.com", nonce());
    let sent = w
        .measure(
            EmailLoginOrCreate,
            "",
            none,
            none,
            Some(json!({"email": email, "attributes": attributes})),
        )
        .await;
    let email_user = text(&sent, "/user_id");
    let email_id = text(&sent, "/email_id");
    w.call(
        OtpAuthenticate,
        none,
        none,
        Some(
            json!({"method_id": email_id, "code": w.codes.last_to(&email),
            "session_duration_minutes": 60}),
        ),
    )
    .await;
    w.measure(
        EmailSend,
        "",
        none,
        none,
        Some(json!({"email": email, "attributes": attributes})),
    )
    .await;
    let added = format!("bob.{}@example.com", nonce());
    w.measure(
        EmailSend,
        "new email for a user_id",
        none,
        none,
        Some(json!({"email": added, "user_id": user_id, "attributes": attributes})),
    )
    .await;

    // Sessions and users.
    w.measure(
        SessionsRevoke,
        "",
        none,
        none,
        Some(json!({"session_token": token})),
    )
    .await;
    w.measure(SessionsJwks, "", &app, none, None).await;
    w.measure(UsersGet, "", &[("user_id", &user_id)], none, None)
        .await;
    w.measure(UsersDelete, "", &[("user_id", &email_user)], none, None)
        .await;
}

/// The measured table, in the README's form (with the operations in order as the note).
fn measured_table(measurements: &[Measurement]) -> String {
    let mut out = String::from(
        "| endpoint | DynamoDB calls | delivery calls | what the calls are |\n|---|---|---|---|\n",
    );
    for m in measurements {
        let delivery = m.log.operations(DELIVERY);
        let delivery_cell = match delivery.as_slice() {
            [] => "0".to_owned(),
            ops => format!("{} ({})", ops.len(), ops.join(", ")),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            endpoint_cell(&m.case),
            m.log.count(&[DYNAMODB]),
            delivery_cell,
            m.log.operations(&[DYNAMODB]).join(", "),
        );
    }
    out
}

#[tokio::test]
async fn every_endpoint_stays_within_its_documented_round_trips() {
    let Some((dynamodb, delivery)) = endpoints() else {
        eprintln!("{SKIP}");
        return;
    };
    let mut w = World::new(&dynamodb, &delivery).await;
    drive_every_route(&mut w).await;
    let table = measured_table(&w.measurements);
    println!("Measured (README.md's table, with the operations in order):\n{table}");
    let budgets = parse_budgets(&readme()).unwrap_or_else(|e| panic!("{e}"));

    let mut problems = Vec::new();
    for route in ROUTES {
        if !w.measurements.iter().any(|m| m.case.0 == route.id) {
            problems.push(format!(
                "{} {} was not measured: drive it in drive_every_route",
                route.method, route.path
            ));
        }
    }
    for m in &w.measurements {
        let key = row_key(&m.case);
        let dynamodb = m.log.count(&[DYNAMODB]);
        let delivery = m.log.count(DELIVERY);
        let unknown = m.calls_outside(&[DYNAMODB, "SNS", "SESv2"]);
        if !unknown.is_empty() {
            problems.push(format!("{key}: calls to unexpected services: {unknown:?}"));
        }
        if m.log.overlapped {
            problems.push(format!(
                "{key}: two SDK calls were in flight at once; the table counts calls as \
                 sequential round trips, which no longer holds: count the longest chain instead"
            ));
        }
        if m.log.attempts > m.log.calls.len() {
            println!(
                "note: {key}: {} attempts for {} operations (SDK retries)",
                m.log.attempts,
                m.log.calls.len()
            );
        }
        let Some((_, budget)) = budgets.get(&key) else {
            problems.push(format!(
                "{key}: no row in README.md's round-trip table (measured {dynamodb} DynamoDB, \
                 {delivery} delivery calls)"
            ));
            continue;
        };
        if dynamodb > budget.dynamodb {
            problems.push(format!(
                "{key}: {dynamodb} DynamoDB calls ({}), {} documented",
                m.log.operations(&[DYNAMODB]).join(", "),
                budget.dynamodb
            ));
        }
        if delivery > budget.delivery {
            problems.push(format!(
                "{key}: {delivery} delivery calls ({}), {} documented",
                m.log.operations(DELIVERY).join(", "),
                budget.delivery
            ));
        }
        if dynamodb < budget.dynamodb || delivery < budget.delivery {
            println!(
                "note: {key}: fewer calls than documented ({dynamodb} DynamoDB, {delivery} \
                 delivery; {} and {} documented): the README can be tightened",
                budget.dynamodb, budget.delivery
            );
        }
    }
    let measured: Vec<String> = w.measurements.iter().map(|m| row_key(&m.case)).collect();
    for (key, _) in budgets.values() {
        let key = row_key(key);
        if !measured.contains(&key) {
            problems.push(format!(
                "README.md's round-trip table has a row for {key}, which this test does not measure"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "round trips beyond README.md's table:\n  {}",
        problems.join("\n  ")
    );
}

impl Measurement {
    fn calls_outside(&self, services: &[&str]) -> Vec<String> {
        self.log
            .calls
            .iter()
            .filter(|c| !services.contains(&c.service.as_str()))
            .map(|c| format!("{} {}", c.service, c.operation))
            .collect()
    }
}
