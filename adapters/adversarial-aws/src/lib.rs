//! Test only: the adversarial suite of the domain (`shared::adversarial`, behind the feature
//! `adversarial-tests` of `otp-shared`) on the deployment's store, `DynamoStore`, against the AWS
//! stand-in (moto, as `scripts/with-moto.sh` starts it). The suite is written once, generic over
//! its `Backend`; `shared/tests/adversarial.rs` runs all of it in memory, and
//! `tests/dynamodb.rs` here runs it on DynamoDB: one test per behaviour, each on a fresh table,
//! with
//!
//! - everything stored read back by a consistent `Scan` of the table (the secrets-at-rest
//!   checks, and the users and sessions no port lists);
//! - the sample of the hostile-input corpus (`Corpus::Sample`: the values that can reach an
//!   item once validated; `shared::adversarial::input` says which and why), about a thousand
//!   requests instead of several thousand;
//! - faults below the store from the SDK interceptor of `store_dynamodb::testing`: answers lost
//!   after DynamoDB applied the request (the SDK retries with the same `ClientRequestToken`),
//!   throttling, and transaction conflicts, on every operation of a clean run of each request;
//!   and the suite's own faults above the store (the call not made, or made and its answer
//!   lost), as in memory.
//!
//! A test needs `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`): without it, it passes after
//! a notice, except under CI (`CI` set), where it fails.
//!
//! # What moto shows, and what it does not
//!
//! moto serves one request at a time (`scripts/moto_serialized.py`), so every DynamoDB call is
//! atomic, as on DynamoDB, and racing requests interleave at every call. A race here shows that
//! the adapter's conditions and transactions are right under the interleavings that occurred;
//! the in-memory run (with yields around every store call) shows the domain right under many
//! interleavings of atomic port operations. moto does not throttle and does not expire items by
//! TTL: throttling and conflicts come from the interceptor, and every expiry is the domain's own
//! check under a fake clock.
