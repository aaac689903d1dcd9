//! `ChallengeStore`: a method's current code is the item `APP#<app>#METHOD#<method>` /
//! `CHALLENGE`; a new code overwrites it. Consuming and counting a wrong attempt are each one
//! conditional `UpdateItem` whose condition is the whole liveness check; restoring (undoing a
//! consume) is one conditional `UpdateItem` on the id and the used mark.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use shared::clock::Timestamp;
use shared::ids::{AppId, ChallengeId, MethodId};
use shared::model::Challenge;
use shared::ports::{ChallengeStore, StoreError};

use crate::DynamoStore;
use crate::db::Expr;
use crate::error::sdk_error;
use crate::item::{self, Fields, Item, boolean, n, s};
use crate::keys::{self, key};

fn challenge_key(app_id: &AppId, method_id: &MethodId) -> Item {
    key(keys::method(app_id, method_id), keys::CHALLENGE_SK)
}

/// The code is still `challenge_id`, unused, unexpired at `:now` and has attempts left
/// (`Challenge::is_live`). A missing item fails it too.
const LIVE: &str = "#cid = :cid AND #used = :false AND #tries < :max AND #exp > :now";

fn live(challenge_id: &ChallengeId, now: Timestamp, max_attempts: u32) -> Expr {
    Expr::new()
        .name("#cid", "challenge_id")
        .name("#used", "consumed")
        .name("#tries", "attempts")
        .name("#exp", "expires_at")
        .value(":cid", s(challenge_id.as_str()))
        .value(":false", boolean(false))
        .value(":max", n(max_attempts))
        .value(":now", n(now.0))
}

impl DynamoStore {
    /// One conditional update of the challenge; `None` when the code was not live.
    async fn update_live_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        update: &str,
        expr: Expr,
    ) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(challenge_key(app_id, method_id)))
            .update_expression(update)
            .condition_expression(LIVE)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("UpdateItem", &e)),
        }
    }
}

#[async_trait]
impl ChallengeStore for DynamoStore {
    async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::challenge_item(challenge)))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", &e))?;
        Ok(())
    }

    async fn get_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<Challenge>, StoreError> {
        // As stored, expired or not: the domain tells an expired code from a missing one.
        self.get(challenge_key(app_id, method_id))
            .await?
            .map(|i| item::challenge_from(&i))
            .transpose()
    }

    async fn consume(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let expr = live(challenge_id, now, max_attempts).value(":true", boolean(true));
        Ok(self
            .update_live_challenge(app_id, method_id, "SET #used = :true", expr)
            .await?
            .is_some())
    }

    async fn record_wrong_attempt(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError> {
        let expr = live(challenge_id, now, max_attempts).value(":one", n(1));
        match self
            .update_live_challenge(app_id, method_id, "SET #tries = #tries + :one", expr)
            .await?
        {
            Some(updated) => Fields::new(&updated, "challenge").u32("attempts").map(Some),
            None => Ok(None),
        }
    }

    async fn restore(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(challenge_key(app_id, method_id)))
            .update_expression("SET #used = :false")
            // Still this code (a newer one is kept), and used. A missing item fails it too.
            .condition_expression("#cid = :cid AND #used = :true")
            .expression_attribute_names("#cid", "challenge_id")
            .expression_attribute_names("#used", "consumed")
            .expression_attribute_values(":cid", s(challenge_id.as_str()))
            .expression_attribute_values(":true", boolean(true))
            .expression_attribute_values(":false", boolean(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error("UpdateItem", &e)),
        }
    }

    async fn delete_challenge(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
        challenge_id: &ChallengeId,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(challenge_key(app_id, method_id)))
            // A newer code of the method is kept.
            .condition_expression("#cid = :cid")
            .expression_attribute_names("#cid", "challenge_id")
            .expression_attribute_values(":cid", s(challenge_id.as_str()))
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
            Err(e) => Err(sdk_error("DeleteItem", &e)),
        }
    }

    async fn delete_challenges(
        &self,
        app_id: &AppId,
        method_ids: &[MethodId],
    ) -> Result<(), StoreError> {
        // A transaction may not name one item twice.
        let unique: BTreeSet<&MethodId> = method_ids.iter().collect();
        self.delete_all(
            unique
                .into_iter()
                .map(|method_id| challenge_key(app_id, method_id))
                .collect(),
        )
        .await
    }
}
