//! The adversarial suite (`shared::adversarial`) on `DynamoStore`: one test per behaviour, each
//! on a fresh table of the test endpoint (moto, as `scripts/with-moto.sh` starts it), whose
//! client runs the fault-injecting SDK interceptor of `store_dynamodb::testing`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::adversarial::{Backend, BelowFault, BelowStore, Corpus, Ports, Times};
use shared::ids::AppId;
use store_dynamodb::DynamoStore;
use store_dynamodb::testing::{self, Fault, FaultInjector};

/// `DynamoStore` on a fresh table per behaviour, with the sample of the hostile-input corpus.
struct DynamoBackend;

struct Table {
    store: Arc<DynamoStore>,
    injector: Injector,
}

#[async_trait]
impl Backend for DynamoBackend {
    type Fresh = Table;

    async fn fresh(&self) -> Option<(Table, Ports)> {
        let injector = FaultInjector::new();
        let store = Arc::new(testing::fresh_store_with(injector.clone()).await?);
        let ports = Ports {
            apps: store.clone(),
            configs: store.clone(),
            login: store.clone(),
        };
        Some((
            Table {
                store,
                injector: Injector(injector),
            },
            ports,
        ))
    }

    async fn dump(&self, table: &Table) -> String {
        let client = table.store.sdk_client();
        let mut out = String::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table.store.table_name())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("Scan");
            for item in page.items() {
                let mut names: Vec<&String> = item.keys().collect();
                names.sort();
                for name in names {
                    let _ = write!(out, "{name}={} ", render(&item[name]));
                }
                out.push('\n');
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return out,
            }
        }
    }

    fn corpus(&self) -> Corpus {
        Corpus::Sample
    }

    fn below<'a>(&self, table: &'a Table) -> Option<&'a dyn BelowStore> {
        Some(&table.injector)
    }

    async fn put_sms_calling_codes_as_before(
        &self,
        table: &Table,
        app_id: &AppId,
        calling_codes: &[String],
    ) -> bool {
        table
            .store
            .put_sms_calling_codes_as_before(app_id, calling_codes)
            .await;
        true
    }
}

/// An attribute value as the suite reads a dump: strings as `{:?}` shows them, numbers in
/// decimal, bytes in hex and as a list of decimal bytes, lists, maps and sets taken apart.
fn render(value: &AttributeValue) -> String {
    let bytes = |b: &[u8]| {
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let list: Vec<String> = b.iter().map(u8::to_string).collect();
        format!("0x{hex} [{}]", list.join(", "))
    };
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    match value {
        AttributeValue::S(s) => format!("{s:?}"),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::B(b) => bytes(b.as_ref()),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "null".to_owned(),
        AttributeValue::L(items) => list(items.iter().map(render).collect()),
        AttributeValue::M(map) => {
            let mut entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?}: {}", render(v)))
                .collect();
            entries.sort();
            format!("{{{}}}", entries.join(", "))
        }
        AttributeValue::Ss(items) => list(items.iter().map(|s| format!("{s:?}")).collect()),
        AttributeValue::Ns(items) => list(items.clone()),
        AttributeValue::Bs(items) => list(items.iter().map(|b| bytes(b.as_ref())).collect()),
        other => format!("{other:?}"),
    }
}

/// The interceptor, as the suite's faults below the store.
struct Injector(FaultInjector);

/// The operations whose requests the interceptor counts (every one the adapter makes).
const OPERATIONS: &[&str] = &[
    "BatchGetItem",
    "BatchWriteItem",
    "DeleteItem",
    "GetItem",
    "PutItem",
    "Query",
    "Scan",
    "TransactGetItems",
    "TransactWriteItems",
    "UpdateItem",
];

impl BelowStore for Injector {
    fn requests(&self) -> BTreeMap<String, u32> {
        OPERATIONS
            .iter()
            .map(|op| (op.to_string(), self.0.requests(op)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    fn applies(&self, operation: &str, fault: BelowFault) -> bool {
        fault != BelowFault::TransactionConflict || operation.starts_with("Transact")
    }

    fn inject(&self, operation: &str, fault: BelowFault, times: Times) {
        let fault = match fault {
            BelowFault::LoseAnswer => Fault::LoseAnswer,
            BelowFault::Throttle => Fault::Throttle,
            BelowFault::TransactionConflict => Fault::TransactionConflict,
        };
        let times = match times {
            Times::First(n) => testing::Times::First(n),
            Times::Nth(n) => testing::Times::Nth(n),
            Times::Always => testing::Times::Always,
        };
        self.0.inject(operation, fault, times);
    }

    fn disarm(&self) {
        self.0.disarm();
    }
}

shared::adversarial_tests!(DynamoBackend);
