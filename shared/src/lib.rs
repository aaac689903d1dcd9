//! The OTP login service: domain, ports, in-memory adapters and the HTTP handlers that both the
//! Lambda functions and the local server call. Nothing here knows an AWS type.

pub mod api;
pub mod clock;
pub mod crypto;
pub mod error;
pub mod identifiers;
pub mod ids;
pub mod jwt;
pub mod memory;
pub mod model;
pub mod ports;
pub mod random;
pub mod secrets;
pub mod service;
pub mod templates;
pub mod text;

#[cfg(feature = "adversarial-tests")]
pub mod adversarial;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests;

pub use error::Error;
