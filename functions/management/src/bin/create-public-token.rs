//! `POST /v2/session/apps/{app_id}/public_tokens`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::CreatePublicToken).await
}
