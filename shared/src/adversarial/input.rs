//! Hostile input to every route of `crate::api::ROUTES`, through `crate::api::handle`: bad
//! credentials, oversized and malformed bodies, hostile path parameters and other apps' ids,
//! wrong types and extreme values in every field, long attributes, unicode phone numbers,
//! key-separator-bearing and maximal email addresses, and proptest-generated bodies, headers and
//! ids. Every reply must be below 500, never a panic, and in its route's dialect; where the
//! answer is certain (401, 404, 413, 415, 400) it is checked exactly; no spelling of an
//! identifier may make a second user.
//!
//! # The sample ([`Corpus::Sample`])
//!
//! Parsing, validation and the handlers are the same code whichever store is behind them, and a
//! value reaches the store only once validated and normalized: ids only when they parse as ids
//! of their kind, phone numbers only as E.164, emails only as lower-cased valid addresses,
//! numbers only within their ranges. So the store cannot make a request answer differently,
//! except where a validated value is still free-form and becomes part of a record: a key (for
//! DynamoDB at most 2048 bytes for a partition key, 1024 for a sort key, components joined with
//! `#`) or an attribute (items of at most 400 KB). The sample is those: every free-form field of
//! every route with a body (ids, tokens, enums and booleans skipped) with the values that stress
//! a store (long, unicode, bidi-control, NUL- and key-separator-bearing strings, deep and odd
//! structures, extreme numbers), long attributes, hostile path parameters and other apps' ids on
//! every route that takes one, unicode spellings of a phone number, and `#`-bearing and 254-byte
//! email addresses (also as test identifiers): about a thousand requests instead of several
//! thousand.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use super::support::*;
use super::{Corpus, Target};
use crate::api::{Dialect, ROUTES, Route, RouteId};
use crate::clock::Timestamp;

/// A world with ids of every kind for the base bodies: app A (login routes) with users,
/// sessions, templates and configs, and app V, the victim of the management routes, so that
/// hostile management calls cannot take app A's configs away.
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
    /// A third user, whose code and session the hostile authenticate calls use (and lock).
    guessed_phone_id: String,
    guessed_token: String,
    guessed_jwt: String,
    victim_session: String,
    sms_config: String,
    email_template: String,
}

async fn fixture(target: &Target) -> Option<Fixture> {
    let w = World::new(target, relaxed()).await?;
    let (other_app, other_secret) = w.create_app("Other").await;
    let (victim_app, _) = w.create_app("Victim").await;
    let (user_id, _, session) = w.session_for(PHONE).await;
    let (_, guessed_phone_id, guessed) = w.session_for(THIRD_PHONE).await;
    w.sms_code(THIRD_PHONE).await;
    let (victim_user, _, victim) = w.session_for(OTHER_PHONE).await;
    w.add_identifier(&user_id, EMAIL).await;
    let r = w
        .manage(RouteId::ListLoginConfigs, &[("app_id", &w.app_id)], None)
        .await;
    let sms_config = r.body["login_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_type"] == json!("sms"))
        .map(|c| s(&c["id"]))
        .unwrap();
    let r = w
        .manage(
            RouteId::CreateTemplate,
            &[("app_id", &w.app_id)],
            Some(json!({"channel_type": "email", "locale": "en", "subject": "Hi", "text": "Code {{code}}", "html": "<b>{{code}}</b>"})),
        )
        .await;
    let email_template = s(&r.body["template"]["id"]);
    let r = w
        .manage(
            RouteId::CreateTemplate,
            &[("app_id", &victim_app)],
            Some(json!({"channel_type": "sms", "locale": "en", "text": "Code {{code}}"})),
        )
        .await;
    let victim_template = s(&r.body["template"]["id"]);
    let r = w
        .manage(
            RouteId::CreateLoginConfig,
            &[("app_id", &victim_app)],
            Some(json!({"config_type": "otp", "channel_type": "sms", "is_default": false, "template_id": victim_template})),
        )
        .await;
    let victim_config = s(&r.body["login_config"]["id"]);
    let r = w
        .manage(RouteId::CreateSecret, &[("app_id", &victim_app)], None)
        .await;
    let victim_secret_id = s(&r.body["secret_id"]);
    let r = w
        .manage(
            RouteId::CreateTestIdentifier,
            &[("app_id", &victim_app)],
            Some(json!({"identifier": "+12025550188", "code": "123456", "valid_until": Timestamp(w.start.0 + 3600).to_rfc3339()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let victim_test_id = s(&r.body["test_identifier"]["id"]);
    Some(Fixture {
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
    })
}

impl Fixture {
    /// The right credentials for a route's dialect.
    fn auth(&self, route: &Route) -> Auth {
        let token = &self.w.public_token;
        match (route.dialect, route.id) {
            (Dialect::Management, _) => Auth::Management,
            (Dialect::Login, _) => self.w.basic(),
            (Dialect::Public, _) | (_, RouteId::SdkEvents | RouteId::SdkPreflight) => Auth::None,
            // Signed in: the session's token beside the public token.
            (
                _,
                RouteId::SdkSessionsAuthenticate | RouteId::SdkSessionsRevoke | RouteId::SdkUsersMe,
            ) => Auth::Basic(token.clone(), self.token.clone()),
            (Dialect::Frontend, _) => Auth::Basic(token.clone(), token.clone()),
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
            RouteId::SdkBootstrap => vec![("public_token", self.w.public_token.clone())],
            RouteId::SdkPreflight => vec![("proxy", "otps/authenticate".to_owned())],
            _ if route.dialect == Dialect::Management => vec![("app_id", victim)],
            _ => vec![],
        }
    }

    /// A body the route accepts (or `None` for routes without one).
    fn base_body(&self, route: &Route) -> Option<Map<String, Value>> {
        let attributes = json!({"ip_address": "203.0.113.1", "user_agent": "fuzz/1.0"});
        let valid_until = Timestamp(self.w.start.0 + 7200).to_rfc3339();
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
            RouteId::PutFrontendSettings => json!({
                "authorized_origins": [WEB_ORIGIN, "http://localhost:5173"],
                "max_session_duration_minutes": 1440, "public_sends_per_hour": 200,
            }),
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
            RouteId::SdkSmsLoginOrCreate => json!({
                "phone_number": PHONE, "expiration_minutes": 5, "locale": "en",
            }),
            RouteId::SdkEmailLoginOrCreate => json!({
                "email": EMAIL, "expiration_minutes": 5, "locale": "fr",
                "login_template_id": self.email_template, "signup_template_id": self.email_template,
            }),
            RouteId::SdkOtpAuthenticate => json!({
                "token": "123456", "method_id": self.guessed_phone_id,
                "session_duration_minutes": 60,
            }),
            RouteId::SdkSessionsAuthenticate => json!({"session_duration_minutes": 60}),
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

#[track_caller]
fn unwrap_case(result: Result<(), TestCaseError>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[track_caller]
fn expect_error(route: &Route, reply: &Reply, status: u16, login: &str, management: &str) {
    match route.dialect {
        Dialect::Management => assert_management_error(reply, status, management),
        _ => assert_login_error(reply, status, login),
    }
}

/// Whether a route opens only with credentials (the frontend API's bootstrap names its public
/// token in the path; its events and preflights need none).
fn needs_credentials(route: &Route) -> bool {
    !matches!(route.dialect, Dialect::Public)
        && !matches!(
            route.id,
            RouteId::SdkBootstrap | RouteId::SdkEvents | RouteId::SdkPreflight
        )
}

/// `true` (after a notice) when the backend runs only the sample and `what` is not in it.
fn outside_the_sample(target: &Target, what: &str) -> bool {
    let outside = target.corpus() == Corpus::Sample;
    if outside {
        eprintln!(
            "notice: {what} is not in this backend's sample of the hostile-input corpus; the \
             in-memory run covers it (see shared::adversarial::input)"
        );
    }
    outside
}

pub async fn every_route_refuses_missing_and_wrong_credentials(target: Target) {
    if outside_the_sample(&target, "credentials") {
        return;
    }
    let Some(f) = fixture(&target).await else {
        return;
    };
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
    let token = &f.w.public_token;
    let other_token = token.replace("-live-", "-test-");
    let frontend_bad = vec![
        Auth::None,
        Auth::Management,
        // The backend's credentials do not open the frontend API.
        f.w.basic(),
        Auth::Basic(other_token.clone(), other_token),
        Auth::Basic(token.to_uppercase(), token.to_uppercase()),
        Auth::Basic(format!("{token} "), token.clone()),
        Auth::Basic(String::new(), token.clone()),
        Auth::Raw(format!("Bearer {token}").into_bytes()),
        basic_raw(token.as_bytes()),
        Auth::Raw(b"Basic !!!not-base64".to_vec()),
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
            Dialect::Frontend if needs_credentials(route) => &frontend_bad,
            Dialect::Public | Dialect::Frontend => continue,
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

pub async fn every_route_answers_oversized_bodies_413_with_or_without_credentials(target: Target) {
    if outside_the_sample(&target, "oversized bodies") {
        return;
    }
    let Some(f) = fixture(&target).await else {
        return;
    };
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

pub async fn non_json_bodies_are_415_and_malformed_json_is_400(target: Target) {
    if outside_the_sample(&target, "non-JSON and malformed bodies") {
        return;
    }
    let Some(f) = fixture(&target).await else {
        return;
    };
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
/// parse as JSON is 400. (Deep nesting beyond serde's limit is valid JSON, so accepting it is
/// fine; it is checked for < 500 only.)
pub async fn malformed_json_in_an_unknown_field_is_still_400(target: Target) {
    if outside_the_sample(&target, "malformed JSON in unknown fields") {
        return;
    }
    let Some(f) = fixture(&target).await else {
        return;
    };
    let malformed: [&[u8]; 4] = [
        b"{\"a\": \"\xff\xfe\"}",
        b"{\"a\": \"\\ud800\"}",
        b"{\"a\": 1e309}",
        b"{\"a\": [1, 2,]}",
    ];
    let deep = format!("{}1{}", "{\"a\":".repeat(2000), "}".repeat(2000)).into_bytes();
    let mut wrong = Vec::new();
    for route in ROUTES {
        if f.base_body(route).is_none() {
            continue;
        }
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

/// A key repeated in an object, at the top of a body or anywhere inside it, is refused (400
/// naming the key) on every route with a body, before anything is done: serde would keep the
/// last of the repeats, and a proxy or logger in front of the service may keep the first.
/// Parsing is the same code on every store, but this is cheap, so every backend runs all of it.
pub async fn duplicate_keys_are_refused_at_any_depth_on_every_route(target: Target) {
    let Some(f) = fixture(&target).await else {
        return;
    };
    let sent_before = f.w.outbox.messages().len();
    async fn countries(f: &Fixture) -> Value {
        let r =
            f.w.manage(RouteId::GetSmsCountries, &[("app_id", &f.victim_app)], None)
                .await;
        r.body["sms_countries"].clone()
    }
    let countries_before = countries(&f).await;
    let mut checked = 0;
    for route in ROUTES {
        let Some(base) = f.base_body(route) else {
            continue;
        };
        let params = f.params(route);
        let auth = f.auth(route);
        let fields = |base: &Map<String, Value>| -> Vec<String> {
            base.iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect()
        };
        let mut bodies: Vec<(String, String)> = Vec::new();
        // Each field twice, with its own value and with another.
        for (key, value) in &base {
            let mut parts = fields(&base);
            parts.push(format!("{}:{value}", serde_json::to_string(key).unwrap()));
            bodies.push((format!("{{{}}}", parts.join(",")), key.clone()));
            let mut parts = fields(&base);
            parts.insert(0, format!("{}:null", serde_json::to_string(key).unwrap()));
            bodies.push((format!("{{{}}}", parts.join(",")), key.clone()));
        }
        // Inside: an object in the body's own field, an object in an array of an unknown one.
        let nested = match route.dialect {
            Dialect::Login => {
                r#""attributes":{"ip_address":"203.0.113.1","ip_address":"203.0.113.2"}"#
            }
            _ => r#""extra":{"a":1,"a":1}"#,
        };
        let mut parts = fields(&base);
        parts.retain(|p| !p.starts_with("\"attributes\":"));
        parts.push(nested.to_owned());
        let key = if route.dialect == Dialect::Login {
            "ip_address"
        } else {
            "a"
        };
        bodies.push((format!("{{{}}}", parts.join(",")), key.to_owned()));
        let mut parts = fields(&base);
        parts.push(r#""extra":[1,{"b":{"c":[{"deep":1,"deep":2}]}}]"#.to_owned());
        bodies.push((format!("{{{}}}", parts.join(",")), "deep".to_owned()));

        for (body, key) in bodies {
            let reply = f
                .send(
                    route,
                    &params,
                    json_headers(&auth),
                    body.clone().into_bytes(),
                )
                .await;
            expect_error(route, &reply, 400, "bad_request", "invalid_request");
            let message = reply.body["error_message"]
                .as_str()
                .or(reply.body["message"].as_str())
                .unwrap_or_default();
            assert!(
                message.contains(&format!("duplicate key {key:?}")),
                "{:?} {body}: {message}",
                route.id
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked}");
    assert_eq!(
        f.w.outbox.messages().len(),
        sent_before,
        "nothing was delivered for a refused body"
    );
    assert_eq!(
        countries(&f).await,
        countries_before,
        "the SMS countries are as they were"
    );
}

/// Raw JSON texts for any field: wrong types, extreme numbers, odd strings and structures. The
/// ones marked `store` are the sample's: what a validated free-form value can carry into a
/// record.
fn hostile_values(corpus: Corpus) -> Vec<String> {
    // (text, in the sample)
    let listed: &[(&str, bool)] = &[
        ("null", true),
        ("true", false),
        ("false", false),
        ("0", false),
        ("-0", false),
        ("-1", true),
        ("1", false),
        ("1.5", false),
        ("-1.5", false),
        ("5", false),
        ("10", false),
        ("11", false),
        ("4", false),
        ("527040", true),
        ("527041", false),
        ("1e308", true),
        ("-1e308", false),
        ("1e-308", false),
        ("2.5e-324", false),
        ("4294967295", false),
        ("4294967296", false),
        ("9223372036854775807", true),
        ("9223372036854775808", false),
        ("-9223372036854775808", false),
        ("-9223372036854775809", false),
        ("18446744073709551615", false),
        ("18446744073709551616", false),
        ("123456789012345678901234567890", false),
        ("[]", false),
        ("{}", false),
        ("[1,2]", false),
        ("[\"1\",\"44\"]", false),
        ("[null]", false),
        ("{\"a\":{\"b\":[]}}", false),
        ("{\"sub\":\"x\"}", false),
        ("{\"https://stytch.com/session\":{}}", false),
        ("{\"\":null}", true),
        ("\"\"", true),
        ("\" \"", false),
        ("\"\\u0000\"", true),
        ("\"#\"", true),
        ("\"APP#x#USER#y\"", true),
        ("\"a#b@example.com\"", true),
        ("\"otp\"", false),
        ("\"sms\"", false),
        ("\"email\"", false),
        ("\"SMS\"", false),
        ("\"fax\"", false),
        ("\"123456\"", false),
        ("\" 123456 \"", false),
        ("\"１２３４５６\"", false),
        ("\"12345\"", false),
        ("\"123456789\"", false),
        ("\"-12345\"", false),
        ("\"+12025550100\"", false),
        ("\"+１２０２５５５０１００\"", false),
        ("\"+1\\u200f2025550100\"", false),
        ("\"+1📱2025550100\"", false),
        ("\"ann@example.com\"", false),
        ("\"ANN@EXAMPLE.COM\"", false),
        ("\"ann@例え.jp\"", true),
        ("\"<script>alert(1)</script>\"", false),
        ("\"../../etc/passwd\"", false),
        (
            "\"{{code}}{{code}}{{app_name}}{{expiration_minutes}}\"",
            true,
        ),
        ("\"%s%n%x\"", false),
        ("\"\\ud83d\\ude00\"", false),
        ("\"2026-11-22T03:49:08Z\"", false),
        ("\"9999-12-31T23:59:59Z\"", false),
        ("\"1970-01-01T00:00:00Z\"", false),
        ("\"+275760-09-13T00:00:00Z\"", false),
        ("\"de-DE\"", false),
        ("\"xx-YY-ZZ-123456789\"", false),
        ("\"lcfg_01JD0000000000000000000000\"", false),
        ("\"user-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f\"", false),
        (
            "\"phone-number-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f\"",
            false,
        ),
    ];
    let mut values: Vec<String> = listed
        .iter()
        .filter(|(_, sample)| corpus == Corpus::Full || *sample)
        .map(|(text, _)| text.to_string())
        .collect();
    values.push(serde_json::to_string(&"x".repeat(14_000)).unwrap());
    values.push(serde_json::to_string(&"😀".repeat(3_000)).unwrap());
    values.push(serde_json::to_string(&"\u{202E}\u{200F}".repeat(1_000)).unwrap());
    if corpus == Corpus::Full {
        values.push(format!("{}1{}", "[".repeat(120), "]".repeat(120)));
    }
    values.push(format!("{}1{}", "{\"a\":".repeat(120), "}".repeat(120)));
    values.push(format!(
        "{{\"big\":{}}}",
        serde_json::to_string(&"x".repeat(4090)).unwrap()
    ));
    values
}

/// Fields that only ever reach the store parsed as an id, a token, an enum or a boolean: the
/// sample skips them (a hostile value in them is refused by the same parsing on every store).
const PARSED_FIELDS: &[&str] = &[
    "method_id",
    "user_id",
    "session_id",
    "session_token",
    "session_jwt",
    "login_config_id",
    "template_id",
    "login_template_id",
    "signup_template_id",
    "config_type",
    "channel_type",
    "is_default",
    "grant_change_password",
    "create_user_as_pending",
];

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

/// Every field of every route with a body (the sample: every free-form one) takes every
/// hostile value; the full corpus also removes each field and adds unknown ones.
pub async fn every_field_of_every_route_survives_every_hostile_value(target: Target) {
    let Some(f) = fixture(&target).await else {
        return;
    };
    let corpus = f.w.corpus;
    let values = hostile_values(corpus);
    let mut served = 0usize;
    for route in ROUTES {
        let Some(base) = f.base_body(route) else {
            continue;
        };
        let params = f.params(route);
        let auth = f.auth(route);
        let mut fields: Vec<String> = base.keys().cloned().collect();
        match corpus {
            Corpus::Full => fields.extend([
                "__proto__".to_owned(),
                "constructor".to_owned(),
                "status_code".to_owned(),
            ]),
            Corpus::Sample => fields.retain(|field| !PARSED_FIELDS.contains(&field.as_str())),
        }
        for field in &fields {
            if corpus == Corpus::Full {
                let removed = with_field(&base, field, None);
                let reply = f.send(route, &params, json_headers(&auth), removed).await;
                unwrap_case(check(route, &reply, &format!("without {field}")));
            }
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
    let least = match corpus {
        Corpus::Full => 3000,
        Corpus::Sample => 500,
    };
    assert!(served > least, "{served}");
    // App A is still usable after all of it.
    let r = f.w.get_user(&f.user_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (_, phone_id, code) = f.w.sms_code("+12025550166").await;
    let r = f.w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// `attributes.ip_address` becomes part of a send-counter key (for DynamoDB a partition key of
/// at most 2048 bytes): a long value must be refused (400) or kept to a short key, never fail
/// the write. A long `user_agent`, stored in the session, must be refused or stored as given.
pub async fn long_attributes_are_refused_or_stored(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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
        .longest_counter_key
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        r.status == StatusCode::BAD_REQUEST || longest <= 1024,
        "{} with a counter key of {longest} bytes",
        r.status
    );
    // The longest IPv6 spelling is accepted and fits.
    let ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": PHONE, "attributes": {"ip_address": ip}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let phone_id = s(&r.body["phone_id"]);
    let code = w.last_code(PHONE);
    for agent in ["a".repeat(14_000), "😀".repeat(3_500), "\u{0}".repeat(1000)] {
        let r = w
            .login(
                RouteId::OtpAuthenticate,
                json!({"method_id": phone_id, "code": code, "session_duration_minutes": 60,
                       "attributes": {"ip_address": ip, "user_agent": agent}}),
            )
            .await;
        assert!(r.status.as_u16() < 500, "{}", r.body);
        assert_login_shape(&r);
        if r.status == StatusCode::OK {
            let r = w
                .login(
                    RouteId::SessionsAuthenticate,
                    json!({"session_token": r.body["session_token"]}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(
                r.body["session"]["attributes"]["user_agent"],
                json!(agent),
                "stored as given"
            );
            return;
        }
        assert_login_error(&r, 400, "bad_request");
    }
    panic!("no user agent was stored");
}

/// Path parameters that name nothing: each answered 404 in the route's dialect. (`true`: in the
/// sample.)
const HOSTILE_IDS: &[(&str, bool)] = &[
    ("", true),
    ("../", true),
    ("..", true),
    ("../../../../etc/passwd", false),
    ("..%2F..%2Fetc%2Fpasswd", false),
    ("%00", true),
    ("\0", true),
    ("#", true),
    ("APP#", true),
    ("app-../../", false),
    ("app-", true),
    ("user-", true),
    ("app-00000000-0000-0000-0000-000000000000", true),
    ("app-0F8C2F1E-5A6B-4C3D-8E9F-0A1B2C3D4E5F", true),
    ("app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f\n", true),
    (" app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f", false),
    ("app-0f8c2f1e5a6b4c3d8e9f0a1b2c3d4e5f", false),
    ("app-{0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f}", false),
    ("app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f#USER#x", true),
    ("user-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f", true),
    ("session-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f", true),
    ("lcfg_01JD0000000000000000000000", true),
    ("lcfg_01jd0000000000000000000000", false),
    ("lcfg_ZZZZZZZZZZZZZZZZZZZZZZZZZZ", false),
    ("sec_7ZZZZZZZZZZZZZZZZZZZZZZZZZ", true),
    ("tpl_", false),
    ("tid_01JD00000000000000000000000", true),
    ("' OR '1'='1", true),
    ("{\"$ne\": null}", false),
    ("*", true),
    ("app-０f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f", false),
    ("😀", true),
    ("\u{202E}app", false),
];

fn hostile_ids(corpus: Corpus) -> Vec<&'static str> {
    HOSTILE_IDS
        .iter()
        .filter(|(_, sample)| corpus == Corpus::Full || *sample)
        .map(|(id, _)| *id)
        .collect()
}

pub async fn hostile_and_foreign_path_parameters_are_answered_not_found(target: Target) {
    let Some(f) = fixture(&target).await else {
        return;
    };
    let long = "a".repeat(10 * 1024);
    let long_prefixed = format!("app-{}", "0".repeat(10 * 1024));
    let mut hostile: Vec<String> = hostile_ids(f.w.corpus)
        .iter()
        .map(|s| s.to_string())
        .collect();
    hostile.extend([long, long_prefixed]);
    // Ids that exist, but in another app or of another kind: these reach the store.
    let foreign = [
        f.other_app.clone(),
        f.victim_user.clone(),
        f.victim_config.clone(),
        f.victim_template.clone(),
        f.victim_secret_id.clone(),
        f.victim_test_id.clone(),
    ];
    for route in ROUTES {
        let valid = f.params(route);
        // The frontend API's path names a public token or a preflight's path (tests/frontend_api).
        if valid.is_empty() || route.dialect == Dialect::Frontend {
            continue;
        }
        let body = body_bytes(&f.base_body(route));
        let auth = f.auth(route);
        for (i, (name, valid_value)) in valid.iter().enumerate() {
            for value in hostile.iter().chain(&foreign) {
                if value == valid_value || (*name == "user_id" && value == &f.victim_user) {
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
                let login = match route.id {
                    RouteId::SessionsJwks => "app_not_found",
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
    let r =
        f.w.manage(RouteId::ListTemplates, &[("app_id", &f.victim_app)], None)
            .await;
    assert_eq!(r.body["templates"].as_array().map(Vec::len), Some(1));
}

/// Phone numbers with unicode: each is refused, or normalized to the one ASCII E.164 number, so
/// that no spelling makes a second user (counted in the store).
pub async fn unicode_phone_numbers_never_split_an_identity(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
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
        "+1#2025550100",
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
                        && to != PHONE
                        && !to.contains("2025550100"),
                    "{phone:?} made another user for {to:?}"
                );
            }
        } else {
            assert_login_error(&r, 400, "invalid_phone_number");
        }
    }
    assert_eq!(w.users_holding(PHONE).await, 1);
    for m in w.outbox.messages() {
        assert!(m.to.is_ascii(), "{:?}", m.to);
    }
}

/// Email addresses that stress a store's keys: the key separator `#` in the local part (valid
/// in an address), the longest address the service accepts (254 bytes), unicode, and case.
/// Distinct addresses are distinct users, spellings of one are one, and each works as a test
/// identifier too.
pub async fn key_separators_and_the_longest_emails_keep_identities_apart(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let longest = format!(
        "{}@{}.{}.{}.com",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(57)
    );
    assert_eq!(longest.len(), 254);
    let unicode = format!("{}@{}.jp", "ü".repeat(32), "例".repeat(20));
    let distinct = [
        "a@example.com".to_owned(),
        "a#b@example.com".to_owned(),
        "b@example.com".to_owned(),
        "email#a@example.com".to_owned(),
        longest.clone(),
        unicode.clone(),
    ];
    let mut users = Vec::new();
    for email in &distinct {
        let r = w
            .login(RouteId::EmailLoginOrCreate, json!({ "email": email }))
            .await;
        assert!(r.status.as_u16() < 500, "{email}: {}", r.body);
        assert_login_shape(&r);
        if r.status != StatusCode::OK {
            assert_login_error(&r, 400, "invalid_email");
            continue;
        }
        assert_eq!(r.body["user_created"], json!(true), "{email}: {}", r.body);
        let code = w.last_code(&email.to_lowercase());
        let r2 = w.authenticate(&s(&r.body["email_id"]), &code).await;
        assert_eq!(r2.status, StatusCode::OK, "{email}: {}", r2.body);
        users.push(s(&r.body["user_id"]));
        assert_eq!(w.users_holding(&email.to_lowercase()).await, 1, "{email}");
    }
    assert!(users.len() >= 5, "{users:?}");
    let unique: std::collections::HashSet<&String> = users.iter().collect();
    assert_eq!(unique.len(), users.len(), "{users:?}");
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({ "email": longest.to_uppercase() }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user_created"], json!(false), "{}", r.body);

    // As test identifiers, listed and usable.
    for (email, code) in [(&longest, "111222"), (&distinct[1], "333444")] {
        w.add_test_identifier(email, code, w.start.plus_seconds(3600))
            .await;
        let r = w
            .login(RouteId::EmailLoginOrCreate, json!({ "email": email }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.body);
        let r = w.authenticate(&s(&r.body["email_id"]), code).await;
        assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.body);
    }
    let r = w
        .manage(RouteId::ListTestIdentifiers, &[("app_id", &w.app_id)], None)
        .await;
    assert_eq!(
        r.body["test_identifiers"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.body
    );
}

// ---------------------------------------------------------------------------------------------
// Properties (256 cases each). Each runs its cases through the runtime's handle from a blocking
// section (the suite's tests run on a multi-thread runtime).

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    })
}

fn value_strategy() -> impl Strategy<Value = String> {
    let listed = hostile_values(Corpus::Full);
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

/// Runs `test` from a blocking section, handing it the runtime's handle.
fn blocking<T>(test: impl FnOnce(&tokio::runtime::Handle) -> T) -> T {
    tokio::task::block_in_place(|| test(&tokio::runtime::Handle::current()))
}

pub async fn prop_random_bodies_never_answer_5xx(target: Target) {
    if outside_the_sample(&target, "random bodies") {
        return;
    }
    let Some(f) = fixture(&target).await else {
        return;
    };
    let routes = body_routes(&f);
    let strategy = (
        prop::sample::select(routes),
        prop::collection::vec((0usize..16, value_strategy()), 0..4),
        0u8..6,
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..64),
        0u8..6,
    );
    blocking(|rt| {
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
    });
}

pub async fn prop_random_ids_in_paths_and_queries_are_not_found(target: Target) {
    if outside_the_sample(&target, "random ids") {
        return;
    }
    let Some(f) = fixture(&target).await else {
        return;
    };
    let routes: Vec<usize> = (0..ROUTES.len())
        .filter(|&i| !f.params(&ROUTES[i]).is_empty() && ROUTES[i].dialect != Dialect::Frontend)
        .collect();
    let id = prop_oneof![
        prop::sample::select(hostile_ids(Corpus::Full)).prop_map(str::to_owned),
        "\\PC{0,64}",
        "(app|user|lcfg|tpl|sec|tid|session)[-_][0-9a-fA-Z-]{0,40}",
        "[./%\\\\]{0,30}",
    ];
    let strategy = (prop::sample::select(routes), prop::collection::vec(id, 2));
    blocking(|rt| {
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
    });
}

pub async fn prop_random_authorization_headers_never_open_a_route(target: Target) {
    if outside_the_sample(&target, "random Authorization headers") {
        return;
    }
    let Some(f) = fixture(&target).await else {
        return;
    };
    let routes: Vec<usize> = (0..ROUTES.len())
        .filter(|&i| needs_credentials(&ROUTES[i]))
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
    blocking(|rt| {
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
    });
}
