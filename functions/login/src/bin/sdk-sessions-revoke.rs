//! `POST /sdk/v1/sessions/revoke`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::SdkSessionsRevoke).await
}
