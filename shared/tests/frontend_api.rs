//! The frontend API (`/sdk/v1`) through the HTTP handlers, as the official frontend SDK calls
//! it from a web page: public tokens and authorized origins, CORS on every answer, the
//! `{"data": ...}` envelope, sessions answered `unauthorized_credentials` when gone, the app's
//! cap on session length and limit on sends, the end user's IP from the request.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, RouteId, handle};
use shared::clock::{FakeClock, Timestamp};
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::random::SeededRandom;
use shared::service::{InMemory, Keys, Limits, SendLimits, Settings};

const MANAGEMENT_KEY: &str = "frontend-management-key";
const ORIGIN: &str = "https://app.example.com";
const PHONE: &str = "+12025550100";
const END_USER_IP: &str = "198.51.100.23";

struct Reply {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The success envelope's payload, checked: `request_id` and `status_code` inside it.
    #[track_caller]
    fn data(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        let data = &self.body["data"];
        assert!(data.is_object(), "{}", self.body);
        assert_eq!(data["status_code"], json!(200), "{}", self.body);
        assert_eq!(
            data["request_id"].as_str(),
            self.header("x-request-id"),
            "{}",
            self.body
        );
        data
    }

    /// A Stytch error, unwrapped.
    #[track_caller]
    fn error(&self, status: u16, error_type: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error_type"], json!(error_type), "{}", self.body);
        assert_eq!(self.body["status_code"], json!(status), "{}", self.body);
        assert!(self.body.get("data").is_none(), "{}", self.body);
    }
}

struct World {
    mem: InMemory,
    clock: Arc<FakeClock>,
    app_id: String,
    secret: String,
    public_token: String,
}

/// How a frontend request presents itself.
#[derive(Clone, Copy)]
struct From<'a> {
    origin: Option<&'a str>,
    parent_host: Option<&'a str>,
    public_token: &'a str,
    session_token: Option<&'a str>,
}

impl World {
    async fn new(limits: Limits) -> World {
        let clock = Arc::new(FakeClock::new(Timestamp(1_800_000_000)));
        let keys = Keys::new(
            ManagementKeyHash::of_key(MANAGEMENT_KEY),
            CodeHasher::new(&[9u8; 32]).unwrap(),
            KeyEncryptionKey::from_secret(&"f".repeat(32)).unwrap(),
        );
        let settings = Settings {
            public_base_url: "https://otp.example.com".into(),
            default_email_from: "no-reply@example.com".into(),
            limits,
            app_cache_seconds: shared::service::DEFAULT_APP_CACHE_SECONDS,
            test_environment: false,
        };
        let mem = InMemory::with(
            keys,
            settings,
            clock.clone(),
            Arc::new(SeededRandom::new(7)),
        );
        let mut w = World {
            mem,
            clock,
            app_id: String::new(),
            secret: String::new(),
            public_token: String::new(),
        };
        let (app_id, secret, public_token) = w.create_app("Acme", &[ORIGIN]).await;
        (w.app_id, w.secret, w.public_token) = (app_id, secret, public_token);
        w
    }

    /// An app with default SMS and email configs whose frontend answers `origins`.
    async fn create_app(&self, name: &str, origins: &[&str]) -> (String, String, String) {
        let r = self
            .manage(RouteId::CreateApp, &[], Some(json!({"name": name})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let app_id = r.body["app"]["id"].as_str().unwrap().to_owned();
        let secret = r.body["secret"].as_str().unwrap().to_owned();
        let public_token = r.body["public_token"].as_str().unwrap().to_owned();
        assert!(
            public_token.starts_with("public-token-live-"),
            "{public_token}"
        );
        for channel in ["sms", "email"] {
            let r = self
                .manage(
                    RouteId::CreateLoginConfig,
                    &[("app_id", &app_id)],
                    Some(
                        json!({"config_type": "otp", "channel_type": channel, "is_default": true}),
                    ),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let r = self
            .manage(
                RouteId::PutFrontendSettings,
                &[("app_id", &app_id)],
                Some(json!({"authorized_origins": origins})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (app_id, secret, public_token)
    }

    async fn request(
        &self,
        route: RouteId,
        params: &[(&str, &str)],
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Reply {
        let request = ApiRequest {
            method: Method::from_bytes(route.route().method.as_bytes()).unwrap(),
            path_params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers,
            body,
            base_url: None,
            source_ip: Some(END_USER_IP.to_owned()),
            ..ApiRequest::default()
        };
        let response = handle(&self.mem.deps, route, request).await;
        Reply {
            status: response.status,
            body: response.json(),
            headers: response.headers,
        }
    }

    async fn manage(&self, route: RouteId, params: &[(&str, &str)], body: Option<Value>) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {MANAGEMENT_KEY}")).unwrap(),
        );
        let bytes = json_body(&mut headers, body);
        self.request(route, params, headers, bytes).await
    }

    /// The SDK's request: Basic `public_token:(session_token | public_token)`, JSON, the page's
    /// origin.
    async fn sdk(
        &self,
        route: RouteId,
        params: &[(&str, &str)],
        from: From<'_>,
        body: Option<Value>,
    ) -> Reply {
        let mut headers = HeaderMap::new();
        let password = from.session_token.unwrap_or(from.public_token);
        let encoded = STANDARD.encode(format!("{}:{password}", from.public_token));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static("Mozilla/5.0 test"),
        );
        if let Some(origin) = from.origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        if let Some(host) = from.parent_host {
            headers.insert("x-sdk-parent-host", HeaderValue::from_str(host).unwrap());
        }
        // The SDK sends the JSON content type even without a body.
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let bytes = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        self.request(route, params, headers, bytes).await
    }

    /// The app's backend credentials (Basic `app_id:secret`), as a server calls the Login API.
    fn backend_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode(format!("{}:{}", self.app_id, self.secret));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers
    }

    fn page(&self) -> From<'_> {
        From {
            origin: Some(ORIGIN),
            parent_host: Some(ORIGIN),
            public_token: &self.public_token,
            session_token: None,
        }
    }

    fn code_to(&self, to: &str) -> String {
        self.mem.outbox.last_to(to).expect("a message").code
    }

    /// Phone login through the frontend: the session token.
    async fn login(&self, phone: &str) -> String {
        let sent = self
            .sdk(
                RouteId::SdkSmsLoginOrCreate,
                &[],
                self.page(),
                Some(json!({"phone_number": phone})),
            )
            .await;
        let method_id = sent.data()["method_id"].as_str().unwrap().to_owned();
        let r = self
            .sdk(
                RouteId::SdkOtpAuthenticate,
                &[],
                self.page(),
                Some(json!({"token": self.code_to(phone), "method_id": method_id,
                    "session_duration_minutes": 60})),
            )
            .await;
        r.data()["session_token"].as_str().unwrap().to_owned()
    }
}

fn json_body(headers: &mut HeaderMap, body: Option<Value>) -> Vec<u8> {
    match body {
        Some(v) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            serde_json::to_vec(&v).unwrap()
        }
        None => Vec::new(),
    }
}

fn relaxed() -> Limits {
    Limits {
        send: SendLimits {
            cooldown_seconds: 0,
            window_max: 1000,
            window_seconds: 600,
            ip_window_max: 1000,
        },
        sms_budgets: shared::model::SmsBudgets::unlimited(),
        ..Limits::default()
    }
}

#[track_caller]
fn assert_cors(reply: &Reply, origin: &str) {
    assert_eq!(reply.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_sdk_logs_in_by_phone_and_out_again() {
    let w = World::new(relaxed()).await;
    let token = w.public_token.clone();

    let boot = w
        .sdk(
            RouteId::SdkBootstrap,
            &[("public_token", &token)],
            w.page(),
            None,
        )
        .await;
    let data = boot.data();
    assert_cors(&boot, ORIGIN);
    assert_eq!(data["project_name"], json!("Acme"));
    assert_eq!(data["captcha_settings"], json!({"enabled": false}));
    assert_eq!(data["password_config"], Value::Null);
    assert!(data.as_object().unwrap().contains_key("password_config"));
    assert_eq!(data["rbac_policy"], json!({"roles": [], "resources": []}));
    assert_eq!(data["dfp_protected_auth_enabled"], json!(false));

    let sent = w
        .sdk(
            RouteId::SdkSmsLoginOrCreate,
            &[],
            w.page(),
            Some(json!({"phone_number": PHONE, "expiration_minutes": 5,
                // The end user's address comes from the request, never from the body.
                "attributes": {"ip_address": "203.0.113.99"}})),
        )
        .await;
    assert_cors(&sent, ORIGIN);
    let data = sent.data();
    assert_eq!(data["user_created"], json!(true));
    assert_eq!(data["method_id"], data["phone_id"]);
    let method_id = data["method_id"].as_str().unwrap().to_owned();
    let user_id = data["user_id"].as_str().unwrap().to_owned();
    let code = w.code_to(PHONE);

    let wrong = if code.starts_with('0') { "1" } else { "0" }.to_owned() + &code[1..];
    let refused = w
        .sdk(
            RouteId::SdkOtpAuthenticate,
            &[],
            w.page(),
            Some(json!({"token": wrong, "method_id": method_id, "session_duration_minutes": 60})),
        )
        .await;
    refused.error(404, "otp_code_not_found");
    assert_eq!(refused.body["attempts_remaining"], json!(4));
    // Where the SDK's error object keeps it.
    assert_eq!(
        refused.body["error_details"],
        json!({"attempts_remaining": 4})
    );
    assert_cors(&refused, ORIGIN);

    // The SDK's production build may leave the duration out: a short session, not none.
    let signed_in = w
        .sdk(
            RouteId::SdkOtpAuthenticate,
            &[],
            w.page(),
            Some(json!({"token": code, "method_id": method_id})),
        )
        .await;
    let data = signed_in.data();
    assert_eq!(data["user_id"], json!(user_id));
    let session_token = data["session_token"].as_str().unwrap().to_owned();
    assert!(!data["session_jwt"].as_str().unwrap().is_empty());
    assert_eq!(
        data["session"]["attributes"]["ip_address"],
        json!(END_USER_IP)
    );
    assert_eq!(
        data["session"]["attributes"]["user_agent"],
        json!("Mozilla/5.0 test")
    );
    let started =
        Timestamp::parse_rfc3339(data["session"]["started_at"].as_str().unwrap()).unwrap();
    let expires =
        Timestamp::parse_rfc3339(data["session"]["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.seconds() - started.seconds(), 30 * 60);
    assert_eq!(data["user"]["phone_numbers"][0]["verified"], json!(true));

    let signed = From {
        session_token: Some(&session_token),
        ..w.page()
    };
    // A reload: the SDK checks its session with an empty body, which does not extend it.
    w.clock.advance_seconds(60);
    let checked = w
        .sdk(
            RouteId::SdkSessionsAuthenticate,
            &[],
            signed,
            Some(json!({})),
        )
        .await;
    let data = checked.data();
    assert_eq!(data["session_token"], json!(session_token));
    assert_eq!(
        data["session"]["expires_at"],
        signed_in.body["data"]["session"]["expires_at"]
    );
    assert_eq!(data["user"]["user_id"], json!(user_id));

    let me = w.sdk(RouteId::SdkUsersMe, &[], signed, None).await;
    let data = me.data();
    assert_eq!(
        data["user_id"],
        json!(user_id),
        "the user, flattened into data"
    );
    assert_eq!(data["phone_numbers"][0]["phone_number"], json!(PHONE));

    // Bootstrap ignores the session beside the token.
    let boot = w
        .sdk(
            RouteId::SdkBootstrap,
            &[("public_token", &token)],
            signed,
            None,
        )
        .await;
    boot.data();

    let revoked = w.sdk(RouteId::SdkSessionsRevoke, &[], signed, None).await;
    revoked.data();
    assert_cors(&revoked, ORIGIN);
    for route in [
        RouteId::SdkSessionsAuthenticate,
        RouteId::SdkUsersMe,
        RouteId::SdkSessionsRevoke,
    ] {
        let gone = w.sdk(route, &[], signed, None).await;
        gone.error(401, "unauthorized_credentials");
        assert_cors(&gone, ORIGIN);
        // Signed out: the public token twice.
        let none = w.sdk(route, &[], w.page(), None).await;
        none.error(401, "unauthorized_credentials");
    }
}

#[tokio::test]
async fn email_login_and_another_users_code_does_not_join_a_session() {
    let w = World::new(relaxed()).await;
    let session_token = w.login(PHONE).await;
    let signed = From {
        session_token: Some(&session_token),
        ..w.page()
    };
    let email = "ann@example.com";
    let sent = w
        .sdk(
            RouteId::SdkEmailLoginOrCreate,
            &[],
            w.page(),
            Some(json!({"email": email, "login_template_id": null})),
        )
        .await;
    let data = sent.data();
    assert_eq!(data["method_id"], data["email_id"]);
    assert_eq!(data["user_created"], json!(true));
    // Signed in as the phone user: the email belongs to a new user, not to that session.
    let r = w
        .sdk(
            RouteId::SdkOtpAuthenticate,
            &[],
            signed,
            Some(
                json!({"token": w.code_to(email), "method_id": data["method_id"],
                "session_duration_minutes": 60}),
            ),
        )
        .await;
    r.error(400, "session_user_mismatch");
}

#[tokio::test]
async fn a_session_that_ended_elsewhere_does_not_block_a_new_login() {
    let w = World::new(relaxed()).await;
    let stale = w.login(PHONE).await;
    // Revoked by the backend; the page still holds the cookie.
    let mut headers = w.backend_headers();
    let body = json_body(&mut headers, Some(json!({"session_token": stale})));
    let r = w.request(RouteId::SessionsRevoke, &[], headers, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let with_cookie = From {
        session_token: Some(&stale),
        ..w.page()
    };
    let sent = w
        .sdk(
            RouteId::SdkSmsLoginOrCreate,
            &[],
            with_cookie,
            Some(json!({"phone_number": PHONE})),
        )
        .await;
    let method_id = sent.data()["method_id"].clone();
    let code = w.code_to(PHONE);
    let r = w
        .sdk(
            RouteId::SdkOtpAuthenticate,
            &[],
            with_cookie,
            Some(json!({"token": code, "method_id": method_id, "session_duration_minutes": 60})),
        )
        .await;
    let fresh = r.data()["session_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, stale, "a new session");
    // The code was spent once: it does not work again.
    w.sdk(
        RouteId::SdkOtpAuthenticate,
        &[],
        w.page(),
        Some(json!({"token": code, "method_id": method_id, "session_duration_minutes": 60})),
    )
    .await
    .error(401, "unable_to_auth_otp_code");
}

#[tokio::test]
async fn only_the_apps_own_origins_are_answered() {
    let w = World::new(relaxed()).await;
    let (_, _, other_token) = w.create_app("Other", &["https://other.example"]).await;
    let sms = || Some(json!({"phone_number": PHONE}));
    let sent_before = w.mem.outbox.messages().len();
    for from in [
        // No origin at all (not a browser, or a header stripped).
        From {
            origin: None,
            parent_host: None,
            ..w.page()
        },
        // Another site.
        From {
            origin: Some("https://evil.example"),
            parent_host: Some(ORIGIN),
            ..w.page()
        },
        // Near misses of the authorized origin.
        From {
            origin: Some("https://app.example.com:443"),
            parent_host: None,
            ..w.page()
        },
        From {
            origin: Some("http://app.example.com"),
            parent_host: None,
            ..w.page()
        },
        From {
            origin: Some("https://APP.example.com"),
            parent_host: None,
            ..w.page()
        },
        // Another app's origin with this app's token, and this app's with the other's token.
        From {
            origin: Some("https://other.example"),
            parent_host: None,
            ..w.page()
        },
        From {
            public_token: &other_token,
            ..w.page()
        },
    ] {
        let r = w.sdk(RouteId::SdkSmsLoginOrCreate, &[], from, sms()).await;
        r.error(403, "origin_not_authorized");
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    assert_eq!(w.mem.outbox.messages().len(), sent_before, "nothing sent");
    // A same-origin GET carries no Origin: the SDK's own header names the page.
    let me = w
        .sdk(
            RouteId::SdkBootstrap,
            &[("public_token", &w.public_token)],
            From {
                origin: None,
                ..w.page()
            },
            None,
        )
        .await;
    me.data();
    assert_cors(&me, ORIGIN);
}

#[tokio::test]
async fn unknown_and_deleted_public_tokens_are_refused() {
    let w = World::new(relaxed()).await;
    let app = [("app_id", w.app_id.as_str())];
    for token in [
        "public-token-live-00000000-0000-4000-8000-000000000000",
        "public-token-test-00000000-0000-4000-8000-000000000000",
        "public-token-live-not-a-uuid",
        w.app_id.as_str(),
        w.secret.as_str(),
        "",
    ] {
        let from = From {
            public_token: token,
            ..w.page()
        };
        w.sdk(
            RouteId::SdkSmsLoginOrCreate,
            &[],
            from,
            Some(json!({"phone_number": PHONE})),
        )
        .await
        .error(401, "unauthorized_credentials");
        w.sdk(
            RouteId::SdkBootstrap,
            &[("public_token", token)],
            from,
            None,
        )
        .await
        .error(401, "unauthorized_credentials");
    }
    // The backend's own credentials do not open the frontend.
    let mut headers = w.backend_headers();
    headers.insert(header::ORIGIN, HeaderValue::from_static(ORIGIN));
    w.request(RouteId::SdkUsersMe, &[], headers, Vec::new())
        .await
        .error(401, "unauthorized_credentials");

    // Rotation: a second token, then the first one deleted.
    let made = w.manage(RouteId::CreatePublicToken, &app, None).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let second = made.body["public_token"]["public_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = w.manage(RouteId::ListPublicTokens, &app, None).await;
    let tokens: Vec<&str> = listed.body["public_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["public_token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, [w.public_token.as_str(), second.as_str()]);
    let old = w.public_token.clone();
    let r = w
        .manage(
            RouteId::DeletePublicToken,
            &[("app_id", &w.app_id), ("public_token", &old)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let boot = |token: &str| {
        let token = token.to_owned();
        let w = &w;
        async move {
            w.sdk(
                RouteId::SdkBootstrap,
                &[("public_token", &token)],
                w.page(),
                None,
            )
            .await
        }
    };
    boot(&old).await.error(401, "unauthorized_credentials");
    boot(&second).await.data();
    let r = w
        .manage(
            RouteId::DeletePublicToken,
            &[("app_id", &w.app_id), ("public_token", &old)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // At most five at once.
    for _ in 0..4 {
        let r = w.manage(RouteId::CreatePublicToken, &app, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = w.manage(RouteId::CreatePublicToken, &app, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let unknown = [("app_id", "app-00000000-0000-4000-8000-000000000000")];
    for route in [
        RouteId::ListPublicTokens,
        RouteId::CreatePublicToken,
        RouteId::GetFrontendSettings,
    ] {
        let r = w.manage(route, &unknown, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{route:?}: {}", r.body);
    }
}

#[tokio::test]
async fn settings_are_checked_and_a_refusal_changes_nothing() {
    let w = World::new(relaxed()).await;
    let app = [("app_id", w.app_id.as_str())];
    let before = w.manage(RouteId::GetFrontendSettings, &app, None).await;
    assert_eq!(
        before.body["frontend_settings"],
        json!({"authorized_origins": [ORIGIN], "max_session_duration_minutes": 1440,
            "public_sends_per_hour": 100})
    );
    let many: Vec<String> = (0..21).map(|i| format!("https://s{i}.example")).collect();
    for body in [
        json!({"authorized_origins": ["https://app.example.com/"]}),
        json!({"authorized_origins": ["https://app.example.com/login"]}),
        json!({"authorized_origins": ["https://app.example.com:443"]}),
        json!({"authorized_origins": ["HTTPS://app.example.com"]}),
        json!({"authorized_origins": ["ftp://app.example.com"]}),
        json!({"authorized_origins": ["app.example.com"]}),
        json!({"authorized_origins": ["*"]}),
        json!({"authorized_origins": ["https://user@app.example.com"]}),
        json!({"authorized_origins": ["null"]}),
        json!({"authorized_origins": many}),
        json!({"authorized_origins": [], "max_session_duration_minutes": 4}),
        json!({"authorized_origins": [], "max_session_duration_minutes": 527_041}),
        json!({"authorized_origins": [], "public_sends_per_hour": 0}),
        json!({"authorized_origins": [], "public_sends_per_hour": 1001}),
        json!({"authorized_origins": [], "unknown": 1}),
        json!({}),
    ] {
        let r = w
            .manage(RouteId::PutFrontendSettings, &app, Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["code"], json!("invalid_request"), "{}", r.body);
    }
    let after = w.manage(RouteId::GetFrontendSettings, &app, None).await;
    assert_eq!(
        after.body,
        json!({"request_id": after.body["request_id"], "frontend_settings": before.body["frontend_settings"]})
    );
    // IPv6 and ports are origins too; repeats are kept once.
    let r = w
        .manage(
            RouteId::PutFrontendSettings,
            &app,
            Some(
                json!({"authorized_origins": ["http://[::1]:5173", "http://localhost:5173",
                "http://localhost:5173"], "max_session_duration_minutes": 60,
                "public_sends_per_hour": 10}),
            ),
        )
        .await;
    assert_eq!(
        r.body["frontend_settings"],
        json!({"authorized_origins": ["http://[::1]:5173", "http://localhost:5173"],
            "max_session_duration_minutes": 60, "public_sends_per_hour": 10}),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_apps_cap_on_session_length_refuses_longer_and_spends_no_code() {
    let w = World::new(relaxed()).await;
    let app = [("app_id", w.app_id.as_str())];
    let r = w
        .manage(
            RouteId::PutFrontendSettings,
            &app,
            Some(json!({"authorized_origins": [ORIGIN], "max_session_duration_minutes": 120})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sent = w
        .sdk(
            RouteId::SdkSmsLoginOrCreate,
            &[],
            w.page(),
            Some(json!({"phone_number": PHONE})),
        )
        .await;
    let method_id = sent.data()["method_id"].clone();
    let code = w.code_to(PHONE);
    let long = w
        .sdk(
            RouteId::SdkOtpAuthenticate,
            &[],
            w.page(),
            Some(json!({"token": code, "method_id": method_id, "session_duration_minutes": 121})),
        )
        .await;
    long.error(400, "invalid_session_duration");
    assert!(
        long.body["error_message"].as_str().unwrap().contains("120"),
        "{}",
        long.body
    );
    let ok = w
        .sdk(
            RouteId::SdkOtpAuthenticate,
            &[],
            w.page(),
            Some(json!({"token": code, "method_id": method_id, "session_duration_minutes": 120})),
        )
        .await;
    let token = ok.data()["session_token"].as_str().unwrap().to_owned();
    let signed = From {
        session_token: Some(&token),
        ..w.page()
    };
    w.sdk(
        RouteId::SdkSessionsAuthenticate,
        &[],
        signed,
        Some(json!({"session_duration_minutes": 121})),
    )
    .await
    .error(400, "invalid_session_duration");
    w.sdk(
        RouteId::SdkSessionsAuthenticate,
        &[],
        signed,
        Some(json!({"session_duration_minutes": 90})),
    )
    .await
    .data();
}

#[tokio::test]
async fn the_apps_hourly_limit_on_frontend_sends_holds_across_identifiers() {
    let w = World::new(relaxed()).await;
    let app = [("app_id", w.app_id.as_str())];
    let r = w
        .manage(
            RouteId::PutFrontendSettings,
            &app,
            Some(json!({"authorized_origins": [ORIGIN], "public_sends_per_hour": 2})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let send = |phone: &'static str| {
        let w = &w;
        async move {
            w.sdk(
                RouteId::SdkSmsLoginOrCreate,
                &[],
                w.page(),
                Some(json!({"phone_number": phone})),
            )
            .await
        }
    };
    send("+12025550111").await.data();
    w.clock.advance_seconds(600);
    send("+12025550112").await.data();
    let refused = send("+12025550113").await;
    refused.error(429, "too_many_requests");
    assert_eq!(refused.header("retry-after"), Some("3000"));
    assert_eq!(
        refused.body["error_details"],
        json!({"retry_after_seconds": 3000})
    );
    assert_cors(&refused, ORIGIN);
    assert!(
        w.mem.outbox.last_to("+12025550113").is_none(),
        "nothing delivered"
    );
    // The backend's own sends are not the frontend's.
    let mut headers = w.backend_headers();
    let body = json_body(&mut headers, Some(json!({"phone_number": "+12025550113"})));
    let r = w
        .request(RouteId::SmsLoginOrCreate, &[], headers, body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // An hour after the first, there is room again.
    w.clock.advance_seconds(3000);
    send("+12025550114").await.data();
}

#[tokio::test]
async fn preflights_and_events_need_no_credentials() {
    let w = World::new(relaxed()).await;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://anywhere.example"),
    );
    headers.insert(
        "access-control-request-headers",
        HeaderValue::from_static("authorization,content-type,x-sdk-client,x-sdk-parent-host"),
    );
    let pre = w
        .request(
            RouteId::SdkPreflight,
            &[("proxy", "otps/sms/login_or_create")],
            headers,
            Vec::new(),
        )
        .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://anywhere.example")
    );
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        Some("authorization, content-type, x-sdk-client, x-sdk-parent-host")
    );
    assert_eq!(
        pre.header("access-control-allow-methods"),
        Some("GET, POST, OPTIONS")
    );
    assert_eq!(pre.header("access-control-max-age"), Some("600"));
    // Not an origin: nothing allowed.
    let mut headers = HeaderMap::new();
    headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
    let pre = w
        .request(
            RouteId::SdkPreflight,
            &[("proxy", "x")],
            headers,
            Vec::new(),
        )
        .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(pre.header("access-control-allow-origin"), None);

    let mut headers = HeaderMap::new();
    headers.insert(header::ORIGIN, HeaderValue::from_static(ORIGIN));
    let body = json_body(
        &mut headers,
        Some(json!([{"event": {"event_name": "sdk_instance_instantiated"}}])),
    );
    let events = w.request(RouteId::SdkEvents, &[], headers, body).await;
    events.data();
    assert_cors(&events, ORIGIN);
}
