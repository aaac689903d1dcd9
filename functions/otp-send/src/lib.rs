//! What the four sending functions share: SNS for SMS, SES v2 for email.

use std::sync::Arc;

use aws_config::SdkConfig;
use delivery_aws::{SesEmail, SnsSms};
use function_runtime::Delivery;

/// The senders, from the AWS configuration loaded once per cold start. Emails go out under the
/// SES configuration set `SES_CONFIGURATION_SET` when it is set.
pub fn aws_delivery(aws: &SdkConfig) -> Delivery {
    let configuration_set = std::env::var("SES_CONFIGURATION_SET")
        .ok()
        .filter(|name| !name.trim().is_empty());
    Delivery {
        sms: Arc::new(SnsSms::from_sdk_config(aws)),
        email: Arc::new(SesEmail::from_sdk_config(aws, configuration_set)),
    }
}
