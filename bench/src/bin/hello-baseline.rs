//! The bare `lambda_http` function every function's cold start is compared with: the same
//! runtime, the same tokio setup and the same release profile, and nothing else.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
