//! `POST /sdk/v1/otps/email/login_or_create`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve_delivering(
        RouteId::SdkEmailLoginOrCreate,
        otp_send_functions::aws_delivery,
    )
    .await
}
