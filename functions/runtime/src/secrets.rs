//! The deployment's secrets at cold start: only those the function's route needs
//! (`RouteId::secrets`), each read from AWS Secrets Manager when its `<NAME>_SECRET_ARN` is set
//! (the deployed stack: the environment holds ARNs, never values), else taken from `<NAME>`
//! itself (a local run). The reads run at once, one `GetSecretValue` per secret.

use std::sync::Arc;

use async_trait::async_trait;
use shared::api::RouteId;
use shared::crypto::{CodeHasher, KeyEncryptionKey, ManagementKeyHash};
use shared::jwt::JwtKeys;
use shared::secrets::Secret;
use shared::service::Keys;

/// Reads one secret's value by its ARN.
#[async_trait]
pub trait SecretReader: Send + Sync {
    async fn read(&self, arn: &str) -> Result<String, String>;
}

/// AWS Secrets Manager, through the client built in `main`.
pub struct SecretsManager(pub aws_sdk_secretsmanager::Client);

#[async_trait]
impl SecretReader for SecretsManager {
    async fn read(&self, arn: &str) -> Result<String, String> {
        let output = self
            .0
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                // The SDK's error names the operation and AWS's code, never the value.
                format!(
                    "GetSecretValue: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            })?;
        output
            .secret_string
            .ok_or_else(|| "the secret has no SecretString".to_owned())
    }
}

/// Where a secret came from: an ARN (read) or the value itself.
enum Source {
    Arn(String),
    Value(String),
    Missing,
}

fn source(secret: Secret, lookup: &impl Fn(&str) -> Option<String>) -> Source {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    match (set(secret.arn_env()), set(secret.value_env())) {
        (Some(arn), _) => Source::Arn(arn.trim().to_owned()),
        (None, Some(value)) => Source::Value(value),
        (None, None) => Source::Missing,
    }
}

/// The keys `route` needs, from `lookup` (the environment) and `reader`. A missing or malformed
/// secret stops the cold start with a message naming the variable, never the value.
pub async fn keys_for_route(
    route: RouteId,
    lookup: impl Fn(&str) -> Option<String>,
    reader: Arc<dyn SecretReader>,
) -> Result<Keys, String> {
    let mut reads = tokio::task::JoinSet::new();
    let mut given = Vec::new();
    for &secret in route.secrets() {
        match source(secret, &lookup) {
            Source::Arn(arn) => {
                let reader = reader.clone();
                reads.spawn(async move {
                    let value = reader
                        .read(&arn)
                        .await
                        .map_err(|e| format!("{} ({}): {e}", secret.arn_env(), secret.describe()));
                    (secret, value)
                });
            }
            Source::Value(value) => given.push((secret, value)),
            Source::Missing if secret.optional() => {}
            Source::Missing => {
                return Err(format!(
                    "{} must be set to the ARN of the Secrets Manager secret holding {} \
                     (or {} to the value itself, for a local run); see README: Deploy",
                    secret.arn_env(),
                    secret.describe(),
                    secret.value_env()
                ));
            }
        }
    }
    while let Some(read) = reads.join_next().await {
        let (secret, value) = read.map_err(|e| format!("a secret read failed: {e}"))?;
        given.push((secret, value?));
    }
    let mut keys = Keys::default();
    for (secret, value) in given {
        install(&mut keys, secret, &value)?;
    }
    Ok(keys)
}

fn install(keys: &mut Keys, secret: Secret, value: &str) -> Result<(), String> {
    let bad = |why: String| format!("{} ({}): {why}", secret.describe(), secret.value_env());
    match secret {
        Secret::ManagementKey => {
            keys.management_key =
                Some(ManagementKeyHash::from_hex(value.trim()).ok_or_else(|| {
                    bad("must be the 64 hex digits of the management key's SHA-256".into())
                })?);
        }
        Secret::CodeHashKey => {
            keys.code_hasher = Some(CodeHasher::new(value.as_bytes()).map_err(bad)?);
        }
        Secret::KeyEncryptionKey => {
            keys.key_encryption = Some(KeyEncryptionKey::from_secret(value).map_err(bad)?);
        }
        Secret::LegacySigningKey => {
            // A PEM passed through a one-line parameter may carry `\n` for its line breaks.
            let pem = if value.contains('\n') {
                value.to_owned()
            } else {
                value.replace("\\n", "\n")
            };
            let signing = JwtKeys::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
            keys.legacy_signing = Some(Arc::new(signing));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Secrets by ARN, and every ARN read.
    #[derive(Default)]
    struct Vault {
        values: HashMap<String, String>,
        reads: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl SecretReader for Vault {
        async fn read(&self, arn: &str) -> Result<String, String> {
            self.reads.lock().unwrap().push(arn.to_owned());
            self.values
                .get(arn)
                .cloned()
                .ok_or_else(|| "ResourceNotFoundException".to_owned())
        }
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn vault() -> Arc<Vault> {
        Arc::new(Vault {
            values: HashMap::from([
                ("arn:management".to_owned(), HASH.to_owned()),
                ("arn:code".to_owned(), "c".repeat(40)),
                ("arn:kek".to_owned(), "k".repeat(40)),
            ]),
            ..Vault::default()
        })
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const ALL_ARNS: &[(&str, &str)] = &[
        ("MANAGEMENT_KEY_SHA256_SECRET_ARN", "arn:management"),
        ("CODE_HASH_KEY_SECRET_ARN", "arn:code"),
        ("KEY_ENCRYPTION_KEY_SECRET_ARN", "arn:kek"),
    ];

    #[tokio::test]
    async fn a_function_reads_only_the_secrets_of_its_route() {
        let vault = vault();
        let keys = keys_for_route(RouteId::SmsSend, env(ALL_ARNS), vault.clone())
            .await
            .unwrap();
        assert!(keys.code_hasher.is_some());
        assert!(keys.management_key.is_none() && keys.key_encryption.is_none());
        assert_eq!(*vault.reads.lock().unwrap(), vec!["arn:code".to_owned()]);

        let vault = super::tests::vault();
        let keys = keys_for_route(RouteId::CreateApp, env(ALL_ARNS), vault.clone())
            .await
            .unwrap();
        assert!(keys.management_key.is_some() && keys.key_encryption.is_some());
        assert!(keys.code_hasher.is_none() && keys.legacy_signing.is_none());
        let mut reads = vault.reads.lock().unwrap().clone();
        reads.sort();
        assert_eq!(
            reads,
            vec!["arn:kek".to_owned(), "arn:management".to_owned()]
        );

        let vault = super::tests::vault();
        let keys = keys_for_route(RouteId::UsersGet, env(ALL_ARNS), vault.clone())
            .await
            .unwrap();
        assert!(keys.management_key.is_none() && keys.code_hasher.is_none());
        assert!(vault.reads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn values_may_be_given_directly_for_a_local_run() {
        let keys = keys_for_route(
            RouteId::OtpAuthenticate,
            env(&[
                ("CODE_HASH_KEY", &"c".repeat(32)),
                ("KEY_ENCRYPTION_KEY", &"k".repeat(32)),
            ]),
            vault(),
        )
        .await
        .unwrap();
        assert!(keys.code_hasher.is_some() && keys.key_encryption.is_some());
        // The legacy key is optional.
        assert!(keys.legacy_signing.is_none());
    }

    #[tokio::test]
    async fn a_missing_unreadable_or_malformed_secret_stops_the_start_naming_it() {
        let missing = keys_for_route(RouteId::SmsSend, env(&[]), vault())
            .await
            .unwrap_err();
        assert!(missing.contains("CODE_HASH_KEY_SECRET_ARN"), "{missing}");

        let unreadable = keys_for_route(
            RouteId::SmsSend,
            env(&[("CODE_HASH_KEY_SECRET_ARN", "arn:nowhere")]),
            vault(),
        )
        .await
        .unwrap_err();
        assert!(
            unreadable.contains("CODE_HASH_KEY_SECRET_ARN"),
            "{unreadable}"
        );
        assert!(
            unreadable.contains("ResourceNotFoundException"),
            "{unreadable}"
        );

        let short = keys_for_route(
            RouteId::SmsSend,
            env(&[("CODE_HASH_KEY", "too short, and a secret")]),
            vault(),
        )
        .await
        .unwrap_err();
        assert!(short.contains("CODE_HASH_KEY"), "{short}");
        assert!(!short.contains("too short, and a secret"), "{short}");

        let not_hex = keys_for_route(
            RouteId::GetApp,
            env(&[("MANAGEMENT_KEY_SHA256", "the-key-itself")]),
            vault(),
        )
        .await
        .unwrap_err();
        assert!(not_hex.contains("64 hex digits"), "{not_hex}");
        assert!(!not_hex.contains("the-key-itself"), "{not_hex}");
    }
}
