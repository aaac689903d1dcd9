//! `DELETE /v2/session/apps/{app_id}/test_identifiers/{id}`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::DeleteTestIdentifier).await
}
