//! `GET /v1/sessions/jwks/{app_id}`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::SessionsJwks).await
}
