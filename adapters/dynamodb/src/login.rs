//! `LoginStore`: the records of the login path, read in one batched consistent read (`load`)
//! or one query of a user's home (`load_home`), and written in one `TransactWriteItems`
//! (`commit`) whose conditions re-check what was read, named by the commit's token so that a
//! retry after a lost answer is applied once.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use shared::clock::Timestamp;
use shared::crypto::Hash32;
use shared::ids::{AppId, Home};
use shared::model::{Session, Tally};
use shared::ports::{
    CommitError, CommitToken, Conflict, Expect, HomeRecords, Key, LoginStore, Record, StoreError,
    Versioned, Write,
};

use crate::DynamoStore;
use crate::db::{TxOp, TxOutcome};
use crate::error::sdk_error;
use crate::item::{self, Fields, Item, n, s};
use crate::keys;

/// `TransactWriteItems` takes at most this many items.
const MAX_WRITES: usize = 100;

/// `op` conditioned on `expect`.
fn expecting(op: TxOp, expect: Expect) -> TxOp {
    match expect {
        Expect::Absent => op.when("attribute_not_exists(#pk)").name("#pk", keys::PK),
        Expect::Rev(rev) => op
            .when("#rev = :rev")
            .name("#rev", keys::REV)
            .value(":rev", n(rev)),
        Expect::Present => op.when("attribute_exists(#pk)").name("#pk", keys::PK),
        Expect::Any => op,
    }
}

/// The revision a put writes: 1 for a new record, one more than the expected one otherwise.
fn put_rev(expect: Expect) -> Result<u64, StoreError> {
    match expect {
        Expect::Absent => Ok(1),
        Expect::Rev(rev) => rev
            .checked_add(1)
            .ok_or_else(|| StoreError::Other("revision overflow".to_owned())),
        Expect::Present | Expect::Any => Err(StoreError::Other(
            "a put must expect Absent or a revision".to_owned(),
        )),
    }
}

/// A put of the whole item at the revision `expect` implies, if the record is as expected.
fn put(item: Item, expect: Expect) -> TxOp {
    expecting(TxOp::put(item), expect)
}

/// The transaction item of one write.
fn op_for(write: &Write) -> Result<TxOp, StoreError> {
    let key = keys::item_key(&write.key());
    let op = match write {
        Write::PutUser { user, expect } => put(item::user_item(user, put_rev(*expect)?), *expect),
        Write::PutOwner { owner, expect } => {
            put(item::owner_item(owner, put_rev(*expect)?), *expect)
        }
        Write::PutCodes { codes, expect } => {
            put(item::codes_item(codes, put_rev(*expect)?), *expect)
        }
        Write::PutSession { session, expect } => {
            put(item::session_item(session, put_rev(*expect)?)?, *expect)
        }
        Write::PutCounter { counter, expect } => {
            put(item::counter_item(counter, put_rev(*expect)?), *expect)
        }
        Write::DeleteUser { expect, .. }
        | Write::DeleteOwner { expect, .. }
        | Write::DeleteCodes { expect, .. }
        | Write::DeleteSession { expect, .. } => expecting(TxOp::delete(key), *expect),
        Write::Check { expect, .. } => match expect {
            // A condition check needs a condition: this one always holds.
            Expect::Any => TxOp::check(key, "attribute_exists(#pk) OR attribute_not_exists(#pk)")
                .name("#pk", keys::PK),
            expect => expecting(TxOp::check(key, String::new()), *expect),
        },
        Write::UserUnlocked { user_id, now, .. } => TxOp::check(
            key,
            "attribute_exists(#pk) AND #id = :user AND \
             (attribute_not_exists(#lock) OR #lock <= :now)",
        )
        .name("#pk", keys::PK)
        .name("#id", "id")
        .name("#lock", item::LOCK_EXPIRES_AT)
        .value(":user", s(user_id.as_str()))
        .value(":now", n(now.0)),
        // DynamoDB evaluates every right-hand side on the item as it was before the update: the
        // current code (if any) becomes the newest previous one, the oldest slot's code goes.
        Write::ReplaceCode { challenge } => TxOp::update(
            key,
            "SET #prev2 = if_not_exists(#prev, :null), #prev = if_not_exists(#cur, :null), \
             #cur = :new, #app = :app, #method = :method, #ttl = :ttl ADD #rev :one",
        )
        .name("#prev", item::PREV[0])
        .name("#prev2", item::PREV[1])
        .name("#cur", item::CUR)
        .name("#app", "app_id")
        .name("#method", "method_id")
        .name("#ttl", keys::TTL)
        .name("#rev", keys::REV)
        .value(":null", item::null())
        .value(":new", item::challenge_value(challenge))
        .value(":app", s(challenge.app_id.as_str()))
        .value(":method", s(challenge.method_id.as_str()))
        .value(":ttl", item::codes_ttl(challenge.expires_at))
        .value(":one", n(1)),
        // A blind count: `ADD` needs no read; the condition keeps it within its limit (and a give
        // back above 0).
        Write::Tally {
            add,
            limit,
            expires_at,
            ..
        } => {
            let op = TxOp::update(key, "ADD #count :add SET #ttl = :ttl")
                .name("#count", item::COUNT)
                .name("#ttl", keys::TTL)
                .value(":add", n(add))
                .value(":ttl", n(expires_at.0));
            match (limit, *add >= 0) {
                // A limit below the addition: nothing fits, not even in a new tally.
                (Some(limit), true) if i128::from(*limit) < i128::from(*add) => {
                    op.when("attribute_exists(#count) AND attribute_not_exists(#count)")
                }
                (Some(limit), true) => {
                    let most = limit.saturating_sub(u64::try_from(*add).unwrap_or(0));
                    op.when("attribute_not_exists(#count) OR #count <= :most")
                        .value(":most", n(most))
                }
                (_, false) => op
                    .when("attribute_exists(#count) AND #count >= :least")
                    .value(":least", n(add.unsigned_abs())),
                (None, true) => op,
            }
        }
        Write::DeleteTally { .. } => TxOp::delete(key),
        Write::ConfirmOwner { method_id, .. } => TxOp::update(key, "REMOVE #pending ADD #rev :one")
            .when("#method = :method")
            .name("#pending", item::PENDING_SINCE)
            .name("#method", "method_id")
            .name("#rev", keys::REV)
            .value(":method", s(method_id.as_str()))
            .value(":one", n(1)),
        Write::TestIdentifierValid { id, now, .. } => TxOp::check(
            key,
            "attribute_exists(#pk) AND #id = :id AND #valid_until > :now",
        )
        .name("#pk", keys::PK)
        .name("#id", "id")
        .name("#valid_until", "valid_until")
        .value(":id", s(id.as_str()))
        .value(":now", n(now.0)),
    };
    Ok(op.returning_old())
}

/// The commit's transaction items, refused before any call if DynamoDB would refuse them.
fn ops_for(writes: &[Write]) -> Result<Vec<TxOp>, StoreError> {
    if writes.len() > MAX_WRITES {
        return Err(StoreError::Other(format!(
            "a commit of {} writes (at most {MAX_WRITES})",
            writes.len()
        )));
    }
    let ops = writes.iter().map(op_for).collect::<Result<Vec<_>, _>>()?;
    let mut targets = HashSet::new();
    for write in writes {
        if !targets.insert(keys::of(&write.key())) {
            return Err(StoreError::Other(
                "two writes of one commit on one record".to_owned(),
            ));
        }
    }
    Ok(ops)
}

/// What `load_home`'s query found, sorted into records.
fn home_records(items: &[Item]) -> Result<HomeRecords, StoreError> {
    let mut records = HomeRecords::default();
    for item in items {
        let sk = Fields::new(item, "home").s(keys::SK)?;
        if sk == keys::USER_SK {
            records.user = Some(item::user_from(item)?);
        } else if sk.starts_with(keys::CODES_PREFIX) {
            records.codes.push(item::codes_from(item)?);
        } else if sk.starts_with(keys::SESSION_PREFIX) {
            records.sessions.push(item::session_from(item)?);
        }
    }
    // Already in this order (the sort key is the hash's hex); said here for the contract.
    records.sessions.sort_by_key(|s| s.value.token_hash);
    Ok(records)
}

#[async_trait]
impl LoginStore for DynamoStore {
    async fn load(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let item_keys: Vec<Item> = keys.iter().map(keys::item_key).collect();
        let items = self.batch_get(&item_keys).await?;
        keys.iter()
            .zip(items)
            .map(|(key, item)| item.map(|i| item::record_from(key, &i)).transpose())
            .collect()
    }

    async fn load_home(&self, app_id: &AppId, home: Home) -> Result<HomeRecords, StoreError> {
        let items = self.query_partition(keys::home(app_id, home), None).await?;
        home_records(&items)
    }

    async fn commit(&self, writes: &[Write], token: &CommitToken) -> Result<(), CommitError> {
        if writes.is_empty() {
            return Ok(());
        }
        let ops = ops_for(writes)?;
        match self.transact_once(ops, Some(token.as_str())).await? {
            TxOutcome::Committed => Ok(()),
            TxOutcome::ConditionFailed(reasons) => {
                let mut conflicts = Vec::new();
                for (index, (write, reason)) in writes.iter().zip(reasons).enumerate() {
                    if !reason.failed {
                        continue;
                    }
                    let current = reason
                        .item
                        .map(|item| item::record_from(&write.key(), &item))
                        .transpose()?;
                    conflicts.push(Conflict { index, current });
                }
                Err(CommitError::Conflict(conflicts))
            }
        }
    }

    async fn list_tallies(&self, app_id: &AppId, prefix: &str) -> Result<Vec<Tally>, StoreError> {
        let items = self.query_prefix(keys::tallies(app_id), prefix).await?;
        items.iter().map(item::tally_from).collect()
    }

    async fn touch_session(
        &self,
        app_id: &AppId,
        home: Home,
        token_hash: &Hash32,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<Option<Versioned<Session>>, StoreError> {
        let key = keys::item_key(&Key::Session {
            app_id: app_id.clone(),
            home,
            token_hash: *token_hash,
        });
        let mut update = "SET #last = :now".to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("attribute_exists(#pk) AND #expires > :now")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#last", item::LAST_ACCESSED_AT)
            .expression_attribute_names("#expires", item::EXPIRES_AT)
            .expression_attribute_names("#rev", keys::REV)
            .expression_attribute_values(":now", n(now.0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew);
        if let Some(expires_at) = expires_at {
            // The ttl follows the session's expiry.
            update.push_str(", #expires = :expires, #ttl = :expires");
            request = request
                .expression_attribute_names("#ttl", keys::TTL)
                .expression_attribute_values(":expires", n(expires_at.0));
        }
        update.push_str(" ADD #rev :one");
        match request.update_expression(update).send().await {
            Ok(output) => match output.attributes {
                Some(item) => item::session_from(&item).map(Some),
                None => Err(StoreError::Other(
                    "UpdateItem returned no session".to_owned(),
                )),
            },
            // Missing or expired: nothing written.
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

#[cfg(test)]
mod tests {
    use shared::ids::{EmailId, MethodId, UserId};
    use shared::model::{Owner, SendCounter};
    use shared::random::SeededRandom;

    use super::*;

    fn owner(r: &SeededRandom, app_id: &AppId) -> Owner {
        let user_id = UserId::generate(r);
        Owner {
            app_id: app_id.clone(),
            identifier: shared::identifiers::Identifier::parse("ann@example.com").expect("valid"),
            method_id: MethodId::Email(EmailId::generate_in(r, user_id.home())),
            user_id,
            pending_since: None,
        }
    }

    #[test]
    fn puts_name_the_next_revision_and_refuse_other_expectations() {
        assert_eq!(put_rev(Expect::Absent), Ok(1));
        assert_eq!(put_rev(Expect::Rev(4)), Ok(5));
        assert!(put_rev(Expect::Rev(u64::MAX)).is_err());
        assert!(matches!(
            put_rev(Expect::Present),
            Err(StoreError::Other(_))
        ));
        assert!(matches!(put_rev(Expect::Any), Err(StoreError::Other(_))));
        let r = SeededRandom::new(1);
        let app_id = AppId::generate(&r);
        let write = Write::PutOwner {
            owner: owner(&r, &app_id),
            expect: Expect::Any,
        };
        assert!(matches!(ops_for(&[write]), Err(StoreError::Other(_))));
    }

    #[test]
    fn two_writes_on_one_record_are_refused_before_dynamodb() {
        let r = SeededRandom::new(2);
        let app_id = AppId::generate(&r);
        let owner = owner(&r, &app_id);
        let writes = [
            Write::PutOwner {
                owner: owner.clone(),
                expect: Expect::Absent,
            },
            Write::Check {
                key: Key::Owner {
                    app_id: app_id.clone(),
                    identifier: owner.identifier.clone(),
                },
                expect: Expect::Absent,
            },
        ];
        assert_eq!(
            ops_for(&writes).err(),
            Some(StoreError::Other(
                "two writes of one commit on one record".to_owned()
            ))
        );
        let counter = |key: &str| Write::PutCounter {
            counter: SendCounter {
                key: key.to_owned(),
                hits: Vec::new(),
            },
            expect: Expect::Absent,
        };
        assert!(ops_for(&[counter("a"), counter("b")]).is_ok());
        let many: Vec<Write> = (0..=MAX_WRITES).map(|i| counter(&i.to_string())).collect();
        assert!(matches!(ops_for(&many), Err(StoreError::Other(_))));
        let delete = Write::DeleteCodes {
            app_id,
            method_id: owner.method_id,
            expect: Expect::Any,
        };
        assert!(ops_for(&[delete]).is_ok());
    }
}
