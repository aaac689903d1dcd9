//! `GET /v2/session/apps/{app_id}/frontend_settings`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::GetFrontendSettings).await
}
