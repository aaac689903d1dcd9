//! The functions' secrets read from Secrets Manager (moto, through scripts/with-moto.sh) the way
//! a cold start reads them: by the ARNs in the environment, only the route's.

use std::collections::HashMap;
use std::sync::Arc;

use function_runtime::secrets::{SecretsManager, keys_for_route};
use shared::api::RouteId;
use shared::random::{OsRandom, random_token};

/// moto's endpoint is set, or `false`; on CI (`CI` set) a missing endpoint fails the test
/// instead of letting it pass without running.
fn moto_is_running() -> bool {
    let running = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| !e.is_empty());
    assert!(
        running || std::env::var("CI").map_or(true, |v| v.is_empty()),
        "CI is set but AWS_ENDPOINT_URL is not: run the tests through scripts/with-moto.sh"
    );
    running
}

#[tokio::test]
async fn a_cold_start_reads_its_routes_secrets_by_arn() {
    if !moto_is_running() {
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (scripts/with-moto.sh sets it)");
        return;
    }
    let aws = function_runtime::lambda_aws_config()
        .await
        .expect("AWS_REGION is set by scripts/with-moto.sh");
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    let suffix = random_token(&OsRandom)[..12].to_owned();
    let mut arns = HashMap::new();
    for (variable, value) in [
        ("CODE_HASH_KEY_SECRET_ARN", "c".repeat(48)),
        ("KEY_ENCRYPTION_KEY_SECRET_ARN", "k".repeat(64)),
        (
            "MANAGEMENT_KEY_SHA256_SECRET_ARN",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
        ),
    ] {
        let created = client
            .create_secret()
            .name(format!("{variable}-{suffix}"))
            .secret_string(value)
            .send()
            .await
            .expect("create_secret");
        arns.insert(variable.to_owned(), created.arn.expect("an ARN"));
    }
    let reader = Arc::new(SecretsManager(client));
    let lookup = |arns: HashMap<String, String>| move |name: &str| arns.get(name).cloned();

    let keys = keys_for_route(
        RouteId::OtpAuthenticate,
        lookup(arns.clone()),
        reader.clone(),
    )
    .await
    .expect("the secrets of otp-authenticate");
    assert!(keys.code_hasher.is_some() && keys.key_encryption.is_some());
    assert!(keys.management_key.is_none(), "not a secret of this route");

    let keys = keys_for_route(RouteId::CreateApp, lookup(arns.clone()), reader.clone())
        .await
        .expect("the secrets of create-app");
    assert!(keys.management_key.is_some() && keys.key_encryption.is_some());

    // A secret that is not there stops the start, naming the variable.
    let mut wrong = arns.clone();
    wrong.insert(
        "CODE_HASH_KEY_SECRET_ARN".into(),
        format!("{}-gone", arns["CODE_HASH_KEY_SECRET_ARN"]),
    );
    let error = keys_for_route(RouteId::SmsSend, lookup(wrong), reader)
        .await
        .expect_err("a missing secret is an error");
    assert!(error.contains("CODE_HASH_KEY_SECRET_ARN"), "{error}");
    assert!(!error.contains(&"c".repeat(48)), "{error}");
}
