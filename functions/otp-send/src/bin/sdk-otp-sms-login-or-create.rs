//! `POST /sdk/v1/otps/sms/login_or_create`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve_delivering(
        RouteId::SdkSmsLoginOrCreate,
        otp_send_functions::aws_delivery,
    )
    .await
}
