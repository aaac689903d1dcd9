//! `POST /v1/otps/email/send`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve_delivering(RouteId::EmailSend, otp_send_functions::aws_delivery).await
}
