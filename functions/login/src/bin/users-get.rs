//! `GET /v1/users/{user_id}`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::UsersGet).await
}
