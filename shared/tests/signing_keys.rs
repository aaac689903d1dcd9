//! Each app's own JWT signing key, through the HTTP handlers: apps' JWKS differ and one app's
//! JWT is nothing to another; a rotation signs new JWTs with the new key while the JWTs and
//! sessions from before keep working; an app made before apps had keys keeps the deployment's
//! legacy key until its first rotation; the private keys are in the store only sealed, and
//! only for their own app.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::{Value, json};
use shared::api::{ApiRequest, RouteId, handle};
use shared::clock::{Clock, FakeClock, Timestamp};
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash, new_app_secret};
use shared::ids::{AppId, SecretId};
use shared::jwt::{JwtKeys, header_kid};
use shared::model::{App, AppSecret};
use shared::ports::AppStore;
use shared::random::{OsRandom, SeededRandom};
use shared::service::{DEFAULT_APP_CACHE_SECONDS, InMemory, Keys, Limits, SendLimits, Settings};

const MANAGEMENT_KEY: &str = "test-management-key";
const PHONE: &str = "+12025550100";
const START: Timestamp = Timestamp(1_800_000_000);

struct World {
    mem: InMemory,
    clock: Arc<FakeClock>,
}

struct AppCredentials {
    id: String,
    secret: String,
}

impl World {
    fn new(legacy: Option<Arc<JwtKeys>>) -> World {
        let clock = Arc::new(FakeClock::new(START));
        let keys = Keys {
            legacy_signing: legacy,
            ..Keys::new(
                ManagementKeyHash::of_key(MANAGEMENT_KEY),
                CodeHasher::new(&[7u8; 32]).unwrap(),
                KeyEncryptionKey::from_secret(&"k".repeat(40)).unwrap(),
            )
        };
        let settings = Settings {
            public_base_url: "http://127.0.0.1:3000".into(),
            default_email_from: "no-reply@example.com".into(),
            limits: Limits {
                send: SendLimits {
                    cooldown_seconds: 0,
                    window_max: 1000,
                    window_seconds: 600,
                    ip_window_max: 1000,
                },
                sms_budgets: shared::model::SmsBudgets::unlimited(),
                ..Limits::default()
            },
            app_cache_seconds: DEFAULT_APP_CACHE_SECONDS,
            test_environment: false,
        };
        let mem = InMemory::with(
            keys,
            settings,
            clock.clone(),
            Arc::new(SeededRandom::new(7)),
        );
        World { mem, clock }
    }

    async fn call(
        &self,
        route: RouteId,
        params: &[(&str, &str)],
        auth: Option<&AppCredentials>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut headers = HeaderMap::new();
        let authorization = match auth {
            Some(app) => format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", app.id, app.secret))
            ),
            None => format!("Bearer {MANAGEMENT_KEY}"),
        };
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&authorization).unwrap(),
        );
        let bytes = match body {
            Some(v) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                serde_json::to_vec(&v).unwrap()
            }
            None => Vec::new(),
        };
        let request = ApiRequest {
            method: Method::from_bytes(route.route().method.as_bytes()).unwrap(),
            path_params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            query: Default::default(),
            headers,
            body: bytes,
            base_url: None,
            source_ip: None,
        };
        let response = handle(&self.mem.deps, route, request).await;
        (response.status.as_u16(), response.json())
    }

    /// An app made through the management API, with a default SMS config.
    async fn create_app(&self, name: &str) -> AppCredentials {
        let (status, body) = self
            .call(RouteId::CreateApp, &[], None, Some(json!({"name": name})))
            .await;
        assert_eq!(status, 201, "{body}");
        let app = AppCredentials {
            id: body["app"]["id"].as_str().unwrap().to_owned(),
            secret: body["secret"].as_str().unwrap().to_owned(),
        };
        self.configure(&app).await;
        app
    }

    async fn configure(&self, app: &AppCredentials) {
        let (status, body) = self
            .call(
                RouteId::CreateLoginConfig,
                &[("app_id", &app.id)],
                None,
                Some(json!({"config_type": "otp", "channel_type": "sms", "is_default": true})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn jwks_kids(&self, app: &AppCredentials) -> Vec<String> {
        let (status, body) = self
            .call(RouteId::SessionsJwks, &[("app_id", &app.id)], None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A login by SMS: the session's token and JWT.
    async fn login(&self, app: &AppCredentials) -> (String, String) {
        let (status, sent) = self
            .call(
                RouteId::SmsLoginOrCreate,
                &[],
                Some(app),
                Some(json!({"phone_number": PHONE})),
            )
            .await;
        assert_eq!(status, 200, "{sent}");
        let code = self.mem.outbox.last_to(PHONE).unwrap().code;
        let (status, body) = self
            .call(
                RouteId::OtpAuthenticate,
                &[],
                Some(app),
                Some(json!({"method_id": sent["phone_id"], "code": code,
                    "session_duration_minutes": 600})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["session_token"].as_str().unwrap().to_owned(),
            body["session_jwt"].as_str().unwrap().to_owned(),
        )
    }

    /// `sessions.authenticate` by JWT: the status and the fresh JWT.
    async fn authenticate_jwt(&self, app: &AppCredentials, jwt: &str) -> (u16, Option<String>) {
        let (status, body) = self
            .call(
                RouteId::SessionsAuthenticate,
                &[],
                Some(app),
                Some(json!({"session_jwt": jwt})),
            )
            .await;
        (status, body["session_jwt"].as_str().map(str::to_owned))
    }

    async fn rotate(&self, app: &AppCredentials) -> Value {
        let (status, body) = self
            .call(RouteId::RotateKeys, &[("app_id", &app.id)], None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance_seconds(seconds);
    }
}

fn kid(jwt: &str) -> String {
    header_kid(jwt).expect("a kid in the JWT header")
}

#[tokio::test]
async fn each_app_has_its_own_key_and_another_apps_jwt_is_nothing_to_it() {
    let w = World::new(None);
    let a = w.create_app("A").await;
    let b = w.create_app("B").await;
    let (a_kids, b_kids) = (w.jwks_kids(&a).await, w.jwks_kids(&b).await);
    assert_eq!((a_kids.len(), b_kids.len()), (1, 1));
    assert_ne!(a_kids, b_kids, "two apps publish the same key");

    let (_, a_jwt) = w.login(&a).await;
    assert_eq!(kid(&a_jwt), a_kids[0]);
    assert_eq!(w.authenticate_jwt(&a, &a_jwt).await.0, 200);
    // B's credentials with A's JWT: not B's key (and not B's audience).
    assert_eq!(w.authenticate_jwt(&b, &a_jwt).await.0, 401);
}

#[tokio::test]
async fn a_rotation_signs_with_the_new_key_and_keeps_old_jwts_and_sessions_valid() {
    let w = World::new(None);
    let app = w.create_app("Acme").await;
    let old_kid = w.jwks_kids(&app).await[0].clone();
    let (token, old_jwt) = w.login(&app).await;

    let rotated = w.rotate(&app).await;
    let keys = rotated["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{rotated}");
    assert_eq!(keys[0]["status"], "current");
    assert_eq!(
        (keys[1]["kid"].as_str(), keys[1]["status"].as_str()),
        (Some(old_kid.as_str()), Some("retired"))
    );
    assert!(!rotated.to_string().contains("sealed"), "{rotated}");
    let new_kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        w.jwks_kids(&app).await,
        vec![new_kid.clone(), old_kid.clone()]
    );

    // The JWT from before still authenticates its session, and what comes back is signed
    // with the new key; so is a new login's.
    let (status, fresh) = w.authenticate_jwt(&app, &old_jwt).await;
    assert_eq!(status, 200);
    assert_eq!(kid(&fresh.unwrap()), new_kid);
    let (_, new_jwt) = w.login(&app).await;
    assert_eq!(kid(&new_jwt), new_kid);
    let (status, body) = w
        .call(
            RouteId::SessionsAuthenticate,
            &[],
            Some(&app),
            Some(json!({"session_token": token})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Once every JWT the old key signed has expired (and no instance still signs with it),
    // the JWKS drops it; the service itself still accepts an old JWT of a live session.
    let lifetime = Limits::default().jwt_lifetime_seconds + DEFAULT_APP_CACHE_SECONDS;
    w.advance(lifetime - 1);
    assert_eq!(w.jwks_kids(&app).await.len(), 2);
    w.advance(1);
    assert_eq!(w.jwks_kids(&app).await, vec![new_kid.clone()]);
    assert_eq!(w.authenticate_jwt(&app, &old_jwt).await.0, 200);

    // A second rotation: three keys, the oldest retired first.
    let again = w.rotate(&app).await;
    let kids: Vec<&str> = again["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 3);
    assert_eq!(&kids[1..], &[new_kid.as_str(), old_kid.as_str()]);
    assert_eq!(w.authenticate_jwt(&app, &old_jwt).await.0, 200);
}

#[tokio::test]
async fn rotating_an_unknown_app_is_not_found() {
    let w = World::new(None);
    let (status, body) = w
        .call(RouteId::RotateKeys, &[("app_id", "app-nope")], None, None)
        .await;
    assert_eq!(status, 404, "{body}");
}

/// An app as a deployment made it before apps had keys: no signing key of its own.
async fn app_made_before_keys(w: &World) -> AppCredentials {
    let now = w.clock.now();
    let app = App {
        id: AppId::generate(&OsRandom),
        name: "Old".into(),
        created_at: now,
    };
    let (secret, hash) = new_app_secret(&OsRandom);
    let record = AppSecret {
        id: SecretId::generate(&OsRandom, now),
        app_id: app.id.clone(),
        hash,
        created_at: now,
        last_used_at: None,
    };
    w.mem
        .store
        .create_app(&app, &record, &[], &Default::default())
        .await
        .unwrap();
    let credentials = AppCredentials {
        id: app.id.to_string(),
        secret,
    };
    w.configure(&credentials).await;
    credentials
}

#[tokio::test]
async fn an_app_made_before_keys_signs_with_the_legacy_key_until_its_first_rotation() {
    let legacy = Arc::new(JwtKeys::generate().unwrap());
    let legacy_kid = legacy.jwk().kid.clone();
    let w = World::new(Some(legacy));
    let app = app_made_before_keys(&w).await;
    assert_eq!(w.jwks_kids(&app).await, vec![legacy_kid.clone()]);
    let (_, legacy_jwt) = w.login(&app).await;
    assert_eq!(kid(&legacy_jwt), legacy_kid);
    assert_eq!(w.authenticate_jwt(&app, &legacy_jwt).await.0, 200);

    let rotated = w.rotate(&app).await;
    let new_kid = rotated["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        w.jwks_kids(&app).await,
        vec![new_kid.clone(), legacy_kid.clone()]
    );
    let (status, fresh) = w.authenticate_jwt(&app, &legacy_jwt).await;
    assert_eq!((status, fresh.map(|j| kid(&j))), (200, Some(new_kid)));
}

#[tokio::test]
async fn without_a_legacy_key_an_app_made_before_keys_is_told_to_rotate() {
    let w = World::new(None);
    let app = app_made_before_keys(&w).await;
    let (status, body) = w
        .call(RouteId::SessionsJwks, &[("app_id", &app.id)], None, None)
        .await;
    assert_eq!(status, 500, "{body}");
    w.rotate(&app).await;
    assert_eq!(w.jwks_kids(&app).await.len(), 1);
    w.login(&app).await;
}

#[tokio::test]
async fn private_keys_are_stored_only_sealed_and_only_for_their_own_app() {
    let w = World::new(None);
    let a = w.create_app("A").await;
    let b = w.create_app("B").await;
    let load = |id: &str| {
        let store = w.mem.store.clone();
        let id = AppId::parse(id).unwrap();
        async move { store.load_app(&id).await.unwrap().unwrap() }
    };
    let a_data = load(&a.id).await;
    let sealed = a_data.signing_keys[0]
        .sealed_private_key
        .clone()
        .expect("a sealed private key");
    assert!(
        JwtKeys::from_pkcs8_der(&sealed).is_err(),
        "the stored private key is a plain PKCS#8 key"
    );
    let (_, before) = w.login(&b).await;

    // A's sealed key put in B's place does not open for B: B cannot sign, rather than sign
    // with A's key.
    let b_id = AppId::parse(&b.id).unwrap();
    let b_data = load(&b.id).await;
    w.mem
        .store
        .replace_signing_keys(
            &b_id,
            Some(b_data.signing_keys[0].kid.as_str()),
            &a_data.signing_keys,
        )
        .await
        .unwrap();
    w.advance(DEFAULT_APP_CACHE_SECONDS);
    let (status, body) = w
        .call(
            RouteId::SessionsAuthenticate,
            &[],
            Some(&b),
            Some(json!({"session_jwt": before})),
        )
        .await;
    assert_eq!(
        status, 401,
        "B's old JWT is not by any key B has now: {body}"
    );
    let (status, sent) = w
        .call(
            RouteId::SmsLoginOrCreate,
            &[],
            Some(&b),
            Some(json!({"phone_number": "+12025550199"})),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let code = w.mem.outbox.last_to("+12025550199").unwrap().code;
    let (status, body) = w
        .call(
            RouteId::OtpAuthenticate,
            &[],
            Some(&b),
            Some(json!({"method_id": sent["phone_id"], "code": code.clone(),
                "session_duration_minutes": 60})),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(!body.to_string().contains("BEGIN"), "{body}");
    // Refused before the code was spent: once B has a key again, the same code works.
    w.rotate(&b).await;
    let (status, body) = w
        .call(
            RouteId::OtpAuthenticate,
            &[],
            Some(&b),
            Some(json!({"method_id": sent["phone_id"], "code": code,
                "session_duration_minutes": 60})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
