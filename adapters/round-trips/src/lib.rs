//! Test-only crate: `tests/round_trips.rs` drives every route of `shared::api::ROUTES` over the
//! DynamoDB, SNS and SES v2 adapters, counts the AWS SDK calls each request makes, and fails when
//! an endpoint makes more than the table in the workspace README documents. Nothing here is built
//! into the service.
