//! Time as a port, so that expiry is tested with a clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// Seconds since the Unix epoch, UTC. Stored as a number (DynamoDB TTL wants epoch seconds),
/// shown as RFC 3339 (`2026-11-22T03:49:08Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn seconds(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds))
    }

    pub fn plus_minutes(self, minutes: i64) -> Timestamp {
        self.plus_seconds(minutes.saturating_mul(60))
    }

    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp(self.0, 0)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Parses an RFC 3339 timestamp with any offset; sub-second digits are dropped.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Timestamp(t.timestamp()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Timestamp(i64::try_from(seconds).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until the test moves it.
#[derive(Debug)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    pub fn new(start: Timestamp) -> Self {
        FakeClock(AtomicI64::new(start.0))
    }

    pub fn advance_seconds(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc() {
        assert_eq!(
            Timestamp(1_795_307_348).to_rfc3339(),
            "2026-11-22T00:29:08Z"
        );
    }

    #[test]
    fn parses_offsets_to_utc() {
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-22T02:29:08+02:00"),
            Some(Timestamp(1_795_307_348))
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }
}
