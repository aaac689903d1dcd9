//! Creates the service's table (keys `pk`/`sk`, TTL on `ttl`) if it does not exist, with the
//! standard AWS configuration from the environment (`AWS_ENDPOINT_URL` for moto):
//!
//! ```text
//! cargo run -p store-dynamodb --example create_table -- otp-login-local
//! ```

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use store_dynamodb::{DynamoStore, create_table};

#[tokio::main]
async fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: create_table TABLE_NAME");
        return ExitCode::FAILURE;
    };
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    match create_table(&DynamoStore::client(&config), &name).await {
        Ok(()) => {
            println!("table {name} is ready");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("could not create table {name}: {error}");
            ExitCode::FAILURE
        }
    }
}
