//! A sample of the hostile-input corpus (`shared/tests/adversarial_input.rs`) on `DynamoStore`
//! (moto): the inputs that can reach an item once validated. Parsing and validation are the
//! same code on every store (see the crate's doc for why the rest of the corpus stays on the
//! in-memory adapters); what the store adds is its limits and its key design: a partition key
//! of at most 2048 bytes, a sort key of at most 1024, items of at most 400 KB, keys built from
//! ids and identifiers joined with `#`. Every reply must be below 500 and in its route's
//! dialect, and no spelling of an identifier may make a second user.

mod support;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use shared::api::{Dialect, ROUTES, Route, RouteId};
use shared::clock::Timestamp;
use support::*;

/// App A (login routes) with users, sessions, templates and configs, and app V, the victim of
/// the management routes, so that hostile management calls cannot take app A's configs away.
struct Fixture {
    w: World,
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
    guessed_phone_id: String,
    guessed_token: String,
    guessed_jwt: String,
    victim_session: String,
    sms_config: String,
    email_template: String,
}

async fn fixture() -> Option<Fixture> {
    let w = World::new(relaxed()).await?;
    let m = Auth::Management;
    let (other_app, _) = w.create_app("Other").await;
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
        Some(json!({"identifier": "+12025550188", "code": "123456", "valid_until": Timestamp(w.start.0 + 3600).to_rfc3339()})),
    )
    .await;
    let victim_test_id = s(&r.body["test_identifier"]["id"]);
    Some(Fixture {
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
#[track_caller]
fn check(route: &Route, reply: &Reply, what: &str) {
    assert!(
        reply.status.as_u16() < 500,
        "{:?} {what}: {} {}",
        route.id,
        reply.status,
        reply.body
    );
    assert_dialect_shape(route.dialect, reply);
}

/// The values of the corpus that a validated field can carry into an item: empty, NUL, the
/// key separator `#` and key-shaped text, unicode, template syntax, the longest strings a 16 KB
/// body holds (in bytes and in characters), odd and deep structures, extreme numbers (which
/// become timestamps and `ttl`).
fn store_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "null",
        "\"\"",
        "\"\\u0000\"",
        "\"#\"",
        "\"APP#x#USER#y\"",
        "\"a#b@example.com\"",
        "\"ann@例え.jp\"",
        "\"{{code}}{{code}}{{app_name}}{{expiration_minutes}}\"",
        "-1",
        "527040",
        "9223372036854775807",
        "1e308",
        "{\"\":null}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(serde_json::to_string(&"x".repeat(14_000)).unwrap());
    v.push(serde_json::to_string(&"😀".repeat(3_000)).unwrap());
    v.push(serde_json::to_string(&"\u{202E}\u{200F}".repeat(1_000)).unwrap());
    v.push(format!("{}1{}", "{\"a\":".repeat(120), "}".repeat(120)));
    v.push(format!(
        "{{\"big\":{}}}",
        serde_json::to_string(&"x".repeat(4090)).unwrap()
    ));
    v
}

/// Fields that only ever reach the store parsed as an id, a token, an enum or a boolean: a
/// hostile value in them is refused by the same parsing on every store, so they are skipped.
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

/// A JSON object text: `base` with `field` set to the raw JSON `value`.
fn with_field(base: &Map<String, Value>, field: &str, value: &str) -> Vec<u8> {
    let mut parts: Vec<String> = base
        .iter()
        .filter(|(k, _)| k.as_str() != field)
        .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
        .collect();
    parts.push(format!("{}:{value}", serde_json::to_string(field).unwrap()));
    format!("{{{}}}", parts.join(",")).into_bytes()
}

#[tokio::test]
async fn every_free_form_field_of_every_route_survives_the_store_values() {
    let Some(f) = fixture().await else {
        return;
    };
    let started = std::time::Instant::now();
    let values = store_values();
    let mut served = 0usize;
    for route in ROUTES {
        let Some(base) = f.base_body(route) else {
            continue;
        };
        let params = f.params(route);
        let auth = f.auth(route);
        for field in base.keys() {
            if PARSED_FIELDS.contains(&field.as_str()) {
                continue;
            }
            for value in &values {
                let body = with_field(&base, field, value);
                let too_large = body.len() > 16 * 1024;
                let reply = f.send(route, &params, json_headers(&auth), body).await;
                check(route, &reply, &format!("{field}={value:.80}"));
                if too_large {
                    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
                }
                served += 1;
            }
        }
    }
    eprintln!("{served} requests in {:?}", started.elapsed());
    assert!(served > 500, "{served}");
    // App A is still usable after all of it.
    let r = f.w.get_user(&f.user_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (_, phone_id, code) = f.w.sms_code(OTHER_PHONE).await;
    let r = f.w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// `attributes.ip_address` becomes part of a rate-limit counter key, which `DynamoStore` puts
/// in a partition key (at most 2048 bytes): a long value must be refused (400) or kept to a
/// short key, never fail the write; and a long `user_agent`, stored in the session item, must
/// be refused or stored.
#[tokio::test]
async fn long_attributes_are_refused_or_stored() {
    let Some(w) = World::new(relaxed()).await else {
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
        .longest_rate_key
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        r.status == StatusCode::BAD_REQUEST || longest <= 1024,
        "{} with a rate-limit key of {longest} bytes",
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
    assert!(r.status.as_u16() < 500, "{}", r.body);
    assert_login_shape(&r);
    let phone_id = s(&r.body["phone_id"]);
    let code = w.outbox.last_to(PHONE).unwrap();
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
            break;
        }
    }
}

/// Path parameters that name nothing: each answered 404 in the route's dialect.
const HOSTILE_IDS: &[&str] = &[
    "",
    "../",
    "..",
    "%00",
    "\0",
    "#",
    "app-",
    "user-",
    "APP#",
    "app-00000000-0000-0000-0000-000000000000",
    "app-0F8C2F1E-5A6B-4C3D-8E9F-0A1B2C3D4E5F",
    "app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f\n",
    "app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f#USER#x",
    "user-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
    "session-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f",
    "lcfg_01JD0000000000000000000000",
    "sec_7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "tid_01JD00000000000000000000000",
    "' OR '1'='1",
    "*",
    "😀",
];

#[tokio::test]
async fn hostile_and_foreign_path_parameters_are_answered_not_found() {
    let Some(f) = fixture().await else {
        return;
    };
    let long = "a".repeat(10 * 1024);
    let long_prefixed = format!("app-{}", "0".repeat(10 * 1024));
    let mut hostile: Vec<String> = HOSTILE_IDS.iter().map(|s| s.to_string()).collect();
    hostile.extend([long, long_prefixed]);
    // IDs that exist, but in another app (or are of another kind): these reach DynamoDB.
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
        if valid.is_empty() {
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
                let login = match (route.id, *name) {
                    (RouteId::SessionsJwks, _) => "app_not_found",
                    _ => "user_not_found",
                };
                match route.dialect {
                    Dialect::Management => assert_management_error(&reply, 404, "not_found"),
                    _ => assert_login_error(&reply, 404, login),
                }
            }
        }
    }
    // Nothing was deleted by any of it.
    let r = f.w.get_user(&f.victim_user).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &f.w.deps,
        RouteId::ListTemplates,
        &[("app_id", &f.victim_app)],
        &Auth::Management,
        None,
    )
    .await;
    assert_eq!(r.body["templates"].as_array().map(Vec::len), Some(1));
}

/// Phone numbers with unicode: each is refused, or normalized to the one ASCII E.164 number, so
/// that no spelling makes a second user (counted in the table).
#[tokio::test]
async fn unicode_phone_numbers_never_split_an_identity() {
    let Some(w) = World::new(relaxed()).await else {
        return;
    };
    let (canonical, _, _) = w.sms_code(PHONE).await;
    let variants = [
        "+１２０２５５５０１００",
        "＋12025550100",
        "+1\u{200F}2025550100",
        "\u{202E}+12025550100",
        "+1\u{200B}2025550100",
        "+1\u{00A0}202\u{00A0}555\u{00A0}0100",
        "+1📱2025550100",
        "+١٢٠٢٥٥٥٠١٠٠",
        "+1 (202) 555-0100",
        "  +12025550100\t",
        "+12025550100\u{0}",
        "+1 202 555 0100;ext=5",
        "tel:+1-202-555-0100",
        "+0012025550100",
        "+1#2025550100",
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
                let to = w.outbox.messages().pop().unwrap().to;
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

/// Email addresses that stress the key design: the key separator `#` in the local part (valid
/// in an address), the longest address the service accepts (254 bytes, in partition and sort
/// keys), unicode, and case. Distinct addresses are distinct users, spellings of one are one,
/// and each works as a test identifier too.
#[tokio::test]
async fn key_separators_and_the_longest_emails_keep_identities_apart() {
    let Some(w) = World::new(relaxed()).await else {
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
        let code = w.outbox.last_to(&email.to_lowercase()).unwrap();
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

    // As test identifiers (a sort key `TESTID#IDENT#email#<address>`), listed and usable.
    let valid_until = Timestamp(w.start.0 + 3600).to_rfc3339();
    for (email, code) in [(&longest, "111222"), (&distinct[1], "333444")] {
        let r = call(
            &w.deps,
            RouteId::CreateTestIdentifier,
            &[("app_id", &w.app_id)],
            &Auth::Management,
            Some(json!({"identifier": email, "code": code, "valid_until": valid_until})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{email}: {}", r.body);
        let r = w
            .login(RouteId::EmailLoginOrCreate, json!({ "email": email }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.body);
        let r = w.authenticate(&s(&r.body["email_id"]), code).await;
        assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.body);
    }
    let r = call(
        &w.deps,
        RouteId::ListTestIdentifiers,
        &[("app_id", &w.app_id)],
        &Auth::Management,
        None,
    )
    .await;
    assert_eq!(
        r.body["test_identifiers"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.body
    );
}
