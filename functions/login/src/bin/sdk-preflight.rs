//! `OPTIONS /sdk/v1/{proxy+}`

use shared::api::RouteId;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    function_runtime::serve(RouteId::SdkPreflight).await
}
