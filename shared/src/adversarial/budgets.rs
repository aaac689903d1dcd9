//! SMS budgets and the verification floor, driven through the API as a pumper would: many fresh
//! numbers of one prefix, of one region, of one app; codes sent and never entered.

use http::StatusCode;
use serde_json::{Value, json};

use super::Target;
use super::support::*;
use crate::api::RouteId;
use crate::clock::Clock;

/// An SMS sender that refuses every message.
struct Refusing;

#[async_trait::async_trait]
impl crate::ports::SmsSender for Refusing {
    async fn send_sms(
        &self,
        _: &crate::ports::SmsMessage,
    ) -> Result<(), crate::ports::DeliveryError> {
        Err(crate::ports::DeliveryError("refused".into()))
    }
}

/// Budgets with one limit set (the rest unlimited, no floor) unless `floor` says otherwise.
fn budgets(scope: &str, hour: u32, floor: Value) -> Value {
    let mut body = json!({
        "app": {"hour": null, "day": null},
        "region": {"hour": null, "day": null},
        "prefix": {"hour": null, "day": null},
        "prefix_digits": 8,
        "verification_floor": floor,
    });
    body[scope]["hour"] = json!(hour);
    body
}

async fn set_budgets(w: &World, body: Value) {
    let r = w
        .manage(
            RouteId::PutSmsBudgets,
            &[("app_id", &w.app_id)],
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w
        .manage(RouteId::GetSmsBudgets, &[("app_id", &w.app_id)], None)
        .await;
    assert_eq!(r.body["sms_budgets"], body, "what was set is what applies");
}

async fn sms(w: &World, phone: &str) -> Reply {
    w.login(RouteId::SmsLoginOrCreate, json!({ "phone_number": phone }))
        .await
}

/// A pumping run: fresh numbers of one prefix, one after the other. It stops at the prefix's
/// budget with 429 and a `Retry-After` until the hour's end; nothing is delivered past it; the
/// refused sends leave nothing behind; another prefix and email are not held by it.
pub async fn a_pumping_run_stops_at_the_prefix_budget(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    set_budgets(&w, budgets("prefix", 5, Value::Null)).await;
    let mut refused = 0;
    for i in 0..12 {
        let phone = format!("+120255501{i:02}");
        let r = sms(&w, &phone).await;
        if i < 5 {
            assert_eq!(r.status, StatusCode::OK, "{i}: {}", r.body);
        } else {
            assert_login_error(&r, 429, "too_many_requests");
            let retry = r.body["retry_after_seconds"]
                .as_u64()
                .expect("retry_after_seconds");
            let now = w.clock.now().seconds();
            assert_eq!(
                retry as i64,
                3_600 - now.rem_euclid(3_600),
                "until the hour's end"
            );
            assert!(
                w.codes_to(&phone).is_empty(),
                "nothing delivered past the budget"
            );
            assert!(
                w.holder(&phone).await.is_none(),
                "a refused send makes no user"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 7);
    assert_eq!(w.outbox.messages().len(), 5);
    let r = sms(&w, "+13125550100").await;
    assert_eq!(r.status, StatusCode::OK, "another prefix: {}", r.body);
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({"email": "ann@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "email: {}", r.body);
    // The next hour has room again.
    let now = w.clock.now().seconds();
    w.clock.advance_seconds(3_600 - now.rem_euclid(3_600));
    let r = sms(&w, "+12025550150").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The app's budget and the region's: a send past either is refused; a send whose delivery
/// failed uses up nothing; a test identifier uses no budget.
pub async fn app_and_region_budgets_count_only_delivered_sends(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    set_budgets(&w, budgets("app", 2, Value::Null)).await;
    assert_eq!(sms(&w, "+12025550101").await.status, StatusCode::OK);
    assert_eq!(sms(&w, "+447400123456").await.status, StatusCode::OK);
    assert_login_error(&sms(&w, "+12025550102").await, 429, "too_many_requests");
    // A test identifier is never delivered: it uses no budget, and no budget stops it.
    let valid_until = w.clock.now().plus_seconds(3_600);
    w.add_test_identifier("+12025550199", "424242", valid_until)
        .await;
    let r = sms(&w, "+12025550199").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let Some(mut w) = World::new(&target, relaxed()).await else {
        return;
    };
    set_budgets(&w, budgets("region", 1, Value::Null)).await;
    let sender = std::mem::replace(&mut w.deps.sms, std::sync::Arc::new(Refusing));
    let r = sms(&w, "+12025550101").await;
    assert_login_error(&r, 502, "sms_delivery_failed");
    w.deps.sms = sender;
    assert_eq!(
        sms(&w, "+12025550101").await.status,
        StatusCode::OK,
        "the failed delivery used up nothing"
    );
    assert_login_error(&sms(&w, "+12025550102").await, 429, "too_many_requests");
    assert_eq!(
        sms(&w, "+447400123456").await.status,
        StatusCode::OK,
        "another region"
    );
}

/// Codes sent to a region and never verified pause SMS to it (the floor), visible through the
/// management API; verified codes count for it; the operator's reset lets SMS through again.
pub async fn a_region_with_few_verified_codes_is_paused_until_reset(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let floor = json!({"min_rate_percent": 50, "min_sent": 4});
    set_budgets(&w, budgets("app", 1_000, floor)).await;
    let (_, phone_id, code) = w.sms_code("+12025550101").await;
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for i in 2..5 {
        let r = sms(&w, &format!("+120255501{i:02}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // 4 sent, 1 verified: 25%, below the floor of 50%.
    let r = sms(&w, "+12025550105").await;
    assert_login_error(&r, 429, "too_many_requests");
    assert!(
        r.body["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("paused")),
        "{}",
        r.body
    );
    assert!(w.codes_to("+12025550105").is_empty());
    assert_eq!(
        sms(&w, "+447400123456").await.status,
        StatusCode::OK,
        "another region is not paused"
    );
    let regions = w
        .manage(RouteId::ListSmsRegions, &[("app_id", &w.app_id)], None)
        .await;
    assert_eq!(regions.status, StatusCode::OK, "{}", regions.body);
    let us = regions.body["sms_regions"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["region"] == "US"))
        .cloned()
        .unwrap_or_else(|| panic!("{}", regions.body));
    assert_eq!(
        us,
        json!({"region": "US", "sent": 4, "verified": 1, "verification_rate_percent": 25, "paused": true})
    );
    let r = w
        .manage(
            RouteId::ResetSmsRegion,
            &[("app_id", &w.app_id), ("region", "us")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sms_region"]["paused"], json!(false));
    let r = sms(&w, "+12025550105").await;
    assert_eq!(r.status, StatusCode::OK, "after the reset: {}", r.body);
}

/// Budgets are refused when they make no sense, in the management API's shape.
pub async fn malformed_budgets_are_refused(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    for (body, what) in [
        (json!({"prefix_digits": 2}), "prefix_digits"),
        (
            json!({"verification_floor": {"min_rate_percent": 0, "min_sent": 10}}),
            "verification_floor",
        ),
        (json!({"app": {"hour": -1}}), "invalid request body"),
        (json!({"app": {"hour": "many"}}), "invalid request body"),
    ] {
        let r = w
            .manage(RouteId::PutSmsBudgets, &[("app_id", &w.app_id)], Some(body))
            .await;
        assert_management_error(&r, 400, "invalid_request");
        assert!(
            r.body["message"].as_str().is_some_and(|m| m.contains(what)),
            "{}",
            r.body
        );
    }
    let r = w
        .manage(
            RouteId::ResetSmsRegion,
            &[("app_id", &w.app_id), ("region", "USA")],
            None,
        )
        .await;
    assert_management_error(&r, 404, "not_found");
}

/// An SMS login config can carry the WebOTP origin and the Android app hash: the message then
/// ends with the hash and the line `@<domain> #<code>`, so that the code fills itself in; the
/// fields are validated, and refused on email configs.
pub async fn an_sms_carries_the_lines_that_fill_its_code_in(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let configs = w
        .manage(RouteId::ListLoginConfigs, &[("app_id", &w.app_id)], None)
        .await;
    let sms_config = configs.body["login_configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["channel_type"] == "sms"))
        .map(|c| s(&c["id"]))
        .unwrap_or_else(|| panic!("{}", configs.body));
    let replace = |body: Value| {
        let w = &w;
        let id = sms_config.clone();
        async move {
            w.manage(
                RouteId::ReplaceLoginConfig,
                &[("app_id", &w.app_id), ("config_id", &id)],
                Some(body),
            )
            .await
        }
    };
    let r = replace(
        json!({"config_type": "otp", "channel_type": "sms", "is_default": true,
        "webotp_domain": "Login.Example.com", "android_app_hash": "FA+9qCX9VSu"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["login_config"]["webotp_domain"],
        json!("login.example.com")
    );
    let (_, _, code) = w.sms_code("+12025550101").await;
    let message = w
        .outbox
        .last_to("+12025550101")
        .expect("a message to the number");
    let lines: Vec<&str> = message.text.lines().collect();
    assert_eq!(
        lines.last().copied(),
        Some(format!("@login.example.com #{code}").as_str()),
        "{}",
        message.text
    );
    assert_eq!(lines[lines.len() - 2], "FA+9qCX9VSu");

    for (body, field) in [
        (
            json!({"config_type": "otp", "channel_type": "sms", "is_default": true,
                "webotp_domain": "https://login.example.com/"}),
            "webotp_domain",
        ),
        (
            json!({"config_type": "otp", "channel_type": "sms", "is_default": true,
                "android_app_hash": "short"}),
            "android_app_hash",
        ),
        (
            json!({"config_type": "otp", "channel_type": "email", "is_default": true,
                "webotp_domain": "login.example.com"}),
            "webotp_domain",
        ),
    ] {
        let r = replace(body).await;
        assert_management_error(&r, 400, "invalid_request");
        assert!(
            r.body["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{}",
            r.body
        );
    }
}
