//! Canopy's AWS adapter: proves access to a customer account by assuming its role through STS
//! with the organization's External ID, reads its SES metrics from CloudWatch, discovers AWS
//! Organizations, finds the detection controls of organizations and accounts (`scan`), and
//! classifies every failure.
//!
//! API boundary: [`StsRoleVerifier`], [`CloudWatchSource`], [`OrganizationsDiscoverer`],
//! [`AwsOrganizationScanner`], [`AwsAccountScanner`], [`AwsSettings`], [`CloudWatchSettings`],
//! [`OrganizationsSettings`], [`ScanSettings`], [`classify_code`].

pub mod cloudwatch;
pub mod organizations;
pub mod scan;
#[cfg(feature = "testing")]
pub mod testing;

pub use cloudwatch::{CloudWatchSettings, CloudWatchSource};
pub use organizations::{OrganizationsDiscoverer, OrganizationsSettings};
pub use scan::{AwsAccountScanner, AwsOrganizationScanner, ScanSettings};

use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use canopy_cloud_org::health::{AccessFailure, FailureKind};
use canopy_cloud_org::identifiers::{AwsRegion, RoleArn};
use canopy_cloud_org::ports::{AssumedRole, RoleVerifier};
use chrono::{DateTime, Utc};

/// Settings of the AWS adapter, from the app's configuration.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Endpoint override (a local emulator in tests); `None` for AWS itself.
    pub endpoint_url: Option<String>,
    /// Time allowed for one STS call.
    pub timeout: Duration,
}

/// [`RoleVerifier`] on aws-sdk-sts.
#[derive(Debug, Clone)]
pub struct StsRoleVerifier {
    base: SdkConfig,
    settings: AwsSettings,
}

impl StsRoleVerifier {
    /// Uses Canopy's own credentials from the default provider chain (environment, profile,
    /// instance role). Credentials are resolved on first use, so starting without them works.
    pub async fn from_environment(settings: AwsSettings) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .load()
            .await;
        Self { base, settings }
    }

    /// Uses an explicit SDK configuration (tests, embedding services).
    pub fn new(base: SdkConfig, settings: AwsSettings) -> Self {
        Self { base, settings }
    }

    fn client(&self, region: &str) -> aws_sdk_sts::Client {
        let mut config =
            aws_sdk_sts::config::Builder::from(&self.base).region(Region::new(region.to_string()));
        if let Some(url) = &self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }
}

impl StsRoleVerifier {
    /// Whether Canopy's own credentials resolve: checked once at start-up so a missing
    /// identity is said there, not discovered in the first customer's failed check.
    pub async fn has_credentials(&self) -> bool {
        use aws_credential_types::provider::ProvideCredentials;
        match self.base.credentials_provider() {
            Some(provider) => provider.provide_credentials().await.is_ok(),
            None => false,
        }
    }

    /// The account of the credentials in use (STS GetCallerIdentity): how `canopy connect`
    /// learns which account it runs in.
    pub async fn caller_account_id(&self, region: &str) -> Result<String, AccessFailure> {
        let call = self.client(region).get_caller_identity().send();
        match tokio::time::timeout(self.settings.timeout, call).await {
            Err(_) => Err(AccessFailure {
                kind: FailureKind::Timeout,
                message: format!(
                    "no answer from STS within {} ms",
                    self.settings.timeout.as_millis()
                ),
            }),
            Ok(Err(e)) => Err(classify(&e, "STS")),
            Ok(Ok(out)) => out
                .account()
                .map(str::to_string)
                .ok_or_else(|| AccessFailure {
                    kind: FailureKind::Other,
                    message: "STS returned no account".into(),
                }),
        }
    }
}

/// Classifies an AWS error code. STS answers a wrong External ID, a missing trust
/// relationship and (for cross-account calls) a missing role alike with `AccessDenied`.
pub fn classify_code(code: &str) -> FailureKind {
    match code {
        "AccessDenied"
        | "AccessDeniedException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException" => FailureKind::AccessDenied,
        "NoSuchEntity" | "NoSuchEntityException" | "ResourceNotFoundException" => {
            FailureKind::RoleNotFound
        }
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "SlowDown" => FailureKind::Throttled,
        _ => FailureKind::Other,
    }
}

/// Waits `wait` unless `stop` is raised meanwhile (looked at every 100 ms); false when it was.
/// A back-off before a retry is spent here, so a cancelled job does not sit out a throttle.
pub(crate) async fn wait_unless_stopped(
    stop: &canopy_kernel::Stop,
    wait: std::time::Duration,
) -> bool {
    const STEP: std::time::Duration = std::time::Duration::from_millis(100);
    let mut left = wait;
    while !left.is_zero() {
        if stop.requested() {
            return false;
        }
        let slice = left.min(STEP);
        tokio::time::sleep(slice).await;
        left -= slice;
    }
    !stop.requested()
}

pub(crate) fn classify<E, R>(err: &SdkError<E, R>, service: &str) -> AccessFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown");
            AccessFailure {
                kind: classify_code(code),
                message: format!("{code}: {}", inner.message().unwrap_or("no message")),
            }
        }
        SdkError::TimeoutError(_) => AccessFailure {
            kind: FailureKind::Timeout,
            message: "the request timed out".into(),
        },
        SdkError::DispatchFailure(failure) if failure.is_timeout() => AccessFailure {
            kind: FailureKind::Timeout,
            message: format!("the request to {service} timed out"),
        },
        SdkError::DispatchFailure(failure) if failure.is_io() => AccessFailure {
            kind: FailureKind::Network,
            message: format!(
                "could not reach {service}: {:?}",
                failure.as_connector_error()
            ),
        },
        // Canopy's own identity could not be resolved: nothing left, nothing the customer can
        // fix.
        _ if missing_credentials(err) => AccessFailure {
            kind: FailureKind::CanopyCredentials,
            message: format!(
                "Canopy's AWS credentials could not be loaded: {}",
                chain(err)
            ),
        },
        SdkError::DispatchFailure(failure) => AccessFailure {
            kind: FailureKind::Other,
            message: format!(
                "the request could not be sent: {:?}",
                failure.as_connector_error()
            ),
        },
        other => AccessFailure {
            kind: FailureKind::Other,
            message: format!("{other}"),
        },
    }
}

/// Whether `err` comes from the credentials provider rather than from AWS.
fn missing_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        // A provider that found nothing fails with its own type; no provider at all fails in
        // auth-scheme selection, whose error type is private: its text names the cause.
        if e.downcast_ref::<CredentialsError>().is_some()
            || e.to_string().contains("no identity resolver")
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Every message down an error's source chain, joined: the SDK's top-level text alone says
/// only "dispatch failure".
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        parts.push(e.to_string());
        cause = e.source();
    }
    parts.join(": ")
}

#[async_trait]
impl RoleVerifier for StsRoleVerifier {
    async fn assume_role(
        &self,
        role_arn: &RoleArn,
        external_id: &str,
        session_name: &str,
        region: &AwsRegion,
    ) -> Result<AssumedRole, AccessFailure> {
        let call = self
            .client(region.as_str())
            .assume_role()
            .role_arn(role_arn.as_str())
            .external_id(external_id)
            .role_session_name(session_name)
            .duration_seconds(900)
            .send();
        let output = match tokio::time::timeout(self.settings.timeout, call).await {
            Err(_) => {
                return Err(AccessFailure {
                    kind: FailureKind::Timeout,
                    message: format!(
                        "no answer from STS within {} ms",
                        self.settings.timeout.as_millis()
                    ),
                });
            }
            Ok(Err(e)) => return Err(classify(&e, "STS")),
            Ok(Ok(output)) => output,
        };
        let assumed_role_arn = output
            .assumed_role_user()
            .map(|u| u.arn().to_string())
            .unwrap_or_default();
        let expires_at = output.credentials().and_then(|c| {
            let secs = c.expiration().secs();
            DateTime::<Utc>::from_timestamp(secs, 0)
        });
        Ok(AssumedRole {
            assumed_role_arn,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified() {
        assert_eq!(classify_code("AccessDenied"), FailureKind::AccessDenied);
        assert_eq!(classify_code("Throttling"), FailureKind::Throttled);
        assert_eq!(classify_code("NoSuchEntity"), FailureKind::RoleNotFound);
        assert_eq!(classify_code("RegionDisabledException"), FailureKind::Other);
    }
}
