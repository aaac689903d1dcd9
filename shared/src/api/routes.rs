//! The one list of routes. The local server dispatches with it, each Lambda binary serves one
//! entry of it, and a test checks that `template.yaml` and `functions/` agree with it.

/// Who may call a route and which error shape it answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Prelude-shaped management API, Bearer management key.
    Management,
    /// Stytch-shaped login API, Basic app_id:secret.
    Login,
    /// Stytch-shaped, no credentials (the JWKS).
    Public,
    /// Stytch's frontend API (`/sdk/v1`), called from web pages: a public token (Basic
    /// `public_token:public_token`, or `public_token:session_token` once signed in) and an
    /// authorized origin; successes wrapped in `{"data": ...}`, CORS on every answer.
    Frontend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    CreateApp,
    GetApp,
    CreateSecret,
    ListSecrets,
    DeleteSecret,
    CreateLoginConfig,
    ListLoginConfigs,
    ReplaceLoginConfig,
    DeleteLoginConfig,
    CreateTemplate,
    ListTemplates,
    ReplaceTemplate,
    DeleteTemplate,
    CreateTestIdentifier,
    ListTestIdentifiers,
    DeleteTestIdentifier,
    PutSmsCountries,
    GetSmsCountries,
    PutSmsBudgets,
    GetSmsBudgets,
    ListSmsRegions,
    ResetSmsRegion,
    RotateKeys,
    ListPublicTokens,
    CreatePublicToken,
    DeletePublicToken,
    GetFrontendSettings,
    PutFrontendSettings,
    SmsLoginOrCreate,
    SmsSend,
    EmailLoginOrCreate,
    EmailSend,
    OtpAuthenticate,
    SessionsAuthenticate,
    SessionsRevoke,
    SessionsList,
    SessionsJwks,
    UsersGet,
    UsersDelete,
    SdkBootstrap,
    SdkSmsLoginOrCreate,
    SdkEmailLoginOrCreate,
    SdkOtpAuthenticate,
    SdkSessionsAuthenticate,
    SdkSessionsRevoke,
    SdkUsersMe,
    SdkEvents,
    /// CORS preflight of every frontend route.
    SdkPreflight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub id: RouteId,
    pub method: &'static str,
    /// API Gateway route syntax: `{name}` is one path segment.
    pub path: &'static str,
    /// The Lambda binary (and `functions/<package>/src/bin/<function>.rs`) that serves it.
    pub function: &'static str,
    /// The crate under `functions/` that holds the binary.
    pub package: &'static str,
    pub dialect: Dialect,
}

const fn route(
    id: RouteId,
    method: &'static str,
    path: &'static str,
    function: &'static str,
    package: &'static str,
    dialect: Dialect,
) -> Route {
    Route {
        id,
        method,
        path,
        function,
        package,
        dialect,
    }
}

use Dialect::{Frontend, Login, Management, Public};
use RouteId::*;

const MGMT: &str = "management";
const SEND: &str = "otp-send";
const LOGIN: &str = "login";

pub const ROUTES: &[Route] = &[
    route(
        CreateApp,
        "POST",
        "/v2/session/apps",
        "create-app",
        MGMT,
        Management,
    ),
    route(
        GetApp,
        "GET",
        "/v2/session/apps/{app_id}",
        "get-app",
        MGMT,
        Management,
    ),
    route(
        CreateSecret,
        "POST",
        "/v2/session/apps/{app_id}/secrets",
        "create-secret",
        MGMT,
        Management,
    ),
    route(
        ListSecrets,
        "GET",
        "/v2/session/apps/{app_id}/secrets",
        "list-secrets",
        MGMT,
        Management,
    ),
    route(
        DeleteSecret,
        "DELETE",
        "/v2/session/apps/{app_id}/secrets/{secret_id}",
        "delete-secret",
        MGMT,
        Management,
    ),
    route(
        CreateLoginConfig,
        "POST",
        "/v2/session/apps/{app_id}/config/login/otp",
        "create-login-config",
        MGMT,
        Management,
    ),
    route(
        ListLoginConfigs,
        "GET",
        "/v2/session/apps/{app_id}/config/login/otp",
        "list-login-configs",
        MGMT,
        Management,
    ),
    route(
        ReplaceLoginConfig,
        "PUT",
        "/v2/session/apps/{app_id}/config/login/otp/{config_id}",
        "replace-login-config",
        MGMT,
        Management,
    ),
    route(
        DeleteLoginConfig,
        "DELETE",
        "/v2/session/apps/{app_id}/config/login/otp/{config_id}",
        "delete-login-config",
        MGMT,
        Management,
    ),
    route(
        CreateTemplate,
        "POST",
        "/v2/session/apps/{app_id}/templates",
        "create-template",
        MGMT,
        Management,
    ),
    route(
        ListTemplates,
        "GET",
        "/v2/session/apps/{app_id}/templates",
        "list-templates",
        MGMT,
        Management,
    ),
    route(
        ReplaceTemplate,
        "PUT",
        "/v2/session/apps/{app_id}/templates/{template_id}",
        "replace-template",
        MGMT,
        Management,
    ),
    route(
        DeleteTemplate,
        "DELETE",
        "/v2/session/apps/{app_id}/templates/{template_id}",
        "delete-template",
        MGMT,
        Management,
    ),
    route(
        CreateTestIdentifier,
        "POST",
        "/v2/session/apps/{app_id}/test_identifiers",
        "create-test-identifier",
        MGMT,
        Management,
    ),
    route(
        ListTestIdentifiers,
        "GET",
        "/v2/session/apps/{app_id}/test_identifiers",
        "list-test-identifiers",
        MGMT,
        Management,
    ),
    route(
        DeleteTestIdentifier,
        "DELETE",
        "/v2/session/apps/{app_id}/test_identifiers/{id}",
        "delete-test-identifier",
        MGMT,
        Management,
    ),
    route(
        PutSmsCountries,
        "PUT",
        "/v2/session/apps/{app_id}/sms_countries",
        "put-sms-countries",
        MGMT,
        Management,
    ),
    route(
        GetSmsCountries,
        "GET",
        "/v2/session/apps/{app_id}/sms_countries",
        "get-sms-countries",
        MGMT,
        Management,
    ),
    route(
        PutSmsBudgets,
        "PUT",
        "/v2/session/apps/{app_id}/sms_budgets",
        "put-sms-budgets",
        MGMT,
        Management,
    ),
    route(
        GetSmsBudgets,
        "GET",
        "/v2/session/apps/{app_id}/sms_budgets",
        "get-sms-budgets",
        MGMT,
        Management,
    ),
    route(
        ListSmsRegions,
        "GET",
        "/v2/session/apps/{app_id}/sms_regions",
        "list-sms-regions",
        MGMT,
        Management,
    ),
    route(
        ResetSmsRegion,
        "POST",
        "/v2/session/apps/{app_id}/sms_regions/{region}/reset",
        "reset-sms-region",
        MGMT,
        Management,
    ),
    route(
        RotateKeys,
        "POST",
        "/v2/session/apps/{app_id}/keys/rotate",
        "rotate-keys",
        MGMT,
        Management,
    ),
    route(
        ListPublicTokens,
        "GET",
        "/v2/session/apps/{app_id}/public_tokens",
        "list-public-tokens",
        MGMT,
        Management,
    ),
    route(
        CreatePublicToken,
        "POST",
        "/v2/session/apps/{app_id}/public_tokens",
        "create-public-token",
        MGMT,
        Management,
    ),
    route(
        DeletePublicToken,
        "DELETE",
        "/v2/session/apps/{app_id}/public_tokens/{public_token}",
        "delete-public-token",
        MGMT,
        Management,
    ),
    route(
        GetFrontendSettings,
        "GET",
        "/v2/session/apps/{app_id}/frontend_settings",
        "get-frontend-settings",
        MGMT,
        Management,
    ),
    route(
        PutFrontendSettings,
        "PUT",
        "/v2/session/apps/{app_id}/frontend_settings",
        "put-frontend-settings",
        MGMT,
        Management,
    ),
    route(
        SmsLoginOrCreate,
        "POST",
        "/v1/otps/sms/login_or_create",
        "otp-sms-login-or-create",
        SEND,
        Login,
    ),
    route(
        SmsSend,
        "POST",
        "/v1/otps/sms/send",
        "otp-sms-send",
        SEND,
        Login,
    ),
    route(
        EmailLoginOrCreate,
        "POST",
        "/v1/otps/email/login_or_create",
        "otp-email-login-or-create",
        SEND,
        Login,
    ),
    route(
        EmailSend,
        "POST",
        "/v1/otps/email/send",
        "otp-email-send",
        SEND,
        Login,
    ),
    route(
        OtpAuthenticate,
        "POST",
        "/v1/otps/authenticate",
        "otp-authenticate",
        LOGIN,
        Login,
    ),
    route(
        SessionsAuthenticate,
        "POST",
        "/v1/sessions/authenticate",
        "sessions-authenticate",
        LOGIN,
        Login,
    ),
    route(
        SessionsRevoke,
        "POST",
        "/v1/sessions/revoke",
        "sessions-revoke",
        LOGIN,
        Login,
    ),
    route(
        SessionsList,
        "GET",
        "/v1/sessions",
        "sessions-list",
        LOGIN,
        Login,
    ),
    route(
        SessionsJwks,
        "GET",
        "/v1/sessions/jwks/{app_id}",
        "sessions-jwks",
        LOGIN,
        Public,
    ),
    route(
        UsersGet,
        "GET",
        "/v1/users/{user_id}",
        "users-get",
        LOGIN,
        Login,
    ),
    route(
        UsersDelete,
        "DELETE",
        "/v1/users/{user_id}",
        "users-delete",
        LOGIN,
        Login,
    ),
    route(
        SdkBootstrap,
        "GET",
        "/sdk/v1/projects/bootstrap/{public_token}",
        "sdk-bootstrap",
        LOGIN,
        Frontend,
    ),
    route(
        SdkSmsLoginOrCreate,
        "POST",
        "/sdk/v1/otps/sms/login_or_create",
        "sdk-otp-sms-login-or-create",
        SEND,
        Frontend,
    ),
    route(
        SdkEmailLoginOrCreate,
        "POST",
        "/sdk/v1/otps/email/login_or_create",
        "sdk-otp-email-login-or-create",
        SEND,
        Frontend,
    ),
    route(
        SdkOtpAuthenticate,
        "POST",
        "/sdk/v1/otps/authenticate",
        "sdk-otp-authenticate",
        LOGIN,
        Frontend,
    ),
    route(
        SdkSessionsAuthenticate,
        "POST",
        "/sdk/v1/sessions/authenticate",
        "sdk-sessions-authenticate",
        LOGIN,
        Frontend,
    ),
    route(
        SdkSessionsRevoke,
        "POST",
        "/sdk/v1/sessions/revoke",
        "sdk-sessions-revoke",
        LOGIN,
        Frontend,
    ),
    route(
        SdkUsersMe,
        "GET",
        "/sdk/v1/users/me",
        "sdk-users-me",
        LOGIN,
        Frontend,
    ),
    route(
        SdkEvents,
        "POST",
        "/sdk/v1/events",
        "sdk-events",
        LOGIN,
        Frontend,
    ),
    route(
        SdkPreflight,
        "OPTIONS",
        "/sdk/v1/{proxy+}",
        "sdk-preflight",
        LOGIN,
        Frontend,
    ),
];

impl RouteId {
    pub fn route(self) -> &'static Route {
        // Every RouteId has exactly one entry (checked by a test).
        ROUTES.iter().find(|r| r.id == self).unwrap_or(&ROUTES[0])
    }
}

/// Matches a request path against a route template, returning the path parameters.
pub fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut template_parts = template.trim_matches('/').split('/');
    let mut path_parts = path
        .trim_end_matches('/')
        .trim_start_matches('/')
        .split('/');
    loop {
        match (template_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(t), Some(p)) => {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix("+}")) {
                    // A greedy parameter (`{proxy+}`, last): the rest of the path.
                    let rest: Vec<&str> = std::iter::once(p).chain(path_parts).collect();
                    if rest.iter().any(|part| part.is_empty()) {
                        return None;
                    }
                    params.push((name.to_owned(), rest.join("/")));
                    return Some(params);
                } else if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    if p.is_empty() {
                        return None;
                    }
                    params.push((name.to_owned(), p.to_owned()));
                } else if t != p {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// What a method and path resolve to.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found(&'static Route, Vec<(String, String)>),
    /// The path exists, but not for this method.
    MethodNotAllowed,
    NotFound,
}

pub fn find_route(method: &str, path: &str) -> RouteMatch {
    let mut path_known = false;
    for route in ROUTES {
        if let Some(params) = match_path(route.path, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return RouteMatch::Found(route, params);
            }
            path_known = true;
        }
    }
    if path_known {
        RouteMatch::MethodNotAllowed
    } else {
        RouteMatch::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_route_is_unique_and_every_function_name_distinct() {
        let mut keys = HashSet::new();
        let mut functions = HashSet::new();
        let mut ids = HashSet::new();
        for r in ROUTES {
            assert!(keys.insert((r.method, r.path)), "{r:?}");
            assert!(functions.insert(r.function), "{r:?}");
            assert!(ids.insert(r.id), "{r:?}");
            assert_eq!(r.id.route(), r);
        }
    }

    #[test]
    fn paths_match_with_parameters() {
        assert_eq!(
            find_route("DELETE", "/v2/session/apps/app-1/secrets/sec_2"),
            RouteMatch::Found(
                DeleteSecret.route(),
                vec![
                    ("app_id".into(), "app-1".into()),
                    ("secret_id".into(), "sec_2".into())
                ]
            )
        );
        assert_eq!(
            find_route("GET", "/v1/sessions"),
            RouteMatch::Found(SessionsList.route(), vec![])
        );
        assert_eq!(
            find_route("PATCH", "/v1/sessions"),
            RouteMatch::MethodNotAllowed
        );
        assert_eq!(find_route("GET", "/v1/nothing"), RouteMatch::NotFound);
        assert_eq!(
            find_route("OPTIONS", "/sdk/v1/otps/sms/login_or_create"),
            RouteMatch::Found(
                SdkPreflight.route(),
                vec![("proxy".into(), "otps/sms/login_or_create".into())]
            )
        );
        assert_eq!(
            find_route("POST", "/sdk/v1/otps/authenticate"),
            RouteMatch::Found(SdkOtpAuthenticate.route(), vec![])
        );
        assert_eq!(find_route("OPTIONS", "/sdk/v1/"), RouteMatch::NotFound);
        assert_eq!(find_route("OPTIONS", "/sdk/v1//x"), RouteMatch::NotFound);
        assert_eq!(
            find_route("GET", "/v2/session/apps//secrets"),
            RouteMatch::NotFound
        );
    }
}
