//! `POST /v1/otps/sms/send`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve_delivering(RouteId::SmsSend, otp_send_functions::aws_delivery).await
}
