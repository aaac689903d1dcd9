//! Test only: the store-sensitive part of the adversarial suite, run through
//! `shared::api::handle` on the deployment's store, `DynamoStore`, against the AWS stand-in
//! (moto, as `scripts/with-moto.sh` starts it). The suite itself is
//! `shared/tests/adversarial_*.rs`, on the in-memory adapters; the tests here are ports of the
//! parts whose outcome depends on the store, each on a fresh table:
//!
//! - `tests/concurrency.rs`: 100 racing authenticates with the right code (one 200, one
//!   session), 100 racing wrong codes (exactly five counted; the user's lock count exact), a
//!   right code racing wrong guesses, wrong guesses spread over three codes stopping at the user
//!   lock, 50 racing login_or_create for one new number and 30 for one email in three spellings
//!   (one user), 40 racing sends against the cooldown and the per-IP window (the rate-limit
//!   counters are the adapter's optimistic-concurrency writes).
//! - `tests/replay.rs`: used, expired and replaced codes, codes of another app and another
//!   user's method, another app's session token and JWT, revoked and expired sessions, test
//!   identifier codes past `valid_until` and deletion, management ids across apps, and requests
//!   refused before the code is spent.
//! - `tests/faults.rs`: a wrapper that fails the Nth store call (`StoreError::Unavailable` and
//!   `StoreError::Other`) or the delivery, swept over every call of sms and email
//!   login_or_create (new and existing user), of authenticate (right and wrong code) and of
//!   sessions.authenticate: a clear 503/500/502, no duplicated user, no usable code the user did
//!   not receive, and the retry succeeds; the real SNS sender failing (unreachable endpoint)
//!   likewise. Then the failure only a remote store has: the call commits and its answer is
//!   lost (`FaultKind::Lost`), swept over login_or_create and authenticate, where only the
//!   security properties can be promised (no second user, no code used twice, no count lost).
//! - `tests/secrets.rs`: after a full flow, a `Scan` of the whole table holds no app secret,
//!   session token, JWT, code, test identifier's fixed code, management key or code key.
//! - `tests/input_sample.rs`: a sample of the hostile-input corpus, on the values that reach the
//!   store (see below).
//!
//! Every test skips (prints a notice and passes) when `AWS_ENDPOINT_URL_DYNAMODB` is not set, so
//! a plain `cargo test` passes without moto.
//!
//! # What moto shows, and what it does not
//!
//! moto serves one request at a time (`scripts/moto_serialized.py`), so every DynamoDB call is
//! atomic, as on DynamoDB, and the racing requests interleave at every call. A race here shows
//! that the adapter's conditions and transactions are right under the interleavings that
//! occurred; the in-memory suite (with a yield before every store call) shows the domain right
//! under every interleaving of atomic port operations. moto does not throttle, does not expire
//! items by TTL, and its `gsi1` is consistent: the fault tests inject throttling above the store
//! instead, and every expiry is the domain's own check of `expires_at` under a fake clock.
//!
//! # Why the hostile-input corpus stays on the in-memory adapters
//!
//! `shared/tests/adversarial_input.rs` throws thousands of hostile requests (bad credentials,
//! oversized and malformed bodies, hostile path parameters, wrong types and extreme values in
//! every field, unicode phone numbers, proptest bodies, headers and ids) at every route. The
//! parser, the validation and the handlers it exercises are the same code whichever store is
//! behind them, and a value reaches the store only after it was validated and normalized: ids
//! only when they parse as ids of their kind, phone numbers only as E.164, emails only as
//! validated lower-cased addresses, numbers only within their ranges. So the store cannot make
//! any of those requests answer differently, except where a validated value is still free-form
//! and becomes part of an item: a DynamoDB key (at most 2048 bytes for a partition key, 1024 for
//! a sort key) or an attribute (items of at most 400 KB). `tests/input_sample.rs` runs exactly
//! those on `DynamoStore` (about 800 requests): every free-form field of every route with a
//! body (ids, tokens, enums and booleans skipped) with 18 values (long, unicode, bidi-control,
//! NUL-bearing and key-separator-bearing strings, deep and odd structures, extreme numbers), a
//! 15 000-byte `ip_address` (part of a rate-limit key) and long `user_agent`s, hostile path
//! parameters and other apps' ids on every route that takes one, unicode spellings of a phone
//! number, and `#`-bearing and 254-byte email addresses (also as test identifiers). The full
//! corpus on moto would take tens of minutes for no further coverage.
