//! `POST /v2/session/apps/{app_id}/keys/rotate`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::RotateKeys).await
}
