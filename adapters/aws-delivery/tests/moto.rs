//! `SnsSms` and `SesEmail`: the requests they build (captured before they leave, no server
//! needed), and delivery through moto read back from `GET $AWS_ENDPOINT_URL/moto-api/data.json`.
//! The moto tests skip, with a notice, when `AWS_ENDPOINT_URL` is not set (and fail when `CI` is
//! set: on CI they must run).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sns::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sns::config::{
    ConfigBag, Credentials, Intercept, Region, RuntimeComponents, SharedCredentialsProvider,
};
use aws_sdk_sns::error::BoxError;
use delivery_aws::{SesEmail, SnsSms};
use serde_json::Value;
use shared::identifiers::{EmailAddress, PhoneNumber};
use shared::ids::UserId;
use shared::ports::{CodeForOutbox, EmailMessage, EmailSender, SmsMessage, SmsSender};
use shared::random::OsRandom;

const SKIP: &str =
    "skipped: AWS_ENDPOINT_URL is not set (scripts/with-moto.sh starts moto and sets it)";

/// Something unique to find one test's message among everyone's.
fn nonce() -> String {
    UserId::generate(&OsRandom).as_str()["user-".len()..].replace('-', "")
}

fn config_for(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "tests",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// The moto endpoint, or `None` after a notice; on CI (`CI` set) a missing endpoint fails the
/// test instead of letting it pass without running.
fn endpoint_or_skip() -> Option<String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty());
    if endpoint.is_none() {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty()),
            "CI is set but AWS_ENDPOINT_URL is not: run the tests through scripts/with-moto.sh"
        );
        eprintln!("{SKIP}");
    }
    endpoint
}

/// Nothing listens on port 9 (discard) here: every call fails to connect.
const UNREACHABLE: &str = "http://127.0.0.1:9";

/// Records the body of every request just before it is sent.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    fn bodies(&self) -> Vec<String> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "Capture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        if let Ok(mut bodies) = self.0.lock() {
            bodies.push(body);
        }
        Ok(())
    }
}

fn sms(to: &str, sender_id: Option<&str>, text: &str) -> SmsMessage {
    SmsMessage {
        to: PhoneNumber::parse(to).expect("valid fixture number"),
        sender_id: sender_id.map(str::to_owned),
        text: text.to_owned(),
        code: CodeForOutbox("482915".to_owned()),
    }
}

fn email(to: &str, from: &str, subject: &str) -> EmailMessage {
    EmailMessage {
        to: EmailAddress::parse(to).expect("valid fixture address"),
        from: from.to_owned(),
        subject: subject.to_owned(),
        text: "Your code is 482915".to_owned(),
        html: "<p>Your code is <b>482915</b></p>".to_owned(),
        code: CodeForOutbox("482915".to_owned()),
    }
}

#[tokio::test]
async fn sms_request_is_transactional_with_sender_id_and_failure_tells_no_secret() {
    let capture = Capture::default();
    let config = aws_sdk_sns::config::Builder::from(&config_for(UNREACHABLE))
        .interceptor(capture.clone())
        .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
        .build();
    let sender = SnsSms::new(aws_sdk_sns::Client::from_conf(config));

    let error = sender
        .send_sms(&sms("+12025550177", Some("Acme"), "Your code is 482915"))
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.starts_with("delivery failed: SNS Publish failed: "),
        "{text}"
    );
    for secret in ["482915", "2025550177"] {
        assert!(!text.contains(secret), "{text}");
    }

    sender
        .send_sms(&sms("+12025550178", None, "Your code is 482915"))
        .await
        .expect_err("nothing listens");
    let bodies = capture.bodies();
    assert_eq!(bodies.len(), 2);
    let with_sender = &bodies[0];
    assert!(with_sender.contains("Action=Publish"), "{with_sender}");
    assert!(
        with_sender.contains("PhoneNumber=%2B12025550177"),
        "{with_sender}"
    );
    for expected in [
        "Name=AWS.SNS.SMS.SMSType",
        "Value.StringValue=Transactional",
        "Name=AWS.SNS.SMS.SenderID",
        "Value.StringValue=Acme",
        "Value.DataType=String",
    ] {
        assert!(
            with_sender.contains(expected),
            "{expected} in {with_sender}"
        );
    }
    assert!(
        !bodies[1].contains("SenderID"),
        "no sender id, no attribute"
    );
    assert!(bodies[1].contains("Value.StringValue=Transactional"));
}

#[tokio::test]
async fn email_request_is_simple_content_with_both_bodies_and_configuration_set() {
    let capture = Capture::default();
    let config = aws_sdk_sesv2::config::Builder::from(&config_for(UNREACHABLE))
        .interceptor(capture.clone())
        .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
        .build();
    let sender = SesEmail::new(
        aws_sdk_sesv2::Client::from_conf(config),
        Some("otp-events".to_owned()),
    );
    let error = sender
        .send_email(&email(
            "ann@example.com",
            "no-reply@example.org",
            "Your code",
        ))
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.starts_with("delivery failed: SES SendEmail failed: "),
        "{text}"
    );
    for secret in ["482915", "ann@example.com", "no-reply"] {
        assert!(!text.contains(secret), "{text}");
    }

    let bodies = capture.bodies();
    let body: Value = serde_json::from_str(&bodies[0]).expect("JSON request");
    assert_eq!(body["FromEmailAddress"], "no-reply@example.org");
    assert_eq!(body["Destination"]["ToAddresses"][0], "ann@example.com");
    assert_eq!(body["ConfigurationSetName"], "otp-events");
    let simple = &body["Content"]["Simple"];
    assert_eq!(simple["Subject"]["Data"], "Your code");
    assert_eq!(simple["Body"]["Text"]["Data"], "Your code is 482915");
    assert_eq!(
        simple["Body"]["Html"]["Data"],
        "<p>Your code is <b>482915</b></p>"
    );
    assert_eq!(simple["Body"]["Html"]["Charset"], "UTF-8");
}

/// `GET <endpoint>/moto-api/data.json` (HTTP/1.0, so the body is not chunked).
async fn moto_data(endpoint: &str) -> Value {
    let authority = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&authority).expect("connect to moto");
        write!(
            stream,
            "GET /moto-api/data.json HTTP/1.0\r\nHost: {authority}\r\n\r\n"
        )
        .expect("request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("response");
        let response = String::from_utf8_lossy(&response).into_owned();
        let (_, body) = response.split_once("\r\n\r\n").expect("HTTP response");
        serde_json::from_str(body).expect("data.json is JSON")
    })
    .await
    .expect("task")
}

/// Every object in `data` that has the field `field`, wherever it is nested (moto groups its
/// records by account and region, and the grouping differs between versions).
fn records_with<'a>(data: &'a Value, field: &str, out: &mut Vec<&'a Value>) {
    match data {
        Value::Object(map) => {
            if map.contains_key(field) {
                out.push(data);
            }
            map.values().for_each(|v| records_with(v, field, out));
        }
        Value::Array(items) => items.iter().for_each(|v| records_with(v, field, out)),
        _ => {}
    }
}

#[tokio::test]
async fn sms_is_delivered_through_sns() {
    let Some(endpoint) = endpoint_or_skip() else {
        return;
    };
    let sender = SnsSms::from_sdk_config(&config_for(&endpoint));
    let marker = nonce();
    let text = format!("Your code is 482915 ({marker})");
    sender
        .send_sms(&sms("+12025550181", Some("Acme"), &text))
        .await
        .expect("published");

    let data = moto_data(&endpoint).await;
    let mut found = Vec::new();
    records_with(&data["sns"], "phone_number", &mut found);
    let ours: Vec<&&Value> = found
        .iter()
        .filter(|m| m["message"].as_str().is_some_and(|t| t.contains(&marker)))
        .collect();
    assert_eq!(ours.len(), 1, "one SMS with our marker in {}", data["sns"]);
    assert_eq!(ours[0]["phone_number"], "+12025550181");
    assert_eq!(ours[0]["message"], text.as_str());
}

async fn verify_domain(config: &SdkConfig, domain: &str) {
    aws_sdk_sesv2::Client::new(config)
        .create_email_identity()
        .email_identity(domain)
        .send()
        .await
        .expect("CreateEmailIdentity");
}

#[tokio::test]
async fn email_is_delivered_through_ses() {
    let Some(endpoint) = endpoint_or_skip() else {
        return;
    };
    let config = config_for(&endpoint);
    let marker = nonce();
    let domain = format!("d{marker}.example.com");
    verify_domain(&config, &domain).await;
    let sender = SesEmail::from_sdk_config(&config, None);
    let to = format!("ann.{marker}@example.com");
    let from = format!("no-reply@{domain}");
    let message = email(&to, &from, &format!("Your code ({marker})"));
    sender.send_email(&message).await.expect("sent");

    let data = moto_data(&endpoint).await;
    let mut found = Vec::new();
    records_with(&data["ses"], "destinations", &mut found);
    let ours: Vec<&&Value> = found
        .iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(&marker)))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one email with our marker in {}",
        data["ses"]
    );
    let sent = ours[0];
    assert_eq!(sent["source"], from.as_str());
    assert_eq!(sent["destinations"]["ToAddresses"][0], to.as_str());
    // moto keeps only the HTML body when a message has both.
    assert_eq!(sent["body"], message.html.as_str());
}

#[tokio::test]
async fn unverified_sender_is_a_delivery_error_that_tells_no_secret() {
    let Some(endpoint) = endpoint_or_skip() else {
        return;
    };
    let sender = SesEmail::from_sdk_config(&config_for(&endpoint), None);
    let marker = nonce();
    let to = format!("bob.{marker}@example.com");
    let from = format!("no-reply@unverified-{marker}.example.com");
    let error = sender
        .send_email(&email(&to, &from, "Your code"))
        .await
        .expect_err("the From identity does not exist");
    let text = error.to_string();
    assert!(text.contains("MessageRejected"), "{text}");
    for secret in ["482915", marker.as_str(), "@"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
