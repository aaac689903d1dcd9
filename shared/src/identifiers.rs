//! Phone numbers and email addresses, parsed at the edge into types that cannot hold a bad value.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// A valid phone number in E.164 form (`+12025550100`) that can receive SMS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

/// Why a number is refused although it is valid: what libphonenumber says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    PremiumRate,
    SharedCost,
    /// A universal access (company) number.
    Uan,
    PersonalNumber,
    Pager,
    TollFree,
    FixedLine,
    Voicemail,
    ShortCode,
    Emergency,
    /// Of no known type, or of one that does not take SMS (standard rate, carrier-specific).
    Other,
    /// A number of a global service rather than of a country or region: satellite phones
    /// (+870 Inmarsat, +881 Iridium and others), international networks (+882, +883),
    /// international premium rate (+979), international freephone (+800) and the like.
    NonGeographic {
        calling_code: u16,
    },
}

impl fmt::Display for NumberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberKind::PremiumRate => f.write_str("a premium-rate number"),
            NumberKind::SharedCost => f.write_str("a shared-cost number"),
            NumberKind::Uan => f.write_str("a universal access (company) number"),
            NumberKind::PersonalNumber => f.write_str("a personal (forwarding) number"),
            NumberKind::Pager => f.write_str("a pager number"),
            NumberKind::TollFree => f.write_str("a toll-free number"),
            NumberKind::FixedLine => f.write_str("a fixed-line (landline) number"),
            NumberKind::Voicemail => f.write_str("a voicemail access number"),
            NumberKind::ShortCode => f.write_str("a short code"),
            NumberKind::Emergency => f.write_str("an emergency number"),
            NumberKind::Other => f.write_str("a number of a type that does not receive SMS"),
            NumberKind::NonGeographic { calling_code } => write!(
                f,
                "a satellite or other non-geographic number (country calling code +{calling_code})"
            ),
        }
    }
}

/// Why a text is not a [`PhoneNumber`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("the phone number is not a valid number for its country; use E.164, e.g. +12025550100")]
    Invalid,
    #[error("the phone number cannot receive SMS: it is {0}; use a mobile number")]
    CannotReceiveSms(NumberKind),
}

/// Accepts international numbers (a leading `+`, spaces and punctuation allowed) that
/// libphonenumber considers valid for their country.
fn parse_valid_number(text: &str) -> Option<phonenumber::PhoneNumber> {
    let trimmed = text.trim();
    if !trimmed.starts_with('+') || trimmed.len() > 32 {
        return None;
    }
    let number = phonenumber::parse(None, trimmed).ok()?;
    phonenumber::is_valid(&number).then_some(number)
}

fn e164(number: &phonenumber::PhoneNumber) -> String {
    number.format().mode(phonenumber::Mode::E164).to_string()
}

/// The id libphonenumber gives the metadata of global services (non-geographic numbers).
const NON_GEOGRAPHIC: &str = "001";

impl PhoneNumber {
    /// Accepts a number that libphonenumber considers valid for its country and that can
    /// receive SMS (its type is mobile, fixed-line-or-mobile where the two cannot be told apart,
    /// as in North America, or VoIP), and normalizes it to E.164. Premium-rate, shared-cost,
    /// toll-free, UAN, personal, pager, voicemail, fixed-line, short and emergency numbers are
    /// refused, and so are non-geographic ones (satellite phones and other global services).
    pub fn parse(text: &str) -> Result<PhoneNumber, PhoneNumberError> {
        use phonenumber::Type;
        let number = parse_valid_number(text).ok_or(PhoneNumberError::Invalid)?;
        let database = &phonenumber::metadata::DATABASE;
        let metadata = number.metadata(database).ok_or(PhoneNumberError::Invalid)?;
        if metadata.id() == NON_GEOGRAPHIC {
            return Err(PhoneNumberError::CannotReceiveSms(
                NumberKind::NonGeographic {
                    calling_code: number.code().value(),
                },
            ));
        }
        let refused = match number.number_type(database) {
            Type::Mobile | Type::FixedLineOrMobile | Type::Voip => {
                return Ok(PhoneNumber(e164(&number)));
            }
            Type::PremiumRate => NumberKind::PremiumRate,
            Type::SharedCost => NumberKind::SharedCost,
            Type::Uan => NumberKind::Uan,
            Type::PersonalNumber => NumberKind::PersonalNumber,
            Type::Pager => NumberKind::Pager,
            Type::TollFree => NumberKind::TollFree,
            Type::FixedLine => NumberKind::FixedLine,
            Type::Voicemail => NumberKind::Voicemail,
            Type::ShortCode => NumberKind::ShortCode,
            Type::Emergency => NumberKind::Emergency,
            Type::StandardRate | Type::Carrier | Type::NoInternational | Type::Unknown => {
                NumberKind::Other
            }
        };
        Err(PhoneNumberError::CannotReceiveSms(refused))
    }

    /// A number as a store holds it: any valid number, in E.164. Records written before a
    /// number's type was checked (a landline, say) still read back; only `parse` admits new ones.
    pub fn from_stored(text: &str) -> Option<PhoneNumber> {
        parse_valid_number(text).map(|number| PhoneNumber(e164(&number)))
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

    /// The region the number belongs to (`US`, `JM`, `GB`, `IM`, ...): libphonenumber's, which
    /// tells apart the regions that share a calling code.
    pub fn region(&self) -> Option<Region> {
        let number = phonenumber::parse(None, &self.0).ok()?;
        let id = number.country().id()?;
        Region::parse(id.as_ref())
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

/// A region that has phone numbers, by its ISO 3166-1 alpha-2 code as libphonenumber knows it
/// (`US`, `CA`, `JM`, `GB`; also the few it adds, such as `XK`), upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    /// Two letters in any case naming a region libphonenumber has numbers for.
    pub fn parse(text: &str) -> Option<Region> {
        let code = text.trim().to_ascii_uppercase();
        let known = code.len() == 2
            && code.bytes().all(|b| b.is_ascii_uppercase())
            && phonenumber::metadata::DATABASE
                .by_id(code.as_str())
                .is_some();
        known.then_some(Region(code))
    }

    /// A region as a store holds it: two letters, upper-cased, kept even if the library no
    /// longer knows it (it then matches no number), so that a stored list reads back whole.
    pub fn from_stored(text: &str) -> Option<Region> {
        let code = text.trim().to_ascii_uppercase();
        (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())).then_some(Region(code))
    }

    /// Every region whose numbers have this country calling code (`"1"`: the United States,
    /// Canada, Jamaica and 22 more; `"44"`: GB, GG, IM, JE), sorted. The code may have a leading
    /// `+`. `None` when the text is not a calling code (one to three digits, no leading zero);
    /// an empty list when it is the code of no region (a global service's, such as `"800"`, or
    /// an unassigned one).
    pub fn of_calling_code(code: &str) -> Option<Vec<Region>> {
        let digits = code.trim().trim_start_matches('+');
        let valid = (1..=3).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        let value: u16 = digits.parse().ok().filter(|_| valid)?;
        let mut regions: Vec<Region> = phonenumber::metadata::DATABASE
            .region(&value)
            .unwrap_or_default()
            .into_iter()
            .filter_map(Region::parse)
            .collect();
        regions.sort();
        regions.dedup();
        Some(regions)
    }

    /// The regions of several calling codes, each once, sorted: what a list of calling codes
    /// admitted before regions were. Text that is not a calling code adds none.
    pub fn of_calling_codes<S: AsRef<str>>(codes: &[S]) -> Vec<Region> {
        let mut regions: Vec<Region> = codes
            .iter()
            .flat_map(|code| Region::of_calling_code(code.as_ref()).unwrap_or_default())
            .collect();
        regions.sort();
        regions.dedup();
        regions
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region's country calling code (`US` and `JM`: 1), if the library knows the region.
    pub fn calling_code(&self) -> Option<u16> {
        phonenumber::metadata::DATABASE
            .by_id(self.0.as_str())
            .map(|m| m.country_code())
    }

    /// The calling codes of `regions`, for readers of the older, calling-code shape: each once,
    /// in numeric order, as strings without `+`.
    pub fn calling_codes(regions: &[Region]) -> Vec<String> {
        let mut codes: Vec<u16> = regions.iter().filter_map(Region::calling_code).collect();
        codes.sort_unstable();
        codes.dedup();
        codes.iter().map(u16::to_string).collect()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid email address in its canonical form: the local part without
/// unnecessary quotes, in ASCII and lower case; the domain in its IDNA ASCII (punycode) form,
/// lower case. Spellings of one address parse to one value, so that lookups and limits see one
/// identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// The longest address (RFC 5321's path limit less its angle brackets) and local part.
const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_PART_BYTES: usize = 64;

/// `atext` of RFC 5322: what a local part may hold unquoted, besides dots.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// A dot-atom (RFC 5322): atoms of `atext` joined by single dots.
fn is_dot_atom(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// The local part as it is without quotes: a quoted string (`"bomb"`, `"b\omb"`) is unquoted
/// when what it quotes needs no quotes; one that needs them (`"a b"`, `"a..b"`, `"a@b"`) is
/// refused, as is a local part outside ASCII (Amazon SES cannot deliver to one: it does not
/// support SMTPUTF8).
fn canonical_local_part(local: &str) -> Option<String> {
    let unquoted = match local
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(quoted) => {
            let mut out = String::with_capacity(quoted.len());
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next()? } else { c });
            }
            out
        }
        None => local.to_owned(),
    };
    (unquoted.len() <= MAX_LOCAL_PART_BYTES && is_dot_atom(&unquoted))
        .then(|| unquoted.to_ascii_lowercase())
}

/// The domain in IDNA ASCII form (UTS 46, STD3 rules, DNS lengths), lower case. Address
/// literals (`[10.0.0.1]`, `[IPv6:...]`) and IP addresses written as a domain (`10.0.0.1`: a
/// domain whose last label is all digits) are refused, as is a domain without a dot.
fn canonical_domain(domain: &str) -> Option<String> {
    if domain.starts_with('[') {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    let (_, last) = ascii.rsplit_once('.')?;
    if last.is_empty() || last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(ascii)
}

/// The rule of earlier versions: a trimmed, syntactically valid address without a display name,
/// whose domain has a dot, lower-cased.
fn parse_email_as_before(text: &str) -> Option<email_address::EmailAddress> {
    let trimmed = text.trim();
    if trimmed.len() > 4 * MAX_EMAIL_BYTES
        || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let parsed: email_address::EmailAddress = trimmed.parse().ok()?;
    // Display names (`Ann <ann@example.com>`) are not addresses; a domain needs a dot.
    (parsed.as_str() == trimmed && parsed.domain().contains('.')).then_some(parsed)
}

impl EmailAddress {
    /// Parses an address into its canonical form: `"bomb"@example.com` is
    /// `bomb@example.com`, `Bomb@Exämple.com` and `bomb@xn--exmple-cua.com` are both
    /// `bomb@xn--exmple-cua.com`. Refused: quoted local parts that need their quotes, local parts
    /// outside ASCII, IP-address domains, display names, and addresses longer than 254 bytes in
    /// canonical form.
    pub fn parse(text: &str) -> Option<EmailAddress> {
        let parsed = parse_email_as_before(text)?;
        let local = canonical_local_part(parsed.local_part())?;
        let domain = canonical_domain(parsed.domain())?;
        let canonical = format!("{local}@{domain}");
        (canonical.len() <= MAX_EMAIL_BYTES).then_some(EmailAddress(canonical))
    }

    /// An address as a store holds it, as it was written: records written by earlier versions
    /// (which kept quotes and unicode domains, lower-cased) read back unchanged, under the keys
    /// they were written with; only `parse` admits new addresses.
    pub fn from_stored(text: &str) -> Option<EmailAddress> {
        let parsed = parse_email_as_before(text)?;
        (parsed.as_str().len() <= MAX_EMAIL_BYTES)
            .then(|| EmailAddress(parsed.as_str().to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The mailbox that receives the address's mail: the address without its `+tag`
    /// (`bomb+1@example.com` -> `bomb@example.com`). Send limits count on it, so that tags do
    /// not multiply them. An address whose local part starts with `+` is its own mailbox.
    pub fn mailbox(&self) -> EmailAddress {
        match self.0.split_once('@') {
            Some((local, domain)) => match local.split_once('+') {
                Some((base, _)) if !base.is_empty() => EmailAddress(format!("{base}@{domain}")),
                _ => self.clone(),
            },
            None => self.clone(),
        }
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

/// An end user's IP address (`attributes.ip_address`), in one spelling per address: an
/// IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, however written) is the IPv4 address it maps,
/// and IPv6 is in its canonical text (RFC 5952: lower case, zeros compressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpAddress(IpAddr);

impl IpAddress {
    /// An IPv4 or IPv6 address (no zone, no port), surrounding whitespace ignored.
    pub fn parse(text: &str) -> Option<IpAddress> {
        let ip: IpAddr = text.trim().parse().ok()?;
        Some(IpAddress(match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        }))
    }

    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// What the per-IP send window counts on: an IPv4 address, or the /64 prefix of an IPv6
    /// one (`2001:db8:1:2::/64`), the network one subscriber is usually given, whose other
    /// addresses would otherwise each have a window of their own.
    pub fn window_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let prefix = Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64));
                format!("{prefix}/64")
            }
        }
    }
}

impl fmt::Display for IpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
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

    /// Parses either kind: a leading `+` means a phone number (one that can receive SMS).
    pub fn parse(text: &str) -> Option<Identifier> {
        if text.trim_start().starts_with('+') {
            PhoneNumber::parse(text).ok().map(Identifier::Phone)
        } else {
            EmailAddress::parse(text).map(Identifier::Email)
        }
    }

    /// Either kind as a store holds it (see [`PhoneNumber::from_stored`] and
    /// [`EmailAddress::from_stored`]).
    pub fn from_stored(text: &str) -> Option<Identifier> {
        if text.trim_start().starts_with('+') {
            PhoneNumber::from_stored(text).map(Identifier::Phone)
        } else {
            EmailAddress::from_stored(text).map(Identifier::Email)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e164(text: &str) -> Result<String, PhoneNumberError> {
        PhoneNumber::parse(text).map(|p| p.0)
    }

    #[test]
    fn normalizes_numbers_that_receive_sms_to_e164() {
        for (text, expected) in [
            // North America: fixed-line or mobile (the two cannot be told apart).
            ("+1 (202) 555-0100", "+12025550100"),
            ("+1 506 234 5678", "+15062345678"),
            // Mobiles.
            ("+44 7400 123456", "+447400123456"),
            ("+44 7624 123456", "+447624123456"),
            ("+1 876 210 1234", "+18762101234"),
            ("+33 6 12 34 56 78", "+33612345678"),
            ("+49 151 23456789", "+4915123456789"),
            // VoIP.
            ("+44 56 1234 5678", "+445612345678"),
        ] {
            assert_eq!(e164(text), Ok(expected.to_owned()), "{text}");
        }
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
            // Ofcom's drama range is reserved, not allocated: libphonenumber calls it invalid.
            "+44 7700 900123",
        ] {
            assert_eq!(e164(text), Err(PhoneNumberError::Invalid), "{text}");
        }
    }

    #[test]
    fn refuses_valid_numbers_that_cannot_receive_sms() {
        use NumberKind::*;
        let non_geographic = |calling_code| NonGeographic { calling_code };
        for (text, kind) in [
            ("+1 900 234 5678", PremiumRate),
            ("+44 909 123 4567", PremiumRate),
            ("+44 901 234 5678", PremiumRate),
            ("+33 8 91 12 34 56", PremiumRate),
            ("+33 8 84 01 23 45", SharedCost),
            ("+49 180 12345", SharedCost),
            ("+44 55 1234 5678", Uan),
            ("+1 500 234 5678", PersonalNumber),
            ("+44 70 1234 5678", PersonalNumber),
            ("+44 7640 123456", Pager),
            ("+1 800 234 5678", TollFree),
            ("+44 800 123 4567", TollFree),
            ("+44 20 7946 0958", FixedLine),
            ("+33 1 23 45 67 89", FixedLine),
            ("+49 177 991234567", Voicemail),
            ("+979 1 2345 6789", non_geographic(979)),
            ("+881 6 1234 5678", non_geographic(881)),
            ("+870 3 0123 4567", non_geographic(870)),
            ("+870 2 0123 4567", non_geographic(870)),
            ("+882 34 2 1234", non_geographic(882)),
            ("+883 5100 12345", non_geographic(883)),
            ("+800 1234 5678", non_geographic(800)),
            ("+808 1234 5678", non_geographic(808)),
        ] {
            assert_eq!(
                e164(text),
                Err(PhoneNumberError::CannotReceiveSms(kind)),
                "{text}"
            );
        }
    }

    #[test]
    fn region_and_prefix() {
        let us = PhoneNumber::parse("+12025550100").unwrap();
        assert_eq!(us.region().as_ref().map(Region::as_str), Some("US"));
        assert_eq!(us.prefix(8), "12025550");
        assert_eq!(us.prefix(40), "12025550100");
        let jamaica = PhoneNumber::parse("+18765550100").unwrap();
        assert_eq!(jamaica.region().as_ref().map(Region::as_str), Some("JM"));
        assert_eq!(jamaica.calling_code(), "1");
    }

    #[test]
    fn a_refusal_says_why_and_never_echoes_the_number() {
        let message = PhoneNumber::parse("+44 909 123 4567")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "the phone number cannot receive SMS: it is a premium-rate number; use a mobile number"
        );
        let message = PhoneNumber::parse("+881612345678").unwrap_err().to_string();
        assert!(
            message.contains("satellite") && message.contains("+881"),
            "{message}"
        );
        assert!(!message.contains("612345678"), "{message}");
    }

    #[test]
    fn stored_numbers_read_back_whatever_their_type() {
        for text in ["+442079460958", "+19002345678", "+12025550100"] {
            assert_eq!(
                PhoneNumber::from_stored(text).map(|p| p.0),
                Some(text.to_owned())
            );
        }
        assert_eq!(PhoneNumber::from_stored("+15555550100"), None);
    }

    #[test]
    fn calling_code_region_and_redaction() {
        for (text, code, region) in [
            ("+447400123456", "44", "GB"),
            ("+447624123456", "44", "IM"),
            ("+12025550100", "1", "US"),
            ("+15062345678", "1", "CA"),
            ("+18762101234", "1", "JM"),
        ] {
            let number = PhoneNumber::parse(text).unwrap();
            assert_eq!(number.calling_code(), code, "{text}");
            assert_eq!(
                number.region().map(|r| r.0),
                Some(region.to_owned()),
                "{text}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("+447400123456").unwrap().redacted(),
            "+44…56"
        );
    }

    #[test]
    fn regions_are_iso_codes_the_library_knows() {
        for (text, expected) in [("US", "US"), ("us", "US"), (" Gb ", "GB"), ("jm", "JM")] {
            assert_eq!(Region::parse(text).map(|r| r.0), Some(expected.to_owned()));
        }
        for text in ["", "U", "USA", "XX", "ZZ", "001", "1", "U1", "ÜS", "uk"] {
            assert_eq!(Region::parse(text), None, "{text}");
        }
        assert_eq!(Region::parse("US").unwrap().calling_code(), Some(1));
        assert_eq!(Region::parse("GB").unwrap().calling_code(), Some(44));
        assert_eq!(
            Region::from_stored("ZZ").map(|r| r.0),
            Some("ZZ".to_owned())
        );
        assert_eq!(Region::from_stored("ZZ").unwrap().calling_code(), None);
    }

    #[test]
    fn a_calling_code_stands_for_every_region_that_shares_it() {
        let regions = |code: &str| {
            Region::of_calling_code(code)
                .map(|list| list.into_iter().map(|r| r.0).collect::<Vec<_>>())
        };
        let one = regions("1").unwrap();
        assert_eq!(one.len(), 25, "{one:?}");
        for region in ["US", "CA", "JM", "DO", "PR", "BS"] {
            assert!(one.contains(&region.to_owned()), "{region}");
        }
        assert_eq!(regions("+44").unwrap(), ["GB", "GG", "IM", "JE"]);
        assert_eq!(regions("7").unwrap(), ["KZ", "RU"]);
        assert_eq!(regions("33").unwrap(), ["FR"]);
        // Global services and unassigned codes are the codes of no region.
        assert_eq!(regions("800"), Some(Vec::new()));
        assert_eq!(regions("999"), Some(Vec::new()));
        for text in ["", "+", "0", "044", "1234", "1a", "-1", "４４"] {
            assert_eq!(regions(text), None, "{text}");
        }
        let us_jm_gb: Vec<Region> = ["US", "JM", "GB", "IM"]
            .iter()
            .filter_map(|r| Region::parse(r))
            .collect();
        assert_eq!(Region::calling_codes(&us_jm_gb), ["1", "44"]);
    }

    fn canonical(text: &str) -> Option<String> {
        EmailAddress::parse(text).map(|e| e.0)
    }

    #[test]
    fn emails_parse_to_their_canonical_form() {
        for (text, expected) in [
            ("Ann.Lee@Example.COM", "ann.lee@example.com"),
            ("  ann@example.com ", "ann@example.com"),
            // Unnecessary quotes go.
            ("\"bomb\"@example.com", "bomb@example.com"),
            ("\"BOMB\"@example.com", "bomb@example.com"),
            ("\"b\\omb\"@example.com", "bomb@example.com"),
            ("\"bomb.x\"@example.com", "bomb.x@example.com"),
            // The domain in IDNA ASCII form, whichever way it was written.
            ("bomb@exämple.com", "bomb@xn--exmple-cua.com"),
            ("bomb@EXÄMPLE.COM", "bomb@xn--exmple-cua.com"),
            ("bomb@xn--exmple-cua.com", "bomb@xn--exmple-cua.com"),
            ("bomb@XN--EXMPLE-CUA.COM", "bomb@xn--exmple-cua.com"),
            ("bomb@ｅxample.com", "bomb@example.com"),
            ("ann@例え.jp", "ann@xn--r8jz45g.jp"),
            // Tags are part of the address (its own identifier).
            ("bomb+1@example.com", "bomb+1@example.com"),
            ("a#b@example.com", "a#b@example.com"),
        ] {
            assert_eq!(canonical(text), Some(expected.to_owned()), "{text}");
        }
    }

    #[test]
    fn emails_that_are_not_plain_addresses_are_refused() {
        for text in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "Ann <ann@example.com>",
            // Quotes that are needed.
            "\"a b\"@example.com",
            "\"a..b\"@example.com",
            "\"a@b\"@example.com",
            "\".ann\"@example.com",
            "\"\"@example.com",
            // IP addresses instead of a domain.
            "bomb@[10.0.0.1]",
            "bomb@[IPv6:::1]",
            "bomb@[IPv6:2001:db8::1]",
            "bomb@10.0.0.1",
            "bomb@example.123",
            // A local part outside ASCII (SES does not deliver to one).
            "üser@example.com",
            "\"üser\"@example.com",
            // Domains that are not host names.
            "bomb@exa_mple.com",
            "bomb@-example.com",
            "bomb@xn--a.com",
            "bomb@example.com.",
            "bomb@exam\u{202E}ple.com",
            "bomb\u{0}@example.com",
        ] {
            assert_eq!(canonical(text), None, "{text}");
        }
        let longest = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        assert_eq!(canonical(&longest), Some(longest.clone()));
        assert_eq!(canonical(&format!("a{longest}")), None);
        // The quotes do not count against the local part's 64 bytes once they go.
        let quoted = format!("\"{}\"@example.com", "a".repeat(62));
        assert_eq!(
            canonical(&quoted),
            Some(format!("{}@example.com", "a".repeat(62)))
        );
    }

    #[test]
    fn the_mailbox_is_the_address_without_its_tag() {
        for (text, mailbox) in [
            ("bomb@example.com", "bomb@example.com"),
            ("bomb+1@example.com", "bomb@example.com"),
            ("Bomb+Tag+More@Example.com", "bomb@example.com"),
            ("bomb+@example.com", "bomb@example.com"),
            ("+tag@example.com", "+tag@example.com"),
        ] {
            let email = EmailAddress::parse(text).unwrap();
            assert_eq!(email.mailbox().0, mailbox, "{text}");
        }
        assert_eq!(
            EmailAddress::parse("ann@example.com").unwrap().redacted(),
            "a…@example.com"
        );
    }

    #[test]
    fn stored_emails_read_back_as_they_were_written() {
        for text in [
            "\"bomb\"@example.com",
            "bomb@exämple.com",
            "ann@example.com",
        ] {
            assert_eq!(
                EmailAddress::from_stored(text).map(|e| e.0),
                Some(text.to_owned())
            );
        }
        assert_eq!(EmailAddress::from_stored("ann"), None);
    }

    #[test]
    fn ip_addresses_have_one_spelling_and_ipv6_windows_are_per_64() {
        for (text, canonical, window) in [
            ("10.0.0.1", "10.0.0.1", "10.0.0.1"),
            (" 10.0.0.1 ", "10.0.0.1", "10.0.0.1"),
            ("::ffff:10.0.0.1", "10.0.0.1", "10.0.0.1"),
            ("::FFFF:10.0.0.1", "10.0.0.1", "10.0.0.1"),
            ("::ffff:a00:1", "10.0.0.1", "10.0.0.1"),
            ("0:0:0:0:0:ffff:0a00:0001", "10.0.0.1", "10.0.0.1"),
            (
                "0000:0000:0000:0000:0000:FFFF:10.0.0.1",
                "10.0.0.1",
                "10.0.0.1",
            ),
            ("2001:db8:1:2::1", "2001:db8:1:2::1", "2001:db8:1:2::/64"),
            (
                "2001:0DB8:0001:0002:FFFF:0000:0000:0009",
                "2001:db8:1:2:ffff::9",
                "2001:db8:1:2::/64",
            ),
            ("2001:db8:1:3::1", "2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("::1", "::1", "::/64"),
            // IPv4-compatible (deprecated) addresses are IPv6 ones.
            ("::10.0.0.1", "::a00:1", "::/64"),
        ] {
            let ip = IpAddress::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(ip.to_string(), canonical, "{text}");
            assert_eq!(ip.window_key(), window, "{text}");
            assert_eq!(IpAddress::parse(&ip.to_string()), Some(ip), "{text}");
        }
        for text in [
            "",
            "10.0.0",
            "010.0.0.1",
            "10.0.0.1:80",
            "[::1]",
            "fe80::1%eth0",
            "2001:db8::1/64",
            "localhost",
        ] {
            assert_eq!(IpAddress::parse(text), None, "{text}");
        }
    }

    proptest! {
        #[test]
        fn mapped_ipv4_is_the_ipv4_address(a in any::<[u8; 4]>()) {
            let v4 = std::net::Ipv4Addr::from(a);
            let mapped = v4.to_ipv6_mapped();
            let (high, low) = (
                u16::from_be_bytes([a[0], a[1]]),
                u16::from_be_bytes([a[2], a[3]]),
            );
            let spelt_out = format!("0:0:0:0:0:FFFF:{high:X}:{low:X}");
            for text in [mapped.to_string(), spelt_out] {
                let ip = IpAddress::parse(&text).unwrap();
                prop_assert_eq!(ip.to_string(), v4.to_string());
                prop_assert_eq!(ip.window_key(), v4.to_string());
            }
        }

        #[test]
        fn an_ipv6_window_is_its_64(bits in any::<u128>(), other in any::<u64>()) {
            let ip = Ipv6Addr::from(bits);
            prop_assume!(ip.to_ipv4_mapped().is_none());
            let neighbour = Ipv6Addr::from((bits & !(u128::MAX >> 64)) | u128::from(other));
            prop_assume!(neighbour.to_ipv4_mapped().is_none());
            let key = IpAddress::parse(&ip.to_string()).unwrap().window_key();
            prop_assert_eq!(IpAddress::parse(&neighbour.to_string()).unwrap().window_key(), key.clone());
            prop_assert!(key.ends_with("/64"));
        }

        #[test]
        fn phone_parse_never_panics_and_is_idempotent(text in "\\PC{0,40}") {
            if let Ok(number) = PhoneNumber::parse(&text) {
                prop_assert_eq!(PhoneNumber::parse(number.as_str()), Ok(number.clone()));
                prop_assert_eq!(PhoneNumber::from_stored(number.as_str()), Some(number.clone()));
                prop_assert!(number.as_str().starts_with('+'));
                prop_assert!(number.region().is_some());
            }
        }

        #[test]
        fn email_parse_never_panics_and_is_idempotent(text in "\\PC{0,60}") {
            if let Some(email) = EmailAddress::parse(&text) {
                prop_assert_eq!(EmailAddress::parse(email.as_str()), Some(email.clone()));
                prop_assert_eq!(EmailAddress::from_stored(email.as_str()), Some(email.clone()));
                prop_assert!(email.as_str().is_ascii());
                prop_assert_eq!(email.as_str().to_ascii_lowercase(), email.as_str());
                prop_assert_eq!(EmailAddress::parse(email.mailbox().as_str()), Some(email.mailbox()));
            }
        }

        #[test]
        fn quoting_an_atom_changes_nothing(
            local in "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-z0-9_-]{1,10}){0,2}",
            domain in "[a-z]{1,10}\\.(com|org|de)",
        ) {
            let plain = EmailAddress::parse(&format!("{local}@{domain}"));
            prop_assert!(plain.is_some());
            prop_assert_eq!(EmailAddress::parse(&format!("\"{local}\"@{domain}")), plain.clone());
            let upper = format!("{}@{}", local.to_uppercase(), domain.to_uppercase());
            prop_assert_eq!(EmailAddress::parse(&upper), plain);
        }

        #[test]
        fn digit_strings_with_plus_either_parse_to_e164_or_fail(digits in "[0-9]{4,16}") {
            if let Ok(number) = PhoneNumber::parse(&format!("+{digits}")) {
                prop_assert!(number.as_str()[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn calling_codes_and_regions_agree(code in 1u16..1000) {
            if let Some(regions) = Region::of_calling_code(&code.to_string()) {
                for region in &regions {
                    prop_assert_eq!(region.calling_code(), Some(code));
                    prop_assert_eq!(Region::parse(region.as_str()), Some(region.clone()));
                }
                if !regions.is_empty() {
                    prop_assert_eq!(Region::calling_codes(&regions), vec![code.to_string()]);
                }
            }
        }
    }
}
