//! `POST /sdk/v1/sessions/authenticate`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::SdkSessionsAuthenticate).await
}
