//! The few DynamoDB calls the ports are built from: consistent reads, prefix queries, and
//! transactions whose cancellation reasons are classified per item.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Get, Put, TransactGetItem, TransactWriteItem, Update,
};
use rand::Rng;
use shared::ports::StoreError;

use crate::DynamoStore;
use crate::error::{TRANSIENT_REASONS, build_error, sdk_error};
use crate::item::Item;
use crate::keys;

/// Attempts of a transaction that lost only to conflicting transactions or throttling.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// Attempts of an optimistic read-then-conditional-write before giving up as contended.
pub(crate) const OPTIMISTIC_ATTEMPTS: u32 = 40;

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
}

impl TxOp {
    pub(crate) fn put(item: Item) -> Self {
        TxOp {
            kind: Kind::Put,
            item,
            condition: None,
            expr: Expr::new(),
        }
    }

    pub(crate) fn delete(key: Item) -> Self {
        TxOp {
            kind: Kind::Delete,
            item: key,
            condition: None,
            expr: Expr::new(),
        }
    }

    pub(crate) fn update(key: Item, update: impl Into<String>) -> Self {
        TxOp {
            kind: Kind::Update(update.into()),
            item: key,
            condition: None,
            expr: Expr::new(),
        }
    }

    pub(crate) fn check(key: Item, condition: impl Into<String>) -> Self {
        TxOp {
            kind: Kind::Check,
            item: key,
            condition: Some(condition.into()),
            expr: Expr::new(),
        }
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

    fn build(self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let names = self.expr.names();
        let values = self.expr.values();
        let item = match self.kind {
            Kind::Put => TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(self.item))
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
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
                    .build()
                    .map_err(build_error)?,
            ),
        };
        Ok(item.build())
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxOutcome {
    Committed,
    /// Nothing was written; `true` at the index of each item whose condition failed.
    ConditionFailed(Vec<bool>),
}

impl TxOutcome {
    pub(crate) fn failed(&self, index: usize) -> bool {
        match self {
            TxOutcome::Committed => false,
            TxOutcome::ConditionFailed(failed) => failed.get(index).copied().unwrap_or(false),
        }
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

    /// Every item of partition `pk` whose sort key starts with `prefix` (consistent, all pages),
    /// optionally filtered.
    pub(crate) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        filter: Option<(&str, Expr)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut expr = Expr::new()
            .name("#pk", keys::PK)
            .name("#sk", keys::SK)
            .value(":pk", AttributeValue::S(pk))
            .value(":prefix", AttributeValue::S(prefix.to_owned()));
        let mut filter_expression = None;
        if let Some((text, extra)) = filter {
            filter_expression = Some(text.to_owned());
            expr.names.extend(extra.names);
            expr.values.extend(extra.values);
        }
        self.query_pages(
            None,
            "#pk = :pk AND begins_with(#sk, :prefix)",
            filter_expression,
            expr,
        )
        .await
    }

    /// Every item of `gsi1` partition `gsi1pk` (eventually consistent, as every GSI read).
    pub(crate) async fn query_gsi1(&self, gsi1pk: String) -> Result<Vec<Item>, StoreError> {
        let expr = Expr::new()
            .name("#g", keys::GSI1PK)
            .value(":g", AttributeValue::S(gsi1pk));
        self.query_pages(Some(keys::GSI1), "#g = :g", None, expr)
            .await
    }

    async fn query_pages(
        &self,
        index: Option<&str>,
        key_condition: &str,
        filter: Option<String>,
        expr: Expr,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(self.table())
                .set_index_name(index.map(str::to_owned))
                .consistent_read(index.is_none())
                .key_condition_expression(key_condition)
                .set_filter_expression(filter.clone())
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

    /// Runs one transaction. Conflicts with other transactions and throttling are retried here
    /// (the SDK does not retry a cancelled transaction); failed conditions are the caller's.
    pub(crate) async fn transact(&self, ops: Vec<TxOp>) -> Result<TxOutcome, StoreError> {
        let items = ops
            .into_iter()
            .map(|op| op.build(self.table()))
            .collect::<Result<Vec<_>, _>>()?;
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
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
            let codes: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().unwrap_or("None"))
                .collect();
            let failed: Vec<bool> = codes
                .iter()
                .map(|c| *c == "ConditionalCheckFailed")
                .collect();
            if failed.contains(&true) {
                return Ok(TxOutcome::ConditionFailed(failed));
            }
            let transient = !codes.is_empty()
                && codes
                    .iter()
                    .all(|c| *c == "None" || TRANSIENT_REASONS.contains(c));
            if !transient {
                let mut named: Vec<&str> = codes.into_iter().filter(|c| *c != "None").collect();
                named.dedup();
                return Err(StoreError::Other(format!(
                    "TransactWriteItems cancelled: {}",
                    named.join(", ")
                )));
            }
            backoff(attempt).await;
        }
        Err(contended("TransactWriteItems"))
    }

    /// Deletes items by key, in transactions of at most 100 (an even number, so that pairs of
    /// items written together are deleted together). Deleting a missing item is not an error.
    pub(crate) async fn delete_all(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let mut ops: Vec<TxOp> = keys.into_iter().map(TxOp::delete).collect();
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(100));
            if let TxOutcome::ConditionFailed(_) = self.transact(ops).await? {
                return Err(StoreError::Other(
                    "unconditional delete reported a failed condition".to_owned(),
                ));
            }
            ops = rest;
        }
        Ok(())
    }
}
