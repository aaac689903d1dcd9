//! Hostile input to every route of `shared::api::ROUTES`, through `shared::api::handle`: bad
//! credentials, oversized bodies, hostile path parameters, wrong types and extreme values in
//! every field, unicode phone numbers, and proptest-generated bodies, headers and IDs. Every
//! reply must be < 500, never a panic, and in its route's dialect; where the answer is certain
//! (401, 404, 413, 415, 400) it is checked exactly.

mod adversarial_support;

use adversarial_support::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use shared::api::{Dialect, ROUTES, Route, RouteId};
use shared::clock::Timestamp;

/// A world with IDs of every kind for the base bodies: app A (login routes) with users,
/// sessions, templates and configs, and app V, the victim of the management routes, so that
/// fuzzed management calls cannot take app A's configs away.
struct Fixture {
    w: World,
    other_secret: String,
    other_app: String,
    victim_app: String,
    victim_config: String,
    victim_template: String,
    victim_secret_id: String,
    victim_test_id: String,
    user_id: String,
    victim_user: String,
    token: String,
    jwt: String,
    /// A third user, whose code and session the fuzzed authenticate calls use (and lock).
    guessed_phone_id: String,
    guessed_token: String,
    guessed_jwt: String,
    victim_session: String,
    sms_config: String,
    email_template: String,
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

async fn fixture() -> Fixture {
    let w = World::new(relaxed()).await;
    let m = Auth::Management;
    let (other_app, other_secret) = w.create_app("Other").await;
    let (victim_app, _) = w.create_app("Victim").await;
    let (user_id, _, session) = w.session_for(PHONE).await;
    let (_, guessed_phone_id, guessed) = w.session_for(THIRD_PHONE).await;
    w.sms_code(THIRD_PHONE).await;
    let (victim_user, _, victim) = w.session_for(OTHER_PHONE).await;
    let r = w
        .login(
            RouteId::EmailSend,
            json!({"email": EMAIL, "user_id": user_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &w.deps,
        RouteId::ListLoginConfigs,
        &[("app_id", &w.app_id)],
        &m,
        None,
    )
    .await;
    let sms_config = r.body["login_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_type"] == json!("sms"))
        .map(|c| s(&c["id"]))
        .unwrap();
    let r = call(
        &w.deps,
        RouteId::CreateTemplate,
        &[("app_id", &w.app_id)],
        &m,
        Some(json!({"channel_type": "email", "locale": "en", "subject": "Hi", "text": "Code {{code}}", "html": "<b>{{code}}</b>"})),
    )
    .await;
    let email_template = s(&r.body["template"]["id"]);
    let r = call(
        &w.deps,
        RouteId::CreateTemplate,
        &[("app_id", &victim_app)],
        &m,
        Some(json!({"channel_type": "sms", "locale": "en", "text": "Code {{code}}"})),
    )
    .await;
    let victim_template = s(&r.body["template"]["id"]);
    let r = call(
        &w.deps,
        RouteId::CreateLoginConfig,
        &[("app_id", &victim_app)],
        &m,
        Some(json!({"config_type": "otp", "channel_type": "sms", "is_default": false, "template_id": victim_template})),
    )
    .await;
    let victim_config = s(&r.body["login_config"]["id"]);
    let r = call(
        &w.deps,
        RouteId::CreateSecret,
        &[("app_id", &victim_app)],
        &m,
        None,
    )
    .await;
    let victim_secret_id = s(&r.body["secret_id"]);
    let r = call(
        &w.deps,
        RouteId::CreateTestIdentifier,
        &[("app_id", &victim_app)],
        &m,
        Some(json!({"identifier": "+12025550188", "code": "123456", "valid_until": Timestamp(START.0 + 3600).to_rfc3339()})),
    )
    .await;
    let victim_test_id = s(&r.body["test_identifier"]["id"]);
    Fixture {
        other_secret,
        other_app,
        victim_app,
        victim_config,
        victim_template,
        victim_secret_id,
        victim_test_id,
        user_id,
        victim_user,
        token: s(&session["session_token"]),
        jwt: s(&session["session_jwt"]),
        guessed_phone_id,
        guessed_token: s(&guessed["session_token"]),
        guessed_jwt: s(&guessed["session_jwt"]),
        victim_session: s(&victim["session"]["session_id"]),
        sms_config,
        email_template,
        w,
    }
}

impl Fixture {
    /// The right credentials for a route's dialect.
    fn auth(&self, route: &Route) -> Auth {
        match route.dialect {
            Dialect::Management => Auth::Management,
            Dialect::Login => self.w.basic(),
            Dialect::Public => Auth::None,
        }
    }

    /// Valid path parameters and query for a route.
    fn params(&self, route: &Route) -> Vec<(&'static str, String)> {
        let victim = self.victim_app.clone();
        match route.id {
            RouteId::CreateApp => vec![],
            RouteId::DeleteSecret => vec![
                ("app_id", victim),
                ("secret_id", self.victim_secret_id.clone()),
            ],
            RouteId::ReplaceLoginConfig | RouteId::DeleteLoginConfig => {
                vec![
                    ("app_id", victim),
                    ("config_id", self.victim_config.clone()),
                ]
            }
            RouteId::ReplaceTemplate | RouteId::DeleteTemplate => {
                vec![
                    ("app_id", victim),
                    ("template_id", self.victim_template.clone()),
                ]
            }
            RouteId::DeleteTestIdentifier => {
                vec![("app_id", victim), ("id", self.victim_test_id.clone())]
            }
            RouteId::SessionsJwks => vec![("app_id", self.w.app_id.clone())],
            RouteId::UsersGet => vec![("user_id", self.user_id.clone())],
            RouteId::UsersDelete => vec![("user_id", self.victim_user.clone())],
            RouteId::SessionsList => vec![("user_id", self.user_id.clone())],
            _ if route.dialect == Dialect::Management => vec![("app_id", victim)],
            _ => vec![],
        }
    }

    /// A body the route accepts (or `None` for routes without one).
    fn base_body(&self, route: &Route) -> Option<Map<String, Value>> {
        let attributes = json!({"ip_address": "203.0.113.1", "user_agent": "fuzz/1.0"});
        let valid_until = Timestamp(START.0 + 7200).to_rfc3339();
        let body = match route.id {
            RouteId::CreateApp => json!({"name": "Fuzz"}),
            RouteId::CreateLoginConfig | RouteId::ReplaceLoginConfig => json!({
                "config_type": "otp", "channel_type": "sms", "is_default": false,
                "template_id": self.victim_template, "sender_id": "Acme",
                "grant_change_password": false, "code_length": 6, "expiration_minutes": 2,
            }),
            RouteId::CreateTemplate | RouteId::ReplaceTemplate => json!({
                "channel_type": "sms", "locale": "en", "text": "Code {{code}} for {{app_name}}",
                "subject": null, "html": null,
            }),
            RouteId::CreateTestIdentifier => json!({
                "identifier": "+12025550177", "code": "654321", "valid_until": valid_until,
            }),
            RouteId::PutSmsCountries => json!({"calling_codes": ["1", "44"]}),
            RouteId::SmsLoginOrCreate => json!({
                "phone_number": PHONE, "expiration_minutes": 5, "attributes": attributes,
                "create_user_as_pending": false, "locale": "en", "login_config_id": self.sms_config,
            }),
            RouteId::SmsSend => json!({
                "phone_number": PHONE, "expiration_minutes": 5, "attributes": attributes,
                "locale": "de-DE", "login_config_id": self.sms_config, "user_id": self.user_id,
                "session_token": self.token, "session_jwt": self.jwt,
            }),
            RouteId::EmailLoginOrCreate => json!({
                "email": EMAIL, "expiration_minutes": 5, "attributes": attributes,
                "create_user_as_pending": true, "locale": "fr",
                "login_template_id": self.email_template, "signup_template_id": self.email_template,
            }),
            RouteId::EmailSend => json!({
                "email": EMAIL, "expiration_minutes": 5, "attributes": attributes, "locale": "pt-br",
                "login_template_id": self.email_template, "signup_template_id": self.email_template,
                "user_id": self.user_id, "session_token": self.token, "session_jwt": self.jwt,
            }),
            RouteId::OtpAuthenticate => json!({
                "method_id": self.guessed_phone_id, "code": "123456", "session_duration_minutes": 60,
                "session_token": self.guessed_token, "session_jwt": self.guessed_jwt,
                "session_custom_claims": {"plan": "pro"}, "attributes": attributes,
            }),
            RouteId::SessionsAuthenticate => json!({
                "session_token": self.token, "session_jwt": self.jwt,
                "session_duration_minutes": 60, "session_custom_claims": {"plan": "pro"},
            }),
            RouteId::SessionsRevoke => json!({
                "session_id": self.victim_session, "session_token": null, "session_jwt": null,
            }),
            _ => return None,
        };
        body.as_object().cloned()
    }

    async fn send(
        &self,
        route: &Route,
        params: &[(&'static str, String)],
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Reply {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if route.id == RouteId::SessionsList {
            raw_call(&self.w.deps, route.id, &[], &params, headers, body).await
        } else {
            raw_call(&self.w.deps, route.id, &params, &[], headers, body).await
        }
    }
}

fn json_headers(auth: &Auth) -> HeaderMap {
    let mut headers = auth_headers(auth);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

fn body_bytes(body: &Option<Map<String, Value>>) -> Vec<u8> {
    body.as_ref()
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default()
}

/// Every reply: below 500 and in the route's dialect, success or not.
fn check(route: &Route, reply: &Reply, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        reply.status.as_u16() < 500,
        "{:?} {what}: {} {}",
        route.id,
        reply.status,
        reply.body
    );
    // Panics on a bad shape; the proptest runner reports a panic as a failing case.
    assert_dialect_shape(route.dialect, reply);
    Ok(())
}

fn unwrap_case(result: Result<(), TestCaseError>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn expect_error(route: &Route, reply: &Reply, status: u16, login: &str, management: &str) {
    match route.dialect {
        Dialect::Management => assert_management_error(reply, status, management),
        _ => assert_login_error(reply, status, login),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_route_refuses_missing_and_wrong_credentials() {
    let f = fixture().await;
    let sent_before = f.w.outbox.messages().len();
    let basic_raw = |text: &[u8]| {
        let mut v = b"Basic ".to_vec();
        v.extend_from_slice(STANDARD.encode(text).as_bytes());
        Auth::Raw(v)
    };
    let login_bad = vec![
        Auth::None,
        Auth::Management,
        Auth::Basic(f.w.app_id.clone(), f.other_secret.clone()),
        Auth::Basic(f.other_app.clone(), f.w.secret.clone()),
        Auth::Basic(f.w.app_id.clone(), String::new()),
        Auth::Basic(f.w.app_id.to_uppercase(), f.w.secret.clone()),
        Auth::Basic(format!("{} ", f.w.app_id), f.w.secret.clone()),
        Auth::Basic(f.w.app_id.clone(), format!("{} ", f.w.secret)),
        Auth::Basic(
            f.w.app_id.clone(),
            f.w.secret[..f.w.secret.len() - 1].to_owned(),
        ),
        Auth::Basic(String::new(), String::new()),
        Auth::Raw(b"Basic".to_vec()),
        Auth::Raw(b"Basic !!!not-base64".to_vec()),
        Auth::Raw(format!("Bearer {}", f.w.secret).into_bytes()),
        Auth::Raw(format!("Digest {}:{}", f.w.app_id, f.w.secret).into_bytes()),
        basic_raw(format!("{}{}", f.w.app_id, f.w.secret).as_bytes()),
        basic_raw(b"\xff\xfe:\x80"),
        Auth::Raw(b"Basic \xc3\xa9\xff".to_vec()),
        Auth::Raw(format!("Basic {}", "A".repeat(10_000)).into_bytes()),
    ];
    let management_bad = vec![
        Auth::None,
        f.w.basic(),
        Auth::Basic("admin".into(), MANAGEMENT_KEY.into()),
        basic_raw(MANAGEMENT_KEY.as_bytes()),
        Auth::Raw(b"Bearer".to_vec()),
        Auth::Raw(b"Bearer ".to_vec()),
        Auth::Raw(format!("Bearer {MANAGEMENT_KEY}x").into_bytes()),
        Auth::Raw(format!("Bearer {}", &MANAGEMENT_KEY[1..]).into_bytes()),
        Auth::Raw(format!("Token {MANAGEMENT_KEY}").into_bytes()),
        Auth::Raw(format!("Bearer {}", MANAGEMENT_KEY.to_uppercase()).into_bytes()),
        Auth::Raw(format!("Bearer {}", "k".repeat(10_000)).into_bytes()),
        Auth::Raw(b"Bearer \xff\xfe".to_vec()),
    ];
    for route in ROUTES {
        let params = f.params(route);
        let body = body_bytes(&f.base_body(route));
        let cases = match route.dialect {
            Dialect::Management => &management_bad,
            Dialect::Login => &login_bad,
            Dialect::Public => continue,
        };
        for auth in cases {
            let reply = f
                .send(route, &params, json_headers(auth), body.clone())
                .await;
            expect_error(
                route,
                &reply,
                401,
                "unauthorized_credentials",
                "unauthorized",
            );
        }
    }
    // The public JWKS needs no credentials and ignores any.
    let jwks = RouteId::SessionsJwks.route();
    for auth in login_bad.iter().chain(&management_bad) {
        let reply = f
            .send(jwks, &f.params(jwks), auth_headers(auth), Vec::new())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_login_shape(&reply);
    }
    assert_eq!(
        f.w.outbox.messages().len(),
        sent_before,
        "nothing was delivered for a refused request"
    );
}

#[tokio::test]
async fn every_route_answers_oversized_bodies_413_with_or_without_credentials() {
    let f = fixture().await;
    let mega = {
        let mut v = b"{\"name\": \"".to_vec();
        v.resize(1024 * 1024 - 2, b'a');
        v.extend_from_slice(b"\"}");
        v
    };
    for route in ROUTES {
        let params = f.params(route);
        for auth in [f.auth(route), Auth::None] {
            for body in [mega.clone(), vec![b' '; 16 * 1024 + 1]] {
                let reply = f.send(route, &params, json_headers(&auth), body).await;
                expect_error(route, &reply, 413, "payload_too_large", "payload_too_large");
            }
        }
        // Exactly 16 KB is not too large: valid JSON padded with whitespace is served.
        if let Some(base) = f.base_body(route) {
            let mut body = serde_json::to_vec(&base).unwrap();
            body.resize(16 * 1024, b' ');
            let reply = f
                .send(route, &params, json_headers(&f.auth(route)), body)
                .await;
            assert_ne!(
                reply.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{:?}",
                route.id
            );
            unwrap_case(check(route, &reply, "16 KB body"));
        }
    }
}

#[tokio::test]
async fn non_json_bodies_are_415_and_malformed_json_is_400() {
    let f = fixture().await;
    for route in ROUTES {
        let params = f.params(route);
        let auth = f.auth(route);
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/jsonx"),
            Some("json"),
        ] {
            let mut headers = auth_headers(&auth);
            if let Some(ct) = content_type {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            let reply = f.send(route, &params, headers, b"{\"a\":1}".to_vec()).await;
            expect_error(
                route,
                &reply,
                415,
                "unsupported_media_type",
                "unsupported_media_type",
            );
        }
        let Some(base) = f.base_body(route) else {
            continue;
        };
        let valid = serde_json::to_vec(&base).unwrap();
        // Truncations of a valid body, and garbage.
        let mut bodies: Vec<Vec<u8>> = (1..valid.len())
            .step_by(7)
            .map(|n| valid[..n].to_vec())
            .filter(|b| !b.iter().all(u8::is_ascii_whitespace))
            .collect();
        bodies.extend([
            b"{".to_vec(),
            b"}{".to_vec(),
            b"{\"a\":1}{\"b\":2}".to_vec(),
            b"{'single': 'quotes'}".to_vec(),
            b"{\"trailing\": 1,}".to_vec(),
            b"\xef\xbb\xbf{}".to_vec(),
            b"NaN".to_vec(),
            b"\x00".to_vec(),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        ]);
        for body in bodies {
            let reply = f
                .send(route, &params, json_headers(&auth), body.clone())
                .await;
            assert!(
                serde_json::from_slice::<Value>(&body).is_err(),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
            expect_error(route, &reply, 400, "bad_request", "invalid_request");
        }
        // Valid JSON of the wrong top-level type.
        for body in ["null", "[]", "[{}]", "\"{}\"", "1", "true"] {
            let reply = f
                .send(
                    route,
                    &params,
                    json_headers(&auth),
                    body.as_bytes().to_vec(),
                )
                .await;
            expect_error(route, &reply, 400, "bad_request", "invalid_request");
        }
    }
}

/// Malformed JSON inside a field the route does not know: invalid UTF-8, a lone surrogate, a
/// number out of range. serde would skip unknown fields without validating them, so a route
/// whose known fields are all optional (`PUT /v2/session/apps/{app_id}/sms_countries`) could
/// accept such a body and reset the app's SMS countries. The contract: a body that does not
/// parse as JSON is 400. (Deep nesting beyond serde's limit is valid JSON, so
/// accepting it is fine; it is checked for < 500 only.)
#[tokio::test]
async fn malformed_json_in_an_unknown_field_is_still_400() {
    let f = fixture().await;
    let malformed: [&[u8]; 4] = [
        b"{\"a\": \"\xff\xfe\"}",
        b"{\"a\": \"\\ud800\"}",
        b"{\"a\": 1e309}",
        b"{\"a\": [1, 2,]}",
    ];
    let deep = format!("{}1{}", "{\"a\":".repeat(2000), "}".repeat(2000)).into_bytes();
    let mut wrong = Vec::new();
    for route in ROUTES {
        let Some(_) = f.base_body(route) else {
            continue;
        };
        let params = f.params(route);
        let auth = f.auth(route);
        let reply = f
            .send(route, &params, json_headers(&auth), deep.clone())
            .await;
        unwrap_case(check(route, &reply, "deep nesting"));
        for body in malformed {
            assert!(serde_json::from_slice::<Value>(body).is_err());
            let reply = f
                .send(route, &params, json_headers(&auth), body.to_vec())
                .await;
            unwrap_case(check(route, &reply, "malformed"));
            if reply.status != StatusCode::BAD_REQUEST {
                wrong.push(format!(
                    "{:?} {:?} -> {}",
                    route.id,
                    String::from_utf8_lossy(body),
                    reply.status
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `attributes.ip_address` becomes part of a rate-limit counter key, which a DynamoDB adapter
/// stores in a partition key (at most 2048 bytes): a long value must be refused (400) or kept
/// to a short key, never fail the write. Checked here on the key the store is handed.
#[tokio::test]
async fn a_long_ip_address_is_refused_or_kept_to_a_short_key() {
    let w = World::new(relaxed()).await;
    let ip = "9".repeat(15_000);
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": PHONE, "attributes": {"ip_address": ip}}),
        )
        .await;
    assert!(r.status.as_u16() < 500, "{}", r.body);
    assert_login_shape(&r);
    let longest = w
        .plan
        .longest_rate_key
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        r.status == StatusCode::BAD_REQUEST || longest <= 1024,
        "{} with a rate-limit key of {longest} bytes",
        r.status
    );
}

/// Path parameters that name nothing: each answered 404 in the route's dialect.
const HOSTILE_IDS: &[&str] = &[
    "",
    "../",
    "..",
    "../../../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "\0",
    "app-../../",
    "app-",
    "user-",
    "app-00000000-0000-0000-0000-000000000000",
    "app-0F8C2F1E-5A6B-4C3D-8E9F-0A1B2C3D4E5F",
    "app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f\n",
    " app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
    "app-0f8c2f1e5a6b4c3d8e9f0a1b2c3d4e5f",
    "app-{0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f}",
    "user-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
    "session-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
    "lcfg_01JD0000000000000000000000",
    "lcfg_01jd0000000000000000000000",
    "lcfg_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "sec_7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "tpl_",
    "tid_01JD00000000000000000000000",
    "' OR '1'='1",
    "{\"$ne\": null}",
    "*",
    "app-０f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
    "😀",
    "\u{202E}app",
];

#[tokio::test]
async fn hostile_path_parameters_are_answered_not_found() {
    let f = fixture().await;
    let long = "a".repeat(10 * 1024);
    let long_prefixed = format!("app-{}", "0".repeat(10 * 1024));
    let mut hostile: Vec<String> = HOSTILE_IDS.iter().map(|s| s.to_string()).collect();
    hostile.extend([long, long_prefixed]);
    // IDs that exist, but in another app (or are of another kind).
    let foreign = [f.other_app.clone(), f.victim_user.clone()];
    for route in ROUTES {
        let valid = f.params(route);
        if valid.is_empty() {
            continue;
        }
        let body = body_bytes(&f.base_body(route));
        let auth = f.auth(route);
        for (i, (name, _)) in valid.iter().enumerate() {
            for value in hostile.iter().chain(&foreign) {
                if name == &"user_id" && value == &f.victim_user {
                    continue; // that one exists
                }
                if *name == "app_id" && value == &f.other_app {
                    continue; // an app that exists (the management key opens every app)
                }
                let mut params = valid.clone();
                params[i].1 = value.clone();
                let reply = f
                    .send(route, &params, json_headers(&auth), body.clone())
                    .await;
                let login = match (route.id, *name) {
                    (RouteId::SessionsJwks, _) => "app_not_found",
                    _ => "user_not_found",
                };
                expect_error(route, &reply, 404, login, "not_found");
            }
        }
    }
    // GET /v1/sessions without its query.
    let route = RouteId::SessionsList.route();
    let reply = f
        .send(route, &[], json_headers(&f.w.basic()), Vec::new())
        .await;
    assert_login_error(&reply, 400, "bad_request");
    // Nothing was deleted by any of it.
    let r = f.w.get_user(&f.victim_user).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Raw JSON texts for any field: wrong types, extreme numbers, odd strings and structures.
fn hostile_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-1",
        "1",
        "1.5",
        "-1.5",
        "5",
        "10",
        "11",
        "4",
        "527040",
        "527041",
        "1e308",
        "-1e308",
        "1e-308",
        "2.5e-324",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "[]",
        "{}",
        "[1,2]",
        "[\"1\",\"44\"]",
        "[null]",
        "{\"a\":{\"b\":[]}}",
        "{\"sub\":\"x\"}",
        "{\"https://stytch.com/session\":{}}",
        "{\"\":null}",
        "\"\"",
        "\" \"",
        "\"\\u0000\"",
        "\"otp\"",
        "\"sms\"",
        "\"email\"",
        "\"SMS\"",
        "\"fax\"",
        "\"123456\"",
        "\" 123456 \"",
        "\"１２３４５６\"",
        "\"12345\"",
        "\"123456789\"",
        "\"-12345\"",
        "\"+12025550100\"",
        "\"+１２０２５５５０１００\"",
        "\"+1\\u200f2025550100\"",
        "\"+1📱2025550100\"",
        "\"ann@example.com\"",
        "\"ANN@EXAMPLE.COM\"",
        "\"ann@例え.jp\"",
        "\"<script>alert(1)</script>\"",
        "\"../../etc/passwd\"",
        "\"{{code}}{{code}}{{app_name}}{{expiration_minutes}}\"",
        "\"%s%n%x\"",
        "\"\\ud83d\\ude00\"",
        "\"2026-11-22T03:49:08Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "\"1970-01-01T00:00:00Z\"",
        "\"+275760-09-13T00:00:00Z\"",
        "\"de-DE\"",
        "\"xx-YY-ZZ-123456789\"",
        "\"lcfg_01JD0000000000000000000000\"",
        "\"user-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f\"",
        "\"phone-number-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(serde_json::to_string(&"x".repeat(14_000)).unwrap());
    v.push(serde_json::to_string(&"😀".repeat(3_000)).unwrap());
    v.push(serde_json::to_string(&"\u{202E}\u{200F}".repeat(1_000)).unwrap());
    v.push(format!("{}1{}", "[".repeat(120), "]".repeat(120)));
    v.push(format!("{}1{}", "{\"a\":".repeat(120), "}".repeat(120)));
    v.push(format!(
        "{{\"big\":{}}}",
        serde_json::to_string(&"x".repeat(4090)).unwrap()
    ));
    v
}

/// A JSON object text: `base` with `field` set to the raw JSON `value` (or removed).
fn with_field(base: &Map<String, Value>, field: &str, value: Option<&str>) -> Vec<u8> {
    let mut parts: Vec<String> = base
        .iter()
        .filter(|(k, _)| k.as_str() != field)
        .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
        .collect();
    if let Some(value) = value {
        parts.push(format!("{}:{value}", serde_json::to_string(field).unwrap()));
    }
    format!("{{{}}}", parts.join(",")).into_bytes()
}

#[tokio::test]
async fn every_field_of_every_route_survives_every_hostile_value() {
    let f = fixture().await;
    let values = hostile_values();
    let mut served = 0usize;
    for route in ROUTES {
        let Some(base) = f.base_body(route) else {
            continue;
        };
        let params = f.params(route);
        let auth = f.auth(route);
        let mut fields: Vec<String> = base.keys().cloned().collect();
        fields.extend([
            "__proto__".to_owned(),
            "constructor".to_owned(),
            "status_code".to_owned(),
        ]);
        for field in &fields {
            let removed = with_field(&base, field, None);
            let reply = f.send(route, &params, json_headers(&auth), removed).await;
            unwrap_case(check(route, &reply, &format!("without {field}")));
            for value in &values {
                let body = with_field(&base, field, Some(value));
                let too_large = body.len() > 16 * 1024;
                let reply = f.send(route, &params, json_headers(&auth), body).await;
                unwrap_case(check(route, &reply, &format!("{field}={value:.80}")));
                if too_large {
                    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
                }
                served += 1;
            }
        }
    }
    assert!(served > 3000, "{served}");
}

/// Phone numbers with unicode: each is refused, or normalized to the one ASCII E.164 number, so
/// that no spelling creates a second user for the same number.
#[tokio::test]
async fn unicode_phone_numbers_never_split_an_identity() {
    let w = World::new(relaxed()).await;
    let (canonical, _, _) = w.sms_code(PHONE).await;
    let variants = [
        "+１２０２５５５０１００",
        "+1２０２５５５０１００",
        "＋12025550100",
        "+1\u{200F}2025550100",
        "\u{200F}+12025550100",
        "\u{202E}+12025550100",
        "+1\u{200B}2025550100",
        "+1\u{00A0}202\u{00A0}555\u{00A0}0100",
        "+1\u{2011}202\u{2011}555\u{2011}0100",
        "+1📱2025550100",
        "+1 202 555 0100 📱",
        "+١٢٠٢٥٥٥٠١٠٠",
        "+۱۲۰۲۵۵۵۰۱۰۰",
        "+1 (202) 555-0100",
        "+1-202-555-0100",
        "+1.202.555.0100",
        "  +12025550100\t",
        "+12025550100\u{0}",
        "+12025550100 ext. 1234",
        "+1 202 555 0100;ext=5",
        "+1 202-555-0100 x99",
        "tel:+1-202-555-0100",
        "+1 202 555 01OO",
        "+1 202 555 0100 0",
        "+0012025550100",
        "+1 2#:",
        "  2 22#:",
        "+;phone-context=+1",
        "+1;phone-context=202",
        "+800 1234 5678",
        "+",
        "++12025550100",
    ];
    for phone in variants {
        let r = w
            .login(RouteId::SmsLoginOrCreate, json!({"phone_number": phone}))
            .await;
        assert!(r.status.as_u16() < 500, "{phone:?}: {}", r.body);
        assert_login_shape(&r);
        if r.status == StatusCode::OK {
            if r.body["user_id"] != json!(canonical) {
                // A different number is fine only if it really is a different, ASCII E.164 one.
                let to = w.outbox.messages()[0].to.clone();
                assert!(
                    to.starts_with('+')
                        && to[1..].bytes().all(|b| b.is_ascii_digit())
                        && to != PHONE,
                    "{phone:?} made another user for {to:?}"
                );
                assert!(
                    !to.contains("2025550100"),
                    "{phone:?} made a second user for a spelling of {PHONE}: {to}"
                );
            }
        } else {
            assert_login_error(&r, 400, "invalid_phone_number");
        }
    }
    assert_eq!(w.users_holding(PHONE), 1);
    for m in w.outbox.messages() {
        assert!(m.to.is_ascii(), "{:?}", m.to);
    }
}

// ---------------------------------------------------------------------------------------------
// Properties (256 cases each).

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    })
}

fn value_strategy() -> impl Strategy<Value = String> {
    let listed = hostile_values();
    prop_oneof![
        3 => prop::sample::select(listed),
        1 => "\\PC{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => "[+0-9 ()\\-]{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:e}")),
    ]
}

/// Route indexes of the routes with a body.
fn body_routes(f: &Fixture) -> Vec<usize> {
    (0..ROUTES.len())
        .filter(|&i| f.base_body(&ROUTES[i]).is_some())
        .collect()
}

#[test]
fn prop_random_bodies_never_answer_5xx() {
    let rt = runtime();
    let f = rt.block_on(fixture());
    let routes = body_routes(&f);
    let strategy = (
        prop::sample::select(routes),
        prop::collection::vec((0usize..16, value_strategy()), 0..4),
        0u8..6,
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..64),
        0u8..6,
    );
    runner()
        .run(&strategy, |(ri, edits, mode, cut, noise, ct)| {
            let route = &ROUTES[ri];
            let mut base = f.base_body(route).unwrap();
            let keys: Vec<String> = base.keys().cloned().collect();
            let mut text = Vec::new();
            for (k, value) in &edits {
                let field = keys
                    .get(k % (keys.len() + 2))
                    .cloned()
                    .unwrap_or_else(|| "extra".into());
                text = with_field(&base, &field, Some(value));
                if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&text) {
                    base = m;
                }
            }
            if text.is_empty() {
                text = serde_json::to_vec(&base).unwrap();
            }
            let body = match mode {
                0 | 1 => text,
                2 => text[..cut.index(text.len())].to_vec(),
                3 => noise.clone(),
                4 => [text.as_slice(), noise.as_slice()].concat(),
                _ => format!("[{}]", String::from_utf8_lossy(&text)).into_bytes(),
            };
            let auth = f.auth(route);
            let mut headers = auth_headers(&auth);
            let json_ct = match ct {
                0..=2 => Some("application/json"),
                3 => Some("Application/JSON; charset=utf-8"),
                4 => Some("text/plain"),
                _ => None,
            };
            if let Some(ct) = json_ct {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            let is_json_ct = ct <= 3;
            let blank = body.iter().all(u8::is_ascii_whitespace);
            let parses = serde_json::from_slice::<Value>(&body).is_ok();
            let reply = rt.block_on(f.send(route, &f.params(route), headers, body.clone()));
            check(
                route,
                &reply,
                &format!("body {:?}", String::from_utf8_lossy(&body)),
            )?;
            if body.len() > 16 * 1024 {
                prop_assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
            } else if !blank && !is_json_ct {
                prop_assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            } else if !blank && !parses {
                prop_assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn prop_random_ids_in_paths_and_queries_are_not_found() {
    let rt = runtime();
    let f = rt.block_on(fixture());
    let routes: Vec<usize> = (0..ROUTES.len())
        .filter(|&i| !f.params(&ROUTES[i]).is_empty())
        .collect();
    let id = prop_oneof![
        prop::sample::select(HOSTILE_IDS.to_vec()).prop_map(str::to_owned),
        "\\PC{0,64}",
        "(app|user|lcfg|tpl|sec|tid|session)[-_][0-9a-fA-Z-]{0,40}",
        "[./%\\\\]{0,30}",
    ];
    let strategy = (prop::sample::select(routes), prop::collection::vec(id, 2));
    runner()
        .run(&strategy, |(ri, ids)| {
            let route = &ROUTES[ri];
            let mut params = f.params(route);
            for (p, id) in params.iter_mut().zip(&ids) {
                p.1 = id.clone();
            }
            let reply = rt.block_on(f.send(
                route,
                &params,
                json_headers(&f.auth(route)),
                body_bytes(&f.base_body(route)),
            ));
            check(route, &reply, &format!("ids {ids:?}"))?;
            prop_assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{:?} {}",
                ids,
                reply.body
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn prop_random_authorization_headers_never_open_a_route() {
    let rt = runtime();
    let f = rt.block_on(fixture());
    let routes: Vec<usize> = (0..ROUTES.len())
        .filter(|&i| ROUTES[i].dialect != Dialect::Public)
        .collect();
    let header_value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|b| {
            let mut v = b"Basic ".to_vec();
            v.extend_from_slice(STANDARD.encode(b).as_bytes());
            v
        }),
        ("\\PC{0,60}", "\\PC{0,60}").prop_map(|(u, p)| {
            let mut v = b"Basic ".to_vec();
            v.extend_from_slice(STANDARD.encode(format!("{u}:{p}")).as_bytes());
            v
        }),
        "(app-[0-9a-f-]{0,36}):(secret-[A-Za-z0-9_-]{0,43})".prop_map(|t| {
            let mut v = b"Basic ".to_vec();
            v.extend_from_slice(STANDARD.encode(t).as_bytes());
            v
        }),
        "(Bearer|bearer|BEARER|Basic) [ -~]{0,60}".prop_map(String::into_bytes),
    ];
    let strategy = (prop::sample::select(routes), header_value);
    runner()
        .run(&strategy, |(ri, value)| {
            let route = &ROUTES[ri];
            let reply = rt.block_on(f.send(
                route,
                &f.params(route),
                json_headers(&Auth::Raw(value.clone())),
                body_bytes(&f.base_body(route)),
            ));
            check(route, &reply, &format!("authorization {value:?}"))?;
            prop_assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", value);
            Ok(())
        })
        .unwrap();
}
