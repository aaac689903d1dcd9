//! Message texts: the built-in templates per locale and the placeholder substitution.

use crate::model::{Channel, Template};

/// Longest SMS text after substitution: 6 segments of 153 GSM-7 characters.
pub const MAX_SMS_CHARS: usize = 918;

/// A message ready for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMessage {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Placeholders<'a> {
    pub code: &'a str,
    pub app_name: &'a str,
    pub expiration_minutes: u32,
}

struct BuiltIn {
    locale: &'static str,
    sms: &'static str,
    subject: &'static str,
    email_text: &'static str,
}

const BUILT_INS: &[BuiltIn] = &[
    BuiltIn {
        locale: "en",
        sms: "Your {{app_name}} code is {{code}}. It expires in {{expiration_minutes}} minutes. Do not share it.",
        subject: "Your {{app_name}} login code",
        email_text: "Your {{app_name}} login code is {{code}}.\n\nIt expires in {{expiration_minutes}} minutes. If you did not ask for it, ignore this email.",
    },
    BuiltIn {
        locale: "es",
        sms: "Tu código de {{app_name}} es {{code}}. Caduca en {{expiration_minutes}} minutos. No lo compartas.",
        subject: "Tu código de acceso a {{app_name}}",
        email_text: "Tu código de acceso a {{app_name}} es {{code}}.\n\nCaduca en {{expiration_minutes}} minutos. Si no lo has pedido, ignora este correo.",
    },
    BuiltIn {
        locale: "fr",
        sms: "Votre code {{app_name}} est {{code}}. Il expire dans {{expiration_minutes}} minutes. Ne le partagez pas.",
        subject: "Votre code de connexion {{app_name}}",
        email_text: "Votre code de connexion {{app_name}} est {{code}}.\n\nIl expire dans {{expiration_minutes}} minutes. Si vous ne l'avez pas demandé, ignorez cet e-mail.",
    },
    BuiltIn {
        locale: "pt-br",
        sms: "Seu código do {{app_name}} é {{code}}. Ele expira em {{expiration_minutes}} minutos. Não o compartilhe.",
        subject: "Seu código de acesso ao {{app_name}}",
        email_text: "Seu código de acesso ao {{app_name}} é {{code}}.\n\nEle expira em {{expiration_minutes}} minutos. Se você não o pediu, ignore este e-mail.",
    },
    BuiltIn {
        locale: "de",
        sms: "Ihr {{app_name}}-Code lautet {{code}}. Er läuft in {{expiration_minutes}} Minuten ab. Geben Sie ihn nicht weiter.",
        subject: "Ihr {{app_name}}-Anmeldecode",
        email_text: "Ihr {{app_name}}-Anmeldecode lautet {{code}}.\n\nEr läuft in {{expiration_minutes}} Minuten ab. Wenn Sie ihn nicht angefordert haben, ignorieren Sie diese E-Mail.",
    },
];

/// The best of `available` for a requested locale: exact match (case-insensitive, `_` as `-`),
/// then the language prefix, else `None`.
pub fn match_locale<'a>(requested: &str, available: &[&'a str]) -> Option<&'a str> {
    let wanted = requested.trim().replace('_', "-").to_ascii_lowercase();
    if let Some(exact) = available.iter().find(|a| a.eq_ignore_ascii_case(&wanted)) {
        return Some(exact);
    }
    let language = wanted.split('-').next().unwrap_or_default();
    available
        .iter()
        .find(|a| a.eq_ignore_ascii_case(language))
        .or_else(|| {
            available.iter().find(|a| {
                a.split('-')
                    .next()
                    .is_some_and(|l| l.eq_ignore_ascii_case(language))
            })
        })
        .copied()
}

fn built_in(locale: Option<&str>) -> &'static BuiltIn {
    let locales: Vec<&str> = BUILT_INS.iter().map(|b| b.locale).collect();
    let chosen = locale
        .and_then(|l| match_locale(l, &locales))
        .unwrap_or("en");
    BUILT_INS
        .iter()
        .find(|b| b.locale == chosen)
        .unwrap_or(&BUILT_INS[0])
}

pub fn substitute(template: &str, values: &Placeholders<'_>) -> String {
    template
        .replace("{{code}}", values.code)
        .replace("{{app_name}}", values.app_name)
        .replace(
            "{{expiration_minutes}}",
            &values.expiration_minutes.to_string(),
        )
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn html_from_text(text: &str) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", escape_html(p).replace('\n', "<br>")))
        .collect();
    format!(
        "<!doctype html><html><body>{}</body></html>",
        paragraphs.join("")
    )
}

/// Renders the message for a channel from the app's template, else the built-in for the locale.
pub fn render(
    channel: Channel,
    template: Option<&Template>,
    locale: Option<&str>,
    values: &Placeholders<'_>,
) -> RenderedMessage {
    match template {
        Some(t) => {
            let text = substitute(&t.text, values);
            let subject = t
                .subject
                .as_deref()
                .map(|s| substitute(s, values))
                .unwrap_or_default();
            // HTML placeholders get the app name escaped; the code is digits.
            let html_values = Placeholders {
                app_name: &escape_html(values.app_name),
                ..*values
            };
            let html = match &t.html {
                Some(h) => substitute(h, &html_values),
                None => html_from_text(&text),
            };
            RenderedMessage {
                subject,
                text,
                html,
            }
        }
        None => {
            let b = built_in(locale);
            let text = substitute(
                if channel == Channel::Sms {
                    b.sms
                } else {
                    b.email_text
                },
                values,
            );
            RenderedMessage {
                subject: substitute(b.subject, values),
                html: html_from_text(&text),
                text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Placeholders<'static> {
        Placeholders {
            code: "012345",
            app_name: "Acme <Shop>",
            expiration_minutes: 2,
        }
    }

    #[test]
    fn locales_match_case_insensitively_then_by_language() {
        let available = ["en", "es", "fr", "pt-br", "de"];
        assert_eq!(match_locale("de-DE", &available), Some("de"));
        assert_eq!(match_locale("PT-BR", &available), Some("pt-br"));
        assert_eq!(match_locale("pt_BR", &available), Some("pt-br"));
        assert_eq!(match_locale("pt-PT", &available), Some("pt-br"));
        assert_eq!(match_locale("ja", &available), None);
    }

    #[test]
    fn built_ins_fall_back_to_english() {
        let de = render(Channel::Sms, None, Some("de-AT"), &values());
        assert!(de.text.starts_with("Ihr Acme <Shop>-Code lautet 012345"));
        let unknown = render(Channel::Sms, None, Some("xx"), &values());
        assert!(unknown.text.starts_with("Your Acme <Shop> code is 012345."));
        let email = render(Channel::Email, None, None, &values());
        assert_eq!(email.subject, "Your Acme <Shop> login code");
        assert!(email.html.contains("Acme &lt;Shop&gt;"));
        assert!(email.html.contains("012345"));
    }

    #[test]
    fn every_built_in_carries_the_code() {
        for b in BUILT_INS {
            for channel in [Channel::Sms, Channel::Email] {
                let m = render(channel, None, Some(b.locale), &values());
                assert!(m.text.contains("012345"), "{} {channel:?}", b.locale);
                assert!(m.text.chars().count() <= MAX_SMS_CHARS);
            }
        }
    }
}
