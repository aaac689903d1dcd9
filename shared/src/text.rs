//! Characters that free-form text given to the management API must not hold: control characters
//! (a CR LF in an email subject would reach the message's headers) and the bidirectional
//! embedding, override and isolate controls that make text display in another order than it
//! reads (the "Trojan Source" characters: U+202A-U+202E, U+2066-U+2069).
//!
//! The directional *marks* (U+200E LEFT-TO-RIGHT MARK, U+200F RIGHT-TO-LEFT MARK, U+061C ARABIC
//! LETTER MARK) are allowed everywhere: they reorder nothing beyond the neutral characters next
//! to them, and text in Arabic or Hebrew needs them.

use crate::error::Error;

/// The bidirectional embedding, override and isolate controls.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first character of `text` that `refused` says no to, with its position (in characters,
/// from 1), as a 400 naming `field`.
fn first_refused(
    field: &str,
    text: &str,
    refused: impl Fn(char) -> bool,
    rule: &str,
) -> Result<(), Error> {
    match text.chars().enumerate().find(|(_, c)| refused(*c)) {
        None => Ok(()),
        Some((at, c)) => Err(Error::BadRequest(format!(
            "{field} must not contain {rule}; found U+{:04X} at character {}",
            u32::from(c),
            at + 1
        ))),
    }
}

/// A one-line value (an app name, an email subject): no control character at all (line breaks
/// and tabs included, and the Unicode line and paragraph separators U+2028 and U+2029), no
/// bidirectional embedding, override or isolate.
pub fn check_single_line(field: &str, text: &str) -> Result<(), Error> {
    first_refused(
        field,
        text,
        |c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_bidi_control(c),
        "control characters (line breaks and tabs included) or bidirectional embedding, \
         override or isolate characters",
    )
}

/// A message body (a template's text or HTML): line feeds, carriage returns and tabs are
/// allowed; any other control character (C0, DEL, C1) and the bidirectional embedding,
/// override and isolate characters are not.
pub fn check_multi_line(field: &str, text: &str) -> Result<(), Error> {
    first_refused(
        field,
        text,
        |c| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_control(c),
        "control characters other than line breaks and tabs, or bidirectional embedding, \
         override or isolate characters",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(result: Result<(), Error>) -> Option<String> {
        result.err().map(|e| e.to_string())
    }

    #[test]
    fn one_line_values_refuse_every_control_and_bidi_override() {
        for text in [
            "Acme",
            "Acme & Co.",
            "Código {{code}}",
            "קוד\u{200F} {{code}}",
            "رمز\u{061C} {{code}}",
            "\u{200E}Acme",
            "😀",
            "",
        ] {
            assert_eq!(message(check_single_line("name", text)), None, "{text:?}");
        }
        for (text, found) in [
            ("Hi\r\nBcc: x@example.com", "U+000D at character 3"),
            ("Hi\nthere", "U+000A at character 3"),
            ("Hi\tthere", "U+0009 at character 3"),
            ("\u{0}", "U+0000 at character 1"),
            ("a\u{1B}[31m", "U+001B at character 2"),
            ("a\u{7F}", "U+007F at character 2"),
            ("a\u{85}", "U+0085 at character 2"),
            ("a\u{9F}", "U+009F at character 2"),
            ("a\u{2028}b", "U+2028 at character 2"),
            ("a\u{2029}b", "U+2029 at character 2"),
            ("gnp.\u{202E}exe", "U+202E at character 5"),
            ("\u{202A}", "U+202A at character 1"),
            ("\u{202B}", "U+202B at character 1"),
            ("\u{202C}", "U+202C at character 1"),
            ("\u{202D}", "U+202D at character 1"),
            ("\u{2066}a\u{2069}", "U+2066 at character 1"),
            ("a\u{2067}", "U+2067 at character 2"),
            ("a\u{2068}", "U+2068 at character 2"),
        ] {
            let m = message(check_single_line("subject", text)).unwrap_or_default();
            assert!(
                m.starts_with("subject must not contain") && m.ends_with(found),
                "{text:?}: {m}"
            );
        }
    }

    #[test]
    fn bodies_allow_line_breaks_and_tabs_only() {
        for text in [
            "Code {{code}}\r\n\tThanks",
            "a\nb",
            "a\u{2028}b",
            "<p>\u{200F}</p>",
        ] {
            assert_eq!(message(check_multi_line("text", text)), None, "{text:?}");
        }
        for (text, found) in [
            ("a\u{0}", "U+0000 at character 2"),
            ("a\u{8}", "U+0008 at character 2"),
            ("a\u{B}", "U+000B at character 2"),
            ("a\u{C}", "U+000C at character 2"),
            ("a\u{1B}", "U+001B at character 2"),
            ("a\u{7F}", "U+007F at character 2"),
            ("a\u{85}", "U+0085 at character 2"),
            ("<b>\u{202E}</b>", "U+202E at character 4"),
            ("\u{2066}", "U+2066 at character 1"),
        ] {
            let m = message(check_multi_line("html", text)).unwrap_or_default();
            assert!(
                m.starts_with("html must not contain") && m.ends_with(found),
                "{text:?}: {m}"
            );
        }
    }

    proptest! {
        #[test]
        fn what_passes_holds_no_refused_character(
            text in "\\PC{0,30}|[\\x00-\\x1f\\u{2028}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}a ]{0,10}",
        ) {
            if check_single_line("name", &text).is_ok() {
                prop_assert!(!text.chars().any(|c| c.is_control() || is_bidi_control(c)));
                prop_assert!(check_multi_line("text", &text).is_ok());
            }
            if check_multi_line("text", &text).is_ok() {
                let refused = |c: char| (c.is_control() && !"\r\n\t".contains(c)) || is_bidi_control(c);
                prop_assert!(!text.chars().any(refused));
            }
        }
    }
}
