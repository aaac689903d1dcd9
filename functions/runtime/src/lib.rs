//! The glue between API Gateway (through `lambda_http`) and the transport-neutral handlers in
//! `shared::api`, and the configuration every function reads at cold start.

pub mod https;
pub mod secrets;

use std::sync::Arc;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use shared::api::{ApiRequest, ApiResponse, RouteId, handle};
use shared::clock::SystemClock;
use shared::ports::{
    DeliveryError, EmailMessage, EmailSender, LogTestMessages, SmsMessage, SmsSender,
};
use shared::random::OsRandom;
use shared::service::{
    AppCache, Deps, Keys, Limits, SendLimits, Settings, app_cache_seconds_from_lookup,
};
use store_dynamodb::DynamoStore;

/// Converts an API Gateway request into the handlers' request.
pub fn api_request(request: Request) -> ApiRequest {
    let (base_url, source_ip) = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => (
            context
                .domain_name
                .as_ref()
                .map(|domain| format!("https://{domain}")),
            context.http.source_ip.clone(),
        ),
        _ => (None, None),
    };
    let path_params = request
        .path_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let query = request
        .query_string_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    ApiRequest {
        method: parts.method,
        path_params,
        query,
        headers: parts.headers,
        body,
        base_url,
        source_ip,
    }
}

/// Converts the handlers' response into what `lambda_http` sends back to API Gateway.
pub fn lambda_response(response: ApiResponse) -> Response<Body> {
    let body = if response.body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(response.body) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    let mut out = Response::new(body);
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    out
}

/// Serves one route until the Lambda runtime stops the process.
pub async fn run(route: RouteId, deps: Deps) -> Result<(), Error> {
    let deps = Arc::new(deps);
    lambda_http::run(service_fn(move |request: Request| {
        let deps = deps.clone();
        async move {
            let response = handle(&deps, route, api_request(request)).await;
            Ok::<_, Error>(lambda_response(response))
        }
    }))
    .await
}

/// JSON logs for CloudWatch, level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .init();
}

fn required_env(name: &str) -> Result<String, Error> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => {
            Err(format!("the environment variable {name} must be set (see README: Deploy)").into())
        }
    }
}

/// The deployment's settings from the environment; a malformed one stops the cold start with
/// a message naming it. (Its secrets are read by `secrets::keys_for_route`.)
pub fn settings_from_env() -> Result<Settings, Error> {
    // Unset: each request's own API Gateway domain is the issuer (a stack cannot pass its
    // HTTP API's URL to its own functions without a circular dependency).
    let public_base_url = std::env::var("PUBLIC_BASE_URL")
        .unwrap_or_default()
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let default_email_from =
        std::env::var("DEFAULT_EMAIL_FROM").unwrap_or_else(|_| "no-reply@example.com".to_owned());
    Ok(Settings {
        public_base_url,
        default_email_from,
        limits: Limits {
            send: SendLimits::from_lookup(|name| std::env::var(name).ok())?,
            ..Limits::default()
        },
        app_cache_seconds: app_cache_seconds_from_lookup(|name| std::env::var(name).ok())?,
        test_environment: false,
    })
}

/// What a function that sends codes plugs in: its SMS and email senders, built from the AWS
/// configuration loaded once in `main`.
pub struct Delivery {
    pub sms: Arc<dyn SmsSender>,
    pub email: Arc<dyn EmailSender>,
}

/// The senders of a function that never sends a code (every route but the four sends): it
/// does not link the SNS and SES SDKs, and a call here would be a routing bug.
struct NoDelivery;

#[async_trait::async_trait]
impl SmsSender for NoDelivery {
    async fn send_sms(&self, _: &SmsMessage) -> Result<(), DeliveryError> {
        Err(DeliveryError("this function does not deliver SMS".into()))
    }
}

#[async_trait::async_trait]
impl EmailSender for NoDelivery {
    async fn send_email(&self, _: &EmailMessage) -> Result<(), DeliveryError> {
        Err(DeliveryError("this function does not deliver email".into()))
    }
}

/// A function's dependencies on DynamoDB (`table`) and the given senders. Messages to test
/// identifiers go to the log, marked `test: true`.
pub fn aws_deps(
    aws: &SdkConfig,
    delivery: Delivery,
    keys: Keys,
    settings: Settings,
    table: &str,
) -> Deps {
    let store = Arc::new(DynamoStore::from_sdk_config(aws, table));
    Deps {
        apps: store.clone(),
        configs: store.clone(),
        login: store,
        app_cache: Arc::new(AppCache::new(settings.app_cache_seconds)),
        sms: delivery.sms,
        email: delivery.email,
        test_messages: Arc::new(LogTestMessages),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        keys: Arc::new(keys),
        settings,
    }
}

/// `aws_deps` with the route's secrets (read at once, from Secrets Manager when deployed), the
/// settings and the table (`TABLE_NAME`) from the environment.
pub async fn deps_from_env(
    route: RouteId,
    aws: &SdkConfig,
    delivery: Delivery,
) -> Result<Deps, Error> {
    let settings = settings_from_env()?;
    let table = required_env("TABLE_NAME")?;
    let started = std::time::Instant::now();
    let reader = Arc::new(secrets::SecretsManager(
        aws_sdk_secretsmanager::Client::new(aws),
    ));
    let keys = secrets::keys_for_route(route, |name| std::env::var(name).ok(), reader).await?;
    tracing::info!(
        secrets = route.secrets().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "secrets read"
    );
    Ok(aws_deps(aws, delivery, keys, settings, &table))
}

/// The AWS configuration from what Lambda puts in the environment: the region from `AWS_REGION`,
/// credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. Unlike
/// `aws_config::load_defaults` it looks for no profile file and sets up no IMDS, ECS or SSO
/// provider, and its HTTPS client sets up TLS at the first request, with compiled-in root
/// certificates (`https`). Endpoint overrides (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`)
/// still apply, for a local stand-in.
pub async fn lambda_aws_config() -> Result<SdkConfig, Error> {
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|region| !region.trim().is_empty())
        .ok_or("AWS_REGION must be set (Lambda sets it, with the credentials)")?;
    // An empty, in-memory profile: no `~/.aws/config` or `~/.aws/credentials` lookup.
    let no_profile_files = EnvConfigFiles::builder()
        .with_contents(EnvConfigFileKind::Config, "")
        .build();
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .profile_files(no_profile_files)
        .http_client(https::LazyHttpsClient::default())
        .load()
        .await)
}

/// The whole `main` of a function that sends no code: logs, configuration, AWS clients (once
/// per cold start), then serve `route`.
pub async fn serve(route: RouteId) -> Result<(), Error> {
    serve_delivering(route, |_| Delivery {
        sms: Arc::new(NoDelivery),
        email: Arc::new(NoDelivery),
    })
    .await
}

/// The whole `main` of a function that sends codes: as `serve`, with the senders `delivery`
/// builds from the loaded AWS configuration.
pub async fn serve_delivering(
    route: RouteId,
    delivery: impl FnOnce(&SdkConfig) -> Delivery,
) -> Result<(), Error> {
    init_tracing();
    let aws = lambda_aws_config().await?;
    let deps = deps_from_env(route, &aws, delivery(&aws)).await?;
    run(route, deps).await
}
