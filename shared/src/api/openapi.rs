//! The OpenAPI 3.1 description of every route of `ROUTES`, built from the request and response
//! structs' derived schemas. Only the local server and the tests build it (feature `openapi`);
//! `openapi.json` at the repository root is its committed output.
//!
//! API Gateway's greedy `{proxy+}` (the frontend preflight) is written `{proxy}`: OpenAPI has no
//! multi-segment parameter, so the parameter says in its description that it spans segments.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::ToSchema;

use super::errors::{LoginErrorBody, ManagementErrorBody};
use super::routes::{Dialect, ROUTES, Route, RouteId};
use super::{frontend, login, management_handlers as mgmt, views};
use crate::model::SmsBudgets;
use crate::service::frontend::SettingsInput;
use crate::service::management::{LoginConfigInput, TemplateInput, TestIdentifierInput};

pub const TITLE: &str = "OTP login service";

/// The component schemas the document refers to, by name; two different schemas under one
/// name are a conflict the caller reports.
#[derive(Default)]
struct Schemas {
    by_name: BTreeMap<String, Value>,
    conflicts: Vec<String>,
}

impl Schemas {
    fn insert(&mut self, name: String, schema: Value) {
        match self.by_name.get(&name) {
            Some(existing) if *existing != schema => self.conflicts.push(name),
            Some(_) => {}
            None => {
                self.by_name.insert(name, schema);
            }
        }
    }

    /// `T` and every schema it refers to, as components; a `$ref` to `T`.
    fn of<T: ToSchema>(&mut self) -> Value {
        let name = T::name().into_owned();
        self.insert(name.clone(), to_json(T::schema()));
        let mut referred = Vec::new();
        T::schemas(&mut referred);
        for (name, schema) in referred {
            self.insert(name, to_json(schema));
        }
        schema_ref(&name)
    }
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// What a route takes and answers besides what its dialect adds.
struct Operation {
    summary: &'static str,
    body: Option<Value>,
    /// The success status and its schema (`None`: no content).
    success: (u16, Option<Value>),
    /// Query parameters: name, required, description.
    query: &'static [(&'static str, bool, &'static str)],
}

fn operation(id: RouteId, schemas: &mut Schemas) -> Operation {
    use RouteId::*;
    let op = |summary, body, status, success| Operation {
        summary,
        body,
        success: (status, success),
        query: &[],
    };
    let s = schemas;
    match id {
        CreateApp => op(
            "Create an app, with its first secret and public token",
            Some(s.of::<mgmt::CreateAppBody>()),
            201,
            Some(s.of::<mgmt::CreateAppResponse>()),
        ),
        GetApp => op("Get an app", None, 200, Some(s.of::<mgmt::AppResponse>())),
        CreateSecret => op(
            "Add a secret to an app",
            None,
            201,
            Some(s.of::<mgmt::CreateSecretResponse>()),
        ),
        ListSecrets => op(
            "List an app's secrets (never the secrets themselves)",
            None,
            200,
            Some(s.of::<mgmt::SecretsResponse>()),
        ),
        DeleteSecret => op("Delete a secret", None, 204, None),
        CreateLoginConfig => op(
            "Create an OTP login config",
            Some(s.of::<LoginConfigInput>()),
            201,
            Some(s.of::<mgmt::LoginConfigResponse>()),
        ),
        ListLoginConfigs => op(
            "List the OTP login configs",
            None,
            200,
            Some(s.of::<mgmt::LoginConfigsResponse>()),
        ),
        ReplaceLoginConfig => op(
            "Replace an OTP login config",
            Some(s.of::<LoginConfigInput>()),
            200,
            Some(s.of::<mgmt::LoginConfigResponse>()),
        ),
        DeleteLoginConfig => op("Delete an OTP login config", None, 204, None),
        CreateTemplate => op(
            "Create a message template",
            Some(s.of::<TemplateInput>()),
            201,
            Some(s.of::<mgmt::TemplateResponse>()),
        ),
        ListTemplates => op(
            "List the message templates",
            None,
            200,
            Some(s.of::<mgmt::TemplatesResponse>()),
        ),
        ReplaceTemplate => op(
            "Replace a message template",
            Some(s.of::<TemplateInput>()),
            200,
            Some(s.of::<mgmt::TemplateResponse>()),
        ),
        DeleteTemplate => op("Delete a message template", None, 204, None),
        CreateTestIdentifier => op(
            "Create a test identifier with a fixed code",
            Some(s.of::<TestIdentifierInput>()),
            201,
            Some(s.of::<mgmt::TestIdentifierResponse>()),
        ),
        ListTestIdentifiers => op(
            "List the test identifiers",
            None,
            200,
            Some(s.of::<mgmt::TestIdentifiersResponse>()),
        ),
        DeleteTestIdentifier => op("Delete a test identifier", None, 204, None),
        PutSmsCountries => op(
            "Set the regions SMS may go to",
            Some(s.of::<mgmt::SmsCountriesBody>()),
            200,
            Some(s.of::<views::SmsCountriesResponse>()),
        ),
        GetSmsCountries => op(
            "Get the regions SMS may go to",
            None,
            200,
            Some(s.of::<views::SmsCountriesResponse>()),
        ),
        PutSmsBudgets => op(
            "Set the SMS budgets",
            Some(s.of::<SmsBudgets>()),
            200,
            Some(s.of::<views::SmsBudgetsResponse>()),
        ),
        GetSmsBudgets => op(
            "Get the SMS budgets",
            None,
            200,
            Some(s.of::<views::SmsBudgetsResponse>()),
        ),
        ListSmsRegions => op(
            "List the regions SMS went to, with their verification rates",
            None,
            200,
            Some(s.of::<mgmt::SmsRegionsResponse>()),
        ),
        ResetSmsRegion => op(
            "Resume SMS to a region the verification floor paused",
            None,
            200,
            Some(s.of::<mgmt::SmsRegionResponse>()),
        ),
        RotateKeys => op(
            "Rotate the app's JWT signing key",
            None,
            200,
            Some(s.of::<mgmt::RotateKeysResponse>()),
        ),
        ListPublicTokens => op(
            "List the public tokens of the frontend API",
            None,
            200,
            Some(s.of::<mgmt::PublicTokensResponse>()),
        ),
        CreatePublicToken => op(
            "Add a public token",
            None,
            201,
            Some(s.of::<mgmt::PublicTokenResponse>()),
        ),
        DeletePublicToken => op("Delete a public token", None, 204, None),
        GetFrontendSettings => op(
            "Get the frontend API settings",
            None,
            200,
            Some(s.of::<mgmt::FrontendSettingsResponse>()),
        ),
        PutFrontendSettings => op(
            "Set the frontend API settings",
            Some(s.of::<SettingsInput>()),
            200,
            Some(s.of::<mgmt::FrontendSettingsResponse>()),
        ),
        SmsLoginOrCreate => op(
            "Send a code by SMS, creating the user if new",
            Some(s.of::<login::SendBody>()),
            200,
            Some(s.of::<login::SmsLoginOrCreateResponse>()),
        ),
        SmsSend => op(
            "Send a code by SMS to an existing user",
            Some(s.of::<login::SendBody>()),
            200,
            Some(s.of::<login::SmsSendResponse>()),
        ),
        EmailLoginOrCreate => op(
            "Send a code by email, creating the user if new",
            Some(s.of::<login::SendBody>()),
            200,
            Some(s.of::<login::EmailLoginOrCreateResponse>()),
        ),
        EmailSend => op(
            "Send a code by email to an existing user",
            Some(s.of::<login::SendBody>()),
            200,
            Some(s.of::<login::EmailSendResponse>()),
        ),
        OtpAuthenticate => op(
            "Check a code; start or extend a session",
            Some(s.of::<login::AuthenticateBody>()),
            200,
            Some(s.of::<login::OtpAuthenticateResponse>()),
        ),
        SessionsAuthenticate => op(
            "Check a session (token or JWT); extend it",
            Some(s.of::<login::SessionsAuthenticateBody>()),
            200,
            Some(s.of::<login::SessionsAuthenticateResponse>()),
        ),
        SessionsRevoke => op(
            "Revoke a session",
            Some(s.of::<login::RevokeBody>()),
            200,
            Some(s.of::<login::EmptyResponse>()),
        ),
        SessionsList => Operation {
            query: &[("user_id", true, "the user whose live sessions are listed")],
            ..op(
                "List a user's live sessions",
                None,
                200,
                Some(s.of::<login::SessionsListResponse>()),
            )
        },
        SessionsJwks => op(
            "The app's public signing keys (cacheable; `If-None-Match` answers 304)",
            None,
            200,
            Some(s.of::<login::JwksResponse>()),
        ),
        UsersGet => op("Get a user", None, 200, Some(s.of::<views::UserView>())),
        UsersDelete => op(
            "Delete a user and their sessions",
            None,
            200,
            Some(s.of::<login::UsersDeleteResponse>()),
        ),
        // Its page is HTML: `route_operation` describes that content.
        ErrorsReference => op(
            "The errors reference, the page every `error_url` points into",
            None,
            200,
            None,
        ),
        SdkBootstrap => op(
            "The project settings the frontend SDK reads",
            None,
            200,
            Some(s.of::<frontend::BootstrapResponse>()),
        ),
        SdkSmsLoginOrCreate => op(
            "Send a code by SMS from a web page",
            Some(s.of::<frontend::SendBody>()),
            200,
            Some(s.of::<frontend::SmsLoginOrCreateResponse>()),
        ),
        SdkEmailLoginOrCreate => op(
            "Send a code by email from a web page",
            Some(s.of::<frontend::SendBody>()),
            200,
            Some(s.of::<frontend::EmailLoginOrCreateResponse>()),
        ),
        SdkOtpAuthenticate => op(
            "Check a code from a web page; start a session",
            Some(s.of::<frontend::AuthenticateBody>()),
            200,
            Some(s.of::<login::OtpAuthenticateResponse>()),
        ),
        SdkSessionsAuthenticate => op(
            "Check the caller's session; extend it",
            Some(s.of::<frontend::SessionsAuthenticateBody>()),
            200,
            Some(s.of::<login::SessionsAuthenticateResponse>()),
        ),
        SdkSessionsRevoke => op(
            "Revoke the caller's session",
            None,
            200,
            Some(s.of::<login::EmptyResponse>()),
        ),
        SdkUsersMe => op(
            "The caller's user",
            None,
            200,
            Some(s.of::<views::UserView>()),
        ),
        SdkEvents => op(
            "The SDK's telemetry: accepted and dropped",
            Some(json!({})),
            200,
            Some(s.of::<login::EmptyResponse>()),
        ),
        SdkPreflight => op("CORS preflight of every frontend route", None, 204, None),
    }
}

/// The fields every success body of a dialect carries beside its own.
fn reply_fields(dialect: Dialect) -> Value {
    let request_id =
        json!({"type": "string", "description": "the request's id (also `x-request-id`)"});
    match dialect {
        Dialect::Management => json!({
            "type": "object",
            "required": ["request_id"],
            "properties": {"request_id": request_id},
        }),
        _ => json!({
            "type": "object",
            "required": ["status_code", "request_id"],
            "properties": {"status_code": {"type": "integer"}, "request_id": request_id},
        }),
    }
}

fn success_body(dialect: Dialect, schema: Value) -> Value {
    let body = json!({"allOf": [schema, reply_fields(dialect)]});
    match dialect {
        Dialect::Frontend => json!({
            "type": "object",
            "required": ["data"],
            "properties": {"data": body},
        }),
        _ => body,
    }
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// The error statuses a route can answer: what every route of its dialect can, and what only
/// some do (sends fail upstream with 502; the frontend refuses foreign origins with 403).
fn error_statuses(route: &Route) -> Vec<(u16, &'static str)> {
    let send = matches!(
        route.id,
        RouteId::SmsLoginOrCreate
            | RouteId::SmsSend
            | RouteId::EmailLoginOrCreate
            | RouteId::EmailSend
            | RouteId::SdkSmsLoginOrCreate
            | RouteId::SdkEmailLoginOrCreate
    );
    // Routes that read nothing a request names: only the body checks can refuse them.
    let unauthenticated = matches!(
        route.id,
        RouteId::SdkEvents | RouteId::SdkPreflight | RouteId::ErrorsReference
    );
    let mut statuses = vec![
        (413, "the body is larger than 16 KiB"),
        (415, "a body that is not `application/json`"),
    ];
    if !unauthenticated {
        statuses.extend([
            (400, "the request is malformed or invalid"),
            (404, "something the request names does not exist"),
            (500, "an internal error (logged)"),
            (503, "a dependency is unavailable; retry"),
        ]);
        if route.dialect != Dialect::Public {
            statuses.extend([
                (401, "missing or wrong credentials"),
                (409, "the request conflicts with what exists"),
                (429, "a rate limit or budget; see `Retry-After`"),
            ]);
        }
    }
    if route.dialect == Dialect::Frontend && !unauthenticated {
        statuses.push((
            403,
            "the page's origin is not one of the app's authorized origins",
        ));
    }
    if send {
        statuses.push((502, "the SMS or email provider refused the message"));
    }
    statuses.sort_unstable();
    statuses
}

/// An OpenAPI path: API Gateway's greedy `{name+}` becomes `{name}`.
pub fn openapi_path(path: &str) -> String {
    path.replace("+}", "}")
}

fn path_parameters(route: &Route) -> Vec<Value> {
    route
        .path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| match name.strip_suffix('+') {
            Some(name) => json!({
                "name": name, "in": "path", "required": true,
                "description": "one or more path segments (API Gateway's greedy `{proxy+}`)",
                "schema": {"type": "string"},
            }),
            None => {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            }
        })
        .collect()
}

fn security(route: &Route) -> Value {
    match (route.dialect, route.id) {
        (Dialect::Management, _) => json!([{"managementKey": []}]),
        (Dialect::Login, _) => json!([{"appSecret": []}]),
        (Dialect::Public, _)
        | (_, RouteId::SdkBootstrap | RouteId::SdkEvents | RouteId::SdkPreflight) => json!([]),
        (Dialect::Frontend, _) => json!([{"publicToken": []}]),
    }
}

fn route_operation(route: &Route, schemas: &mut Schemas) -> Value {
    let spec = operation(route.id, schemas);
    let error_schema = match route.dialect {
        Dialect::Management => schemas.of::<ManagementErrorBody>(),
        _ => schemas.of::<LoginErrorBody>(),
    };
    let mut responses = serde_json::Map::new();
    let (status, success) = spec.success;
    let success = match success {
        Some(schema) => json!({
            "description": "success",
            "content": json_content(success_body(route.dialect, schema)),
        }),
        None if route.id == RouteId::ErrorsReference => json!({
            "description": "an HTML page with a section per error type (`#<error_type>`)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }),
        None => json!({"description": "success, no content"}),
    };
    responses.insert(status.to_string(), success);
    if route.id == RouteId::SessionsJwks {
        responses.insert(
            "304".into(),
            json!({"description": "not modified (`If-None-Match`)"}),
        );
    }
    for (status, description) in error_statuses(route) {
        responses.insert(
            status.to_string(),
            json!({"description": description, "content": json_content(error_schema.clone())}),
        );
    }
    let mut parameters = path_parameters(route);
    parameters.extend(spec.query.iter().map(|(name, required, description)| {
        json!({"name": name, "in": "query", "required": required,
            "description": description, "schema": {"type": "string"}})
    }));
    let mut operation = json!({
        "operationId": route.function,
        "summary": spec.summary,
        "tags": [match route.dialect {
            Dialect::Management => "management",
            Dialect::Login | Dialect::Public => "login",
            Dialect::Frontend => "frontend",
        }],
        "security": security(route),
        "responses": responses,
    });
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = spec.body {
        // An empty body is read as `{}`, so no body is ever required.
        operation["requestBody"] = json!({"required": false, "content": json_content(body)});
    }
    operation
}

/// The whole document, or the names of the schemas that two different structs claimed.
pub fn document() -> Result<Value, Vec<String>> {
    let mut schemas = Schemas::default();
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let operation = route_operation(route, &mut schemas);
        let item = paths
            .entry(openapi_path(route.path))
            .or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = operation;
    }
    if !schemas.conflicts.is_empty() {
        return Err(schemas.conflicts);
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Stytch-compatible Login API (`/v1`), Stytch frontend API (`/sdk/v1`) \
                and Prelude-shaped Management API (`/v2/session`).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "management", "description": "Prelude-shaped; errors `{code, status, message, request_id}`"},
            {"name": "login", "description": "Stytch-shaped; errors `{status_code, request_id, error_type, error_message, error_url}`"},
            {"name": "frontend", "description": "Stytch's frontend API: successes in `{\"data\": ...}`, errors unwrapped; CORS"},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas.by_name,
            "securitySchemes": {
                "managementKey": {"type": "http", "scheme": "bearer",
                    "description": "the deployment's management key"},
                "appSecret": {"type": "http", "scheme": "basic",
                    "description": "`app_id:secret`"},
                "publicToken": {"type": "http", "scheme": "basic",
                    "description": "`public_token:public_token`, or `public_token:session_token` once signed in; \
                        the page's origin must be one of the app's authorized origins"},
            },
        },
    }))
}

/// The document as committed: pretty-printed, keys sorted, a final newline.
pub fn document_text() -> Result<String, Vec<String>> {
    let document = document()?;
    let text = serde_json::to_string_pretty(&document).map_err(|e| vec![e.to_string()])?;
    Ok(text + "\n")
}
