//! `DELETE /v2/session/apps/{app_id}/config/login/otp/{config_id}`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::DeleteLoginConfig).await
}
