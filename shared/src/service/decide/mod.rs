//! The decisions of the login path: pure functions (no I/O, no async) from what a request read,
//! the request, the time and randomness, to the error to answer or the writes to commit. The
//! services in `crate::service` load, call these, commit and deliver.

use crate::clock::Timestamp;

pub mod authenticate;
pub mod budget;
pub mod rate;
pub mod send;

/// Whole seconds from `now` until `until`, at least 1 (a `Retry-After` of 0 would invite a
/// retry that fails again).
pub fn retry_after(now: Timestamp, until: Timestamp) -> u64 {
    u64::try_from(until.seconds() - now.seconds())
        .unwrap_or(0)
        .max(1)
}
