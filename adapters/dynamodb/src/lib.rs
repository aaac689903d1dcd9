//! The DynamoDB adapter of the store ports (`AppStore`, `ConfigStore`, `LoginStore`) on one
//! table: string keys `pk`/`sk`, the epoch-seconds TTL attribute `ttl`, no secondary index. The
//! key design is in `DESIGN.md`.
//!
//! The login path reads in one consistent `BatchGetItem` (`load`) or one `Query` of a user's
//! home partition (`load_home`), and writes in one `TransactWriteItems` (`commit`) named by an
//! idempotency token, whose conditions re-check what was read and whose failures return the
//! records as they are. The management side keeps its optimistic read-then-conditional-write
//! transactions. Throttling and transport failures (after the SDK's retries) are
//! `StoreError::Unavailable`; everything else is `StoreError::Other`, with a message that names
//! the operation and error code only.

mod apps;
mod configs;
mod db;
mod error;
mod item;
mod keys;
mod login;
#[cfg(feature = "test-support")]
pub mod testing;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use shared::ports::StoreError;

pub use aws_sdk_dynamodb;

use crate::error::{build_error, sdk_error};

/// Attempts per DynamoDB call, the first included (the SDK's standard retry mode, with backoff).
pub const MAX_ATTEMPTS: u32 = 3;

/// Every store port over one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store over `table_name` through `client`. Build the client with
    /// [`DynamoStore::client`] (or give it a retry configuration of your own).
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table_name.into(),
        }
    }

    /// A store over `table_name` with a client made from the loaded AWS configuration.
    pub fn from_sdk_config(config: &SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Self::client(config), table_name)
    }

    /// A DynamoDB client with the standard retry mode and [`MAX_ATTEMPTS`] attempts.
    pub fn client(config: &SdkConfig) -> Client {
        Client::from_conf(Self::client_config(config).build())
    }

    /// The configuration [`DynamoStore::client`] builds its client from, to add to (an
    /// interceptor, a retry configuration of your own).
    pub fn client_config(config: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
        aws_sdk_dynamodb::config::Builder::from(config)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }
}

/// How long `create_table` waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Creates the table if it does not exist (keys `pk`/`sk`, no secondary index, on-demand
/// billing), waits until it is active, and turns TTL on for `ttl` if it is off. For tests and the local server; a
/// deployment gets its table from `template.yaml`.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let exists = match client.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(sdk_error("DescribeTable", &e)),
    };
    if !exists {
        let string_key = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_key(keys::PK)?)
            .attribute_definitions(string_key(keys::SK)?)
            .key_schema(key(keys::PK, KeyType::Hash)?)
            .key_schema(key(keys::SK, KeyType::Range)?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Created meanwhile by someone else: fine.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(sdk_error("CreateTable", &e)),
        }
    }
    client
        .wait_until_table_exists()
        .table_name(name)
        .wait(TABLE_ACTIVE_TIMEOUT)
        .await
        .map_err(|_| StoreError::Unavailable("the table did not become active".to_owned()))?;

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTimeToLive", &e))?;
    let status = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if !matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(keys::TTL)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTimeToLive", &e))?;
    }
    Ok(())
}
