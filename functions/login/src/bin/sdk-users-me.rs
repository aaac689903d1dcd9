//! `GET /sdk/v1/users/me`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::SdkUsersMe).await
}
