//! SDK errors to `StoreError`, by kind (error code, HTTP status, transport failure), never by
//! message text. Messages name the operation and the error code only: DynamoDB messages can
//! quote keys and values, and keys here contain phone numbers and email addresses.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use shared::ports::StoreError;

/// Error codes that mean "try again later": answered as `StoreError::Unavailable` (503) once
/// the SDK's own retries are spent.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Cancellation-reason codes of a transaction that are transient.
pub(crate) const TRANSIENT_REASONS: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

pub(crate) fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

pub(crate) fn sdk_error<E: ProvideErrorMetadata>(
    operation: &'static str,
    error: &SdkError<E, HttpResponse>,
) -> StoreError {
    match error {
        SdkError::TimeoutError(_) => StoreError::Unavailable(format!("{operation}: timed out")),
        SdkError::DispatchFailure(_) => {
            StoreError::Unavailable(format!("{operation}: DynamoDB unreachable"))
        }
        SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{operation}: unreadable response"))
        }
        SdkError::ServiceError(service) => service_error(
            operation,
            service.err().code(),
            service.raw().status().as_u16(),
        ),
        SdkError::ConstructionFailure(_) => {
            StoreError::Other(format!("{operation}: request could not be built"))
        }
        _ => StoreError::Other(format!("{operation}: unexpected SDK error")),
    }
}

/// A service error by its code and HTTP status.
pub(crate) fn service_error(operation: &str, code: Option<&str>, status: u16) -> StoreError {
    let code = code.unwrap_or("no error code");
    if is_transient_code(code) || status >= 500 {
        StoreError::Unavailable(format!("{operation}: {code} (HTTP {status})"))
    } else {
        StoreError::Other(format!("{operation}: {code} (HTTP {status})"))
    }
}

/// A request builder refused its input (a required field missing): a bug in the adapter.
pub(crate) fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    // The build error names the missing field, never a value.
    StoreError::Other(format!("DynamoDB request could not be built: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_unavailable() {
        assert_eq!(
            service_error(
                "GetItem",
                Some("ProvisionedThroughputExceededException"),
                400
            ),
            StoreError::Unavailable(
                "GetItem: ProvisionedThroughputExceededException (HTTP 400)".to_owned()
            )
        );
        for code in [
            "ThrottlingException",
            "RequestLimitExceeded",
            "TransactionConflictException",
        ] {
            assert!(matches!(
                service_error("PutItem", Some(code), 400),
                StoreError::Unavailable(_)
            ));
        }
        assert!(matches!(
            service_error("PutItem", Some("SomethingNew"), 503),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            service_error("PutItem", None, 500),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn other_client_errors_are_other() {
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
        ] {
            assert_eq!(
                service_error("Query", Some(code), 400),
                StoreError::Other(format!("Query: {code} (HTTP 400)"))
            );
        }
    }
}
