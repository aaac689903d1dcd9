//! Replays and cross-tenant reuse through `shared::api::handle`: used, expired and replaced
//! codes, another app's or another user's codes, sessions and JWTs presented where they do not
//! belong, tampered JWTs, and management IDs of one app used under another.

mod adversarial_support;

use adversarial_support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};
use shared::api::RouteId;
use shared::clock::Timestamp;

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

#[tokio::test]
async fn a_used_code_is_refused() {
    let w = World::new(relaxed()).await;
    let (_, phone_id, code) = w.sms_code(PHONE).await;
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for _ in 0..3 {
        let r = w.authenticate(&phone_id, &code).await;
        assert_login_error(&r, 401, "unable_to_auth_otp_code");
    }
    // A spent code's refusals count for nothing: the user is not on the way to a lock.
    let (user_id, _, _) = w.sms_code(PHONE).await;
    assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 0);
}

#[tokio::test]
async fn an_expired_code_is_refused_even_when_right() {
    let w = World::new(relaxed()).await;
    // Default lifetime: 2 minutes. One second before the end it works ...
    let (_, phone_id, code) = w.sms_code(PHONE).await;
    w.clock.advance_seconds(119);
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // ... and at the end it does not.
    let (user_id, phone_id, code) = w.sms_code(PHONE).await;
    w.clock.advance_seconds(120);
    let r = w.authenticate(&phone_id, &code).await;
    assert_login_error(&r, 401, "unable_to_auth_otp_code");
    // A request's own shorter lifetime is honoured.
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": PHONE, "expiration_minutes": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let code = w.outbox.last_to(PHONE).unwrap().code;
    w.clock.advance_seconds(60);
    let r = w.authenticate(&phone_id, &code).await;
    assert_login_error(&r, 401, "unable_to_auth_otp_code");
    assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 0);
}

#[tokio::test]
async fn a_replaced_code_counts_as_a_wrong_code_and_the_new_one_works() {
    let w = World::new(relaxed()).await;
    let (_, phone_id, old) = w.sms_code(PHONE).await;
    let (_, same_phone_id, new) = w.sms_code(PHONE).await;
    assert_eq!(phone_id, same_phone_id);
    if old == new {
        return; // one in a million; nothing to tell apart
    }
    let r = w.authenticate(&phone_id, &old).await;
    assert_login_error(&r, 404, "otp_code_not_found");
    assert_eq!(r.body["attempts_remaining"], json!(4));
    let r = w.authenticate(&phone_id, &new).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_code_of_another_app_is_not_found_and_costs_its_owner_nothing() {
    let w = World::new(relaxed()).await;
    let (b_id, b_secret) = w.create_app("Other").await;
    let b = Auth::Basic(b_id, b_secret);
    let (_, phone_id, code) = w.sms_code(PHONE).await;
    let r = w
        .login_as(
            &b,
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60}),
        )
        .await;
    assert_login_error(&r, 404, "otp_code_not_found");
    assert!(r.body.get("attempts_remaining").is_none(), "{}", r.body);
    // The same number in app B is another user with its own method.
    let (_, b_phone_id, _) = w.sms_code_as(&b, PHONE).await;
    assert_ne!(b_phone_id, phone_id);
    // App A's code was not touched and still works in app A.
    assert_eq!(w.challenge(&phone_id).await.unwrap().attempts, 0);
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn another_users_code_does_not_open_my_method() {
    let w = World::new(relaxed()).await;
    let (ann, ann_phone, ann_code) = w.sms_code(PHONE).await;
    let (bob, bob_phone, bob_code) = w.sms_code(OTHER_PHONE).await;
    if ann_code == bob_code {
        return;
    }
    let r = w.authenticate(&ann_phone, &bob_code).await;
    assert_login_error(&r, 404, "otp_code_not_found");
    assert_eq!(r.body["attempts_remaining"], json!(4));
    // Bob's code is still Bob's alone, and Ann's still hers.
    let r = w.authenticate(&bob_phone, &bob_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user_id"], json!(bob));
    let r = w.authenticate(&ann_phone, &ann_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user_id"], json!(ann));
    // A method with no code at all (Ann's email) does not take her sms code.
    let r = w
        .login(RouteId::EmailSend, json!({"email": EMAIL, "user_id": ann}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_id = s(&r.body["email_id"]);
    let r = w.authenticate(&email_id, &ann_code).await;
    assert!(
        r.status == StatusCode::NOT_FOUND || r.status == StatusCode::UNAUTHORIZED,
        "{}",
        r.body
    );
    assert_login_shape(&r);
}

#[tokio::test]
async fn sessions_and_jwts_do_not_cross_apps() {
    let w = World::new(relaxed()).await;
    let (b_id, b_secret) = w.create_app("Other").await;
    let b = Auth::Basic(b_id, b_secret);
    let (ann, _, session) = w.session_for(PHONE).await;
    let token = s(&session["session_token"]);
    let jwt = s(&session["session_jwt"]);
    let session_id = s(&session["session"]["session_id"]);

    let r = w
        .login_as(
            &b,
            RouteId::SessionsAuthenticate,
            json!({"session_token": token}),
        )
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = w
        .login_as(
            &b,
            RouteId::SessionsAuthenticate,
            json!({"session_jwt": jwt}),
        )
        .await;
    assert_login_error(&r, 401, "invalid_session_jwt");
    // Nor can app B revoke, list or use them.
    let r = w
        .login_as(
            &b,
            RouteId::SessionsRevoke,
            json!({"session_id": session_id}),
        )
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = w
        .login_as(&b, RouteId::SessionsRevoke, json!({"session_token": token}))
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = call(
        &w.deps,
        RouteId::SessionsList,
        &[("user_id", &ann)],
        &b,
        None,
    )
    .await;
    assert_login_error(&r, 404, "user_not_found");
    let r = call(&w.deps, RouteId::UsersGet, &[("user_id", &ann)], &b, None).await;
    assert_login_error(&r, 404, "user_not_found");
    let r = call(
        &w.deps,
        RouteId::UsersDelete,
        &[("user_id", &ann)],
        &b,
        None,
    )
    .await;
    assert_login_error(&r, 404, "user_not_found");
    let r = w
        .login_as(
            &b,
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "user_id": ann}),
        )
        .await;
    assert_login_error(&r, 404, "user_not_found");
    let r = w
        .login_as(
            &b,
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "session_token": token}),
        )
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = w
        .login_as(
            &b,
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "session_jwt": jwt}),
        )
        .await;
    assert_login_error(&r, 401, "invalid_session_jwt");

    // Everything of app A is intact.
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w.list_sessions(&ann).await;
    assert_eq!(r.body["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(
        w.users_holding(OTHER_PHONE),
        0,
        "app B added nothing to Ann"
    );
}

#[tokio::test]
async fn revoked_and_expired_sessions_are_not_found() {
    let w = World::new(relaxed()).await;
    let (_, _, session) = w.session_for(PHONE).await;
    let token = s(&session["session_token"]);
    let jwt = s(&session["session_jwt"]);
    let r = w
        .login(RouteId::SessionsRevoke, json!({"session_jwt": jwt}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for body in [json!({"session_token": token}), json!({"session_jwt": jwt})] {
        let r = w.login(RouteId::SessionsAuthenticate, body.clone()).await;
        assert_login_error(&r, 404, "session_not_found");
        let r = w.login(RouteId::SessionsRevoke, body).await;
        assert_login_error(&r, 404, "session_not_found");
    }
    // Extending a revoked session with a fresh code is refused before the code is spent.
    let (_, phone_id, code) = w.sms_code(PHONE).await;
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code, "session_jwt": jwt}),
        )
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the code was not spent: {}",
        r.body
    );

    // A session past its lifetime (60 minutes) is gone for its token and its JWT alike.
    let token = s(&r.body["session_token"]);
    let jwt = s(&r.body["session_jwt"]);
    w.clock.advance_seconds(60 * 60);
    for body in [json!({"session_token": token}), json!({"session_jwt": jwt})] {
        let r = w.login(RouteId::SessionsAuthenticate, body).await;
        assert_login_error(&r, 404, "session_not_found");
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn unb64(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn tampered_jwts_are_invalid() {
    let w = World::new(relaxed()).await;
    let (_, _, ann) = w.session_for(PHONE).await;
    let (bob_id, _, bob) = w.session_for(OTHER_PHONE).await;
    let jwt = s(&ann["session_jwt"]);
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = unb64(parts[0]);
    let mut claims = unb64(parts[1]);

    // Ann's signature over Bob's session id and subject.
    claims["https://stytch.com/session"]["id"] = bob["session"]["session_id"].clone();
    claims["sub"] = json!(bob_id);
    let swapped = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    // No signature at all, and alg "none".
    let unsigned = format!("{}.{}.", parts[0], parts[1]);
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let alg_none = format!("{}.{}.", b64(&none_header), b64(&claims));
    // HS256 keyed with the public modulus (the classic RS/HS confusion).
    let mut hs_header = header.clone();
    hs_header["alg"] = json!("HS256");
    let hs = format!("{}.{}.{}", b64(&hs_header), b64(&claims), parts[2]);
    // Another issuer and audience under the original signature.
    let mut other_iss = unb64(parts[1]);
    other_iss["iss"] = json!("https://evil.example");
    let other_iss = format!("{}.{}.{}", parts[0], b64(&other_iss), parts[2]);

    for bad in [
        swapped,
        unsigned,
        alg_none,
        hs,
        other_iss,
        "a.b.c".to_owned(),
        "x".repeat(8000),
    ] {
        let r = w
            .login(RouteId::SessionsAuthenticate, json!({"session_jwt": bad}))
            .await;
        assert_login_error(&r, 401, "invalid_session_jwt");
    }
}

#[tokio::test]
async fn test_identifier_codes_stop_at_valid_until_and_at_deletion() {
    let w = World::new(relaxed()).await;
    let valid_until = Timestamp(START.0 + 90).to_rfc3339();
    let r = call(
        &w.deps,
        RouteId::CreateTestIdentifier,
        &[("app_id", &w.app_id)],
        &Auth::Management,
        Some(json!({"identifier": PHONE, "code": "246810", "valid_until": valid_until})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let tid = s(&r.body["test_identifier"]["id"]);

    // Within validity the fixed code works, once per code sent.
    let (_, phone_id, _) = w.sms_code(PHONE).await;
    let r = w.authenticate(&phone_id, "246810").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w.authenticate(&phone_id, "246810").await;
    assert_login_error(&r, 401, "unable_to_auth_otp_code");

    // A code sent while valid, tried after valid_until: refused like a wrong code.
    w.sms_code(PHONE).await;
    w.clock.advance_seconds(91);
    let r = w.authenticate(&phone_id, "246810").await;
    assert_login_error(&r, 404, "otp_code_not_found");

    // After valid_until the number is an ordinary one: a real code is sent and works.
    let (_, _, real) = w.sms_code(PHONE).await;
    assert_ne!(real, "(test code)");
    assert!(!w.outbox.last_to(PHONE).unwrap().test);
    let r = w.authenticate(&phone_id, "246810").await;
    if real != "246810" {
        assert_login_error(&r, 404, "otp_code_not_found");
    }

    // Deleted while a fixed code is live: the fixed code stops working.
    let valid_until = Timestamp(START.0 + 91 + 3600).to_rfc3339();
    let r = call(
        &w.deps,
        RouteId::DeleteTestIdentifier,
        &[("app_id", &w.app_id), ("id", &tid)],
        &Auth::Management,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = call(
        &w.deps,
        RouteId::CreateTestIdentifier,
        &[("app_id", &w.app_id)],
        &Auth::Management,
        Some(json!({"identifier": PHONE, "code": "135791", "valid_until": valid_until})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let tid = s(&r.body["test_identifier"]["id"]);
    let (_, _, marker) = w.sms_code(PHONE).await;
    assert_eq!(marker, "(test code)");
    let r = call(
        &w.deps,
        RouteId::DeleteTestIdentifier,
        &[("app_id", &w.app_id), ("id", &tid)],
        &Auth::Management,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = w.authenticate(&phone_id, "135791").await;
    assert_login_error(&r, 404, "otp_code_not_found");
}

#[tokio::test]
async fn management_ids_of_one_app_are_not_found_under_another() {
    let w = World::new(relaxed()).await;
    let (b_id, b_secret) = w.create_app("Other").await;
    let a = w.app_id.clone();
    let m = Auth::Management;
    let r = call(
        &w.deps,
        RouteId::CreateTemplate,
        &[("app_id", &a)],
        &m,
        Some(json!({"channel_type": "sms", "locale": "en", "text": "Code {{code}}"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let template_id = s(&r.body["template"]["id"]);
    let r = call(
        &w.deps,
        RouteId::CreateLoginConfig,
        &[("app_id", &a)],
        &m,
        Some(json!({"config_type": "otp", "channel_type": "sms", "is_default": false, "template_id": template_id})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let config_id = s(&r.body["login_config"]["id"]);
    let r = call(&w.deps, RouteId::CreateSecret, &[("app_id", &a)], &m, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let secret_id = s(&r.body["secret_id"]);
    let r = call(
        &w.deps,
        RouteId::CreateTestIdentifier,
        &[("app_id", &a)],
        &m,
        Some(json!({"identifier": EMAIL, "code": "123456", "valid_until": Timestamp(START.0 + 3600).to_rfc3339()})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let tid = s(&r.body["test_identifier"]["id"]);

    let config_body = json!({"config_type": "otp", "channel_type": "sms", "is_default": true});
    let template_body = json!({"channel_type": "sms", "locale": "en", "text": "Pwned {{code}}"});
    type Case<'a> = (RouteId, Vec<(&'a str, &'a str)>, Option<Value>);
    let cases: Vec<Case> = vec![
        (
            RouteId::ReplaceLoginConfig,
            vec![("app_id", &b_id), ("config_id", &config_id)],
            Some(config_body),
        ),
        (
            RouteId::DeleteLoginConfig,
            vec![("app_id", &b_id), ("config_id", &config_id)],
            None,
        ),
        (
            RouteId::ReplaceTemplate,
            vec![("app_id", &b_id), ("template_id", &template_id)],
            Some(template_body),
        ),
        (
            RouteId::DeleteTemplate,
            vec![("app_id", &b_id), ("template_id", &template_id)],
            None,
        ),
        (
            RouteId::DeleteSecret,
            vec![("app_id", &b_id), ("secret_id", &secret_id)],
            None,
        ),
        (
            RouteId::DeleteTestIdentifier,
            vec![("app_id", &b_id), ("id", &tid)],
            None,
        ),
    ];
    for (route, params, body) in cases {
        let r = call(&w.deps, route, &params, &m, body).await;
        assert_management_error(&r, 404, "not_found");
    }
    // App B cannot use app A's config or template in a send either.
    let b = Auth::Basic(b_id.clone(), b_secret);
    let r = w
        .login_as(
            &b,
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": PHONE, "login_config_id": config_id}),
        )
        .await;
    assert_login_error(&r, 404, "login_config_not_found");
    let r = call(
        &w.deps,
        RouteId::CreateTemplate,
        &[("app_id", &a)],
        &m,
        Some(json!({"channel_type": "email", "locale": "en", "subject": "s", "text": "Code {{code}}"})),
    )
    .await;
    let email_template = s(&r.body["template"]["id"]);
    let r = w
        .login_as(
            &b,
            RouteId::EmailLoginOrCreate,
            json!({"email": EMAIL, "login_template_id": email_template}),
        )
        .await;
    assert_login_error(&r, 404, "template_not_found");
    // Nor can app B's config point at app A's template.
    let r = call(
        &w.deps,
        RouteId::CreateLoginConfig,
        &[("app_id", &b_id)],
        &m,
        Some(json!({"config_type": "otp", "channel_type": "sms", "is_default": false, "template_id": template_id})),
    )
    .await;
    assert_management_error(&r, 400, "invalid_request");
    assert!(w.outbox.messages().is_empty());

    // App A's things are all still there.
    let r = call(
        &w.deps,
        RouteId::ListLoginConfigs,
        &[("app_id", &a)],
        &m,
        None,
    )
    .await;
    assert!(
        r.body["login_configs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == json!(config_id))
    );
    let r = call(&w.deps, RouteId::ListTemplates, &[("app_id", &a)], &m, None).await;
    assert!(
        r.body["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(template_id) && t["text"] == json!("Code {{code}}"))
    );
    let r = call(&w.deps, RouteId::ListSecrets, &[("app_id", &a)], &m, None).await;
    assert_eq!(r.body["secrets"].as_array().unwrap().len(), 2);
    let r = call(
        &w.deps,
        RouteId::ListTestIdentifiers,
        &[("app_id", &a)],
        &m,
        None,
    )
    .await;
    assert_eq!(r.body["test_identifiers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_mismatched_session_does_not_spend_the_code() {
    let w = World::new(relaxed()).await;
    let (_, _, ann) = w.session_for(PHONE).await;
    let (_, bob_phone, bob_code) = w.sms_code(OTHER_PHONE).await;
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": bob_phone, "code": bob_code, "session_token": ann["session_token"]}),
        )
        .await;
    assert_login_error(&r, 400, "session_user_mismatch");
    let r = w.authenticate(&bob_phone, &bob_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A session holds 3 KB of custom claims; authenticate adds 2 KB more while extending it. Each
/// part is under the 4 KB limit, their merge is not: the request is refused 400. A refused
/// request must not spend the single-use code.
#[tokio::test]
async fn a_refused_session_extension_does_not_spend_the_code() {
    let w = World::new(relaxed()).await;
    let (_, phone_id, code) = w.sms_code(PHONE).await;
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60,
                   "session_custom_claims": {"a": "x".repeat(3000)}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = s(&r.body["session_token"]);

    let (_, _, code) = w.sms_code(PHONE).await;
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code, "session_token": token,
                   "session_custom_claims": {"b": "y".repeat(2000)}}),
        )
        .await;
    assert_login_error(&r, 400, "invalid_session_custom_claims");
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code, "session_token": token}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the refused request spent the code: {}",
        r.body
    );
}
