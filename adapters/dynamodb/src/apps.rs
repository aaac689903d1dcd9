//! `AppStore`: the app and its secrets live in the app's partition `APP#<app_id>`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use shared::clock::Timestamp;
use shared::ids::{AppId, SecretId};
use shared::model::{App, AppSecret};
use shared::ports::{AppStore, StoreError};

use crate::DynamoStore;
use crate::db::TxOp;
use crate::error::sdk_error;
use crate::item::{self, n};
use crate::keys::{self, key};

#[async_trait]
impl AppStore for DynamoStore {
    async fn create_app(&self, app: &App, secret: &AppSecret) -> Result<(), StoreError> {
        // One transaction: never an app without its first secret.
        self.transact(vec![
            TxOp::put(item::app_item(app)),
            TxOp::put(item::secret_item(secret)),
        ])
        .await
        .map(|_| ())
    }

    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        self.get(key(keys::app(app_id), keys::APP_SK))
            .await?
            .map(|i| item::app_from(&i))
            .transpose()
    }

    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::secret_item(secret)))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", &e))?;
        Ok(())
    }

    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError> {
        self.query_prefix(keys::app(app_id), keys::SECRET_PREFIX, None)
            .await?
            .iter()
            .map(item::secret_from)
            .collect()
    }

    async fn delete_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
    ) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::app(app_id), &keys::secret_sk(secret_id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", &e))?;
        Ok(output.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn touch_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::app(app_id), &keys::secret_sk(secret_id))))
            .update_expression("SET #used = :at")
            // Never recreate a deleted secret.
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#used", "last_used_at")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":at", n(at.0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("UpdateItem", &e)),
        }
    }
}
