//! `cargo run --release --bin local-api`: every endpoint of the contract on 127.0.0.1:3000 (or
//! `PORT`), served by the same handlers as the Lambda functions, on in-memory adapters, with the
//! outbox at `GET /_dev/outbox` and the login page at `GET /` (`web/dist`, see `page`).

mod page;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use delivery_aws::{SesEmail, SnsSms};
use http::{HeaderValue, Method, header};
use serde_json::json;
use shared::api::{
    ApiRequest, ApiResponse, MAX_BODY_BYTES, RouteMatch, find_route, handle, unrouted,
};
use shared::clock::SystemClock;
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::ids::RequestId;
use shared::jwt::JwtKeys;
use shared::memory::Outbox;
use shared::model::Channel;
use shared::ports::LogTestMessages;
use shared::random::{OsRandom, Random, random_token};
use shared::service::frontend;
use shared::service::management::{self, LoginConfigInput};
use shared::service::{
    AppCache, Deps, InMemory, Keys, Limits, SendLimits, Settings, app_cache_seconds_from_lookup,
};
use store_dynamodb::DynamoStore;

struct Server {
    deps: Deps,
    /// The development outbox; absent on the AWS backend, where messages go to SNS and SES.
    outbox: Option<Arc<Outbox>>,
    /// The body of `GET /config.js` for the login page.
    config_js: String,
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (form encoding, as `requests` sends query values).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn into_response(api: ApiResponse) -> Response {
    let mut response = Response::new(Body::from(api.body));
    *response.status_mut() = api.status;
    *response.headers_mut() = api.headers;
    response
}

/// Whether a `Host` header names this machine's loopback interface (`127.0.0.1`, `[::1]`,
/// `localhost`, with or without a port). The outbox answers only then: a page elsewhere that
/// rebinds its own DNS name to 127.0.0.1 (DNS rebinding) still sends its own name as `Host`.
fn is_loopback_host(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Marks an answer that does not come from the API handlers as theirs are marked: never cached,
/// and with a request id.
fn not_cached_with_request_id(server: &Server, headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let request_id = RequestId::generate(server.deps.random.as_ref());
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert("x-request-id", value);
    }
}

/// The OpenAPI description of the routes (the committed `openapi.json`, generated anew): a
/// path outside `ROUTES`, served by the local server alone.
fn openapi_response(server: &Server) -> Response {
    let (status, body) = match shared::api::openapi::document_text() {
        Ok(text) => (http::StatusCode::OK, text),
        Err(conflicts) => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("schema name conflicts: {conflicts:?}")}).to_string(),
        ),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    not_cached_with_request_id(server, headers);
    response
}

async fn serve(State(server): State<Arc<Server>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if let Some(outbox) = &server.outbox
        && path == "/_dev/outbox"
        && parts.method == Method::GET
        && is_loopback_host(parts.headers.get(header::HOST))
    {
        let body = json!({"messages": outbox.messages()});
        let mut response = Response::new(Body::from(body.to_string()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        not_cached_with_request_id(&server, headers);
        return response;
    }
    if (parts.method == Method::GET || parts.method == Method::HEAD)
        && let Some(mut response) = page::serve(&path, &server.config_js)
    {
        not_cached_with_request_id(&server, response.headers_mut());
        return response;
    }
    if path == "/openapi.json" && parts.method == Method::GET {
        return openapi_response(&server);
    }
    let (route, params) = match find_route(parts.method.as_str(), &path) {
        RouteMatch::Found(route, params) => (route, params),
        RouteMatch::MethodNotAllowed => return into_response(unrouted(&server.deps, true, &path)),
        RouteMatch::NotFound => return into_response(unrouted(&server.deps, false, &path)),
    };
    // Reading stops just past the limit; an over-limit body is answered 413 by the handler.
    let body = match to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => vec![b' '; MAX_BODY_BYTES + 1],
    };
    let request = ApiRequest {
        method: parts.method,
        path_params: params.into_iter().collect(),
        query: query_map(parts.uri.query()),
        headers: parts.headers,
        body,
        base_url: None,
        // The peer: the frontend API's end-user address.
        source_ip: parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip().to_string()),
    };
    into_response(handle(&server.deps, route.id, request).await)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn fail(message: String) -> ! {
    eprintln!("local-api: {message}");
    std::process::exit(2);
}

/// The development app, printed at start so that the README's walk-through can use it. Its
/// frontend API answers pages served by this server (under either loopback name).
async fn create_development_app(
    deps: &Deps,
    port: u16,
) -> Result<management::CreatedApp, shared::Error> {
    let created = management::create_app(deps, "Development app").await?;
    let app = &created.app;
    for channel in [Channel::Sms, Channel::Email] {
        management::create_config(
            deps,
            app.id.as_str(),
            LoginConfigInput {
                config_type: "otp".into(),
                channel_type: channel,
                is_default: true,
                template_id: None,
                sender_id: None,
                webotp_domain: None,
                android_app_hash: None,
                grant_change_password: None,
                code_length: None,
                expiration_minutes: None,
            },
        )
        .await?;
    }
    frontend::put_settings(
        deps,
        app.id.as_str(),
        frontend::SettingsInput {
            authorized_origins: vec![
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
            ],
            max_session_duration_minutes: None,
            public_sends_per_hour: None,
        },
    )
    .await?;
    Ok(created)
}

/// The AWS adapters: DynamoDB table `TABLE_NAME` (created with its TTL setting if absent), SNS,
/// and SES v2 sending from `SES_FROM`. Against a local stand-in (`AWS_ENDPOINT_URL` set) the
/// From identity is created too. Endpoint, region and credentials come from the standard AWS
/// environment variables.
async fn aws_deps(keys: Keys, settings: Settings) -> Deps {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = env_or("TABLE_NAME", "otp-login-local");
    let store = Arc::new(DynamoStore::from_sdk_config(&aws, &table));
    store_dynamodb::create_table(&DynamoStore::client(&aws), &table)
        .await
        .unwrap_or_else(|e| fail(format!("cannot create or open the table {table}: {e}")));
    if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()) {
        let ses = aws_sdk_sesv2::Client::new(&aws);
        let from = settings.default_email_from.clone();
        // An identity that exists already is fine.
        if let Err(e) = ses
            .create_email_identity()
            .email_identity(&from)
            .send()
            .await
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_already_exists_exception())
        {
            fail(format!("cannot create the SES identity {from}: {e}"));
        }
    }
    Deps {
        apps: store.clone(),
        configs: store.clone(),
        login: store,
        app_cache: Arc::new(AppCache::new(settings.app_cache_seconds)),
        sms: Arc::new(SnsSms::from_sdk_config(&aws)),
        email: Arc::new(SesEmail::from_sdk_config(
            &aws,
            std::env::var("SES_CONFIGURATION_SET")
                .ok()
                .filter(|v| !v.is_empty()),
        )),
        test_messages: Arc::new(LogTestMessages),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        keys: Arc::new(keys),
        settings,
    }
}

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let backend = env_or("LOCAL_BACKEND", "memory");
    if backend != "memory" && backend != "aws" {
        fail(format!(
            "LOCAL_BACKEND must be memory or aws, not {backend:?}"
        ));
    }
    let port: u16 = env_or("PORT", "3000")
        .parse()
        .unwrap_or_else(|_| fail("PORT must be a port number".into()));
    let management_key = env_or("MANAGEMENT_KEY", "dev-management-key");
    let public_base_url = env_or("PUBLIC_BASE_URL", &format!("http://127.0.0.1:{port}"))
        .trim_end_matches('/')
        .to_owned();
    // Keys from the environment when given (data in DynamoDB outlives a restart), else fresh.
    let code_hasher = match std::env::var("CODE_HASH_KEY") {
        Ok(key) if !key.trim().is_empty() => CodeHasher::new(key.as_bytes()),
        _ => {
            let mut code_key = [0u8; 32];
            OsRandom.fill_bytes(&mut code_key);
            CodeHasher::new(&code_key)
        }
    }
    .unwrap_or_else(|e| fail(e));
    // Seals the apps' signing keys in the store: apps made under another key cannot sign.
    let key_encryption = match std::env::var("KEY_ENCRYPTION_KEY") {
        Ok(key) if !key.trim().is_empty() => KeyEncryptionKey::from_secret(&key),
        _ => KeyEncryptionKey::from_secret(&random_token(&OsRandom)),
    }
    .unwrap_or_else(|e| fail(e));
    // Signs for apps made before apps had their own keys (none are made here).
    let legacy_signing = match std::env::var("JWT_SIGNING_KEY_PEM") {
        Ok(pem) if !pem.trim().is_empty() => Some(Arc::new(
            JwtKeys::from_pem(&pem).unwrap_or_else(|e| fail(e.to_string())),
        )),
        _ => None,
    };
    let keys = Keys {
        legacy_signing,
        ..Keys::new(
            ManagementKeyHash::of_key(&management_key),
            code_hasher,
            key_encryption,
        )
    };
    let settings = Settings {
        public_base_url: public_base_url.clone(),
        default_email_from: env_or("SES_FROM", "no-reply@example.com"),
        limits: Limits {
            send: SendLimits::from_lookup(|name| std::env::var(name).ok())
                .unwrap_or_else(|e| fail(e)),
            ..Limits::default()
        },
        app_cache_seconds: app_cache_seconds_from_lookup(|name| std::env::var(name).ok())
            .unwrap_or_else(|e| fail(e)),
        test_environment: true,
    };
    let (deps, outbox) = if backend == "aws" {
        (aws_deps(keys, settings).await, None)
    } else {
        let in_memory = InMemory::new(keys, settings);
        (in_memory.deps, Some(in_memory.outbox))
    };
    let development_app = create_development_app(&deps, port)
        .await
        .unwrap_or_else(|e| fail(format!("could not create the development app: {e}")));
    let config_js = page::config_js(&page::PageConfig {
        public_token: Some(&development_app.public_token),
        api_base: &public_base_url,
        dev_outbox: outbox.is_some(),
        send_cooldown_seconds: deps.settings.limits.send.cooldown_seconds,
    });
    let server = Arc::new(Server {
        deps,
        outbox,
        config_js,
    });
    let router = Router::new()
        .fallback(serve)
        .with_state(server.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on 127.0.0.1:{port}: {e}")));
    println!("local-api listening on {public_base_url} ({backend} backend)");
    println!(
        "management key: MANAGEMENT_KEY={}",
        if management_key == "dev-management-key" {
            "dev-management-key (default)"
        } else {
            "(from the environment)"
        }
    );
    println!("development app: APP_ID={}", development_app.app.id);
    println!("development app: APP_SECRET={}", development_app.secret);
    println!(
        "development app: PUBLIC_TOKEN={}",
        development_app.public_token
    );
    if server.outbox.is_some() {
        println!("outbox: {public_base_url}/_dev/outbox");
    }
    println!("login page: {public_base_url}/");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        fail(format!("server error: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Arc<Server> {
        let keys = Keys::new(
            ManagementKeyHash::of_key("dev-management-key"),
            CodeHasher::new(&[1u8; 32]).expect("key"),
            KeyEncryptionKey::from_secret(&"k".repeat(32)).expect("key"),
        );
        let settings = Settings {
            public_base_url: "http://127.0.0.1:3000".into(),
            default_email_from: "no-reply@example.com".into(),
            limits: Limits::default(),
            app_cache_seconds: 0,
            test_environment: true,
        };
        let in_memory = InMemory::new(keys, settings);
        Arc::new(Server {
            deps: in_memory.deps,
            outbox: Some(in_memory.outbox),
            config_js: page::config_js(&page::PageConfig {
                public_token: Some("public-token-test-local"),
                api_base: "http://127.0.0.1:3000",
                dev_outbox: true,
                send_cooldown_seconds: 30,
            }),
        })
    }

    async fn get(server: &Arc<Server>, method: Method, path: &str, host: &str) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host)
            .body(Body::empty())
            .expect("request");
        serve(State(server.clone()), request).await
    }

    #[tokio::test]
    async fn the_openapi_document_is_served_as_committed() {
        let server = server();
        let response = get(&server, Method::GET, "/openapi.json", "127.0.0.1:3000").await;
        assert_eq!(response.status(), http::StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(
            headers.get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
        assert_eq!(
            headers.get(header::CACHE_CONTROL),
            Some(&HeaderValue::from_static("no-store"))
        );
        assert!(headers.contains_key("x-request-id"));
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let committed = include_str!("../../openapi.json");
        assert_eq!(String::from_utf8_lossy(&body), committed);
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST",
            "[::1]:3000",
            "[::1]",
            "127.1.2.3:80",
        ] {
            assert!(
                is_loopback_host(Some(&HeaderValue::from_static(host))),
                "{host}"
            );
        }
        for host in [
            "evil.example.com",
            "evil.example.com:3000",
            "127.0.0.1.nip.io:3000",
            "10.0.0.1:3000",
            "",
            "[::2]:3000",
        ] {
            assert!(
                !is_loopback_host(Some(&HeaderValue::from_static(host))),
                "{host}"
            );
        }
        assert!(!is_loopback_host(None));
    }

    #[tokio::test]
    async fn the_login_page_and_its_config_are_served_uncached_outside_the_api_routes() {
        let server = server();
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/index.html", "text/html; charset=utf-8"),
            ("/login.js", "text/javascript; charset=utf-8"),
            ("/style.css", "text/css; charset=utf-8"),
            ("/config.js", "text/javascript; charset=utf-8"),
        ] {
            assert!(
                matches!(find_route("GET", path), RouteMatch::NotFound),
                "{path} is not an API route"
            );
            let response = get(&server, Method::GET, path, "127.0.0.1:3000").await;
            assert_eq!(response.status(), http::StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(
                headers.get(header::CONTENT_TYPE),
                Some(&HeaderValue::from_static(content_type)),
                "{path}"
            );
            assert_eq!(
                headers.get(header::CACHE_CONTROL),
                Some(&HeaderValue::from_static("no-store")),
                "{path}"
            );
        }
        let config = get(&server, Method::GET, "/config.js", "127.0.0.1:3000").await;
        let body = to_bytes(config.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(
            body.contains(r#""publicToken":"public-token-test-local""#),
            "{body}"
        );
        let not_allowed = get(&server, Method::POST, "/", "127.0.0.1:3000").await;
        assert_ne!(not_allowed.status(), http::StatusCode::OK);
    }

    #[tokio::test]
    async fn the_outbox_answers_only_on_a_loopback_host_and_every_answer_is_not_cached() {
        let server = server();
        let ok = get(&server, Method::GET, "/_dev/outbox", "127.0.0.1:3000").await;
        assert_eq!(ok.status(), http::StatusCode::OK);
        let rebound = get(
            &server,
            Method::GET,
            "/_dev/outbox",
            "attacker.example:3000",
        )
        .await;
        assert_eq!(rebound.status(), http::StatusCode::NOT_FOUND);
        let not_allowed = get(&server, Method::DELETE, "/v2/session/apps", "127.0.0.1").await;
        assert_eq!(not_allowed.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        let unknown = get(&server, Method::GET, "/nowhere", "127.0.0.1").await;
        assert_eq!(unknown.status(), http::StatusCode::NOT_FOUND);
        let page = get(&server, Method::GET, "/", "127.0.0.1").await;
        assert_eq!(page.status(), http::StatusCode::OK);
        let config = get(&server, Method::GET, "/config.js", "127.0.0.1").await;
        assert_eq!(config.status(), http::StatusCode::OK);
        for response in [ok, rebound, not_allowed, unknown, page, config] {
            assert_eq!(
                response.headers().get(header::CACHE_CONTROL),
                Some(&HeaderValue::from_static("no-store"))
            );
            assert!(
                response
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("request-id-")),
                "{:?}",
                response.headers()
            );
        }
    }
}
