//! The errors reference (`docs/errors.md`) as a web page, which every error's `error_url`
//! points into (`.../docs/errors#<error_type>`): each deployment serves the reference of its own
//! version.

use std::collections::HashMap;
use std::sync::OnceLock;

use pulldown_cmark::{Options, Parser, html};

const ERRORS_MARKDOWN: &str = include_str!("../../../docs/errors.md");

/// The path of the page, below the service's public base URL.
pub const ERRORS_PATH: &str = "/docs/errors";

/// Where an `error_type` (or a management `code`) is explained.
pub fn error_url(public_base_url: &str, error_type: &str) -> String {
    format!(
        "{}{ERRORS_PATH}#{error_type}",
        public_base_url.trim_end_matches('/')
    )
}

/// GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces as
/// `-`; a repeat gets `-1`, `-2`... (so links written for GitHub work on the page too).
fn anchor(heading: &str, seen: &mut HashMap<String, usize>) -> String {
    let slug: String = heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect();
    let count = seen.entry(slug.clone()).or_insert(0);
    let id = if *count == 0 {
        slug.clone()
    } else {
        format!("{slug}-{count}")
    };
    *count += 1;
    id
}

/// The markdown with an explicit `{#id}` on every heading outside code blocks.
fn with_heading_ids(markdown: &str) -> String {
    let mut seen = HashMap::new();
    let mut in_code = false;
    let mut out = String::with_capacity(markdown.len() + 2048);
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let heading = (!in_code)
            .then(|| line.trim_start_matches('#'))
            .filter(|rest| rest.len() < line.len() && rest.starts_with(' '));
        match heading {
            Some(text) => {
                let plain = text.replace('`', "");
                out.push_str(&format!("{line} {{#{}}}\n", anchor(&plain, &mut seen)));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The reference as one HTML page (rendered once per process).
pub fn errors_page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let markdown = with_heading_ids(ERRORS_MARKDOWN);
        let options = Options::ENABLE_TABLES | Options::ENABLE_HEADING_ATTRIBUTES;
        let mut body = String::new();
        html::push_html(&mut body, Parser::new_ext(&markdown, options));
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Errors reference</title><style>body{{font-family:system-ui,sans-serif;\
             max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
             table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .5rem}}\
             code{{background:#f3f3f3;padding:0 .2rem}}:target{{background:#fff6c8}}</style>\
             </head><body>\n{body}</body></html>\n"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::errors::login_error;
    use crate::error::Error;

    #[test]
    fn every_error_type_has_its_anchor_on_the_page() {
        let page = errors_page();
        let samples = [
            Error::BadRequest(String::new()),
            Error::Unauthorized,
            Error::OriginNotAuthorized,
            Error::InvalidPhoneNumber,
            Error::InvalidSessionDuration,
            Error::OtpCodeNotFound {
                attempts_remaining: None,
            },
            Error::UnableToAuthOtpCode,
            Error::TooManyRequests {
                retry_after_seconds: 1,
            },
            Error::UserLockLimitReached {
                retry_after_seconds: 1,
            },
            Error::SmsDeliveryFailed,
            Error::ServiceUnavailable,
            Error::Internal(String::new()),
        ];
        for error in samples {
            let (_, error_type) = login_error(&error);
            assert!(
                page.contains(&format!("id=\"{error_type}\"")),
                "no anchor for {error_type}"
            );
        }
        // The management part repeats some names: GitHub's `-1` suffix, as its links say.
        assert!(page.contains("id=\"not_found-1\""));
        assert!(page.contains("<table>"));
    }

    #[test]
    fn urls_name_the_page_and_the_error() {
        assert_eq!(
            error_url("https://otp.example.com/", "invalid_email"),
            "https://otp.example.com/docs/errors#invalid_email"
        );
    }
}
