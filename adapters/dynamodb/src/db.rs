//! The few DynamoDB calls the ports are built from: consistent reads (one item, a batch, a
//! partition), and transactions whose cancellation reasons are read per item.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Get, KeysAndAttributes, Put,
    ReturnValuesOnConditionCheckFailure, TransactGetItem, TransactWriteItem, Update,
};
use rand::Rng;
use shared::ports::StoreError;

use crate::DynamoStore;
use crate::error::{TRANSIENT_REASONS, build_error, sdk_error};
use crate::item::Item;
use crate::keys;

/// Attempts of a transaction that lost only to conflicting transactions or throttling (each
/// with the SDK's own retries inside).
pub(crate) const TRANSACTION_ATTEMPTS: u32 = 5;

/// Attempts of an optimistic read-then-conditional-write before giving up as contended.
pub(crate) const OPTIMISTIC_ATTEMPTS: u32 = 40;

/// Rounds of `BatchGetItem` for keys DynamoDB left unprocessed (it does so under throttling).
const BATCH_GET_ATTEMPTS: u32 = 8;

/// `BatchGetItem` takes at most this many keys.
const BATCH_GET_LIMIT: usize = 100;

/// Sleeps a random time that grows with `attempt` (full jitter, capped at 200 ms).
pub(crate) async fn backoff(attempt: u32) {
    let cap_ms = 5u64.saturating_mul(1u64 << attempt.min(6)).min(200);
    let ms = rand::thread_rng().gen_range(1..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

pub(crate) fn contended(operation: &str) -> StoreError {
    StoreError::Unavailable(format!("{operation}: too many concurrent writers, retry"))
}

/// Placeholders for an expression's attribute names and values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// `#placeholder` stands for `name` (every name goes through one: many are reserved words).
    pub(crate) fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        self
    }

    pub(crate) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(crate) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

enum Kind {
    Put,
    Delete,
    Update(String),
    Check,
}

/// One item of a `TransactWriteItems`.
pub(crate) struct TxOp {
    kind: Kind,
    /// The whole item for a put, else the key.
    item: Item,
    condition: Option<String>,
    expr: Expr,
    /// Ask for the item as it was when this op's condition fails (`ALL_OLD`).
    return_old: bool,
}

impl TxOp {
    fn new(kind: Kind, item: Item) -> Self {
        TxOp {
            kind,
            item,
            condition: None,
            expr: Expr::new(),
            return_old: false,
        }
    }

    pub(crate) fn put(item: Item) -> Self {
        Self::new(Kind::Put, item)
    }

    pub(crate) fn delete(key: Item) -> Self {
        Self::new(Kind::Delete, key)
    }

    pub(crate) fn update(key: Item, update: impl Into<String>) -> Self {
        Self::new(Kind::Update(update.into()), key)
    }

    pub(crate) fn check(key: Item, condition: impl Into<String>) -> Self {
        Self::new(Kind::Check, key).when(condition)
    }

    pub(crate) fn when(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    pub(crate) fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.expr = self.expr.name(placeholder, name);
        self
    }

    pub(crate) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.expr = self.expr.value(placeholder, value);
        self
    }

    /// A failed condition returns the item as it is (`ReturnValuesOnConditionCheckFailure`).
    pub(crate) fn returning_old(mut self) -> Self {
        self.return_old = true;
        self
    }

    pub(crate) fn build(self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let names = self.expr.names();
        let values = self.expr.values();
        let old = self
            .return_old
            .then_some(ReturnValuesOnConditionCheckFailure::AllOld);
        let item = match self.kind {
            Kind::Put => TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(self.item))
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_return_values_on_condition_check_failure(old)
                    .build()
                    .map_err(build_error)?,
            ),
            Kind::Delete => TransactWriteItem::builder().delete(
                Delete::builder()
                    .table_name(table)
                    .set_key(Some(self.item))
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_return_values_on_condition_check_failure(old)
                    .build()
                    .map_err(build_error)?,
            ),
            Kind::Update(update) => TransactWriteItem::builder().update(
                Update::builder()
                    .table_name(table)
                    .set_key(Some(self.item))
                    .update_expression(update)
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_return_values_on_condition_check_failure(old)
                    .build()
                    .map_err(build_error)?,
            ),
            Kind::Check => TransactWriteItem::builder().condition_check(
                ConditionCheck::builder()
                    .table_name(table)
                    .set_key(Some(self.item))
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .set_return_values_on_condition_check_failure(old)
                    .build()
                    .map_err(build_error)?,
            ),
        };
        Ok(item.build())
    }
}

/// One item's part in a cancelled transaction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reason {
    /// Its condition failed.
    pub(crate) failed: bool,
    /// The item as it was, when its op asked for it (`returning_old`) and it exists.
    pub(crate) item: Option<Item>,
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TxOutcome {
    Committed,
    /// Nothing was written: at least one condition failed. One reason per item, in order.
    ConditionFailed(Vec<Reason>),
}

impl TxOutcome {
    pub(crate) fn failed(&self, index: usize) -> bool {
        match self {
            TxOutcome::Committed => false,
            TxOutcome::ConditionFailed(reasons) => reasons.get(index).is_some_and(|r| r.failed),
        }
    }
}

/// The token of attempt `attempt` (0 = the first) of a transaction named `token`: the first
/// uses it as given; each retry after a cancellation (which wrote nothing) gets a fresh one, so
/// that DynamoDB never answers it from the cancelled attempt. At most 36 characters for a
/// 32-character token.
pub(crate) fn attempt_token(token: &str, attempt: u32) -> String {
    if attempt == 0 {
        token.to_owned()
    } else {
        format!("{token}-{attempt}")
    }
}

impl DynamoStore {
    fn table(&self) -> &str {
        &self.table
    }

    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", &e))?;
        Ok(output.item)
    }

    /// A consistent snapshot of several items (one `TransactGetItems`), in the order asked.
    pub(crate) async fn get_all(&self, keys: Vec<Item>) -> Result<Vec<Option<Item>>, StoreError> {
        let count = keys.len();
        let gets = keys
            .into_iter()
            .map(|key| {
                Get::builder()
                    .table_name(self.table())
                    .set_key(Some(key))
                    .build()
                    .map(|get| TransactGetItem::builder().get(get).build())
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_get_items()
                .set_transact_items(Some(gets.clone()))
                .send()
                .await;
            match result {
                Ok(output) => {
                    let mut items: Vec<Option<Item>> = output
                        .responses
                        .unwrap_or_default()
                        .into_iter()
                        .map(|response| response.item)
                        .collect();
                    items.resize(count, None);
                    return Ok(items);
                }
                // Cancelled by a concurrent transaction on one of the items: read again.
                Err(error)
                    if attempt + 1 < TRANSACTION_ATTEMPTS
                        && error
                            .as_service_error()
                            .is_some_and(|e| e.is_transaction_canceled_exception()) =>
                {
                    backoff(attempt).await;
                    attempt += 1;
                }
                Err(error) => return Err(sdk_error("TransactGetItems", &error)),
            }
        }
    }

    /// The items at `keys`, in the order asked (`None` where there is none), read consistently
    /// with `BatchGetItem`: one call for up to 100 distinct keys, more only for the keys
    /// DynamoDB leaves unprocessed (retried with backoff). Repeated keys are read once.
    pub(crate) async fn batch_get(&self, keys: &[Item]) -> Result<Vec<Option<Item>>, StoreError> {
        let id = |key: &Item| -> Option<(String, String)> {
            match (key.get(keys::PK), key.get(keys::SK)) {
                (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                    Some((pk.clone(), sk.clone()))
                }
                _ => None,
            }
        };
        let mut distinct: Vec<Item> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            let id = id(key).ok_or_else(|| StoreError::Other("a key without pk/sk".into()))?;
            if seen.insert(id) {
                distinct.push(key.clone());
            }
        }
        let mut found: HashMap<(String, String), Item> = HashMap::new();
        for chunk in distinct.chunks(BATCH_GET_LIMIT) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    if attempt >= BATCH_GET_ATTEMPTS {
                        return Err(StoreError::Unavailable(
                            "BatchGetItem: keys left unprocessed, retry".to_owned(),
                        ));
                    }
                    backoff(attempt).await;
                }
                attempt += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", &e))?;
                for item in output
                    .responses
                    .unwrap_or_default()
                    .remove(self.table())
                    .unwrap_or_default()
                {
                    if let Some(id) = id(&item) {
                        found.insert(id, item);
                    }
                }
                pending = output
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(self.table())
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(keys
            .iter()
            .map(|key| id(key).and_then(|id| found.get(&id).cloned()))
            .collect())
    }

    /// Every item of partition `pk` whose sort key starts with `prefix` (consistent, all pages).
    pub(crate) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let expr = Expr::new()
            .name("#pk", keys::PK)
            .name("#sk", keys::SK)
            .value(":pk", AttributeValue::S(pk))
            .value(":prefix", AttributeValue::S(prefix.to_owned()));
        self.query_pages("#pk = :pk AND begins_with(#sk, :prefix)", expr)
            .await
    }

    /// Every item of partition `pk`, or only those whose sort key is below `below`
    /// (consistent, all pages).
    pub(crate) async fn query_partition(
        &self,
        pk: String,
        below: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let expr = Expr::new()
            .name("#pk", keys::PK)
            .value(":pk", AttributeValue::S(pk));
        match below {
            None => self.query_pages("#pk = :pk", expr).await,
            Some(bound) => {
                let expr = expr
                    .name("#sk", keys::SK)
                    .value(":below", AttributeValue::S(bound.to_owned()));
                self.query_pages("#pk = :pk AND #sk < :below", expr).await
            }
        }
    }

    async fn query_pages(&self, key_condition: &str, expr: Expr) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(self.table())
                .consistent_read(true)
                .key_condition_expression(key_condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query", &e))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Runs one transaction (without an idempotency token). Conflicts with other transactions
    /// and throttling are retried here (the SDK does not retry a cancelled transaction); failed
    /// conditions are the caller's.
    pub(crate) async fn transact(&self, ops: Vec<TxOp>) -> Result<TxOutcome, StoreError> {
        self.transact_once(ops, None).await
    }

    /// Runs one transaction named by `token` (`ClientRequestToken`: the SDK's own retries of
    /// a request resend it, so a request whose answer was lost is applied once). A transaction
    /// cancelled only by transient reasons wrote nothing and is retried here with backoff,
    /// under a fresh token (`attempt_token`), at most `TRANSACTION_ATTEMPTS` times in all.
    pub(crate) async fn transact_once(
        &self,
        ops: Vec<TxOp>,
        token: Option<&str>,
    ) -> Result<TxOutcome, StoreError> {
        let items = ops
            .into_iter()
            .map(|op| op.build(self.table()))
            .collect::<Result<Vec<_>, _>>()?;
        for attempt in 0..TRANSACTION_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .set_client_request_token(token.map(|t| attempt_token(t, attempt)))
                .send()
                .await
            {
                Ok(_) => return Ok(TxOutcome::Committed),
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                error.as_service_error()
            else {
                return Err(sdk_error("TransactWriteItems", &error));
            };
            let reasons = cancelled.cancellation_reasons();
            let codes: Vec<&str> = reasons
                .iter()
                .map(|reason| reason.code().unwrap_or("None"))
                .collect();
            if codes.contains(&"ConditionalCheckFailed") {
                let mut reasons: Vec<Reason> = reasons
                    .iter()
                    .map(|reason| Reason {
                        failed: reason.code() == Some("ConditionalCheckFailed"),
                        item: reason.item().filter(|i| !i.is_empty()).cloned(),
                    })
                    .collect();
                reasons.resize(
                    items.len(),
                    Reason {
                        failed: false,
                        item: None,
                    },
                );
                return Ok(TxOutcome::ConditionFailed(reasons));
            }
            let transient = !codes.is_empty()
                && codes
                    .iter()
                    .all(|c| *c == "None" || TRANSIENT_REASONS.contains(c));
            if !transient {
                let mut named: Vec<&str> = codes.into_iter().filter(|c| *c != "None").collect();
                named.sort_unstable();
                named.dedup();
                return Err(StoreError::Other(format!(
                    "TransactWriteItems cancelled: {}",
                    named.join(", ")
                )));
            }
        }
        Err(contended("TransactWriteItems"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_tokens_are_fresh_and_fit_dynamodb() {
        let token = "0123456789abcdef0123456789abcdef";
        assert_eq!(attempt_token(token, 0), token);
        let retries: Vec<String> = (1..TRANSACTION_ATTEMPTS)
            .map(|a| attempt_token(token, a))
            .collect();
        for retry in &retries {
            assert!(retry.len() <= 36, "{retry}");
            assert_ne!(retry, token);
        }
        let mut distinct = retries.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), retries.len());
    }
}
