//! `UserStore`: the user item `APP#<app>#USER#<user>`, one uniqueness item per identifier
//! `APP#<app>#IDENT#<kind>#<value>` and one owner item per method `APP#<app>#METHOD#<method>`,
//! always written and deleted together in one transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use shared::clock::Timestamp;
use shared::identifiers::Identifier;
use shared::ids::{AppId, MethodId, UserId};
use shared::model::User;
use shared::ports::{FailureOutcome, StoreError, SuccessOutcome, UserStore, WriteError};

use crate::DynamoStore;
use crate::db::{OPTIMISTIC_ATTEMPTS, TxOp, TxOutcome, backoff, contended};
use crate::error::sdk_error;
use crate::item::{self, Item, boolean, n, s};
use crate::keys::{self, key};

fn user_key(app_id: &AppId, user_id: &UserId) -> Item {
    key(keys::user(app_id, user_id), keys::USER_SK)
}

fn ident_key(app_id: &AppId, identifier: &Identifier) -> Item {
    key(keys::ident(app_id, identifier), keys::IDENT_SK)
}

fn method_key(app_id: &AppId, method_id: &MethodId) -> Item {
    key(keys::method(app_id, method_id), keys::METHOD_SK)
}

fn put_if_absent(item: Item) -> TxOp {
    TxOp::put(item)
        .when("attribute_not_exists(#pk)")
        .name("#pk", keys::PK)
}

/// The user is not locked at `:now` (`User::active_lock`: a lock is in force while
/// `lock_expires_at > now`). Needs the names and values of `not_locked`.
const NOT_LOCKED: &str = "(attribute_not_exists(#le) OR #le <= :now)";

fn not_locked(now: Timestamp) -> crate::db::Expr {
    crate::db::Expr::new()
        .name("#le", "lock_expires_at")
        .value(":now", n(now.0))
}

/// The outcome of one conditional `UpdateItem` on a user.
enum Updated {
    /// The item after the update.
    Done(Item),
    /// The condition failed; the item as it was, if it exists.
    Refused(Option<Item>),
}

impl DynamoStore {
    async fn user_or_none(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        self.get(user_key(app_id, user_id))
            .await?
            .map(|i| item::user_from(&i).map(|stored| stored.user))
            .transpose()
    }

    /// `SET`/`ADD` on an existing user, returning the new item, or the old one if `condition`
    /// (always including that the user exists) failed.
    async fn update_user(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        update: &str,
        condition: &str,
        expr: crate::db::Expr,
    ) -> Result<Updated, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(user_key(app_id, user_id)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .map(Updated::Done)
                .ok_or_else(|| StoreError::Other("UpdateItem returned no attributes".to_owned())),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(
                    Updated::Refused(failed.item().cloned().filter(|i| !i.is_empty())),
                ),
                _ => Err(sdk_error("UpdateItem", &e)),
            },
        }
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn find_by_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<(User, MethodId)>, StoreError> {
        let Some(ident) = self.get(ident_key(app_id, identifier)).await? else {
            return Ok(None);
        };
        let (user_id, method_id) = item::ident_from(&ident)?;
        Ok(self
            .user_or_none(app_id, &user_id)
            .await?
            .map(|user| (user, method_id)))
    }

    async fn create_user(&self, user: &User) -> Result<(), WriteError> {
        let mut ops = vec![put_if_absent(item::user_item(user))];
        for method_id in user.method_ids() {
            let Some(identifier) = user.identifier_of(&method_id) else {
                continue;
            };
            ops.push(put_if_absent(item::ident_item(
                &user.app_id,
                &identifier,
                &user.id,
                &method_id,
            )));
            ops.push(put_if_absent(item::method_item(
                &user.app_id,
                &method_id,
                &user.id,
            )));
        }
        match self.transact(ops).await? {
            TxOutcome::Committed => Ok(()),
            TxOutcome::ConditionFailed(_) => Err(WriteError::Conflict("identifier taken")),
        }
    }

    async fn add_method(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        identifier: &Identifier,
    ) -> Result<User, WriteError> {
        let list = match (method_id, identifier) {
            (MethodId::Phone(_), Identifier::Phone(_)) => Some("phones"),
            (MethodId::Email(_), Identifier::Email(_)) => Some("emails"),
            // As the in-memory store: a method of the wrong kind is not listed on the user.
            _ => None,
        };
        let mut update = TxOp::update(
            user_key(app_id, user_id),
            match list {
                Some(_) => {
                    "SET #list = list_append(#list, :entry), #v.#m = :false, #mrev = #mrev + :one"
                }
                None => "SET #mrev = #mrev + :one",
            },
        )
        .when("attribute_exists(#pk)")
        .name("#pk", keys::PK)
        .name("#mrev", "methods_rev")
        .value(":one", n(1));
        if let Some(list) = list {
            update = update
                .name("#list", list)
                .name("#v", "verified")
                .name("#m", method_id.as_str())
                .value(
                    ":entry",
                    aws_sdk_dynamodb::types::AttributeValue::L(vec![item::method_entry(
                        method_id, identifier,
                    )]),
                )
                .value(":false", boolean(false));
        }
        let ops = vec![
            update,
            put_if_absent(item::ident_item(app_id, identifier, user_id, method_id)),
            put_if_absent(item::method_item(app_id, method_id, user_id)),
        ];
        match self.transact(ops).await? {
            TxOutcome::Committed => {}
            outcome if outcome.failed(0) => return Err(WriteError::Conflict("user gone")),
            TxOutcome::ConditionFailed(_) => return Err(WriteError::Conflict("identifier taken")),
        }
        self.user_or_none(app_id, user_id)
            .await?
            .ok_or(WriteError::Conflict("user gone"))
    }

    async fn get_user(&self, app_id: &AppId, user_id: &UserId) -> Result<Option<User>, StoreError> {
        self.user_or_none(app_id, user_id).await
    }

    async fn find_by_method(
        &self,
        app_id: &AppId,
        method_id: &MethodId,
    ) -> Result<Option<User>, StoreError> {
        let Some(owner) = self.get(method_key(app_id, method_id)).await? else {
            return Ok(None);
        };
        let user_id = item::method_owner_from(&owner)?;
        self.user_or_none(app_id, &user_id).await
    }

    async fn record_success(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        method_id: &MethodId,
        now: Timestamp,
    ) -> Result<SuccessOutcome, StoreError> {
        let expr = not_locked(now)
            .name("#pk", keys::PK)
            .name("#v", "verified")
            .name("#m", method_id.as_str())
            .name("#st", "status")
            .name("#fa", "failed_attempts")
            .value(":true", boolean(true))
            .value(":active", s("active"))
            .value(":zero", n(0));
        match self
            .update_user(
                app_id,
                user_id,
                "SET #v.#m = :true, #st = :active, #fa = :zero",
                &format!("attribute_exists(#pk) AND {NOT_LOCKED}"),
                expr,
            )
            .await?
        {
            Updated::Done(item) => {
                item::user_from(&item).map(|stored| SuccessOutcome::Recorded(stored.user))
            }
            Updated::Refused(None) => Ok(SuccessOutcome::UserGone),
            Updated::Refused(Some(old)) => match item::user_from(&old)?.user.active_lock(now) {
                Some(lock) => Ok(SuccessOutcome::Locked(lock)),
                None => Err(StoreError::Other(
                    "record_success: condition failed on an unlocked user".to_owned(),
                )),
            },
        }
    }

    async fn record_failure(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        now: Timestamp,
        limit: u32,
        lock_seconds: i64,
    ) -> Result<FailureOutcome, StoreError> {
        // The count reaches at most `limit - 1`: the failure after that writes the lock (and a
        // zero count) in the same conditional write, so a user is never "at the limit but not
        // yet locked", and while locked nothing is counted.
        let below = i64::from(limit) - 1;
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            // Below the limit and not locked: one atomic increment.
            let expr = not_locked(now)
                .name("#pk", keys::PK)
                .name("#fa", "failed_attempts")
                .value(":one", n(1))
                .value(":below", n(below));
            let refused = match self
                .update_user(
                    app_id,
                    user_id,
                    "ADD #fa :one",
                    &format!("attribute_exists(#pk) AND #fa < :below AND {NOT_LOCKED}"),
                    expr,
                )
                .await?
            {
                Updated::Done(item) => {
                    return item::user_from(&item).map(|stored| FailureOutcome::Counted {
                        user: stored.user,
                        locked_now: false,
                    });
                }
                Updated::Refused(None) => return Ok(FailureOutcome::UserGone),
                Updated::Refused(Some(old)) => item::user_from(&old)?.user,
            };
            if let Some(lock) = refused.active_lock(now) {
                return Ok(FailureOutcome::AlreadyLocked(lock));
            }
            // Not locked, so the count is at `limit - 1` (or above, if the limit was lowered):
            // this failure reaches the limit. Lock and start the count again, if the user is
            // still unlocked and at the limit (else a success reset the count meanwhile:
            // count again; or another failure locked first: nothing to count).
            let expr = not_locked(now)
                .name("#pk", keys::PK)
                .name("#fa", "failed_attempts")
                .name("#lc", "lock_created_at")
                .value(":below", n(below))
                .value(":zero", n(0))
                .value(":until", n(now.plus_seconds(lock_seconds).0));
            match self
                .update_user(
                    app_id,
                    user_id,
                    "SET #fa = :zero, #lc = :now, #le = :until",
                    &format!("attribute_exists(#pk) AND #fa >= :below AND {NOT_LOCKED}"),
                    expr,
                )
                .await?
            {
                Updated::Done(item) => {
                    return item::user_from(&item).map(|stored| FailureOutcome::Counted {
                        user: stored.user,
                        locked_now: true,
                    });
                }
                Updated::Refused(None) => return Ok(FailureOutcome::UserGone),
                Updated::Refused(Some(old)) => {
                    if let Some(lock) = item::user_from(&old)?.user.active_lock(now) {
                        return Ok(FailureOutcome::AlreadyLocked(lock));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Err(contended("record_failure"))
    }

    async fn delete_user(&self, app_id: &AppId, user_id: &UserId) -> Result<bool, StoreError> {
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let Some(stored) = self
                .get(user_key(app_id, user_id))
                .await?
                .map(|i| item::user_from(&i))
                .transpose()?
            else {
                return Ok(false);
            };
            // Conditioned on the method lists being the ones read, so that a method added
            // meanwhile is never left behind holding its identifier.
            let mut ops = vec![
                TxOp::delete(user_key(app_id, user_id))
                    .when("#mrev = :mrev")
                    .name("#mrev", "methods_rev")
                    .value(":mrev", n(stored.methods_rev)),
            ];
            for method_id in stored.user.method_ids() {
                if let Some(identifier) = stored.user.identifier_of(&method_id) {
                    ops.push(TxOp::delete(ident_key(app_id, &identifier)));
                }
                ops.push(TxOp::delete(method_key(app_id, &method_id)));
            }
            if self.transact(ops).await? == TxOutcome::Committed {
                return Ok(true);
            }
            backoff(attempt).await;
        }
        Err(contended("delete_user"))
    }
}
