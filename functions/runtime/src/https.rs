//! HTTPS for the AWS clients, set up when the first request needs it rather than in `main`, with
//! Mozilla's root certificates compiled in (`webpki-root-certs`) rather than read from the OS.
//!
//! The SDK's default client builds its TLS connector, and reads every OS root certificate (157
//! files on Debian), as soon as a service client is built: in a function's init, whether or not
//! a request ever needs it.

use std::borrow::Cow;
use std::sync::OnceLock;

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// An HTTPS client whose TLS setup waits for the first connection.
#[derive(Debug, Default)]
pub struct LazyHttpsClient {
    client: OnceLock<SharedHttpClient>,
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.client
            .get_or_init(https_client)
            .http_connector(settings, components)
    }

    // What the SDK's own client reports (it goes into the user agent), without building it.
    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

/// The compiled-in roots as one PEM bundle, the form the SDK's trust store takes.
pub fn root_certificates_pem() -> String {
    let mut pem = String::with_capacity(300 * 1024);
    for certificate in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let base64 = STANDARD.encode(certificate.as_ref());
        for line in base64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

/// The SDK's rustls client on aws-lc (as `default-https-client` builds it), trusting only the
/// compiled-in roots.
fn https_client() -> SharedHttpClient {
    let trust_store = TrustStore::empty().with_pem_certificate(root_certificates_pem());
    let context = match TlsContext::builder().with_trust_store(trust_store).build() {
        Ok(context) => context,
        Err(e) => {
            // The builder cannot fail today; should it one day, the OS roots still work.
            tracing::warn!(error = %e, "compiled-in root certificates refused; using the OS's");
            TlsContext::default()
        }
    };
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};

    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_dynamodb::config::Credentials;
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    #[test]
    fn every_compiled_in_root_is_in_the_bundle() {
        let pem = root_certificates_pem();
        let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
        assert_eq!(count, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(count > 100, "{count} roots");
    }

    /// A DynamoDB client on the lazy client builds its connector (parsing every compiled-in
    /// root) at its first request, and gets its answer.
    #[tokio::test]
    async fn a_client_on_it_gets_an_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line.trim().is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}")
                .unwrap();
            String::from_utf8(body).unwrap()
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("id", "secret", None, None, "test"))
            .endpoint_url(format!("http://{address}"))
            .http_client(LazyHttpsClient::default())
            .build();
        let answer = aws_sdk_dynamodb::Client::from_conf(config)
            .get_item()
            .table_name("table")
            .key("pk", AttributeValue::S("key".into()))
            .send()
            .await
            .unwrap();
        assert!(answer.item.is_none());
        assert!(server.join().unwrap().contains("\"table\""));
    }
}
