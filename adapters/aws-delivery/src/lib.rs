//! The AWS adapters of the delivery ports: [`SnsSms`] (SNS `Publish` to a phone number) and
//! [`SesEmail`] (SES v2 `SendEmail` with simple content).
//!
//! A failure is a `DeliveryError` whose message names the service, the operation and the AWS
//! error code (or the transport failure) only: never the code being sent, the phone number or
//! the email address (AWS error messages may quote them, so they are not passed on).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use shared::ports::{DeliveryError, EmailMessage, EmailSender, SmsMessage, SmsSender};

pub use {aws_sdk_sesv2, aws_sdk_sns};

/// Attempts per call, the first included (the SDK's standard retry mode, with backoff).
pub const MAX_ATTEMPTS: u32 = 3;

/// The SNS message attribute that makes an SMS transactional (delivery over cost).
pub const SMS_TYPE_ATTRIBUTE: &str = "AWS.SNS.SMS.SMSType";
/// The SNS message attribute that carries the sender ID, where the country supports one.
pub const SENDER_ID_ATTRIBUTE: &str = "AWS.SNS.SMS.SenderID";

/// A failure by kind: transport, or the service's error code and HTTP status. (Both SDKs
/// re-export the same `SdkError`, `HttpResponse` and `ProvideErrorMetadata`.)
fn failure<E: ProvideErrorMetadata>(
    what: &str,
    error: &SdkError<E, HttpResponse>,
) -> DeliveryError {
    let cause = match error {
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => "service unreachable".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request could not be built".to_owned(),
        SdkError::ServiceError(service) => format!(
            "{} (HTTP {})",
            service.err().code().unwrap_or("no error code"),
            service.raw().status().as_u16()
        ),
        _ => "unexpected SDK error".to_owned(),
    };
    DeliveryError(format!("{what} failed: {cause}"))
}

/// SMS through SNS `Publish` to a phone number, as a transactional message.
#[derive(Debug, Clone)]
pub struct SnsSms {
    client: aws_sdk_sns::Client,
}

impl SnsSms {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        SnsSms { client }
    }

    /// An SNS client from the loaded AWS configuration, with [`MAX_ATTEMPTS`] attempts per call.
    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        let config = aws_sdk_sns::config::Builder::from(config)
            .retry_config(
                aws_sdk_sns::config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS),
            )
            .build();
        Self::new(aws_sdk_sns::Client::from_conf(config))
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, DeliveryError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|_| DeliveryError("SNS Publish failed: request could not be built".to_owned()))
}

#[async_trait]
impl SmsSender for SnsSms {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        let mut request = self
            .client
            .publish()
            .phone_number(message.to.as_str())
            .message(&message.text)
            .message_attributes(SMS_TYPE_ATTRIBUTE, string_attribute("Transactional")?);
        if let Some(sender_id) = &message.sender_id {
            request = request.message_attributes(SENDER_ID_ATTRIBUTE, string_attribute(sender_id)?);
        }
        let output = request
            .send()
            .await
            .map_err(|e| failure("SNS Publish", &e))?;
        tracing::debug!(
            to = %message.to.redacted(),
            message_id = output.message_id().unwrap_or_default(),
            "SMS handed to SNS"
        );
        Ok(())
    }
}

/// Email through SES v2 `SendEmail` (simple content: subject, text and HTML bodies), from
/// `message.from`, optionally under a configuration set (for event publishing).
#[derive(Debug, Clone)]
pub struct SesEmail {
    client: aws_sdk_sesv2::Client,
    configuration_set: Option<String>,
}

impl SesEmail {
    pub fn new(client: aws_sdk_sesv2::Client, configuration_set: Option<String>) -> Self {
        SesEmail {
            client,
            configuration_set,
        }
    }

    /// An SES v2 client from the loaded AWS configuration, with [`MAX_ATTEMPTS`] attempts per call.
    pub fn from_sdk_config(config: &SdkConfig, configuration_set: Option<String>) -> Self {
        let config = aws_sdk_sesv2::config::Builder::from(config)
            .retry_config(
                aws_sdk_sesv2::config::retry::RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS),
            )
            .build();
        Self::new(aws_sdk_sesv2::Client::from_conf(config), configuration_set)
    }
}

fn utf8(data: &str) -> Result<Content, DeliveryError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|_| DeliveryError("SES SendEmail failed: request could not be built".to_owned()))
}

/// A subject on one line: control characters (a CR LF above all) and the Unicode line and
/// paragraph separators become spaces. The management API refuses them in subjects and app
/// names; this keeps any written before it did out of the message's headers.
fn one_line(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The simple-content message: both bodies when both are given, else the one there is.
fn simple_message(message: &EmailMessage) -> Result<Message, DeliveryError> {
    let mut body = Body::builder();
    if !message.text.is_empty() {
        body = body.text(utf8(&message.text)?);
    }
    if !message.html.is_empty() {
        body = body.html(utf8(&message.html)?);
    }
    Ok(Message::builder()
        .subject(utf8(&one_line(&message.subject))?)
        .body(body.build())
        .build())
}

#[async_trait]
impl EmailSender for SesEmail {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let output = self
            .client
            .send_email()
            .from_email_address(&message.from)
            .destination(
                Destination::builder()
                    .to_addresses(message.to.as_str())
                    .build(),
            )
            .content(
                EmailContent::builder()
                    .simple(simple_message(message)?)
                    .build(),
            )
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| failure("SES SendEmail", &e))?;
        tracing::debug!(
            to = %message.to.redacted(),
            message_id = output.message_id().unwrap_or_default(),
            "email handed to SES"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_subject_stays_on_one_line() {
        assert_eq!(
            one_line("Hi\r\nBcc: x@example.com\u{2028}\t"),
            "Hi  Bcc: x@example.com  "
        );
        assert_eq!(one_line("Código für Ümit"), "Código für Ümit");
    }
}
