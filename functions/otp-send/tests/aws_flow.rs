//! The whole SMS and email login flow through the production wiring of a sending function:
//! DynamoDB, SNS and SES v2 (moto locally: `scripts/with-moto.sh`), every request through
//! `shared::api::handle`, codes read back from what SNS and SES were given. Skips, with a
//! notice, when no local endpoint is configured.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, RouteId, handle};
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::identifiers::PhoneNumber;
use shared::random::{OsRandom, random_u64};
use shared::service::{Deps, Keys, Limits, Settings};

const MANAGEMENT_KEY: &str = "aws-flow-management-key";
const FROM: &str = "login@aws-flow.example.com";

/// The moto endpoints, or `None`; on CI (`CI` set) a missing endpoint fails the test instead of
/// letting it pass without running.
fn endpoints() -> Option<(String, String)> {
    let Some(delivery) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty()),
            "CI is set but AWS_ENDPOINT_URL is not: run the tests through scripts/with-moto.sh"
        );
        return None;
    };
    let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| delivery.clone());
    Some((delivery, dynamodb))
}

/// A valid US number nobody else in this moto uses.
fn unique_phone() -> String {
    loop {
        let n = random_u64(&OsRandom) % 8_000_000 + 2_000_000;
        if let Ok(phone) = PhoneNumber::parse(&format!("+1202{n:07}")) {
            return phone.as_str().to_owned();
        }
    }
}

/// `GET <endpoint>/moto-api/data.json` (HTTP/1.0, so the body is not chunked).
fn moto_data(endpoint: &str) -> Value {
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to moto");
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: {authority}\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    serde_json::from_str(body).expect("data.json is JSON")
}

/// Every JSON object under `value` that has `key`.
fn records_with<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if map.contains_key(key) {
                out.push(value);
            }
            map.values().for_each(|v| records_with(v, key, out));
        }
        Value::Array(items) => items.iter().for_each(|v| records_with(v, key, out)),
        _ => {}
    }
}

/// The first run of `digits` digits in `text`.
fn code_in(text: &str, digits: usize) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == digits)
        .map(str::to_owned)
}

fn sms_code(endpoint: &str, phone: &str) -> String {
    let data = moto_data(endpoint);
    let mut found = Vec::new();
    records_with(&data["sns"], "phone_number", &mut found);
    let message = found
        .iter()
        .rev()
        .find(|r| r["phone_number"] == json!(phone))
        .unwrap_or_else(|| panic!("no SMS to {phone} in {}", data["sns"]));
    code_in(message["message"].as_str().unwrap_or(""), 6).expect("a code in the SMS")
}

fn email_code(endpoint: &str, email: &str) -> String {
    let data = moto_data(endpoint);
    let mut found = Vec::new();
    records_with(&data["ses"], "destinations", &mut found);
    let message = found
        .iter()
        .rev()
        .find(|r| r["destinations"].to_string().contains(email))
        .unwrap_or_else(|| panic!("no email to {email} in {}", data["ses"]));
    assert_eq!(message["source"], json!(FROM), "{message}");
    code_in(&message["body"].to_string(), 6).expect("a code in the email")
}

struct Flow {
    deps: Deps,
    app_id: String,
    secret: String,
}

impl Flow {
    async fn call(
        &self,
        route: RouteId,
        path: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut headers = HeaderMap::new();
        let auth = if route.route().path.starts_with("/v2/") {
            format!("Bearer {MANAGEMENT_KEY}")
        } else {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", self.app_id, self.secret))
            )
        };
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());
        let body = body.map(|b| {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            serde_json::to_vec(&b).unwrap()
        });
        let response = handle(
            &self.deps,
            route,
            ApiRequest {
                method: Method::from_bytes(route.route().method.as_bytes()).unwrap(),
                path_params: path
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                query: path
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                headers,
                body: body.unwrap_or_default(),
                base_url: None,
                source_ip: None,
            },
        )
        .await;
        (response.status, response.json())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_and_email_login_through_dynamodb_sns_and_ses() {
    let Some((delivery_endpoint, _)) = endpoints() else {
        eprintln!(
            "skipped: AWS_ENDPOINT_URL is not set (scripts/with-moto.sh starts moto and sets it)"
        );
        return;
    };
    // The functions' own configuration: region and credentials from the environment, HTTPS
    // set up at the first request with the compiled-in roots.
    let aws = function_runtime::lambda_aws_config()
        .await
        .expect("AWS_REGION is set by scripts/with-moto.sh");
    let table = format!("aws-flow-{}", random_u64(&OsRandom));
    store_dynamodb::create_table(&store_dynamodb::DynamoStore::client(&aws), &table)
        .await
        .expect("table");
    let ses = aws_sdk_sesv2::Client::new(&aws);
    let _ = ses
        .create_email_identity()
        .email_identity(FROM)
        .send()
        .await;

    let keys = Keys::new(
        ManagementKeyHash::of_key(MANAGEMENT_KEY),
        CodeHasher::new(&[5u8; 32]).unwrap(),
        KeyEncryptionKey::from_secret(&"k".repeat(32)).expect("a long enough key"),
    );
    let settings = Settings {
        public_base_url: "https://login.example.com".into(),
        default_email_from: FROM.into(),
        limits: Limits::default(),
        app_cache_seconds: shared::service::DEFAULT_APP_CACHE_SECONDS,
        test_environment: false,
    };
    let deps = function_runtime::aws_deps(
        &aws,
        otp_send_functions::aws_delivery(&aws),
        keys,
        settings,
        &table,
    );
    let mut flow = Flow {
        deps,
        app_id: String::new(),
        secret: String::new(),
    };

    let (status, app) = flow
        .call(RouteId::CreateApp, &[], Some(json!({"name": "AWS flow"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    flow.app_id = app["app"]["id"].as_str().unwrap().to_owned();
    flow.secret = app["secret"].as_str().unwrap().to_owned();
    let app_path = [("app_id", flow.app_id.as_str())];
    for (channel, sender) in [("sms", json!("AcmeLogin")), ("email", json!(null))] {
        let (status, body) = flow
            .call(
                RouteId::CreateLoginConfig,
                &app_path,
                Some(json!({"config_type": "otp", "channel_type": channel, "is_default": true, "sender_id": sender})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // SMS: login_or_create, the code as SNS got it, authenticate, then the session.
    let phone = unique_phone();
    let (status, sent) = flow
        .call(
            RouteId::SmsLoginOrCreate,
            &[],
            Some(json!({"phone_number": phone})),
        )
        .await;
    assert_eq!(
        (status, sent["user_created"].clone()),
        (StatusCode::OK, json!(true)),
        "{sent}"
    );
    let code = sms_code(&delivery_endpoint, &phone);
    let (status, auth) = flow
        .call(
            RouteId::OtpAuthenticate,
            &[],
            Some(json!({"method_id": sent["phone_id"], "code": code, "session_duration_minutes": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{auth}");
    assert_eq!(auth["user"]["phone_numbers"][0]["verified"], json!(true));
    let (status, session) = flow
        .call(
            RouteId::SessionsAuthenticate,
            &[],
            Some(json!({"session_jwt": auth["session_jwt"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(
        session["session"]["session_id"],
        auth["session"]["session_id"]
    );
    let (status, again) = flow
        .call(
            RouteId::OtpAuthenticate,
            &[],
            Some(json!({"method_id": sent["phone_id"], "code": code})),
        )
        .await;
    assert_eq!(
        (status, again["error_type"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unable_to_auth_otp_code"))
    );

    // Email: the same through SES, as a second method of the same user.
    let email = format!("user-{}@aws-flow.example.com", random_u64(&OsRandom));
    let (status, sent_email) = flow
        .call(
            RouteId::EmailSend,
            &[],
            Some(json!({"email": email, "user_id": sent["user_id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent_email}");
    // SES keeps the message as moto records it; give it a moment on a loaded machine.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let code = email_code(&delivery_endpoint, &email);
    let (status, auth) = flow
        .call(
            RouteId::OtpAuthenticate,
            &[],
            Some(json!({"method_id": sent_email["email_id"], "code": code, "session_token": auth["session_token"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{auth}");
    assert_eq!(
        auth["session"]["authentication_factors"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{auth}"
    );
    let user_id = sent["user_id"].as_str().unwrap();
    let (status, user) = flow
        .call(RouteId::UsersGet, &[("user_id", user_id)], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["emails"][0]["verified"], json!(true), "{user}");
    let (status, list) = flow
        .call(RouteId::SessionsList, &[("user_id", user_id)], None)
        .await;
    assert_eq!(
        (status, list["sessions"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{list}"
    );
    let (status, _) = flow
        .call(RouteId::UsersDelete, &[("user_id", user_id)], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, gone) = flow
        .call(
            RouteId::SessionsAuthenticate,
            &[],
            Some(json!({"session_token": auth["session_token"]})),
        )
        .await;
    assert_eq!(
        (status, gone["error_type"].clone()),
        (StatusCode::NOT_FOUND, json!("session_not_found"))
    );
}
