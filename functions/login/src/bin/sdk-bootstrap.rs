//! `GET /sdk/v1/projects/bootstrap/{public_token}`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::SdkBootstrap).await
}
