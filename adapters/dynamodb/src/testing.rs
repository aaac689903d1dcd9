//! FOR TESTS ONLY (cargo feature `test-support`): a client for the DynamoDB endpoint of the test
//! environment (moto, started by `scripts/with-moto.sh`), and [`FaultInjector`], an SDK
//! interceptor that loses answers and injects transient errors, so that tests can prove what
//! the adapter does when DynamoDB or the network misbehaves.
//!
//! Tests that need the endpoint call [`dynamodb_endpoint`]: without one they skip (with a
//! notice), except under CI (`CI` set), where a missing `AWS_ENDPOINT_URL_DYNAMODB` fails them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
    FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{
    ConfigBag, Credentials, Intercept, Region, RuntimeComponents, SharedCredentialsProvider,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::http::StatusCode;
use shared::ids::{AppId, UserId};
use shared::random::OsRandom;

use crate::{DynamoStore, MAX_ATTEMPTS, create_table};

const SKIP: &str = "skipped: neither AWS_ENDPOINT_URL_DYNAMODB nor AWS_ENDPOINT_URL is set \
                    (scripts/with-moto.sh starts moto and sets them)";

/// The DynamoDB endpoint of the test environment: `AWS_ENDPOINT_URL_DYNAMODB`, else
/// `AWS_ENDPOINT_URL`, else `None` (the caller skips, after this prints a notice).
///
/// # Panics
/// Under CI (`CI` set) when `AWS_ENDPOINT_URL_DYNAMODB` is not set: there a test that needs
/// DynamoDB must fail rather than pass without having run.
pub fn dynamodb_endpoint() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let ci = var("CI").is_some();
    match var("AWS_ENDPOINT_URL_DYNAMODB") {
        Some(endpoint) => Some(endpoint),
        None if ci => panic!(
            "CI is set but AWS_ENDPOINT_URL_DYNAMODB is not: run the tests through \
             scripts/with-moto.sh"
        ),
        None => {
            let endpoint = var("AWS_ENDPOINT_URL");
            if endpoint.is_none() {
                eprintln!("{SKIP}");
            }
            endpoint
        }
    }
}

/// An AWS configuration for `endpoint` with dummy credentials (the credential chain never
/// reaches for instance metadata) and `AWS_REGION` (default `us-east-1`).
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "tests",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// The client of the test endpoint (as [`DynamoStore::client`] makes it), or `None` (skip).
pub fn client() -> Option<Client> {
    dynamodb_endpoint().map(|endpoint| DynamoStore::client(&sdk_config(&endpoint)))
}

/// A new table name, unique per call.
pub fn unique_table() -> String {
    format!(
        "otp-test-{}",
        &UserId::generate(&OsRandom).as_str()["user-".len()..]
    )
}

/// A store over a fresh table of the test endpoint, or `None` (skip).
///
/// # Panics
/// When the table cannot be made.
pub async fn fresh_store() -> Option<DynamoStore> {
    let client = client()?;
    let table = unique_table();
    if let Err(error) = create_table(&client, &table).await {
        panic!("create_table: {error}");
    }
    Some(DynamoStore::new(client, table))
}

/// A store over a fresh table of the test endpoint whose client runs `interceptor`, or `None`
/// (skip). See [`DynamoStore::with_interceptor`].
///
/// # Panics
/// When the table cannot be made.
pub async fn fresh_store_with(interceptor: impl Intercept + 'static) -> Option<DynamoStore> {
    let endpoint = dynamodb_endpoint()?;
    let table = unique_table();
    let store = DynamoStore::with_interceptor(&sdk_config(&endpoint), table.clone(), interceptor);
    if let Err(error) = create_table(&store.client, &table).await {
        panic!("create_table: {error}");
    }
    Some(store)
}

/// The SDK's first retry waits a random time up to this (1 s by default): short, so that the
/// fault tests are quick. Everything else about retries is as in production.
const TEST_INITIAL_BACKOFF: Duration = Duration::from_millis(10);

impl DynamoStore {
    /// FOR TESTS: a store whose client runs `interceptor` on every call, with the production
    /// retry policy (standard mode, [`MAX_ATTEMPTS`] attempts) but a short first backoff.
    pub fn with_interceptor(
        config: &SdkConfig,
        table_name: impl Into<String>,
        interceptor: impl Intercept + 'static,
    ) -> Self {
        let config = Self::client_config(config)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(TEST_INITIAL_BACKOFF),
            )
            .interceptor(interceptor)
            .build();
        DynamoStore::new(Client::from_conf(config), table_name)
    }

    /// FOR TESTS: the client, to look at the table behind the store's back.
    pub fn sdk_client(&self) -> &Client {
        &self.client
    }

    /// FOR TESTS: writes an app's SMS countries as earlier versions did, as country calling
    /// codes, so that tests can show they read back as regions.
    ///
    /// # Panics
    /// When the write fails.
    pub async fn put_sms_calling_codes_as_before(&self, app_id: &AppId, calling_codes: &[String]) {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(crate::item::legacy_sms_countries_item(
                app_id,
                calling_codes,
            )))
            .send()
            .await
            .expect("PutItem of the SMS countries as before");
    }
}

/// What [`FaultInjector`] does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request reaches DynamoDB and is applied; its answer is replaced with an HTTP 500
    /// (`InternalServerError`), so the SDK retries: the same request, the same token.
    LoseAnswer,
    /// The request never reaches DynamoDB: the answer is a `TransactionCanceledException`
    /// whose reasons are all `TransactionConflict` (HTTP 400), as when a concurrent
    /// transaction held one of the items. The SDK does not retry it.
    TransactionConflict,
    /// The request never reaches DynamoDB: the answer is a
    /// `ProvisionedThroughputExceededException` (HTTP 400), which the SDK retries as throttling.
    Throttle,
}

/// Which requests of an operation a rule hits, counted per operation from when the rule is
/// added, every attempt (the SDK's retries included) counting as one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The first `n` requests.
    First(u32),
    /// Only the `n`-th request (1 = the first).
    Nth(u32),
    /// Every request.
    Always,
}

/// One fault done to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The operation (`TransactWriteItems`, …).
    pub operation: String,
    /// The attempt within its SDK call (1 = the first; the SDK's `RequestAttempts`).
    pub attempt: u32,
    pub fault: Fault,
}

#[derive(Debug)]
struct Rule {
    operation: String,
    fault: Fault,
    times: Times,
    /// The operation's request count when the rule was added.
    base: u32,
}

impl Rule {
    fn hits(&self, request: u32) -> bool {
        let n = request.saturating_sub(self.base);
        n >= 1
            && match self.times {
                Times::First(count) => n <= count,
                Times::Nth(nth) => n == nth,
                Times::Always => true,
            }
    }
}

/// A fault decided before transmission, done after it. Keyed by the task and operation of the
/// SDK call, since the interceptor hooks of one attempt run on the task that awaits the call.
type Pending = HashMap<(Option<tokio::task::Id>, String), (Fault, usize)>;

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// Requests sent per operation (every attempt).
    requests: HashMap<String, u32>,
    pending: Pending,
    injected: Vec<Injected>,
}

/// FOR TESTS: an SDK interceptor (`aws_smithy_runtime_api::client::interceptors::Intercept`)
/// that does [`Fault`]s to chosen requests of chosen operations, and counts requests.
/// Clones share their rules and counts: give one to [`DynamoStore::with_interceptor`], keep
/// another to arm it and read it.
///
/// Injected errors never reach DynamoDB: the request is turned into a harmless `ListTables`
/// before it is signed, and its answer is replaced. Limitation: two calls of one operation
/// awaited concurrently on one task (`join!`) are not told apart; use separate tasks.
#[derive(Clone, Default)]
pub struct FaultInjector(Arc<Mutex<State>>);

impl fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultInjector")
    }
}

const LOST_ANSWER: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"The answer was lost (injected by the test interceptor)"}"#;
const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Throughput exceeded (injected by the test interceptor)"}"#;

fn cancelled_by_conflicts(items: usize) -> String {
    let reasons = vec![
        serde_json::json!({
            "Code": "TransactionConflict",
            "Message": "Transaction is ongoing for the item (injected by the test interceptor)",
        });
        items.max(1)
    ];
    let codes = vec!["TransactionConflict"; items.max(1)].join(", ");
    serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
        ),
        "CancellationReasons": reasons,
    })
    .to_string()
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map_or_else(|| "unknown".to_owned(), |m| m.name().to_owned())
}

fn attempt(cfg: &ConfigBag) -> u32 {
    cfg.load::<aws_smithy_runtime_api::client::retries::RequestAttempts>()
        .map_or(1, |a| a.attempts())
}

impl FaultInjector {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, does `fault` to the requests of `operation` that `times` names.
    pub fn inject(&self, operation: &str, fault: Fault, times: Times) {
        let mut state = self.state();
        let base = state.requests.get(operation).copied().unwrap_or(0);
        state.rules.push(Rule {
            operation: operation.to_owned(),
            fault,
            times,
            base,
        });
    }

    /// Shorthand for `inject(operation, Fault::LoseAnswer, times)`.
    pub fn lose_answers(&self, operation: &str, times: Times) {
        self.inject(operation, Fault::LoseAnswer, times);
    }

    /// Removes every rule (the counts stay).
    pub fn disarm(&self) {
        self.state().rules.clear();
    }

    /// Requests of `operation` sent so far, every attempt counted.
    pub fn requests(&self, operation: &str) -> u32 {
        self.state().requests.get(operation).copied().unwrap_or(0)
    }

    /// Every fault done so far, in order.
    pub fn injected(&self) -> Vec<Injected> {
        self.state().injected.clone()
    }
}

fn task_key(operation: String) -> (Option<tokio::task::Id>, String) {
    (tokio::task::try_id(), operation)
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    /// Counts the request and decides its fault; an injected error's request is made harmless
    /// here, before it is signed.
    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation(cfg);
        let attempt = attempt(cfg);
        let mut state = self.state();
        let request = {
            let count = state.requests.entry(operation.clone()).or_insert(0);
            *count += 1;
            *count
        };
        let Some(fault) = state
            .rules
            .iter()
            .find(|rule| rule.operation == operation && rule.hits(request))
            .map(|rule| rule.fault)
        else {
            return Ok(());
        };
        let request = context.request_mut();
        let items = request
            .body()
            .bytes()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
            .and_then(|body| body.get("TransactItems")?.as_array().map(Vec::len))
            .unwrap_or(1);
        if fault != Fault::LoseAnswer {
            let harmless = r#"{"Limit":1}"#;
            request
                .headers_mut()
                .insert("x-amz-target", "DynamoDB_20120810.ListTables");
            request
                .headers_mut()
                .insert("content-length", harmless.len().to_string());
            *request.body_mut() = harmless.into();
        }
        state
            .pending
            .insert(task_key(operation.clone()), (fault, items));
        state.injected.push(Injected {
            operation,
            attempt,
            fault,
        });
        Ok(())
    }

    /// Replaces the answer of a request whose fault was decided before transmission.
    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some((fault, items)) = self.state().pending.remove(&task_key(operation(cfg))) else {
            return Ok(());
        };
        let (status, body) = match fault {
            Fault::LoseAnswer => (500, LOST_ANSWER.to_owned()),
            Fault::TransactionConflict => (400, cancelled_by_conflicts(items)),
            Fault::Throttle => (400, THROTTLED.to_owned()),
        };
        let response = context.response_mut();
        *response.status_mut() = StatusCode::try_from(status)?;
        let headers = response.headers_mut();
        headers.remove("x-amz-crc32");
        headers.insert("content-type", "application/x-amz-json-1.0");
        headers.insert("content-length", body.len().to_string());
        *response.body_mut() = body.into();
        Ok(())
    }

    /// Forgets a decision whose request never got an answer (a transport failure).
    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.state().pending.remove(&task_key(operation(cfg)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_requests_from_when_they_are_added() {
        let rule = |times, base| Rule {
            operation: "TransactWriteItems".to_owned(),
            fault: Fault::LoseAnswer,
            times,
            base,
        };
        let first = rule(Times::First(1), 4);
        assert!(!first.hits(4) && first.hits(5) && !first.hits(6));
        let nth = rule(Times::Nth(2), 0);
        assert!(!nth.hits(1) && nth.hits(2) && !nth.hits(3));
        let always = rule(Times::Always, 2);
        assert!(!always.hits(2) && always.hits(3) && always.hits(300));
    }

    #[test]
    fn an_injected_cancellation_has_one_conflict_per_item() {
        let body: serde_json::Value =
            serde_json::from_str(&cancelled_by_conflicts(3)).expect("json");
        let reasons = body["CancellationReasons"].as_array().expect("reasons");
        assert_eq!(reasons.len(), 3);
        assert!(reasons.iter().all(|r| r["Code"] == "TransactionConflict"));
    }
}
