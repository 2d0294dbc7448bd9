//! A local stand-in for STS that answers every request with one canned response, the way
//! STS answers a refusal or throttling: for tests of error handling through the real SDK.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// STS's answer when the role does not trust the caller with this External ID.
pub const ACCESS_DENIED: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::111111111111:user/canopy is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/CanopyAccess</Message></Error><RequestId>r1</RequestId></ErrorResponse>"#;

/// STS's answer when it throttles.
pub const THROTTLED: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r2</RequestId></ErrorResponse>"#;

/// Reads one HTTP request (headers and the declared body); false when the peer hung up.
async fn read_request(sock: &mut tokio::net::TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0;
    loop {
        let n = sock.read(&mut buf[read..]).await.unwrap_or(0);
        if n == 0 {
            return false;
        }
        read += n;
        let text = String::from_utf8_lossy(&buf[..read]);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if read >= end + 4 + len || read == buf.len() {
                return true;
            }
        }
    }
}

/// Starts a server on an ephemeral local port answering `status` with the XML `body` to every
/// request; returns its URL. It runs until the test's runtime ends.
pub async fn canned_sts(status: u16, body: &'static str) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_request(&mut sock).await {
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                }
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// A credentials provider that finds nothing, as on a machine with no AWS credentials at all.
#[derive(Debug)]
pub struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no providers in chain provided credentials",
            ),
        ))
    }
}

/// An SDK configuration whose credentials never load.
pub fn without_credentials() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(NoCredentials),
        )
        .build()
}

/// An SDK configuration with static test credentials (moto takes any), with the rustls
/// provider installed for the test process.
pub fn with_test_credentials() -> aws_config::SdkConfig {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "AKIDTESTTESTTEST",
                    "secret",
                    None,
                    None,
                    "canopy-tests",
                ),
            ),
        )
        .build()
}

/// Where moto listens: `CANOPY_TEST_MOTO_URL` (set by `.ci/services.sh`) or the default port.
pub fn moto_url() -> String {
    std::env::var("CANOPY_TEST_MOTO_URL").unwrap_or_else(|_| "http://127.0.0.1:5123".into())
}

/// Creates an S3 bucket in moto for the account whose credentials carry `access_key` (a trail
/// needs one), with a bare request: moto reads the account from the signature's access key
/// and does not check the signature, so no S3 SDK is needed. Panics when moto refuses.
pub async fn create_moto_bucket(access_key: &str, name: &str) {
    let url = moto_url();
    let host = url.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("moto at {host}: {e}"));
    let request = format!(
        "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let sent = sock.write_all(request.as_bytes()).await;
    let read = sock.read_to_string(&mut answer).await;
    assert!(
        sent.is_ok() && read.is_ok() && answer.starts_with("HTTP/1.1 200"),
        "moto refused bucket {name}: {answer}"
    );
}
