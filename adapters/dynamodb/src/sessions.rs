//! `SessionStore`: the session item `APP#<app>#SESSION#<id>` (listed per user through `gsi1`)
//! and a copy under its token hash `APP#<app>#TOKEN#<hex sha256>`, always written and deleted
//! together in one transaction. A session's `token_hash` never changes.

use async_trait::async_trait;
use shared::crypto::Hash32;
use shared::ids::{AppId, SessionId, UserId};
use shared::model::Session;
use shared::ports::{SessionStore, StoreError};

use crate::DynamoStore;
use crate::db::{OPTIMISTIC_ATTEMPTS, TxOp, TxOutcome, backoff, contended};
use crate::item::{self, Item};
use crate::keys::{self, key};

fn session_key(app_id: &AppId, session_id: &SessionId) -> Item {
    key(keys::session(app_id, session_id), keys::SESSION_SK)
}

fn token_key(app_id: &AppId, token_hash: &Hash32) -> Item {
    key(keys::token(app_id, token_hash), keys::TOKEN_SK)
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.transact(vec![
            TxOp::put(item::session_item(session)?),
            TxOp::put(item::token_item(session)?),
        ])
        .await
        .map(|_| ())
    }

    async fn get_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        // As stored, expired or not (TTL deletes late): the domain checks `expires_at`.
        self.get(session_key(app_id, session_id))
            .await?
            .map(|i| item::session_from(&i))
            .transpose()
    }

    async fn find_by_token_hash(
        &self,
        app_id: &AppId,
        token_hash: &Hash32,
    ) -> Result<Option<Session>, StoreError> {
        self.get(token_key(app_id, token_hash))
            .await?
            .map(|i| item::session_from(&i))
            .transpose()
    }

    async fn update_session(&self, session: &Session) -> Result<bool, StoreError> {
        let outcome = self
            .transact(vec![
                // Never recreates a session revoked meanwhile.
                TxOp::put(item::session_item(session)?)
                    .when("attribute_exists(#pk)")
                    .name("#pk", keys::PK),
                TxOp::put(item::token_item(session)?),
            ])
            .await?;
        Ok(outcome == TxOutcome::Committed)
    }

    async fn delete_session(
        &self,
        app_id: &AppId,
        session_id: &SessionId,
    ) -> Result<bool, StoreError> {
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let Some(session) = self.get_session(app_id, session_id).await? else {
                return Ok(false);
            };
            let outcome = self
                .transact(vec![
                    // Of concurrent deletes, one reports that it deleted.
                    TxOp::delete(session_key(app_id, session_id))
                        .when("attribute_exists(#pk)")
                        .name("#pk", keys::PK),
                    TxOp::delete(token_key(app_id, &session.token_hash)),
                ])
                .await?;
            if outcome == TxOutcome::Committed {
                return Ok(true);
            }
            backoff(attempt).await;
        }
        Err(contended("delete_session"))
    }

    async fn list_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions = self
            .query_gsi1(keys::user_sessions_gsi1pk(app_id, user_id))
            .await?
            .iter()
            .map(item::session_from)
            .collect::<Result<Vec<_>, _>>()?;
        sessions.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(sessions)
    }

    async fn delete_user_sessions(
        &self,
        app_id: &AppId,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        let sessions = self.list_sessions(app_id, user_id).await?;
        // Session and token item next to each other, so a chunk never splits a pair.
        let keys = sessions
            .iter()
            .flat_map(|session| {
                [
                    session_key(app_id, &session.id),
                    token_key(app_id, &session.token_hash),
                ]
            })
            .collect();
        self.delete_all(keys).await
    }
}
