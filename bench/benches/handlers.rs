//! The request paths in-process: `shared::api::handle` on the in-memory adapters, as the local
//! server and the functions call it, without HTTP or DynamoDB. `rs256_sign` is the floor of any
//! request that starts a session: one JWT signed with the deployment's RSA-2048 key.
//!
//! `cargo bench -p bench --bench handlers` (scripts/bench.sh runs it and reports the medians).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, RouteId, handle};
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::jwt::JwtKeys;
use shared::model::SmsBudgets;
use shared::ports::{DeliveryError, SmsMessage, SmsSender};
use shared::service::{
    DEFAULT_APP_CACHE_SECONDS, Deps, InMemory, Keys, Limits, SendLimits, Settings,
};

const MANAGEMENT_KEY: &str = "bench-management-key";
/// Sends cycle through this many numbers, so that each one's send window stays short.
const PHONES: usize = 1000;

/// Keeps the last code sent, instead of the outbox, which keeps every message.
#[derive(Default)]
struct LastCode(Mutex<String>);

#[async_trait]
impl SmsSender for LastCode {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = message.code.0.clone();
        Ok(())
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    deps: Deps,
    codes: Arc<LastCode>,
    auth: String,
}

fn request(method: Method, auth: &str, app_id: Option<&str>, body: Value) -> ApiRequest {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(auth) {
        headers.insert(header::AUTHORIZATION, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    ApiRequest {
        method,
        path_params: app_id
            .map(|id| [("app_id".to_owned(), id.to_owned())].into())
            .unwrap_or_default(),
        query: Default::default(),
        headers,
        body: body.to_string().into_bytes(),
        base_url: None,
        source_ip: None,
    }
}

impl Fixture {
    /// An app with a default SMS config; send limits out of the way (the bench sends to each
    /// number many times a second).
    fn new() -> Fixture {
        let keys = Keys::new(
            ManagementKeyHash::of_key(MANAGEMENT_KEY),
            CodeHasher::new(&[7u8; 32]).expect("a 32-byte key"),
            KeyEncryptionKey::from_secret(&"k".repeat(32)).expect("a long enough key"),
        );
        let settings = Settings {
            public_base_url: "http://127.0.0.1:3000".to_owned(),
            default_email_from: "no-reply@example.com".to_owned(),
            limits: Limits {
                send: SendLimits {
                    cooldown_seconds: 0,
                    window_max: u32::MAX,
                    window_seconds: 1,
                    ip_window_max: u32::MAX,
                },
                sms_budgets: SmsBudgets::unlimited(),
                ..Limits::default()
            },
            app_cache_seconds: DEFAULT_APP_CACHE_SECONDS,
            test_environment: false,
        };
        let codes = Arc::new(LastCode::default());
        let mut deps = InMemory::new(keys, settings).deps;
        deps.sms = codes.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let management = format!("Bearer {MANAGEMENT_KEY}");
        let app = runtime
            .block_on(handle(
                &deps,
                RouteId::CreateApp,
                request(Method::POST, &management, None, json!({"name": "Bench"})),
            ))
            .json();
        let app_id = app["app"]["id"].as_str().expect("an app id").to_owned();
        let secret = app["secret"].as_str().expect("a secret").to_owned();
        let config = runtime.block_on(handle(
            &deps,
            RouteId::CreateLoginConfig,
            request(
                Method::POST,
                &management,
                Some(&app_id),
                json!({"config_type": "otp", "channel_type": "sms", "is_default": true}),
            ),
        ));
        assert!(config.status.is_success(), "{:?}", config.json());
        Fixture {
            runtime,
            deps,
            codes,
            auth: format!("Basic {}", STANDARD.encode(format!("{app_id}:{secret}"))),
        }
    }

    fn call(&self, route: RouteId, body: Value) -> (u16, Value) {
        let response = self.runtime.block_on(handle(
            &self.deps,
            route,
            request(Method::POST, &self.auth, None, body),
        ));
        (response.status.as_u16(), response.json())
    }

    /// Sends a code to the `n`-th number: its method id and the code.
    fn send(&self, n: usize) -> (String, String) {
        let phone = format!("+1202555{:04}", 1000 + n % PHONES);
        let (status, body) = self.call(RouteId::SmsLoginOrCreate, json!({"phone_number": phone}));
        assert_eq!(status, 200, "{body}");
        let method_id = body["phone_id"].as_str().unwrap_or("").to_owned();
        let code = self
            .codes
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (method_id, code)
    }
}

fn handlers(c: &mut Criterion) {
    let fixture = Fixture::new();
    let mut group = c.benchmark_group("handlers");

    let mut n = 0;
    group.bench_function("login_or_create", |b| {
        b.iter(|| {
            n += 1;
            fixture.send(n)
        })
    });

    let (method_id, code) = fixture.send(0);
    let (status, session) = fixture.call(
        RouteId::OtpAuthenticate,
        json!({"method_id": method_id, "code": code, "session_duration_minutes": 60}),
    );
    assert_eq!(status, 200, "{session}");
    let mut n = 0;
    group.bench_function("authenticate", |b| {
        b.iter_batched(
            || {
                n += 1;
                fixture.send(n)
            },
            |(method_id, code)| {
                fixture.call(
                    RouteId::OtpAuthenticate,
                    json!({"method_id": method_id, "code": code, "session_duration_minutes": 60}),
                )
            },
            BatchSize::SmallInput,
        )
    });

    let token = session["session_token"].as_str().unwrap_or("").to_owned();
    group.bench_function("sessions_authenticate", |b| {
        b.iter(|| {
            fixture.call(
                RouteId::SessionsAuthenticate,
                json!({"session_token": token}),
            )
        })
    });

    let claims = session["session_jwt"]
        .as_str()
        .and_then(|jwt| jwt.split('.').nth(1))
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .expect("the session JWT's claims");
    // An app's key signs as any RS256 key does.
    let signer = JwtKeys::generate().expect("an RSA key");
    group.bench_function("rs256_sign", |b| b.iter(|| signer.sign(&claims)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = handlers
}
criterion_main!(benches);
