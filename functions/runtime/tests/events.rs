//! Every `events/*.json` (a real API Gateway HTTP API v2 payload) through `lambda_http` and the
//! handler, as API Gateway would deliver it to that function: first as recorded (its example IDs
//! are unknown here, so it must be refused cleanly), then with the IDs of a real app.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use function_runtime::{api_request, lambda_response};
use http::HeaderValue;
use lambda_http::Body;
use serde_json::{Value, json};
use shared::api::{ApiRequest, ROUTES, Route, RouteId, handle};
use shared::clock::SystemClock;
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::random::OsRandom;
use shared::service::{Deps, InMemory, Keys, Limits, SendLimits, Settings};

const EXAMPLE_APP: &str = "app-0f8c2f1e-5a6b-4c3d-8e9f-0a1b2c3d4e5f";

fn events_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn route_of(function: &str) -> &'static Route {
    ROUTES
        .iter()
        .find(|r| r.function == function)
        .unwrap_or_else(|| panic!("no route for {function}"))
}

fn in_memory() -> InMemory {
    InMemory::with(
        Keys::new(
            ManagementKeyHash::of_key("dev-management-key"),
            CodeHasher::new(&[9u8; 32]).unwrap(),
            KeyEncryptionKey::from_secret(&"k".repeat(32)).expect("a long enough key"),
        ),
        Settings {
            // As deployed without PUBLIC_BASE_URL: the issuer comes from each event's domain.
            public_base_url: String::new(),
            default_email_from: "no-reply@example.com".into(),
            // The events send to one number twice in a row; cooldowns are tested elsewhere.
            limits: Limits {
                send: SendLimits {
                    cooldown_seconds: 0,
                    ..SendLimits::default()
                },
                ..Limits::default()
            },
            app_cache_seconds: shared::service::DEFAULT_APP_CACHE_SECONDS,
            test_environment: false,
        },
        Arc::new(SystemClock),
        Arc::new(OsRandom),
    )
}

/// Parses an event file as `lambda_http` does for a function, after replacing example values.
fn load(function: &str, replacements: &[(String, String)], basic: Option<&str>) -> ApiRequest {
    let path = events_dir().join(format!("{function}.json"));
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (from, to) in replacements {
        text = text.replace(from.as_str(), to);
    }
    let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| {
        panic!("{function}.json is not an API Gateway event lambda_http accepts: {e}")
    });
    let mut api = api_request(request);
    if let Some(credentials) = basic
        && api.headers.contains_key(http::header::AUTHORIZATION)
        && route_of(function).path.starts_with("/v1/")
    {
        let value = format!("Basic {}", STANDARD.encode(credentials));
        api.headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    api
}

async fn call(deps: &Deps, function: &str, request: ApiRequest) -> (u16, Value) {
    let route = route_of(function);
    let response = lambda_response(handle(deps, route.id, request).await);
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        Body::Empty => Value::Null,
        other => panic!("{function}: unexpected body {other:?}"),
    };
    (status, body)
}

#[tokio::test]
async fn every_route_has_an_event_that_lambda_http_parses() {
    for route in ROUTES {
        let request = load(route.function, &[], None);
        assert_eq!(
            request.method.as_str(),
            route.method,
            "{}: method",
            route.function
        );
        for name in route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| name.trim_end_matches('+'))
        {
            assert!(
                request.path_params.contains_key(name),
                "{}: pathParameters lacks {name}",
                route.function
            );
        }
    }
}

#[tokio::test]
async fn recorded_events_with_unknown_ids_are_refused_cleanly() {
    let mem = in_memory();
    for route in ROUTES {
        let (status, body) = call(&mem.deps, route.function, load(route.function, &[], None)).await;
        let expected = match route.id {
            // The management key of the events is this deployment's; the app is unknown.
            RouteId::CreateApp => 201,
            RouteId::GetApp
            | RouteId::CreateSecret
            | RouteId::ListSecrets
            | RouteId::DeleteSecret
            | RouteId::CreateLoginConfig
            | RouteId::ListLoginConfigs
            | RouteId::ReplaceLoginConfig
            | RouteId::DeleteLoginConfig
            | RouteId::CreateTemplate
            | RouteId::ListTemplates
            | RouteId::ReplaceTemplate
            | RouteId::DeleteTemplate
            | RouteId::CreateTestIdentifier
            | RouteId::ListTestIdentifiers
            | RouteId::DeleteTestIdentifier
            | RouteId::PutSmsCountries
            | RouteId::GetSmsCountries
            | RouteId::PutSmsBudgets
            | RouteId::GetSmsBudgets
            | RouteId::ListSmsRegions
            | RouteId::ResetSmsRegion
            | RouteId::RotateKeys
            | RouteId::ListPublicTokens
            | RouteId::CreatePublicToken
            | RouteId::DeletePublicToken
            | RouteId::GetFrontendSettings
            | RouteId::PutFrontendSettings => 404,
            RouteId::SessionsJwks => 404,
            // Events and preflights name no app.
            RouteId::SdkEvents => 200,
            RouteId::SdkPreflight => 204,
            // Basic credentials of an app this deployment does not have, or a public token
            // no app has.
            _ => 401,
        };
        assert_eq!(status, expected, "{}: {body}", route.function);
        if route.id == RouteId::SdkPreflight {
            continue;
        }
        let request_id = match route.id {
            RouteId::SdkEvents => &body["data"]["request_id"],
            _ => &body["request_id"],
        };
        assert!(
            request_id
                .as_str()
                .is_some_and(|r| r.starts_with("request-id-")),
            "{}: {body}",
            route.function
        );
    }
}

#[tokio::test]
async fn events_drive_every_function_of_a_real_app() {
    let mem = in_memory();
    let deps = &mem.deps;
    let mut replace: Vec<(String, String)> = Vec::new();

    let (status, app) = call(deps, "create-app", load("create-app", &[], None)).await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["app"]["id"].as_str().unwrap().to_owned();
    let secret = app["secret"].as_str().unwrap().to_owned();
    let public_token = app["public_token"].as_str().unwrap().to_owned();
    let basic = format!("{app_id}:{secret}");
    replace.push((EXAMPLE_APP.into(), app_id.clone()));
    let with = |r: &Vec<(String, String)>, f: &str| load(f, r, Some(&basic));

    let (status, body) = call(deps, "get-app", with(&replace, "get-app")).await;
    assert_eq!(
        (status, body["app"]["id"].as_str()),
        (200, Some(app_id.as_str())),
        "{body}"
    );

    let (status, body) = call(deps, "create-secret", with(&replace, "create-secret")).await;
    assert_eq!(status, 201, "{body}");
    replace.push((
        "sec_01M80NYES05EW0TMVV3PHY72YK".into(),
        body["secret_id"].as_str().unwrap().into(),
    ));
    let (status, body) = call(deps, "list-secrets", with(&replace, "list-secrets")).await;
    assert_eq!(
        (status, body["secrets"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{body}"
    );

    let (status, body) = call(deps, "create-template", with(&replace, "create-template")).await;
    assert_eq!(status, 201, "{body}");
    replace.push((
        "tpl_01M80NYES0BKF0Y4MRYGFQT74B".into(),
        body["template"]["id"].as_str().unwrap().into(),
    ));
    let (status, body) = call(deps, "replace-template", with(&replace, "replace-template")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(deps, "list-templates", with(&replace, "list-templates")).await;
    assert_eq!(
        (status, body["templates"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );

    let (status, body) = call(
        deps,
        "create-login-config",
        with(&replace, "create-login-config"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    replace.push((
        "lcfg_01M80NYES0PYB0DYSTZTJVT5G9".into(),
        body["login_config"]["id"].as_str().unwrap().into(),
    ));
    let (status, body) = call(
        deps,
        "replace-login-config",
        with(&replace, "replace-login-config"),
    )
    .await;
    assert_eq!(
        (status, body["login_config"]["code_length"].as_u64()),
        (200, Some(8)),
        "{body}"
    );
    let (status, body) = call(
        deps,
        "list-login-configs",
        with(&replace, "list-login-configs"),
    )
    .await;
    assert_eq!(
        (status, body["login_configs"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
    let email_config = json!({"config_type": "otp", "channel_type": "email", "is_default": true});
    let mut email_request = with(&replace, "create-login-config");
    email_request.body = serde_json::to_vec(&email_config).unwrap();
    let (status, body) = call(deps, "create-login-config", email_request).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = call(
        deps,
        "create-test-identifier",
        with(&replace, "create-test-identifier"),
    )
    .await;
    // The recorded valid_until may lie in the past or too far ahead of today: either is a 400.
    assert!(status == 201 || status == 400, "{status} {body}");
    if status == 201 {
        replace.push((
            "tid_01M80NYES0JG85E6DZWQRRCJ68".into(),
            body["test_identifier"]["id"].as_str().unwrap().into(),
        ));
    }
    let (status, body) = call(
        deps,
        "list-test-identifiers",
        with(&replace, "list-test-identifiers"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        deps,
        "put-sms-countries",
        with(&replace, "put-sms-countries"),
    )
    .await;
    assert_eq!(
        (status, body["sms_countries"]["calling_codes"].clone()),
        (200, json!(["1", "44"])),
        "{body}"
    );
    let (status, body) = call(
        deps,
        "get-sms-countries",
        with(&replace, "get-sms-countries"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(deps, "put-sms-budgets", with(&replace, "put-sms-budgets")).await;
    assert_eq!(
        (status, body["sms_budgets"]["prefix"]["hour"].clone()),
        (200, json!(20)),
        "{body}"
    );
    for function in [
        "get-sms-budgets",
        "list-sms-regions",
        "reset-sms-region",
        "rotate-keys",
    ] {
        let (status, body) = call(deps, function, with(&replace, function)).await;
        assert_eq!(status, 200, "{function}: {body}");
    }

    // Login API.
    let (status, body) = call(
        deps,
        "otp-sms-login-or-create",
        with(&replace, "otp-sms-login-or-create"),
    )
    .await;
    assert_eq!(
        (status, body["user_created"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let user_id = body["user_id"].as_str().unwrap().to_owned();
    replace.push((
        "user-3c9e5b0a-7d2f-4e18-9a6b-1f0c2d3e4a5b".into(),
        user_id.clone(),
    ));
    let (status, body) = call(deps, "otp-sms-send", with(&replace, "otp-sms-send")).await;
    assert_eq!(
        (status, body["user_id"].as_str()),
        (200, Some(user_id.as_str())),
        "{body}"
    );
    let phone_id = body["phone_id"].as_str().unwrap().to_owned();
    let code = mem.outbox.last_to("+12025550100").unwrap().code;
    assert_eq!(code.len(), 8, "the replaced config asks for 8 digits");
    replace.push((
        "phone-number-8a1d2c3b-4e5f-4a6b-9c7d-0e1f2a3b4c5d".into(),
        phone_id.clone(),
    ));

    let mut auth_replace = replace.clone();
    auth_replace.push((
        "\\\"code\\\":\\\"123456\\\"".into(),
        format!("\\\"code\\\":\\\"{code}\\\""),
    ));
    let (status, body) = call(
        deps,
        "otp-authenticate",
        with(&auth_replace, "otp-authenticate"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method_id"].as_str(), Some(phone_id.as_str()));
    assert_eq!(
        body["session"]["granted_scopes"],
        json!(["password:write"]),
        "{body}"
    );
    let session_id = body["session"]["session_id"].as_str().unwrap().to_owned();
    let jwt = body["session_jwt"].as_str().unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["iss"],
        json!("https://k7x2m9q4rt.execute-api.us-east-1.amazonaws.com"),
        "the issuer is the API Gateway domain the request came in on"
    );
    let token = body["session_token"].as_str().unwrap().to_owned();
    replace.push((
        "session-5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b".into(),
        session_id.clone(),
    ));
    replace.push(("07hnyTtittZIkJbpgwFFbici0lMWrp3DN_4aAekbtwo".into(), token));

    let (status, body) = call(
        deps,
        "otp-email-login-or-create",
        with(&replace, "otp-email-login-or-create"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(deps, "otp-email-send", with(&replace, "otp-email-send")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["email_id"]
            .as_str()
            .is_some_and(|e| e.starts_with("email-"))
    );

    let (status, body) = call(
        deps,
        "sessions-authenticate",
        with(&replace, "sessions-authenticate"),
    )
    .await;
    assert_eq!(
        (status, body["session"]["session_id"].as_str()),
        (200, Some(session_id.as_str())),
        "{body}"
    );
    let (status, body) = call(deps, "sessions-list", with(&replace, "sessions-list")).await;
    assert_eq!(
        (status, body["sessions"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
    // The app's keys were rotated above: the new key and the previous one.
    let (status, body) = call(deps, "sessions-jwks", with(&replace, "sessions-jwks")).await;
    assert_eq!(
        (status, body["keys"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{body}"
    );
    let (status, body) = call(deps, "users-get", with(&replace, "users-get")).await;
    assert_eq!(
        (status, body["phone_numbers"][0]["verified"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = call(deps, "sessions-revoke", with(&replace, "sessions-revoke")).await;
    assert_eq!(status, 200, "{body}");

    frontend_events(&mem, &replace, &public_token).await;

    // Deletions last.
    let (status, body) = call(deps, "users-delete", with(&replace, "users-delete")).await;
    assert_eq!(
        (status, body["user_id"].as_str()),
        (200, Some(user_id.as_str())),
        "{body}"
    );
    let (status, body) = call(
        deps,
        "delete-login-config",
        with(&replace, "delete-login-config"),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(deps, "delete-template", with(&replace, "delete-template")).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(deps, "delete-secret", with(&replace, "delete-secret")).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(
        deps,
        "delete-test-identifier",
        with(&replace, "delete-test-identifier"),
    )
    .await;
    assert!(
        status == 204 || (status == 404 && !replace.iter().any(|(f, _)| f.starts_with("tid_"))),
        "{status} {body}"
    );
}

/// The public token of the frontend events (in their paths and Authorization headers).
const EXAMPLE_PUBLIC_TOKEN: &str = "public-token-live-5b1c7e0a-2d4f-4a8b-9c3e-6f7a8b9c0d1e";

/// A frontend event with the app's public token in its path and Authorization (and the session
/// token, when signed in).
fn frontend_event(
    function: &str,
    replace: &[(String, String)],
    public_token: &str,
    session_token: Option<&str>,
) -> ApiRequest {
    let mut replace = replace.to_vec();
    replace.push((EXAMPLE_PUBLIC_TOKEN.into(), public_token.into()));
    let mut request = load(function, &replace, None);
    if request.headers.contains_key(http::header::AUTHORIZATION) {
        let password = session_token.unwrap_or(public_token);
        let value = format!(
            "Basic {}",
            STANDARD.encode(format!("{public_token}:{password}"))
        );
        request.headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    request
}

/// The management routes of the frontend API, then the frontend routes as the SDK calls them
/// from the authorized origin of the events.
async fn frontend_events(mem: &InMemory, replace: &[(String, String)], public_token: &str) {
    let deps = &mem.deps;
    let with = |f: &str| load(f, replace, None);
    let (status, body) = call(deps, "put-frontend-settings", with("put-frontend-settings")).await;
    assert_eq!(
        (
            status,
            body["frontend_settings"]["authorized_origins"][0].as_str()
        ),
        (200, Some("https://app.example.com")),
        "{body}"
    );
    let (status, body) = call(deps, "get-frontend-settings", with("get-frontend-settings")).await;
    assert_eq!(
        (
            status,
            body["frontend_settings"]["public_sends_per_hour"].as_u64()
        ),
        (200, Some(200)),
        "{body}"
    );
    let (status, body) = call(deps, "create-public-token", with("create-public-token")).await;
    assert_eq!(status, 201, "{body}");
    let second = body["public_token"]["public_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(deps, "list-public-tokens", with("list-public-tokens")).await;
    assert_eq!(
        (status, body["public_tokens"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{body}"
    );
    let mut removal = replace.to_vec();
    removal.push((
        "public-token-live-9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a".into(),
        second,
    ));
    let (status, body) = call(
        deps,
        "delete-public-token",
        load("delete-public-token", &removal, None),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    let event = |f: &str, session: Option<&str>| frontend_event(f, replace, public_token, session);
    let (status, body) = call(deps, "sdk-bootstrap", event("sdk-bootstrap", None)).await;
    assert_eq!(
        (
            status,
            body["data"]["captcha_settings"]["enabled"].as_bool()
        ),
        (200, Some(false)),
        "{body}"
    );
    let (status, body) = call(
        deps,
        "sdk-otp-sms-login-or-create",
        event("sdk-otp-sms-login-or-create", None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let method_id = body["data"]["method_id"].as_str().unwrap().to_owned();
    let code = mem.outbox.last_to("+12025550188").unwrap().code;
    let mut authenticate = event("sdk-otp-authenticate", None);
    authenticate.body = serde_json::to_vec(
        &json!({"token": code, "method_id": method_id, "session_duration_minutes": 60}),
    )
    .unwrap();
    let (status, body) = call(deps, "sdk-otp-authenticate", authenticate).await;
    assert_eq!(status, 200, "{body}");
    let session_token = body["data"]["session_token"].as_str().unwrap().to_owned();
    let session = Some(session_token.as_str());
    let (status, body) = call(
        deps,
        "sdk-sessions-authenticate",
        event("sdk-sessions-authenticate", session),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(deps, "sdk-users-me", event("sdk-users-me", session)).await;
    assert_eq!(
        (
            status,
            body["data"]["phone_numbers"][0]["phone_number"].as_str()
        ),
        (200, Some("+12025550188")),
        "{body}"
    );
    let (status, body) = call(
        deps,
        "sdk-sessions-revoke",
        event("sdk-sessions-revoke", session),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        deps,
        "sdk-sessions-authenticate",
        event("sdk-sessions-authenticate", session),
    )
    .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (401, Some("unauthorized_credentials")),
        "the revoked session is gone: {body}"
    );
    let (status, body) = call(
        deps,
        "sdk-otp-email-login-or-create",
        event("sdk-otp-email-login-or-create", None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(deps, "sdk-events", event("sdk-events", None)).await;
    assert_eq!(status, 200, "{body}");
    let response =
        lambda_response(handle(deps, RouteId::SdkPreflight, event("sdk-preflight", None)).await);
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.example.com"
    );
}
