//! HTTP handlers over a transport-neutral request. The Lambda functions convert the API Gateway
//! event into an `ApiRequest`, the local server converts its hyper request; both call `handle`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::Error;
use crate::ids::{AppId, RequestId, SecretId};
use crate::ports::AppData;
use crate::service::{Deps, management};

mod docs;
pub mod errors;
mod frontend;
mod json;
mod login;
mod management_handlers;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod routes;
mod schemas;
pub mod views;

pub use routes::{Dialect, ROUTES, Route, RouteId, RouteMatch, find_route};

/// Bodies above this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: Method,
    pub path_params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The public base URL the request came in on (`https://` + API Gateway's domain name),
    /// used as the JWT issuer when the deployment has no fixed `public_base_url`.
    pub base_url: Option<String>,
    /// The address the request came from (API Gateway's `sourceIp`, the local server's peer):
    /// the frontend API's end-user IP address.
    pub source_ip: Option<String>,
}

impl ApiRequest {
    pub fn path_param(&self, name: &str) -> &str {
        self.path_params.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A handler's success: a status and a JSON body (without `request_id`/`status_code`, which
/// `handle` adds), or no content.
pub(crate) enum Reply {
    Json(StatusCode, Value),
    NoContent,
    /// A page that is not JSON (the errors reference).
    Document {
        content_type: &'static str,
        body: &'static str,
    },
}

impl Reply {
    /// A typed body as the JSON the transport carries.
    pub(crate) fn typed<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<Reply, Error> {
        serde_json::to_value(body)
            .map(|value| Reply::Json(status, value))
            .map_err(|e| Error::Internal(format!("response body not serializable: {e}")))
    }
}

/// What a handler knows about the caller after authentication, and about the request.
pub(crate) struct Caller {
    /// The authenticated app with its settings (Login dialect only).
    pub app: Option<Arc<AppData>>,
    pub request_id: RequestId,
}

impl Caller {
    pub fn app(&self) -> Result<&AppData, Error> {
        self.app.as_deref().ok_or(Error::Unauthorized)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(request: &ApiRequest) -> Result<T, Error> {
    let body: &[u8] = if request.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &request.body
    };
    // serde's message names the field; the position is noise for API callers.
    let bad = |e: serde_json::Error| {
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        Error::BadRequest(format!("invalid request body: {message}"))
    };
    // The whole document is parsed first, so that malformed JSON in a field the endpoint
    // ignores is refused too, and so is a key repeated anywhere in it.
    let document: Value = json::parse_document(body).map_err(bad)?;
    serde_json::from_value(document).map_err(bad)
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The caller's credentials, checked; for the Login API also the secret whose last use is
/// due to be written.
async fn authenticate(
    deps: &Deps,
    route: &Route,
    request: &ApiRequest,
) -> Result<(Option<Arc<AppData>>, Option<(AppId, SecretId)>), Error> {
    match route.dialect {
        // The frontend API authenticates by public token (`frontend::handle`).
        Dialect::Public | Dialect::Frontend => Ok((None, None)),
        Dialect::Management => match bearer_token(&request.headers) {
            Some(key) if deps.keys.management_key()?.verify(key) => Ok((None, None)),
            _ => Err(Error::Unauthorized),
        },
        Dialect::Login => {
            let (app_id, secret) =
                basic_credentials(&request.headers).ok_or(Error::Unauthorized)?;
            let app = management::authenticate_app(deps, &app_id, &secret).await?;
            let touch = app
                .touch
                .map(|secret_id| (app.data.app.id.clone(), secret_id));
            Ok((Some(app.data), touch))
        }
    }
}

async fn dispatch(
    deps: &Deps,
    route: &Route,
    request: &ApiRequest,
    request_id: &RequestId,
) -> Result<Reply, Error> {
    if request.body.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge);
    }
    let (app, touch) = authenticate(deps, route, request).await?;
    let has_body = !request.body.iter().all(u8::is_ascii_whitespace);
    if has_body && !is_json_content_type(&request.headers) {
        return Err(Error::UnsupportedMediaType);
    }
    let caller = Caller {
        app,
        request_id: request_id.clone(),
    };
    let handled = async {
        match route.dialect {
            Dialect::Management => management_handlers::handle(deps, route.id, request).await,
            Dialect::Login | Dialect::Public | Dialect::Frontend => {
                login::handle(deps, &caller, route.id, request).await
            }
        }
    };
    // The secret's last use is written beside the request's own store calls, not before them.
    match touch {
        Some((app_id, secret_id)) => {
            let (_, reply) =
                tokio::join!(management::touch_secret(deps, &app_id, &secret_id), handled);
            reply
        }
        None => handled.await,
    }
}

/// Serves one request of `route`: authentication, parsing, the use case, and the response in
/// the route's dialect. Never fails: every error becomes a response.
pub async fn handle(deps: &Deps, route: RouteId, request: ApiRequest) -> ApiResponse {
    let started = Instant::now();
    let route = route.route();
    let request_id = RequestId::generate(deps.random.as_ref());
    let request_deps;
    let deps = match (deps.settings.public_base_url.is_empty(), &request.base_url) {
        (false, _) => Ok(deps),
        (true, Some(url)) => {
            request_deps = deps.with_public_base_url(url);
            Ok(&request_deps)
        }
        (true, None) => Err(Error::Internal(
            "no public base URL: neither configured nor known from the request".into(),
        )),
    };
    let answer = match (route.dialect, deps) {
        (Dialect::Frontend, Ok(deps)) => {
            frontend::handle(deps, route.id, &request, &request_id).await
        }
        (_, Ok(deps)) => {
            let result = dispatch(deps, route, &request, &request_id).await;
            let base = &deps.settings.public_base_url;
            answer(route, &request, &request_id, base, result)
        }
        (_, Err(error)) => answer(route, &request, &request_id, "", Err(error)),
    };
    tracing::info!(
        request_id = %request_id,
        route = route.function,
        status = answer.status.as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert("x-request-id", value);
    }
    match &answer.etag {
        Some(etag) => {
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(JWKS_CACHE_CONTROL),
            );
            if let Ok(value) = HeaderValue::from_str(etag) {
                headers.insert(header::ETAG, value);
            }
        }
        None => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    if let Some(seconds) = answer.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if route.dialect == Dialect::Frontend {
        frontend::add_cors_headers(&mut headers, &answer);
    }
    let body = match (answer.document, answer.body) {
        (Some((content_type, page)), _) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            page.as_bytes().to_vec()
        }
        (None, Some(value)) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            serde_json::to_vec(&value).unwrap_or_default()
        }
        (None, None) => Vec::new(),
    };
    ApiResponse {
        status: answer.status,
        headers,
        body,
    }
}

/// What a request is answered, before the common headers.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub retry_after: Option<u64>,
    /// The JWKS's entity tag (it alone is cacheable).
    pub etag: Option<String>,
    /// The frontend API's authorized origin the answer is for.
    pub cors_origin: Option<String>,
    /// A CORS preflight's answer (it says what it allows).
    pub preflight: bool,
    /// A body that is not JSON, with its content type.
    pub document: Option<(&'static str, &'static str)>,
}

/// The answer of a management, Login API or public route: the reply in the route's dialect.
fn answer(
    route: &Route,
    request: &ApiRequest,
    request_id: &RequestId,
    public_base_url: &str,
    result: Result<Reply, Error>,
) -> Answer {
    // The JWKS is public and changes only when an app's keys do: caches may keep it a while,
    // and a client that has it already (its ETag) is answered without it.
    let etag = match (&result, route.id) {
        (Ok(Reply::Json(_, body)), RouteId::SessionsJwks) => Some(jwks_etag(body)),
        _ => None,
    };
    let not_modified = etag.as_ref().is_some_and(|etag| {
        request
            .headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|tag| tag.trim() == etag || tag.trim() == "*")
            })
    });
    let mut document = None;
    let (status, body, retry_after) = match result {
        Ok(_) if not_modified => (StatusCode::NOT_MODIFIED, None, None),
        Ok(Reply::NoContent) => (StatusCode::NO_CONTENT, None, None),
        Ok(Reply::Document { content_type, body }) => {
            document = Some((content_type, body));
            (StatusCode::OK, None, None)
        }
        Ok(Reply::Json(status, mut body)) => {
            if let Some(object) = body.as_object_mut() {
                if route.dialect != Dialect::Management {
                    object.insert("status_code".into(), json!(status.as_u16()));
                }
                object.insert("request_id".into(), json!(request_id));
            }
            (status, Some(body), None)
        }
        Err(error) => {
            if let Error::Internal(detail) = &error {
                tracing::error!(request_id = %request_id, route = route.function, detail = %detail, "internal error");
            }
            let (status, body) = match route.dialect {
                Dialect::Management => errors::management_error_body(&error, request_id.as_str()),
                _ => errors::login_error_body(&error, request_id.as_str(), public_base_url),
            };
            (status, Some(body), errors::retry_after_seconds(&error))
        }
    };
    Answer {
        status,
        body,
        retry_after,
        etag,
        cors_origin: None,
        preflight: false,
        document,
    }
}

/// How long caches may keep a JWKS: a key added by a rotation is published at most this long
/// after it signs (clients fetch an unknown `kid` anew), and a JWT lives 5 minutes.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// The JWKS's entity tag: a hash of its keys (not of the request id it carries).
fn jwks_etag(body: &Value) -> String {
    let keys = serde_json::to_vec(&body["keys"]).unwrap_or_default();
    let digest = crate::crypto::sha256(&keys);
    format!("\"{}\"", crate::crypto::to_hex(&digest[..16]))
}

/// The response for a path no route serves, in the dialect its prefix suggests.
pub fn unrouted(deps: &Deps, method_known: bool, path: &str) -> ApiResponse {
    let request_id = RequestId::generate(deps.random.as_ref());
    let (status, message) = if method_known {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this path",
        )
    } else {
        (StatusCode::NOT_FOUND, "no such endpoint")
    };
    let body = if path.starts_with("/v2/") {
        json!({"code": "not_found", "status": "not_found", "message": message, "request_id": request_id})
    } else {
        json!({
            "status_code": status.as_u16(),
            "request_id": request_id,
            "error_type": "not_found",
            "error_message": message,
            "error_url": docs::error_url(&deps.settings.public_base_url, "not_found"),
        })
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert("x-request-id", value);
    }
    ApiResponse {
        status,
        headers,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}
