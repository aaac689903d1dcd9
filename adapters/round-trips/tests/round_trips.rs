//! Round trips per request. Drives every route of `shared::api::ROUTES` through
//! `shared::api::handle` over the real adapters (`DynamoStore`, `SnsSms`, `SesEmail`) against moto,
//! with an SDK interceptor on the three clients that records every operation, and fails when an
//! endpoint's measured rounds or calls differ from the table in README.md (between
//! `<!-- round-trips:start -->` and `<!-- round-trips:end -->`), when a route has no row there,
//! when a request of the login path takes more rounds than the goals below, or when a function
//! calls an AWS action that its policy in template.yaml does not grant.
//!
//! What is counted, per request: DynamoDB *calls* (SDK operations) and DynamoDB *rounds*: the
//! longest chain of calls each of which started after the previous one ended, i.e. the
//! sequential waits of the request (calls in flight together share a round; a call's round is
//! one more than the deepest call that ended before it started); and delivery calls (SNS,
//! SES v2). The SDK's retries add attempts, not operations; nothing races here.
//!
//! Each Login API request is measured twice. *Cold*: the function's per-instance app cache is
//! empty (its first request, or the first after `APP_CACHE_SECONDS`) and the app secret's
//! `last_used_at` is due to be written (at most once a minute per secret and instance). *Warm*:
//! the app is cached and no write of `last_used_at` is due, as for most requests of a warm
//! function. Management requests do not use the cache: both are the same. Send limits are
//! relaxed (no cooldown) so that sends can repeat; their counters are read and written as usual.
//!
//! Skips, with a notice, unless `AWS_ENDPOINT_URL` (SNS and SES; also DynamoDB when
//! `AWS_ENDPOINT_URL_DYNAMODB` is unset) is set; fails instead when `CI` is set.
//! `scripts/with-moto.sh` starts moto and sets both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use delivery_aws::{SesEmail, SnsSms};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, Dialect, ROUTES, RouteId, handle};
use shared::clock::{Clock, FakeClock, SystemClock};
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::ids::{AppId, UserId};
use shared::ports::{
    DeliveryError, EmailMessage, EmailSender, LogTestMessages, SmsMessage, SmsSender,
};
use shared::random::OsRandom;
use shared::service::{AppCache, Deps, Keys, Limits, SendLimits, Settings};
use store_dynamodb::{DynamoStore, create_table};
use yaml_rust2::{Yaml, YamlLoader};

const SKIP: &str = "skipped: AWS_ENDPOINT_URL is not set (scripts/with-moto.sh starts moto and \
                    sets it and AWS_ENDPOINT_URL_DYNAMODB); round trips were not measured";

const START_MARKER: &str = "<!-- round-trips:start -->";
const END_MARKER: &str = "<!-- round-trips:end -->";

/// The service name the SDK's operation metadata gives DynamoDB (`Metadata::service`).
const DYNAMODB: &str = "DynamoDB";
/// The delivery services: SNS (`Publish`) and SES v2 (`SendEmail`).
const DELIVERY: &[&str] = &["SNS", "SESv2"];

/// An app secret's `last_used_at` is written when it is at least this old (see
/// `service::management::authenticate_app`): a cold measurement moves the clock this far first.
const SECRET_TOUCH_INTERVAL_SECONDS: i64 = 60;

/// The goals of the login path (the team's issue "one read, one decision, one write"): warm
/// DynamoDB rounds at most.
const GOALS: &[(RouteId, &str, usize)] = &[
    (RouteId::SmsLoginOrCreate, "new user", 2),
    (RouteId::SmsLoginOrCreate, "existing user", 2),
    (RouteId::EmailLoginOrCreate, "new user", 2),
    (RouteId::OtpAuthenticate, "right code, new session", 2),
    (RouteId::OtpAuthenticate, "wrong code", 2),
    (RouteId::SessionsAuthenticate, "session_token", 1),
];

const MANAGEMENT_KEY: &str = "round-trips-management-key";
const IP_ADDRESS: &str = "203.0.113.7";
/// The web page the frontend API is called from (the app authorizes it).
const WEB_ORIGIN: &str = "https://app.example.com";
const TEST_PHONE: &str = "+12025550199";

// ---------------------------------------------------------------------------------------------
// The counting interceptor.

#[derive(Debug, Clone)]
struct Call {
    service: String,
    operation: String,
    /// The IAM actions the call needs (for a transaction: those of its items).
    actions: BTreeSet<String>,
    /// The wave of DynamoDB calls it belongs to (1-based; 0 for other services).
    round: usize,
}

/// What the clients did since the last `take`.
#[derive(Debug, Default)]
struct CallLog {
    /// One per operation (execution), in the order they started.
    calls: Vec<Call>,
    /// HTTP requests sent: one per operation unless the SDK retried.
    attempts: usize,
    /// The deepest round of the DynamoDB calls that have ended.
    ended_depth: usize,
    /// DynamoDB rounds: the longest chain of DynamoDB calls each started after the one before
    /// it ended (calls in flight together share a round).
    dynamodb_rounds: usize,
}

/// Which call of the log an execution is, kept in its config bag between the hooks.
#[derive(Debug, Clone, Copy)]
struct CallIndex(usize);

impl Storable for CallIndex {
    type Storer = StoreReplace<Self>;
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

    fn actions(&self) -> BTreeSet<String> {
        self.calls
            .iter()
            .flat_map(|c| c.actions.iter().cloned())
            .collect()
    }
}

/// The IAM actions an operation needs: `dynamodb:<Operation>`, except that a transaction needs
/// those of its items (`PutItem`, `UpdateItem`, `DeleteItem`, `ConditionCheckItem`).
fn actions_of(
    service: &str,
    operation: &str,
    input: Option<&TransactWriteItemsInput>,
) -> BTreeSet<String> {
    let prefix = match service {
        DYNAMODB => "dynamodb",
        "SNS" => "sns",
        "SESv2" => "ses",
        other => other,
    };
    match input {
        Some(transaction) => transaction
            .transact_items()
            .iter()
            .map(|item| {
                let action = if item.put().is_some() {
                    "PutItem"
                } else if item.update().is_some() {
                    "UpdateItem"
                } else if item.delete().is_some() {
                    "DeleteItem"
                } else {
                    "ConditionCheckItem"
                };
                format!("dynamodb:{action}")
            })
            .collect(),
        // IAM has no action of its own for a read transaction: it needs `GetItem`.
        None if operation == "TransactGetItems" => BTreeSet::from(["dynamodb:GetItem".to_owned()]),
        None => BTreeSet::from([format!("{prefix}:{operation}")]),
    }
}

/// An SDK interceptor shared by the DynamoDB, SNS and SES v2 clients: records every operation
/// with its service, name and IAM actions, and the waves of DynamoDB calls.
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

fn metadata(cfg: &ConfigBag) -> (String, String) {
    match cfg.load::<Metadata>() {
        Some(m) => (m.service().to_owned(), m.name().to_owned()),
        None => ("unknown".to_owned(), "unknown".to_owned()),
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
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = metadata(cfg);
        let transaction = context.input().downcast_ref::<TransactWriteItemsInput>();
        let actions = actions_of(&service, &operation, transaction);
        let mut log = self.log();
        let mut round = 0;
        if service == DYNAMODB {
            // One round deeper than the deepest call that ended before this one started.
            round = log.ended_depth + 1;
            log.dynamodb_rounds = log.dynamodb_rounds.max(round);
        }
        cfg.interceptor_state()
            .store_put(CallIndex(log.calls.len()));
        log.calls.push(Call {
            service,
            operation,
            actions,
            round,
        });
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
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(CallIndex(index)) = cfg.load::<CallIndex>().copied() {
            let mut log = self.log();
            let round = log.calls.get(index).map_or(0, |c| c.round);
            log.ended_depth = log.ended_depth.max(round);
        }
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

/// One row's numbers: DynamoDB rounds and calls, warm and cold, and delivery calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Row {
    warm_rounds: usize,
    warm_calls: usize,
    cold_rounds: usize,
    cold_calls: usize,
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

/// The table between the markers: endpoint, warm rounds, warm calls, cold rounds, cold calls,
/// delivery calls, what the calls are.
fn parse_rows(readme: &str) -> Result<BTreeMap<String, (Case, Row)>, String> {
    let start = readme
        .find(START_MARKER)
        .ok_or_else(|| format!("README.md has no {START_MARKER}"))?;
    let end = readme
        .find(END_MARKER)
        .filter(|&end| end > start)
        .ok_or_else(|| format!("README.md has no {END_MARKER} after {START_MARKER}"))?;
    let mut rows = BTreeMap::new();
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
        if cells.len() < 7 {
            return Err(format!("a row needs 7 cells: {line}"));
        }
        let case = parse_endpoint(cells[0])?;
        let row = Row {
            warm_rounds: leading_number(cells[1])?,
            warm_calls: leading_number(cells[2])?,
            cold_rounds: leading_number(cells[3])?,
            cold_calls: leading_number(cells[4])?,
            delivery: leading_number(cells[5])?,
        };
        let key = row_key(&case);
        if rows.insert(key.clone(), (case, row)).is_some() {
            return Err(format!("two rows for {key}"));
        }
    }
    Ok(rows)
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

fn workspace_file(name: &str) -> String {
    let path = format!("{}/../../{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn readme_table_has_a_row_for_every_route() {
    let rows = parse_rows(&workspace_file("README.md")).unwrap_or_else(|e| panic!("{e}"));
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|r| !rows.values().any(|((id, _), _)| *id == r.id))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's round-trip table has no row for: {missing:?}"
    );
}

#[test]
fn table_rows_name_a_route_a_case_and_five_numbers() {
    let readme = "intro\n<!-- round-trips:start -->\n\
        | endpoint | warm rounds | warm calls | cold rounds | cold calls | delivery | what |\n\
        |---|---|---|---|---|---|---|\n\
        | `GET /v1/users/{user_id}` | 1 | 1 | 2 | 3 | 0 | `BatchGetItem` |\n\
        | `POST /v1/otps/sms/send` (existing user) | 2 | 2 | 3 | 4 | 1 (SNS) | ... |\n\
        <!-- round-trips:end -->\n| `GET /nope` | x | y | outside |\n";
    let rows = parse_rows(readme).expect("parses");
    assert_eq!(rows.len(), 2);
    let (case, row) = &rows["POST /v1/otps/sms/send (existing user)"];
    assert_eq!(case, &(RouteId::SmsSend, "existing user".to_owned()));
    assert_eq!(
        *row,
        Row {
            warm_rounds: 2,
            warm_calls: 2,
            cold_rounds: 3,
            cold_calls: 4,
            delivery: 1
        }
    );
    let table = |row: &str| {
        format!(
            "{START_MARKER}\n| e | a | b | c | d | e | f |\n|---|---|---|---|---|---|---|\n{row}\n{END_MARKER}"
        )
    };
    for bad in [
        "| `GET /v1/nothing` | 1 | 1 | 1 | 1 | 0 | no such route |",
        "| GET /v1/users/{user_id} | 1 | 1 | 1 | 1 | 0 | no backticks |",
        "| `GET /v1/users/{user_id}` | many | 1 | 1 | 1 | 0 | not a number |",
        "| `GET /v1/users/{user_id}` existing | 1 | 1 | 1 | 1 | 0 | case without parentheses |",
        "| `GET /v1/users/{user_id}` | 1 | 0 |",
    ] {
        assert!(parse_rows(&table(bad)).is_err(), "{bad}");
    }
    assert!(parse_rows("no markers").is_err());
}

// ---------------------------------------------------------------------------------------------
// template.yaml: the actions each function's policy grants.

/// Function binary name -> the actions its policy allows (CloudFormation short-form tags are
/// dropped by the YAML loader, leaving their operands).
fn granted_actions() -> HashMap<String, BTreeSet<String>> {
    let text = workspace_file("template.yaml");
    let mut docs = YamlLoader::load_from_str(&text).expect("template.yaml is YAML");
    let doc = docs.remove(0);
    let mut out = HashMap::new();
    for (_, resource) in doc["Resources"].as_hash().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(binary) = resource["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            continue;
        };
        let mut actions = BTreeSet::new();
        for policy in resource["Properties"]["Policies"]
            .as_vec()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_vec().into_iter().flatten() {
                if statement["Effect"].as_str() != Some("Allow") {
                    continue;
                }
                match &statement["Action"] {
                    Yaml::Array(list) => {
                        actions.extend(list.iter().filter_map(Yaml::as_str).map(str::to_owned))
                    }
                    Yaml::String(one) => {
                        actions.insert(one.clone());
                    }
                    _ => {}
                }
            }
        }
        out.insert(binary.to_owned(), actions);
    }
    out
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

/// The endpoints: (DynamoDB, SNS and SES), or `None` (skip, unless on CI).
fn endpoints() -> Option<(String, String)> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(delivery) = set("AWS_ENDPOINT_URL") else {
        assert!(
            set("CI").is_none(),
            "CI is set but AWS_ENDPOINT_URL is not: run the tests through scripts/with-moto.sh"
        );
        return None;
    };
    let dynamodb = set("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|| delivery.clone());
    Some((dynamodb, delivery))
}

fn nonce() -> String {
    UserId::generate(&OsRandom).as_str()["user-".len()..].replace('-', "")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Cold,
    Warm,
}

struct Measurement {
    case: Case,
    pass: Pass,
    log: CallLog,
}

struct World {
    deps: Deps,
    recorder: CallRecorder,
    clock: Arc<FakeClock>,
    codes: Arc<SentCodes>,
    app: Option<(String, String)>,
    /// The app's public token, and the frontend API's current session token.
    public_token: String,
    frontend_session: Option<String>,
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
        // Long enough that the warm pass stays warm; the cold pass empties it on purpose.
        let app_cache_seconds = 3600;
        let deps = Deps {
            apps: store.clone(),
            configs: store.clone(),
            login: store,
            app_cache: Arc::new(AppCache::new(app_cache_seconds)),
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
            keys: Arc::new(Keys::new(
                ManagementKeyHash::of_key(MANAGEMENT_KEY),
                CodeHasher::new(&[7u8; 32]).expect("code key"),
                KeyEncryptionKey::from_secret(&"k".repeat(32)).expect("a long enough key"),
            )),
            settings: Settings {
                public_base_url: "http://127.0.0.1:3000".to_owned(),
                default_email_from: format!("no-reply@{domain}"),
                limits: Limits {
                    send: SendLimits {
                        cooldown_seconds: 0,
                        ..SendLimits::default()
                    },
                    ..Limits::default()
                },
                app_cache_seconds,
                test_environment: false,
            },
        };
        recorder.take();
        World {
            deps,
            recorder,
            clock,
            codes,
            app: None,
            public_token: String::new(),
            frontend_session: None,
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

    /// One request, with the credentials its route's dialect takes; returns the status and the
    /// body.
    async fn request(
        &self,
        route: RouteId,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
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
            Dialect::Frontend => {
                headers.insert(header::ORIGIN, HeaderValue::from_static(WEB_ORIGIN));
                let password = self.frontend_session.as_ref().unwrap_or(&self.public_token);
                Some(format!(
                    "Basic {}",
                    STANDARD.encode(format!("{}:{password}", self.public_token))
                ))
            }
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
            source_ip: Some(IP_ADDRESS.to_owned()),
        };
        let response = handle(&self.deps, route, request).await;
        let reply = if response.status == StatusCode::NO_CONTENT {
            Value::Null
        } else {
            response.json()
        };
        (response.status, reply)
    }

    /// `request`, asserting a 2xx answer.
    async fn call(
        &self,
        route: RouteId,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Value {
        let (status, reply) = self.request(route, params, query, body).await;
        let r = route.route();
        assert!(
            status.is_success(),
            "{} {} answered {status}: {reply}",
            r.method,
            r.path
        );
        reply
    }

    /// Prepares a measurement in `pass`: cold empties the app cache and makes the secret's
    /// `last_used_at` due; warm leaves both as the previous request left them.
    fn prepare(&self, route: RouteId, pass: Pass) {
        if pass == Pass::Cold && route.route().dialect != Dialect::Management {
            if let Some(app_id) = self.app.as_ref().and_then(|(id, _)| AppId::parse(id)) {
                self.deps.app_cache.invalidate(&app_id);
            }
            self.clock.advance_seconds(SECRET_TOUCH_INTERVAL_SECONDS);
        }
        self.recorder.take();
    }

    /// `call`, measured: records the SDK operations this one request makes.
    async fn measure(
        &mut self,
        pass: Pass,
        (route, case): (RouteId, &str),
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Value {
        self.prepare(route, pass);
        let reply = self.call(route, params, query, body).await;
        self.record(pass, route, case);
        reply
    }

    /// A measured request that must fail with `expected`.
    async fn measure_refusal(
        &mut self,
        pass: Pass,
        (route, case): (RouteId, &str),
        body: Value,
        expected: StatusCode,
    ) -> Value {
        self.prepare(route, pass);
        let (status, reply) = self.request(route, &[], &[], Some(body)).await;
        assert_eq!(status, expected, "{reply}");
        self.record(pass, route, case);
        reply
    }

    fn record(&mut self, pass: Pass, route: RouteId, case: &str) {
        let log = self.recorder.take();
        self.measurements.push(Measurement {
            case: (route, case.to_owned()),
            pass,
            log,
        });
    }
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {value}"))
        .to_owned()
}

/// The management routes, once (they do not use the app cache), building a realistic app: its
/// default SMS config names a template, it has an SMS country list.
async fn drive_management(w: &mut World) {
    use RouteId::*;
    let none: &[(&str, &str)] = &[];
    let m = Pass::Warm;

    let created = w
        .measure(
            m,
            (CreateApp, ""),
            none,
            none,
            Some(json!({"name": "Acme"})),
        )
        .await;
    w.app = Some((text(&created, "/app/id"), text(&created, "/secret")));
    w.public_token = text(&created, "/public_token");
    let app_id = w.app_id();
    let app = [("app_id", app_id.as_str())];
    w.measure(m, (GetApp, ""), &app, none, None).await;
    let second = w.measure(m, (CreateSecret, ""), &app, none, None).await;
    let secret_id = text(&second, "/secret_id");
    w.measure(m, (ListSecrets, ""), &app, none, None).await;
    w.measure(
        m,
        (DeleteSecret, ""),
        &[("app_id", &app_id), ("secret_id", &secret_id)],
        none,
        None,
    )
    .await;

    let sms_template =
        json!({"channel_type": "sms", "locale": "en", "text": "Your {{app_name}} code: {{code}}"});
    let t = w
        .measure(
            m,
            (CreateTemplate, ""),
            &app,
            none,
            Some(sms_template.clone()),
        )
        .await;
    let template_id = text(&t, "/template/id");
    w.measure(m, (ListTemplates, ""), &app, none, None).await;
    w.measure(
        m,
        (ReplaceTemplate, ""),
        &[("app_id", &app_id), ("template_id", &template_id)],
        none,
        Some(sms_template),
    )
    .await;
    let sms_config = json!({"config_type": "otp", "channel_type": "sms", "is_default": true,
        "template_id": template_id, "expiration_minutes": 10});
    let c = w
        .measure(
            m,
            (CreateLoginConfig, ""),
            &app,
            none,
            Some(sms_config.clone()),
        )
        .await;
    let config_id = text(&c, "/login_config/id");
    w.call(
        CreateLoginConfig,
        &app,
        none,
        Some(json!({"config_type": "otp", "channel_type": "email", "is_default": true, "expiration_minutes": 10})),
    )
    .await;
    w.measure(m, (ListLoginConfigs, ""), &app, none, None).await;
    w.measure(
        m,
        (ReplaceLoginConfig, ""),
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
        m,
        (DeleteLoginConfig, ""),
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
        m,
        (DeleteTemplate, ""),
        &[("app_id", &app_id), ("template_id", &unused_template)],
        none,
        None,
    )
    .await;

    let valid_until = w.clock.now().plus_seconds(86_400).to_rfc3339();
    let test = w
        .measure(
            m,
            (CreateTestIdentifier, ""),
            &app,
            none,
            Some(json!({"identifier": TEST_PHONE, "code": "123456", "valid_until": valid_until})),
        )
        .await;
    let test_id = text(&test, "/test_identifier/id");
    w.measure(m, (ListTestIdentifiers, ""), &app, none, None)
        .await;
    w.measure(
        m,
        (DeleteTestIdentifier, ""),
        &[("app_id", &app_id), ("id", &test_id)],
        none,
        None,
    )
    .await;
    w.measure(
        m,
        (PutSmsCountries, ""),
        &app,
        none,
        Some(json!({"calling_codes": ["1", "44"]})),
    )
    .await;
    w.measure(m, (GetSmsCountries, ""), &app, none, None).await;
    let budgets = json!({"app": {"hour": 1000, "day": 10000}, "region": {"hour": 300, "day": 3000},
        "prefix": {"hour": 20, "day": 100}, "prefix_digits": 8,
        "verification_floor": {"min_rate_percent": 10, "min_sent": 100}});
    w.measure(m, (PutSmsBudgets, ""), &app, none, Some(budgets))
        .await;
    w.measure(m, (GetSmsBudgets, ""), &app, none, None).await;
    w.measure(m, (ListSmsRegions, ""), &app, none, None).await;
    w.measure(
        m,
        (ResetSmsRegion, ""),
        &[("app_id", &app_id), ("region", "US")],
        none,
        None,
    )
    .await;
    w.measure(m, (RotateKeys, ""), &app, none, None).await;
    w.measure(
        m,
        (PutFrontendSettings, ""),
        &app,
        none,
        Some(
            json!({"authorized_origins": [WEB_ORIGIN], "max_session_duration_minutes": 120,
            "public_sends_per_hour": 500}),
        ),
    )
    .await;
    w.measure(m, (GetFrontendSettings, ""), &app, none, None)
        .await;
    let made = w
        .measure(m, (CreatePublicToken, ""), &app, none, None)
        .await;
    let new_token = text(&made, "/public_token/public_token");
    w.measure(m, (ListPublicTokens, ""), &app, none, None).await;
    w.measure(
        m,
        (DeletePublicToken, ""),
        &[("app_id", &app_id), ("public_token", &new_token)],
        none,
        None,
    )
    .await;
}

/// Every frontend API route, in `pass`, as the frontend SDK calls them, with a fresh user.
async fn drive_frontend(w: &mut World, pass: Pass, phone: &str) {
    use RouteId::*;
    let none: &[(&str, &str)] = &[];
    let p = pass;
    w.frontend_session = None;
    let token = w.public_token.clone();
    w.measure(
        p,
        (SdkBootstrap, ""),
        &[("public_token", &token)],
        none,
        None,
    )
    .await;
    w.measure(
        p,
        (SdkPreflight, ""),
        &[("proxy", "otps/authenticate")],
        none,
        None,
    )
    .await;
    w.measure(p, (SdkEvents, ""), none, none, Some(json!([{"event": {}}])))
        .await;
    let sent = w
        .measure(
            p,
            (SdkSmsLoginOrCreate, "new user"),
            none,
            none,
            Some(json!({"phone_number": phone, "expiration_minutes": 5})),
        )
        .await;
    let method_id = text(&sent, "/data/method_id");
    let code = w.codes.last_to(phone);
    let authenticated = w
        .measure(
            p,
            (SdkOtpAuthenticate, "right code, new session"),
            none,
            none,
            Some(json!({"token": code, "method_id": method_id, "session_duration_minutes": 60})),
        )
        .await;
    w.frontend_session = Some(text(&authenticated, "/data/session_token"));
    w.measure(
        p,
        (SdkSessionsAuthenticate, ""),
        none,
        none,
        Some(json!({})),
    )
    .await;
    w.measure(p, (SdkUsersMe, ""), none, none, None).await;
    w.measure(p, (SdkSessionsRevoke, ""), none, none, None)
        .await;
    w.frontend_session = None;
    let email = format!("fe.{}@example.com", nonce());
    w.measure(
        p,
        (SdkEmailLoginOrCreate, "new user"),
        none,
        none,
        Some(json!({"email": email, "expiration_minutes": 5})),
    )
    .await;
}

/// Every Login API route, in `pass`, with fresh users: `phone` and two email addresses.
async fn drive_login(w: &mut World, pass: Pass, phone: &str) {
    use RouteId::*;
    let none: &[(&str, &str)] = &[];
    let p = pass;
    let attributes = json!({"ip_address": IP_ADDRESS, "user_agent": "round-trips"});
    let sms = json!({"phone_number": phone, "attributes": attributes});

    let sent = w
        .measure(
            p,
            (SmsLoginOrCreate, "new user"),
            none,
            none,
            Some(sms.clone()),
        )
        .await;
    assert_eq!(sent["user_created"], json!(true), "{sent}");
    let user_id = text(&sent, "/user_id");
    let phone_id = text(&sent, "/phone_id");
    let again = w
        .measure(
            p,
            (SmsLoginOrCreate, "existing user"),
            none,
            none,
            Some(sms.clone()),
        )
        .await;
    assert_eq!(again["user_created"], json!(false), "{again}");
    let code = w.codes.last_to(phone);
    let wrong: String = code
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect();
    w.measure_refusal(
        p,
        (OtpAuthenticate, "wrong code"),
        json!({"method_id": phone_id, "code": wrong}),
        StatusCode::NOT_FOUND,
    )
    .await;
    let authenticated = w
        .measure(
            p,
            (OtpAuthenticate, "right code, new session"),
            none,
            none,
            Some(json!({"method_id": phone_id, "code": code,
                "session_duration_minutes": 60, "attributes": attributes})),
        )
        .await;
    let token = text(&authenticated, "/session_token");
    let jwt = text(&authenticated, "/session_jwt");
    w.measure(
        p,
        (SessionsAuthenticate, "session_token"),
        none,
        none,
        Some(json!({"session_token": token})),
    )
    .await;
    w.measure(
        p,
        (SessionsAuthenticate, "session_jwt"),
        none,
        none,
        Some(json!({"session_jwt": jwt})),
    )
    .await;
    w.measure(p, (SessionsList, ""), none, &[("user_id", &user_id)], None)
        .await;
    w.measure(p, (SmsSend, "existing user"), none, none, Some(sms))
        .await;

    let email = format!("ann.{}@example.com", nonce());
    let sent = w
        .measure(
            p,
            (EmailLoginOrCreate, "new user"),
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
        p,
        (EmailSend, "existing user"),
        none,
        none,
        Some(json!({"email": email, "attributes": attributes})),
    )
    .await;
    let added = format!("bob.{}@example.com", nonce());
    w.measure(
        p,
        (EmailSend, "new email for a user_id"),
        none,
        none,
        Some(json!({"email": added, "user_id": user_id, "attributes": attributes})),
    )
    .await;

    w.measure(
        p,
        (SessionsRevoke, "session_token"),
        none,
        none,
        Some(json!({"session_token": token})),
    )
    .await;
    let app_id = w.app_id();
    w.measure(p, (SessionsJwks, ""), &[("app_id", &app_id)], none, None)
        .await;
    w.measure(p, (UsersGet, ""), &[("user_id", &user_id)], none, None)
        .await;
    w.measure(
        p,
        (UsersDelete, ""),
        &[("user_id", &email_user)],
        none,
        None,
    )
    .await;
}

/// The measured rows by row key (warm and cold from the two passes; management rows, measured
/// once, are the same for both).
fn measured_rows(measurements: &[Measurement]) -> BTreeMap<String, (Case, Row, String)> {
    let mut rows: BTreeMap<String, (Case, Row, String)> = BTreeMap::new();
    for m in measurements {
        let key = row_key(&m.case);
        let entry = rows
            .entry(key)
            .or_insert_with(|| (m.case.clone(), Row::default(), String::new()));
        let rounds = m.log.dynamodb_rounds;
        let calls = m.log.count(&[DYNAMODB]);
        let management = m.case.0.route().dialect == Dialect::Management;
        if m.pass == Pass::Warm {
            entry.1.warm_rounds = rounds;
            entry.1.warm_calls = calls;
            entry.1.delivery = m.log.count(DELIVERY);
            let mut what = m.log.operations(&[DYNAMODB]).join(", ");
            let delivery = m.log.operations(DELIVERY);
            if !delivery.is_empty() {
                let _ = write!(what, "; then {}", delivery.join(", "));
            }
            entry.2 = what;
        }
        if m.pass == Pass::Cold || management {
            entry.1.cold_rounds = rounds;
            entry.1.cold_calls = calls;
        }
    }
    rows
}

fn measured_table(rows: &BTreeMap<String, (Case, Row, String)>) -> String {
    let mut out = String::from(
        "| endpoint | warm rounds | warm calls | cold rounds | cold calls | delivery calls | the warm calls, in order |\n|---|---|---|---|---|---|---|\n",
    );
    for route in ROUTES {
        for (case, row, what) in rows.values().filter(|(c, _, _)| c.0 == route.id) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                endpoint_cell(case),
                row.warm_rounds,
                row.warm_calls,
                row.cold_rounds,
                row.cold_calls,
                row.delivery,
                what
            );
        }
    }
    out
}

#[tokio::test]
async fn every_endpoint_makes_the_documented_round_trips() {
    let Some((dynamodb, delivery)) = endpoints() else {
        eprintln!("{SKIP}");
        return;
    };
    let mut w = World::new(&dynamodb, &delivery).await;
    drive_management(&mut w).await;
    drive_login(&mut w, Pass::Cold, "+12025550142").await;
    drive_login(&mut w, Pass::Warm, "+12025550143").await;
    drive_frontend(&mut w, Pass::Cold, "+12025550144").await;
    drive_frontend(&mut w, Pass::Warm, "+12025550145").await;
    let measured = measured_rows(&w.measurements);
    let table = measured_table(&measured);
    println!("Measured (README.md's table, with the warm calls in order):\n{table}");
    let granted = granted_actions();
    let mut problems = Vec::new();
    let documented = parse_rows(&workspace_file("README.md")).unwrap_or_else(|e| {
        problems.push(e);
        BTreeMap::new()
    });
    for route in ROUTES {
        if !measured.values().any(|(case, _, _)| case.0 == route.id) {
            problems.push(format!(
                "{} {} was not measured: drive it in drive_management, drive_login or drive_frontend",
                route.method, route.path
            ));
        }
    }
    for (key, (case, row, _)) in &measured {
        match documented.get(key) {
            None => problems.push(format!(
                "{key}: no row in README.md's round-trip table (measured {row:?})"
            )),
            Some((_, documented)) if documented != row => problems.push(format!(
                "{key}: measured {row:?}, README.md says {documented:?}"
            )),
            Some(_) => {}
        }
        if let Some((_, _, goal)) = GOALS
            .iter()
            .find(|(route, goal_case, _)| *route == case.0 && *goal_case == case.1)
            && row.warm_rounds > *goal
        {
            problems.push(format!(
                "{key}: {} warm DynamoDB rounds, the goal is at most {goal}",
                row.warm_rounds
            ));
        }
    }
    for key in documented.keys() {
        if !measured.contains_key(key) {
            problems.push(format!(
                "README.md's round-trip table has a row for {key}, which this test does not measure"
            ));
        }
    }
    for m in &w.measurements {
        let key = row_key(&m.case);
        let sequence: Vec<String> = m
            .log
            .calls
            .iter()
            .map(|c| format!("{}:{}", c.round, c.operation))
            .collect();
        println!("{key} ({:?}): {}", m.pass, sequence.join(" "));
        let unknown: Vec<String> = m
            .log
            .calls
            .iter()
            .filter(|c| c.service != DYNAMODB && !DELIVERY.contains(&c.service.as_str()))
            .map(|c| format!("{} {}", c.service, c.operation))
            .collect();
        if !unknown.is_empty() {
            problems.push(format!("{key}: calls to unexpected services: {unknown:?}"));
        }
        if m.log.attempts > m.log.calls.len() {
            println!(
                "note: {key}: {} attempts for {} operations (SDK retries)",
                m.log.attempts,
                m.log.calls.len()
            );
        }
        let function = m.case.0.route().function;
        let allowed = granted.get(function).cloned().unwrap_or_default();
        let missing: Vec<String> = m.log.actions().difference(&allowed).cloned().collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{key}: the function {function} calls {missing:?}, which its policy in \
                 template.yaml does not grant"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "round trips differ from README.md's table:\n  {}",
        problems.join("\n  ")
    );
}
