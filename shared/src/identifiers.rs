//! Phone numbers and email addresses, parsed at the edge into types that cannot hold a bad value.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A valid phone number in E.164 form (`+12025550100`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts international numbers (a leading `+`, spaces and punctuation allowed) that
    /// libphonenumber considers valid for their country, and normalizes them to E.164.
    pub fn parse(text: &str) -> Option<PhoneNumber> {
        let trimmed = text.trim();
        if !trimmed.starts_with('+') || trimmed.len() > 32 {
            return None;
        }
        let number = phonenumber::parse(None, trimmed).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        Some(PhoneNumber(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country calling code without `+` (`"1"`, `"44"`).
    pub fn calling_code(&self) -> String {
        phonenumber::parse(None, &self.0)
            .map(|n| n.code().value().to_string())
            .unwrap_or_default()
    }

    /// The ISO 3166 region the number belongs to (`"US"`, `"JM"`), when the library knows it.
    pub fn region(&self) -> Option<String> {
        phonenumber::parse(None, &self.0)
            .ok()
            .and_then(|n| n.country().id())
            .map(|id| id.as_ref().to_owned())
    }

    /// The first `digits` digits of the number, its country code included (`+` left out): the
    /// block of numbers it is in.
    pub fn prefix(&self, digits: usize) -> &str {
        let number = self.0.trim_start_matches('+');
        number.get(..digits.min(number.len())).unwrap_or(number)
    }

    /// The number for logs: country code and the last two digits only.
    pub fn redacted(&self) -> String {
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("+{}…{}", self.calling_code(), tail)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid email address, lower-cased so that lookups are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(text: &str) -> Option<EmailAddress> {
        let trimmed = text.trim();
        if trimmed.len() > 254 || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let parsed: email_address::EmailAddress = trimmed.parse().ok()?;
        // Display names (`Ann <ann@example.com>`) are not addresses; a domain needs a dot.
        if parsed.as_str() != trimmed || !parsed.domain().contains('.') {
            return None;
        }
        Some(EmailAddress(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address for logs: first character of the local part and the domain.
    pub fn redacted(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first: String = local.chars().take(1).collect();
        format!("{first}…@{domain}")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's login identifier: what is unique per app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Identifier {
    Phone(PhoneNumber),
    Email(EmailAddress),
}

impl Identifier {
    pub fn as_str(&self) -> &str {
        match self {
            Identifier::Phone(p) => p.as_str(),
            Identifier::Email(e) => e.as_str(),
        }
    }

    pub fn redacted(&self) -> String {
        match self {
            Identifier::Phone(p) => p.redacted(),
            Identifier::Email(e) => e.redacted(),
        }
    }

    /// Parses either kind: a leading `+` means a phone number.
    pub fn parse(text: &str) -> Option<Identifier> {
        if text.trim_start().starts_with('+') {
            PhoneNumber::parse(text).map(Identifier::Phone)
        } else {
            EmailAddress::parse(text).map(Identifier::Email)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_valid_numbers_to_e164() {
        assert_eq!(
            PhoneNumber::parse("+1 (202) 555-0100").map(|p| p.0),
            Some("+12025550100".to_owned())
        );
        assert_eq!(
            PhoneNumber::parse("+44 20 7946 0958").map(|p| p.0),
            Some("+442079460958".to_owned())
        );
    }

    #[test]
    fn refuses_invalid_numbers() {
        for text in [
            "",
            "12025550100",
            "+1555",
            "+15555550100",
            "+999123456",
            "+1 202 555 01000 7",
            "phone",
        ] {
            assert_eq!(PhoneNumber::parse(text), None, "{text}");
        }
    }

    #[test]
    fn calling_code_and_redaction() {
        let number = PhoneNumber::parse("+442079460958").unwrap();
        assert_eq!(number.calling_code(), "44");
        assert_eq!(number.redacted(), "+44…58");
    }

    #[test]
    fn region_and_prefix() {
        let us = PhoneNumber::parse("+12025550100").unwrap();
        assert_eq!(us.region().as_deref(), Some("US"));
        assert_eq!(us.prefix(8), "12025550");
        assert_eq!(us.prefix(40), "12025550100");
        let jamaica = PhoneNumber::parse("+18765550100").unwrap();
        assert_eq!(jamaica.region().as_deref(), Some("JM"));
        assert_eq!(jamaica.calling_code(), "1");
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            EmailAddress::parse("Ann.Lee@Example.COM").map(|e| e.0),
            Some("ann.lee@example.com".to_owned())
        );
        for text in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "Ann <ann@example.com>",
        ] {
            assert_eq!(EmailAddress::parse(text), None, "{text}");
        }
        assert_eq!(
            EmailAddress::parse("ann@example.com").unwrap().redacted(),
            "a…@example.com"
        );
    }

    proptest! {
        #[test]
        fn phone_parse_never_panics_and_is_idempotent(text in "\\PC{0,40}") {
            if let Some(number) = PhoneNumber::parse(&text) {
                prop_assert_eq!(PhoneNumber::parse(number.as_str()), Some(number.clone()));
                prop_assert!(number.as_str().starts_with('+'));
            }
        }

        #[test]
        fn email_parse_never_panics_and_is_idempotent(text in "\\PC{0,60}") {
            if let Some(email) = EmailAddress::parse(&text) {
                prop_assert_eq!(EmailAddress::parse(email.as_str()), Some(email.clone()));
            }
        }

        #[test]
        fn digit_strings_with_plus_either_parse_to_e164_or_fail(digits in "[0-9]{4,16}") {
            if let Some(number) = PhoneNumber::parse(&format!("+{digits}")) {
                prop_assert!(number.as_str()[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
