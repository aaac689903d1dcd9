//! The login page: `web/dist/` (built by `npm run build` in `web/`, committed) embedded in the
//! binary, so that a fresh clone runs it without npm, and `GET /config.js` made from this
//! server's own values. None of these paths is an API route: they stay out of
//! `shared::api::ROUTES`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};
use serde_json::json;

const INDEX_HTML: &[u8] = include_bytes!("../../web/dist/index.html");
const LOGIN_JS: &[u8] = include_bytes!("../../web/dist/login.js");
const STYLE_CSS: &[u8] = include_bytes!("../../web/dist/style.css");

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The embedded file served at `path`, with its content type.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "/" | "/index.html" => Some((HTML, INDEX_HTML)),
        "/login.js" => Some((JAVASCRIPT, LOGIN_JS)),
        "/style.css" => Some((CSS, STYLE_CSS)),
        _ => None,
    }
}

/// What `config.js` tells the page.
pub struct PageConfig<'a> {
    /// The development app's public token; the page says it is not configured without one.
    pub public_token: Option<&'a str>,
    /// Where the page sends `/sdk/v1/...`: this server's public base URL.
    pub api_base: &'a str,
    /// Whether this server has the development outbox (`GET /_dev/outbox`).
    pub dev_outbox: bool,
    /// The wait between two codes to one identifier, for the page's resend countdown.
    pub send_cooldown_seconds: i64,
}

/// The body of `GET /config.js`: the same assignment a deployer writes by hand (README).
pub fn config_js(config: &PageConfig) -> String {
    let value = json!({
        "publicToken": config.public_token,
        "apiBase": config.api_base.trim_end_matches('/'),
        "devOutbox": config.dev_outbox,
        "sendCooldownSeconds": config.send_cooldown_seconds,
    });
    format!("window.OTP_LOGIN_CONFIG = {value};\n")
}

/// A page response: never cached, so that a rebuilt binary or a restarted server (new token) is
/// seen on the next load.
pub fn response(content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The response for a `GET` of `path`, if it is one of the page's.
pub fn serve(path: &str, config_js: &str) -> Option<Response> {
    if path == "/config.js" {
        return Some(response(JAVASCRIPT, config_js.to_owned()));
    }
    asset(path).map(|(content_type, body)| response(content_type, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_web_dist_is_served() {
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
        let mut names: Vec<String> = std::fs::read_dir(&dist)
            .expect("web/dist")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .collect();
        names.sort();
        assert!(names.contains(&"index.html".to_owned()), "{names:?}");
        for name in names {
            let (_, body) = asset(&format!("/{name}")).unwrap_or_else(|| panic!("/{name}"));
            assert_eq!(
                body,
                std::fs::read(dist.join(&name)).expect("read"),
                "{name}"
            );
        }
        assert_eq!(asset("/").map(|(t, _)| t), Some(HTML));
        assert_eq!(asset("/login.js").map(|(t, _)| t), Some(JAVASCRIPT));
        assert_eq!(asset("/style.css").map(|(t, _)| t), Some(CSS));
        assert!(asset("/nowhere").is_none());
    }

    #[test]
    fn config_js_sets_the_page_config_from_the_server_values() {
        let script = config_js(&PageConfig {
            public_token: Some("public-token-test-abc"),
            api_base: "http://127.0.0.1:3000/",
            dev_outbox: true,
            send_cooldown_seconds: 30,
        });
        let json = script
            .strip_prefix("window.OTP_LOGIN_CONFIG = ")
            .and_then(|rest| rest.strip_suffix(";\n"))
            .expect(&script);
        let value: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(
            value,
            json!({
                "publicToken": "public-token-test-abc",
                "apiBase": "http://127.0.0.1:3000",
                "devOutbox": true,
                "sendCooldownSeconds": 30,
            })
        );
    }
}
