//! `AppStore`: the app and its secrets live in the app's partition `APP#<app_id>`. The app item
//! counts its secrets (`secret_count`), so that "not the last secret" is a condition that the
//! delete's own transaction checks.

use async_trait::async_trait;
use shared::clock::Timestamp;
use shared::ids::{AppId, SecretId};
use shared::model::{App, AppSecret, FrontendSettings, SigningKey};
use shared::ports::{AppData, AppStore, StoreError, WriteError};

use crate::DynamoStore;
use crate::db::{OPTIMISTIC_ATTEMPTS, TxOp, TxOutcome, backoff, contended};
use crate::error::sdk_error;
use crate::item::{self, Fields, SECRET_COUNT, n};
use crate::keys::{self, key};

fn app_key(app_id: &AppId) -> item::Item {
    key(keys::app(app_id), keys::APP_SK)
}

fn secret_key(app_id: &AppId, secret_id: &SecretId) -> item::Item {
    key(keys::app(app_id), &keys::secret_sk(secret_id))
}

/// `ADD secret_count :delta` on the app item, which must exist.
fn count_secrets(app_id: &AppId, delta: i64) -> TxOp {
    TxOp::update(app_key(app_id), "ADD #count :delta")
        .when("attribute_exists(#pk)")
        .name("#count", SECRET_COUNT)
        .name("#pk", keys::PK)
        .value(":delta", n(delta))
}

/// The items of `load_app`'s query, sorted into an `AppData` (`None` without the app item).
fn app_data(items: &[item::Item]) -> Result<Option<AppData>, StoreError> {
    let mut app = None;
    let (mut secrets, mut configs, mut templates) = (Vec::new(), Vec::new(), Vec::new());
    let mut sms_countries = None;
    let mut sms_budgets = None;
    let mut signing_keys = Vec::new();
    let mut frontend = FrontendSettings::default();
    for item in items {
        let sk = Fields::new(item, "app partition").s(keys::SK)?;
        if sk == keys::APP_SK {
            app = Some(item::app_from(item)?);
        } else if sk.starts_with(keys::SECRET_PREFIX) {
            secrets.push(item::secret_from(item)?);
        } else if sk.starts_with(keys::CONFIG_PREFIX) {
            configs.push(item::config_from(item)?.config);
        } else if sk.starts_with(keys::TEMPLATE_PREFIX) {
            templates.push(item::template_from(item)?);
        } else if sk == keys::SMS_COUNTRIES_SK {
            sms_countries = Some(item::sms_countries_from(item)?);
        } else if sk == keys::SMS_BUDGETS_SK {
            sms_budgets = Some(item::sms_budgets_from(item)?);
        } else if sk == keys::SIGNING_KEYS_SK {
            signing_keys = item::signing_keys_from(item)?;
        } else if sk == keys::FRONTEND_SK {
            frontend = item::frontend_from(item)?;
        }
        // `DEFAULT#` pointers only guard default switching: the configs carry `is_default`.
    }
    Ok(app.map(|app| AppData {
        app,
        secrets,
        configs,
        templates,
        sms_countries,
        sms_budgets,
        signing_keys,
        frontend,
    }))
}

#[async_trait]
impl AppStore for DynamoStore {
    async fn create_app(
        &self,
        app: &App,
        secret: &AppSecret,
        signing_keys: &[SigningKey],
        frontend: &FrontendSettings,
    ) -> Result<(), StoreError> {
        // One transaction: never an app without its first secret, its signing key or its
        // public token.
        let mut ops = vec![
            TxOp::put(item::app_item(app, 1)),
            TxOp::put(item::secret_item(secret)),
        ];
        if !signing_keys.is_empty() {
            ops.push(TxOp::put(item::signing_keys_item(&app.id, signing_keys)));
        }
        if frontend.revision > 0 {
            ops.push(TxOp::put(item::frontend_item(&app.id, frontend)));
            for token in &frontend.public_tokens {
                ops.push(
                    TxOp::put(item::public_token_item(&token.token, &app.id))
                        .when("attribute_not_exists(#pk)")
                        .name("#pk", keys::PK),
                );
            }
        }
        match self.transact(ops).await? {
            TxOutcome::Committed => Ok(()),
            _ => Err(StoreError::Other(
                "create_app: a public token of the new app exists".to_owned(),
            )),
        }
    }

    async fn find_public_token(&self, token: &str) -> Result<Option<AppId>, StoreError> {
        self.get(key(keys::public_token(token), keys::PUBLIC_TOKEN_SK))
            .await?
            .map(|i| item::public_token_app(&i))
            .transpose()
    }

    async fn replace_frontend(
        &self,
        app_id: &AppId,
        expected_revision: u64,
        settings: &FrontendSettings,
        added: Option<&str>,
        removed: Option<&str>,
    ) -> Result<(), WriteError> {
        // One transaction: the settings change only from the revision the caller read, and
        // a public token's lookup comes and goes with its place in the settings.
        let put = TxOp::put(item::frontend_item(app_id, settings));
        let put = if expected_revision == 0 {
            put.when("attribute_not_exists(#pk)").name("#pk", keys::PK)
        } else {
            put.when("#rev = :rev")
                .name("#rev", keys::REV)
                .value(":rev", n(expected_revision))
        };
        let mut ops = vec![
            put,
            TxOp::check(app_key(app_id), "attribute_exists(#pk)").name("#pk", keys::PK),
        ];
        if let Some(token) = added {
            ops.push(
                TxOp::put(item::public_token_item(token, app_id))
                    .when("attribute_not_exists(#pk)")
                    .name("#pk", keys::PK),
            );
        }
        if let Some(token) = removed {
            ops.push(TxOp::delete(key(
                keys::public_token(token),
                keys::PUBLIC_TOKEN_SK,
            )));
        }
        match self.transact(ops).await? {
            TxOutcome::Committed => Ok(()),
            outcome if outcome.failed(1) => Err(WriteError::Conflict("the app is gone")),
            outcome if outcome.failed(0) => {
                Err(WriteError::Conflict("the app's frontend settings changed"))
            }
            _ => Err(WriteError::Conflict("the public token exists")),
        }
    }

    async fn replace_signing_keys(
        &self,
        app_id: &AppId,
        expected_current: Option<&str>,
        signing_keys: &[SigningKey],
    ) -> Result<(), WriteError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::signing_keys_item(app_id, signing_keys)));
        let put = match expected_current {
            // An app made before keys: nobody rotated it first.
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK),
            Some(kid) => put
                .condition_expression("#current = :kid")
                .expression_attribute_names("#current", item::CURRENT_KID)
                .expression_attribute_values(":kid", item::s(kid)),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(WriteError::Conflict("the app's signing keys changed"))
            }
            Err(e) => Err(sdk_error("PutItem", &e).into()),
        }
    }

    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        self.get(app_key(app_id))
            .await?
            .map(|i| item::app_from(&i))
            .transpose()
    }

    async fn load_app(&self, app_id: &AppId) -> Result<Option<AppData>, StoreError> {
        // One consistent query of the app partition, test identifiers excluded (there can be
        // many, and a send reads its own by key).
        let items = self
            .query_partition(keys::app(app_id), Some(keys::TESTID_PREFIX))
            .await?;
        app_data(&items)
    }

    async fn add_secret(&self, secret: &AppSecret) -> Result<(), StoreError> {
        let app = &secret.app_id;
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            // A new secret and one more in the count, together.
            let outcome = self
                .transact(vec![
                    TxOp::put(item::secret_item(secret))
                        .when("attribute_not_exists(#pk)")
                        .name("#pk", keys::PK),
                    count_secrets(app, 1),
                ])
                .await?;
            if outcome == TxOutcome::Committed {
                return Ok(());
            }
            if outcome.failed(1) {
                return Err(StoreError::Other("add_secret: no such app".to_owned()));
            }
            // The secret exists: replace it, the count unchanged (unless it went meanwhile).
            let replaced = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item::secret_item(secret)))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .send()
                .await;
            match replaced {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(sdk_error("PutItem", &e)),
            }
            backoff(attempt).await;
        }
        Err(contended("add_secret"))
    }

    async fn list_secrets(&self, app_id: &AppId) -> Result<Vec<AppSecret>, StoreError> {
        self.query_prefix(keys::app(app_id), keys::SECRET_PREFIX)
            .await?
            .iter()
            .map(item::secret_from)
            .collect()
    }

    async fn delete_secret(
        &self,
        app_id: &AppId,
        secret_id: &SecretId,
    ) -> Result<bool, WriteError> {
        // One transaction: the secret goes only together with one off a count above one, so
        // of two concurrent deletes of an app's last two secrets exactly one succeeds.
        let outcome = self
            .transact(vec![
                TxOp::delete(secret_key(app_id, secret_id))
                    .when("attribute_exists(#pk)")
                    .name("#pk", keys::PK),
                TxOp::update(app_key(app_id), "ADD #count :minus_one")
                    .when("#count > :one")
                    .name("#count", SECRET_COUNT)
                    .value(":minus_one", n(-1))
                    .value(":one", n(1)),
            ])
            .await?;
        match outcome {
            TxOutcome::Committed => Ok(true),
            outcome if outcome.failed(0) => Ok(false),
            _ => Err(WriteError::Conflict("the app's last secret")),
        }
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
            .set_key(Some(secret_key(app_id, secret_id)))
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
