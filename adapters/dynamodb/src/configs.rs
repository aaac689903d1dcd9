//! `ConfigStore`: login configs, templates, test identifiers and SMS countries, all in the app's
//! partition `APP#<app_id>`.
//!
//! Invariants kept by every write (each write is one transaction whose conditions assert the
//! state it was computed from):
//! - the default pointer `DEFAULT#<channel>` names config X exactly when config X exists, is of
//!   that channel and has `is_default = true`; so at most one default per (app, channel);
//! - a template's `uses` counts the configs that name it; a template is deleted only at 0;
//! - a config's `rev` changes on every write to it (replace, un-default), so a transaction
//!   conditioned on `rev` fails if anything about the config changed since it was read;
//! - a test identifier is stored under its identifier (unique per app by key), with a pointer
//!   `TESTID#ID#<id>` to that key.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use shared::identifiers::{Identifier, Region};
use shared::ids::{AppId, ConfigId, TemplateId, TestIdentifierId};
use shared::model::{Channel, LoginConfig, SmsBudgets, Template, TestIdentifier};
use shared::ports::{ConfigStore, StoreError, WriteError};

use crate::DynamoStore;
use crate::db::{Expr, OPTIMISTIC_ATTEMPTS, TxOp, TxOutcome, backoff, contended};
use crate::error::sdk_error;
use crate::item::{self, boolean, n, s};
use crate::keys::{self, key};

/// What each item of a `put_config`/`delete_config` transaction is for, to read its failure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// The config itself (`rev` or absence): it changed since it was read.
    Config,
    /// A default pointer: it changed since it was read.
    Pointer,
    /// The config being un-defaulted is missing, or the pointer being released names another
    /// config: a stale pointer (the sort key of the item), skipped on the next attempt.
    StaleDefault(String),
    /// The template the config names is missing: `Conflict`.
    Template,
    /// The template the config named before is missing (its sort key): nothing to release.
    StaleTemplate(String),
}

/// After a refused transaction: if the config and the pointers were as read, the items that
/// failed their existence check are stale (missing although the invariants say otherwise) and
/// are left out of the next attempt. If anything read had changed, simply read again.
fn note_stale(roles: &[Role], outcome: &TxOutcome, stale: &mut HashSet<String>) {
    let changed = roles
        .iter()
        .enumerate()
        .any(|(index, role)| matches!(role, Role::Config | Role::Pointer) && outcome.failed(index));
    if changed {
        return;
    }
    for (index, role) in roles.iter().enumerate() {
        if let (true, Role::StaleDefault(sk) | Role::StaleTemplate(sk)) =
            (outcome.failed(index), role)
        {
            stale.insert(sk.clone());
        }
    }
}

fn cond_unchanged(op: TxOp, rev: Option<i64>) -> TxOp {
    match rev {
        Some(rev) => op
            .when("#rev = :rev")
            .name("#rev", "rev")
            .value(":rev", n(rev)),
        None => op.when("attribute_not_exists(#pk)").name("#pk", keys::PK),
    }
}

fn pointer_key(app_id: &AppId, channel: Channel) -> item::Item {
    key(keys::app(app_id), &keys::default_sk(channel))
}

fn config_key(app_id: &AppId, config_id: &ConfigId) -> item::Item {
    key(keys::app(app_id), &keys::config_sk(config_id))
}

fn template_key(app_id: &AppId, template_id: &TemplateId) -> item::Item {
    key(keys::app(app_id), &keys::template_sk(template_id))
}

/// `ADD uses :delta` on a template that must exist.
fn count_use(app_id: &AppId, template_id: &TemplateId, delta: i64) -> TxOp {
    TxOp::update(template_key(app_id, template_id), "ADD #uses :delta")
        .when("attribute_exists(#pk)")
        .name("#uses", "uses")
        .name("#pk", keys::PK)
        .value(":delta", n(delta))
}

/// Deletes the default pointer if it still names `config_id`.
fn release_pointer(app_id: &AppId, channel: Channel, config_id: &ConfigId) -> TxOp {
    TxOp::delete(pointer_key(app_id, channel))
        .when("#cfg = :cfg")
        .name("#cfg", "config_id")
        .value(":cfg", s(config_id.as_str()))
}

fn test_ident_key(app_id: &AppId, sk: &str) -> item::Item {
    key(keys::app(app_id), sk)
}

#[async_trait]
impl ConfigStore for DynamoStore {
    async fn put_config(&self, config: &LoginConfig) -> Result<(), WriteError> {
        let app = &config.app_id;
        // Sort keys found missing although the invariants say they exist: skipped on retry.
        let mut stale: HashSet<String> = HashSet::new();
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let snapshot = self
                .get_all(vec![
                    config_key(app, &config.id),
                    pointer_key(app, config.channel),
                ])
                .await?;
            let old = snapshot[0].as_ref().map(item::config_from).transpose()?;
            let current_default = snapshot[1]
                .as_ref()
                .map(item::default_pointer_from)
                .transpose()?;

            let mut ops = Vec::new();
            let mut roles = Vec::new();
            let old_rev = old.as_ref().map(|o| o.rev);
            ops.push(cond_unchanged(
                TxOp::put(item::config_item(config, old_rev.unwrap_or(0) + 1)),
                old_rev,
            ));
            roles.push(Role::Config);

            // The default pointer of the config's channel, and the config it un-defaults.
            if config.is_default && current_default.as_ref() != Some(&config.id) {
                let pointer =
                    TxOp::put(item::default_pointer_item(app, config.channel, &config.id));
                ops.push(match &current_default {
                    Some(previous) => pointer
                        .when("#cfg = :cfg")
                        .name("#cfg", "config_id")
                        .value(":cfg", s(previous.as_str())),
                    None => pointer
                        .when("attribute_not_exists(#pk)")
                        .name("#pk", keys::PK),
                });
                roles.push(Role::Pointer);
                if let Some(previous) = &current_default {
                    let sk = keys::config_sk(previous);
                    if !stale.contains(&sk) {
                        ops.push(
                            TxOp::update(
                                config_key(app, previous),
                                "SET #def = :false, #rev = #rev + :one",
                            )
                            .when("attribute_exists(#pk)")
                            .name("#def", "is_default")
                            .name("#rev", "rev")
                            .name("#pk", keys::PK)
                            .value(":false", boolean(false))
                            .value(":one", n(1)),
                        );
                        roles.push(Role::StaleDefault(sk));
                    }
                }
            }
            // The pointer this config held, unless it keeps it.
            if let Some(old) = old.as_ref().filter(|o| o.config.is_default) {
                let keeps = config.is_default && old.config.channel == config.channel;
                let pointer_sk = keys::default_sk(old.config.channel);
                if !keeps && !stale.contains(&pointer_sk) {
                    ops.push(release_pointer(app, old.config.channel, &config.id));
                    roles.push(Role::StaleDefault(pointer_sk));
                }
            }

            // Template use counts: the named template must exist (and is counted).
            let old_template = old.as_ref().and_then(|o| o.config.template_id.clone());
            if config.template_id == old_template {
                if let Some(template) = &config.template_id {
                    ops.push(
                        TxOp::check(template_key(app, template), "attribute_exists(#pk)")
                            .name("#pk", keys::PK),
                    );
                    roles.push(Role::Template);
                }
            } else {
                if let Some(template) = &config.template_id {
                    ops.push(count_use(app, template, 1));
                    roles.push(Role::Template);
                }
                if let Some(template) = &old_template {
                    let sk = keys::template_sk(template);
                    if !stale.contains(&sk) {
                        ops.push(count_use(app, template, -1));
                        roles.push(Role::StaleTemplate(sk));
                    }
                }
            }

            let outcome = self.transact(ops).await?;
            if outcome == TxOutcome::Committed {
                return Ok(());
            }
            if roles
                .iter()
                .enumerate()
                .any(|(index, role)| *role == Role::Template && outcome.failed(index))
            {
                return Err(WriteError::Conflict("template"));
            }
            note_stale(&roles, &outcome, &mut stale);
            backoff(attempt).await;
        }
        Err(contended("put_config").into())
    }

    async fn get_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<Option<LoginConfig>, StoreError> {
        Ok(self
            .get(config_key(app_id, config_id))
            .await?
            .map(|i| item::config_from(&i))
            .transpose()?
            .map(|stored| stored.config))
    }

    async fn list_configs(&self, app_id: &AppId) -> Result<Vec<LoginConfig>, StoreError> {
        self.query_prefix(keys::app(app_id), keys::CONFIG_PREFIX)
            .await?
            .iter()
            .map(|i| item::config_from(i).map(|stored| stored.config))
            .collect()
    }

    async fn delete_config(
        &self,
        app_id: &AppId,
        config_id: &ConfigId,
    ) -> Result<bool, StoreError> {
        let mut stale: HashSet<String> = HashSet::new();
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let Some(old) = self
                .get(config_key(app_id, config_id))
                .await?
                .map(|i| item::config_from(&i))
                .transpose()?
            else {
                return Ok(false);
            };
            let mut ops = vec![cond_unchanged(
                TxOp::delete(config_key(app_id, config_id)),
                Some(old.rev),
            )];
            let mut roles = vec![Role::Config];
            let pointer_sk = keys::default_sk(old.config.channel);
            if old.config.is_default && !stale.contains(&pointer_sk) {
                ops.push(release_pointer(app_id, old.config.channel, config_id));
                roles.push(Role::StaleDefault(pointer_sk));
            }
            if let Some(template) = &old.config.template_id {
                let sk = keys::template_sk(template);
                if !stale.contains(&sk) {
                    ops.push(count_use(app_id, template, -1));
                    roles.push(Role::StaleTemplate(sk));
                }
            }
            let outcome = self.transact(ops).await?;
            if outcome == TxOutcome::Committed {
                return Ok(true);
            }
            note_stale(&roles, &outcome, &mut stale);
            backoff(attempt).await;
        }
        Err(contended("delete_config"))
    }

    async fn put_template(&self, template: &Template) -> Result<(), StoreError> {
        // An update, not a put: a replace keeps the template's use count.
        let (set, remove) = item::template_attributes(template);
        let mut expr = Expr::new().name("#uses", "uses").value(":zero", n(0));
        let mut assignments = vec!["#uses = if_not_exists(#uses, :zero)".to_owned()];
        for (index, (name, value)) in set.into_iter().enumerate() {
            assignments.push(format!("#a{index} = :a{index}"));
            expr = expr
                .name(&format!("#a{index}"), name)
                .value(&format!(":a{index}"), value);
        }
        let mut update = format!("SET {}", assignments.join(", "));
        if !remove.is_empty() {
            let removed: Vec<String> = remove
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    expr = std::mem::take(&mut expr).name(&format!("#r{index}"), name);
                    format!("#r{index}")
                })
                .collect();
            update.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(template_key(&template.app_id, &template.id)))
            .update_expression(update)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await
            .map_err(|e| sdk_error("UpdateItem", &e))?;
        Ok(())
    }

    async fn get_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        self.get(template_key(app_id, template_id))
            .await?
            .map(|i| item::template_from(&i))
            .transpose()
    }

    async fn list_templates(&self, app_id: &AppId) -> Result<Vec<Template>, StoreError> {
        self.query_prefix(keys::app(app_id), keys::TEMPLATE_PREFIX)
            .await?
            .iter()
            .map(item::template_from)
            .collect()
    }

    async fn delete_template(
        &self,
        app_id: &AppId,
        template_id: &TemplateId,
    ) -> Result<bool, WriteError> {
        // One conditional delete: refused while a config counts as a user of it.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(template_key(app_id, template_id)))
            .condition_expression("attribute_not_exists(#uses) OR #uses <= :zero")
            .expression_attribute_names("#uses", "uses")
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.attributes.is_some_and(|a| !a.is_empty())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(WriteError::Conflict("template in use"))
            }
            Err(e) => Err(sdk_error("DeleteItem", &e).into()),
        }
    }

    async fn put_test_identifier(&self, test: &TestIdentifier) -> Result<(), WriteError> {
        let app = &test.app_id;
        let new_sk = keys::test_ident_sk(&test.identifier);
        let pointer_key = test_ident_key(app, &keys::test_id_sk(&test.id));
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let old_sk = self
                .get(pointer_key.clone())
                .await?
                .map(|i| item::test_id_pointer_from(&i))
                .transpose()?;
            let mut ops = vec![
                // The identifier is free, or already this test identifier's (a replace).
                TxOp::put(item::test_identifier_item(test))
                    .when("attribute_not_exists(#pk) OR #id = :id")
                    .name("#pk", keys::PK)
                    .name("#id", "id")
                    .value(":id", s(test.id.as_str())),
            ];
            let pointer = TxOp::put(item::test_id_pointer_item(test));
            ops.push(match &old_sk {
                Some(old) => pointer
                    .when("#sk = :sk")
                    .name("#sk", "ident_sk")
                    .value(":sk", s(old.as_str())),
                None => pointer
                    .when("attribute_not_exists(#pk)")
                    .name("#pk", keys::PK),
            });
            if let Some(old) = old_sk.as_ref().filter(|old| **old != new_sk) {
                // Re-put under another identifier: the old record goes.
                ops.push(
                    TxOp::delete(test_ident_key(app, old))
                        .when("#id = :id")
                        .name("#id", "id")
                        .value(":id", s(test.id.as_str())),
                );
            }
            let outcome = self.transact(ops).await?;
            if outcome == TxOutcome::Committed {
                return Ok(());
            }
            if outcome.failed(0) {
                return Err(WriteError::Conflict("test identifier exists"));
            }
            backoff(attempt).await;
        }
        Err(contended("put_test_identifier").into())
    }

    async fn list_test_identifiers(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<TestIdentifier>, StoreError> {
        let mut tests = self
            .query_prefix(keys::app(app_id), keys::TEST_IDENT_PREFIX)
            .await?
            .iter()
            .map(item::test_identifier_from)
            .collect::<Result<Vec<_>, _>>()?;
        // By id, as the in-memory store lists them.
        tests.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(tests)
    }

    async fn find_test_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Result<Option<TestIdentifier>, StoreError> {
        self.get(test_ident_key(app_id, &keys::test_ident_sk(identifier)))
            .await?
            .map(|i| item::test_identifier_from(&i))
            .transpose()
    }

    async fn delete_test_identifier(
        &self,
        app_id: &AppId,
        id: &TestIdentifierId,
    ) -> Result<bool, StoreError> {
        let pointer_key = test_ident_key(app_id, &keys::test_id_sk(id));
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let Some(sk) = self
                .get(pointer_key.clone())
                .await?
                .map(|i| item::test_id_pointer_from(&i))
                .transpose()?
            else {
                return Ok(false);
            };
            let outcome = self
                .transact(vec![
                    TxOp::delete(pointer_key.clone())
                        .when("#sk = :sk")
                        .name("#sk", "ident_sk")
                        .value(":sk", s(sk.as_str())),
                    TxOp::delete(test_ident_key(app_id, &sk))
                        .when("#id = :id")
                        .name("#id", "id")
                        .value(":id", s(id.as_str())),
                ])
                .await?;
            if outcome == TxOutcome::Committed {
                return Ok(true);
            }
            backoff(attempt).await;
        }
        Err(contended("delete_test_identifier"))
    }

    async fn get_sms_countries(&self, app_id: &AppId) -> Result<Option<Vec<Region>>, StoreError> {
        self.get(key(keys::app(app_id), keys::SMS_COUNTRIES_SK))
            .await?
            .map(|i| item::sms_countries_from(&i))
            .transpose()
    }

    async fn put_sms_countries(
        &self,
        app_id: &AppId,
        regions: Option<Vec<Region>>,
    ) -> Result<(), StoreError> {
        match regions {
            Some(regions) => self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item::sms_countries_item(app_id, &regions)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("PutItem", &e)),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::app(app_id), keys::SMS_COUNTRIES_SK)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("DeleteItem", &e)),
        }
    }

    async fn get_sms_budgets(&self, app_id: &AppId) -> Result<Option<SmsBudgets>, StoreError> {
        self.get(key(keys::app(app_id), keys::SMS_BUDGETS_SK))
            .await?
            .map(|i| item::sms_budgets_from(&i))
            .transpose()
    }

    async fn put_sms_budgets(
        &self,
        app_id: &AppId,
        budgets: &SmsBudgets,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::sms_budgets_item(app_id, budgets)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("PutItem", &e))
    }
}
