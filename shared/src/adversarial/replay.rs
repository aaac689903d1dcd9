//! Replays and cross-tenant reuse through `crate::api::handle`: used, expired and replaced
//! codes, another app's or another user's codes, sessions and JWTs presented where they do not
//! belong, revoked, expired and deleted users' sessions, tampered JWTs, test identifier codes
//! past `valid_until` and after deletion, management ids of one app used under another, and
//! refused requests that must not spend the code. Each answer is the contract's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};

use super::Target;
use super::support::*;
use crate::api::RouteId;
use crate::ids::UserId;

pub async fn a_used_code_is_refused(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (user_id, phone_id, code) = w.sms_code(PHONE).await;
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for _ in 0..3 {
        let r = w.authenticate(&phone_id, &code).await;
        assert_login_error(&r, 401, "unable_to_auth_otp_code");
    }
    // A spent code's refusals count for nothing: the user is not on the way to a lock, and the
    // code took no wrong attempts; the one session is the first request's.
    assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 0);
    let c = w.challenge(&phone_id).await.unwrap();
    assert!(c.consumed && c.attempts == 0, "{c:?}");
    assert_eq!(w.session_count(&user_id).await, 1);
}

pub async fn an_expired_code_is_refused_even_when_right(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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
    // The record is still there (a store's TTL deletes late): the refusal is the domain's check.
    let c = w.challenge(&phone_id).await.unwrap();
    assert!(!c.consumed && c.attempts == 0, "{c:?}");
    // A request's own shorter lifetime is honoured.
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": PHONE, "expiration_minutes": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let code = w.last_code(PHONE);
    w.clock.advance_seconds(60);
    let r = w.authenticate(&phone_id, &code).await;
    assert_login_error(&r, 401, "unable_to_auth_otp_code");
    assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 0);
}

pub async fn a_replaced_code_counts_as_a_wrong_code_and_the_new_one_works(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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
    let r = w.authenticate(&phone_id, &old).await;
    assert_login_error(&r, 401, "unable_to_auth_otp_code");
}

pub async fn a_code_of_another_app_is_not_found_and_costs_its_owner_nothing(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (b_id, b_secret) = w.create_app("Other").await;
    let b = Auth::Basic(b_id, b_secret);
    let (user_id, phone_id, code) = w.sms_code(PHONE).await;
    let r = w
        .login_as(
            &b,
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60}),
        )
        .await;
    assert_login_error(&r, 404, "otp_code_not_found");
    assert!(r.body.get("attempts_remaining").is_none(), "{}", r.body);
    // A wrong code from app B for app A's method: not found either, and nothing counted.
    let r = w
        .login_as(
            &b,
            RouteId::OtpAuthenticate,
            json!({"method_id": phone_id, "code": wrong(&code)}),
        )
        .await;
    assert_login_error(&r, 404, "otp_code_not_found");
    // The same number in app B is another user with its own method.
    let (b_user, b_phone_id, _) = w.sms_code_as(&b, PHONE).await;
    assert_ne!(b_phone_id, phone_id);
    assert_ne!(b_user, user_id);
    // App A's code was not touched and still works in app A.
    let c = w.challenge(&phone_id).await.unwrap();
    assert!(c.attempts == 0 && !c.consumed, "{c:?}");
    assert_eq!(w.user_record(&user_id).await.unwrap().failed_attempts, 0);
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user_id"], json!(user_id));
    assert_eq!(w.users_holding(PHONE).await, 1, "one user of app A");
}

pub async fn another_users_code_does_not_open_my_method(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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
    // A method with no code at all (Ann's email, whose code went out but is not Ann's sms code)
    // does not take her sms code.
    let (email_id, _) = w.add_identifier(&ann, EMAIL).await;
    let r = w.authenticate(&email_id, &ann_code).await;
    assert!(
        r.status == StatusCode::NOT_FOUND || r.status == StatusCode::UNAUTHORIZED,
        "{}",
        r.body
    );
    assert_login_shape(&r);
    // Nor does a method id that exists nowhere, or one in Ann's home that she does not have.
    let r = w
        .authenticate(
            "phone-number-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
            &ann_code,
        )
        .await;
    assert_login_error(&r, 404, "otp_code_not_found");
    let home = UserId::parse(&ann).unwrap().home().to_hex();
    let stranger = format!(
        "phone-number-{}-{}-4c3d-8e9f-0a1b2c3d4e5f",
        &home[..8],
        &home[8..]
    );
    let r = w.authenticate(&stranger, &ann_code).await;
    assert_login_error(&r, 404, "otp_code_not_found");
}

pub async fn sessions_and_jwts_do_not_cross_apps(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (b_id, b_secret) = w.create_app("Other").await;
    let b = Auth::Basic(b_id, b_secret);
    let (ann, _, session) = w.session_for(PHONE).await;
    let token = s(&session["session_token"]);
    let jwt = s(&session["session_jwt"]);
    let session_id = s(&session["session"]["session_id"]);

    // App B can neither use, revoke nor list them, nor reach Ann through them.
    let refusals = [
        (
            RouteId::SessionsAuthenticate,
            json!({"session_token": token}),
            404,
            "session_not_found",
        ),
        (
            RouteId::SessionsAuthenticate,
            json!({"session_jwt": jwt}),
            401,
            "invalid_session_jwt",
        ),
        (
            RouteId::SessionsRevoke,
            json!({"session_id": session_id}),
            404,
            "session_not_found",
        ),
        (
            RouteId::SessionsRevoke,
            json!({"session_token": token}),
            404,
            "session_not_found",
        ),
        (
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "user_id": ann}),
            404,
            "user_not_found",
        ),
        (
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "session_token": token}),
            404,
            "session_not_found",
        ),
        (
            RouteId::SmsSend,
            json!({"phone_number": OTHER_PHONE, "session_jwt": jwt}),
            401,
            "invalid_session_jwt",
        ),
    ];
    for (route, body, status, error_type) in refusals {
        let r = w.login_as(&b, route, body).await;
        assert_login_error(&r, status, error_type);
    }
    for route in [
        RouteId::SessionsList,
        RouteId::UsersGet,
        RouteId::UsersDelete,
    ] {
        let r = call(&w.deps, route, &[("user_id", &ann)], &b, None).await;
        assert_login_error(&r, 404, "user_not_found");
    }

    // Everything of app A is intact.
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w
        .login(RouteId::SessionsAuthenticate, json!({"session_jwt": jwt}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(w.session_count(&ann).await, 1);
    assert_eq!(
        w.users_holding(OTHER_PHONE).await,
        0,
        "app B added nothing to Ann"
    );
    assert!(w.codes_to(OTHER_PHONE).is_empty());
}

pub async fn revoked_and_expired_sessions_are_not_found(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (_, _, session) = w.session_for(PHONE).await;
    let token = s(&session["session_token"]);
    let jwt = s(&session["session_jwt"]);
    let r = w
        .login(RouteId::SessionsRevoke, json!({"session_jwt": jwt}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The revoked session's JWT is still signed and unexpired: only the store knows it is gone.
    for body in [json!({"session_token": token}), json!({"session_jwt": jwt})] {
        let r = w.login(RouteId::SessionsAuthenticate, body.clone()).await;
        assert_login_error(&r, 404, "session_not_found");
        let r = w.login(RouteId::SessionsRevoke, body).await;
        assert_login_error(&r, 404, "session_not_found");
    }
    // Extending a revoked session with a fresh code is refused before the code is spent.
    let (_, phone_id, code) = w.sms_code(PHONE).await;
    for body in [
        json!({"method_id": phone_id, "code": code, "session_jwt": jwt}),
        json!({"method_id": phone_id, "code": code, "session_token": token}),
    ] {
        let r = w.login(RouteId::OtpAuthenticate, body).await;
        assert_login_error(&r, 404, "session_not_found");
    }
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the code was not spent: {}",
        r.body
    );

    // A session past its lifetime (60 minutes) is gone for its token and its JWT alike (its
    // records may still be stored: a store's TTL deletes late).
    let token = s(&r.body["session_token"]);
    let jwt = s(&r.body["session_jwt"]);
    w.clock.advance_seconds(60 * 60);
    for body in [json!({"session_token": token}), json!({"session_jwt": jwt})] {
        let r = w.login(RouteId::SessionsAuthenticate, body).await;
        assert_login_error(&r, 404, "session_not_found");
    }
}

/// `DELETE /v1/users/{id}`: afterwards none of the user's sessions authenticates (by token or
/// JWT), its codes are refused, its identifiers belong to nobody, and the store holds nothing
/// of it: no record names its id, home, methods or sessions.
pub async fn a_deleted_users_sessions_and_codes_are_gone(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (user_id, phone_id, first) = w.session_for(PHONE).await;
    let (_, _, second) = w.session_for(PHONE).await;
    let (email_id, email_code) = w.add_identifier(&user_id, EMAIL).await;
    let (_, _, live_code) = w.sms_code(PHONE).await;
    // Another user, untouched by the delete.
    let (bob, _, bob_session) = w.session_for(OTHER_PHONE).await;
    assert_eq!(w.session_count(&user_id).await, 2);

    let r = w.delete_user(&user_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user_id"], json!(user_id));
    assert_login_error(&w.delete_user(&user_id).await, 404, "user_not_found");
    assert_login_error(&w.get_user(&user_id).await, 404, "user_not_found");
    assert_login_error(&w.list_sessions(&user_id).await, 404, "user_not_found");
    for session in [&first, &second] {
        for body in [
            json!({"session_token": session["session_token"]}),
            json!({"session_jwt": session["session_jwt"]}),
        ] {
            let r = w.login(RouteId::SessionsAuthenticate, body).await;
            assert_login_error(&r, 404, "session_not_found");
        }
    }
    let r = w.authenticate(&phone_id, &live_code).await;
    assert_login_error(&r, 404, "otp_code_not_found");
    let r = w.authenticate(&email_id, &email_code).await;
    assert_login_error(&r, 404, "otp_code_not_found");

    let home = UserId::parse(&user_id).unwrap().home().to_hex();
    let home_in_ids = format!("{}-{}", &home[..8], &home[8..]);
    let mut gone = vec![user_id.clone(), home, home_in_ids, phone_id, email_id];
    for session in [&first, &second] {
        gone.push(s(&session["session"]["session_id"]));
    }
    let dump = w.dump().await;
    for line in dump.lines() {
        for needle in &gone {
            assert!(
                !line.contains(needle.as_str()),
                "{needle} is still in the store: {line:.300}"
            );
        }
    }
    assert_eq!(w.holder(PHONE).await, None);
    assert_eq!(w.holder(EMAIL).await, None);
    // Bob is as he was.
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": bob_session["session_token"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(w.session_count(&bob).await, 1);
    // The identifiers are free again: a new user gets them.
    let r = w
        .login(RouteId::SmsLoginOrCreate, json!({"phone_number": PHONE}))
        .await;
    assert_eq!(r.body["user_created"], json!(true), "{}", r.body);
    assert_ne!(r.body["user_id"], json!(user_id));
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn unb64(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub async fn tampered_jwts_are_invalid(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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

pub async fn test_identifier_codes_stop_at_valid_until_and_at_deletion(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let tid = w
        .add_test_identifier(PHONE, "246810", w.start.plus_seconds(90))
        .await;

    // Within validity the fixed code works, once per code sent; nothing is delivered (the
    // message is recorded, marked as a test's).
    let (_, phone_id, marker) = w.sms_code(PHONE).await;
    assert_eq!(marker, "(test code)");
    assert!(w.outbox.last_to(PHONE).unwrap().test);
    assert!(w.codes_to(PHONE).is_empty(), "a test code was delivered");
    let r = w.authenticate(&phone_id, "246810").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w.authenticate(&phone_id, "246810").await;
    assert_login_error(&r, 401, "unable_to_auth_otp_code");

    // A code sent while valid, tried after valid_until: refused like a wrong code.
    w.sms_code(PHONE).await;
    w.clock.advance_seconds(91);
    let r = w.authenticate(&phone_id, "246810").await;
    assert_login_error(&r, 404, "otp_code_not_found");

    // After valid_until the number is an ordinary one: a real code is delivered and works.
    let (_, _, real) = w.sms_code(PHONE).await;
    assert_ne!(real, "(test code)");
    assert!(!w.outbox.last_to(PHONE).unwrap().test);
    let r = w.authenticate(&phone_id, "246810").await;
    if real != "246810" {
        assert_login_error(&r, 404, "otp_code_not_found");
    }
    let r = w.authenticate(&phone_id, &real).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Deleted while a fixed code is live: the fixed code stops working.
    let r = w
        .manage(
            RouteId::DeleteTestIdentifier,
            &[("app_id", &w.app_id), ("id", &tid)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let tid = w
        .add_test_identifier(PHONE, "135791", w.start.plus_seconds(91 + 3600))
        .await;
    let delivered = w.codes_to(PHONE).len();
    let (_, _, marker) = w.sms_code(PHONE).await;
    assert_eq!(marker, "(test code)");
    assert_eq!(w.codes_to(PHONE).len(), delivered);
    let r = w
        .manage(
            RouteId::DeleteTestIdentifier,
            &[("app_id", &w.app_id), ("id", &tid)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = w.authenticate(&phone_id, "135791").await;
    assert_login_error(&r, 404, "otp_code_not_found");
}

pub async fn management_ids_of_one_app_are_not_found_under_another(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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
    let tid = w
        .add_test_identifier(EMAIL, "123456", w.start.plus_seconds(3600))
        .await;

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

    // App A's things are all still there, unchanged.
    let r = call(
        &w.deps,
        RouteId::ListLoginConfigs,
        &[("app_id", &a)],
        &m,
        None,
    )
    .await;
    let configs = r.body["login_configs"].as_array().unwrap();
    let config = configs.iter().find(|c| c["id"] == json!(config_id));
    assert!(
        config.is_some_and(|c| c["is_default"] == json!(false)),
        "{}",
        r.body
    );
    let r = call(&w.deps, RouteId::ListTemplates, &[("app_id", &a)], &m, None).await;
    assert!(
        r.body["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(template_id) && t["text"] == json!("Code {{code}}")),
        "{}",
        r.body
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
    // The template is still in use by app A's config: it cannot be deleted under app A either.
    let r = call(
        &w.deps,
        RouteId::DeleteTemplate,
        &[("app_id", &a), ("template_id", &template_id)],
        &m,
        None,
    )
    .await;
    assert_management_error(&r, 409, "conflict");
}

pub async fn a_mismatched_session_does_not_spend_the_code(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (_, _, ann) = w.session_for(PHONE).await;
    let (_, bob_phone, bob_code) = w.sms_code(OTHER_PHONE).await;
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": bob_phone, "code": bob_code, "session_token": ann["session_token"]}),
        )
        .await;
    assert_login_error(&r, 400, "session_user_mismatch");
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": bob_phone, "code": bob_code, "session_jwt": ann["session_jwt"]}),
        )
        .await;
    assert_login_error(&r, 400, "session_user_mismatch");
    let c = w.challenge(&bob_phone).await.unwrap();
    assert!(!c.consumed && c.attempts == 0, "{c:?}");
    let r = w.authenticate(&bob_phone, &bob_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A session holds 3 KB of custom claims; authenticate adds 2 KB more while extending it. Each
/// part is under the 4 KB limit, their merge is not: the request is refused 400. A refused
/// request must not spend the single-use code.
pub async fn a_refused_session_extension_does_not_spend_the_code(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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
