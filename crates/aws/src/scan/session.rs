//! A scan's access to one AWS account: the role assumed once with the tenant's External ID,
//! and clients of every service the scanners read, built on the scanner's one HTTP client (one
//! connection pool) with the SDK's own retries off: the call runner retries, bounds and counts.

use canopy_kernel::Stop;
use std::sync::Arc;
use std::time::SystemTime;

use aws_config::retry::RetryConfig;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls;
use canopy_detection::ports::{ReadFailure, ReadFailureKind};
use tokio::sync::Semaphore;

use super::ScanSettings;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::calls::{CallFailure, Limits, Runner, Tally};

/// What every scan of one scanner shares: Canopy's identity, the settings and the bound on
/// calls in flight across all of its scans.
#[derive(Debug)]
pub(crate) struct Core {
    base: SdkConfig,
    pub settings: ScanSettings,
    all: Arc<Semaphore>,
}

/// `arn:aws:iam::123456789012:role/path/Name` -> (`123456789012`, `path/Name`).
pub(crate) fn role_parts(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, _, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("role/")?;
    (service == "iam" && account.len() == 12 && !name.is_empty()).then_some((account, name))
}

impl Core {
    pub fn new(base: SdkConfig, settings: ScanSettings) -> Self {
        // Without a client of its own in `base`, every service client would build its own TLS
        // connector and pool; one shared client keeps a scan of many accounts cheap.
        let base = if base.http_client().is_some() {
            base
        } else {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https();
            base.into_builder().http_client(http).build()
        };
        let all = Arc::new(Semaphore::new(settings.max_in_flight_total.max(1)));
        Self {
            base,
            settings,
            all,
        }
    }

    /// A runner for one scan; none of its calls starts once `stop` is raised.
    pub fn runner(&self, stop: Stop) -> Arc<Runner> {
        Arc::new(Runner::new(
            self.settings.max_in_flight,
            self.all.clone(),
            stop,
            Limits {
                max_retries: self.settings.max_retries,
                base_backoff: self.settings.base_backoff,
                max_backoff: self.settings.max_backoff,
                call_timeout: self.settings.call_timeout,
            },
        ))
    }

    /// Assumes `role_arn` with `external_id` (STS in `region`); the failure is every source's
    /// report when it happens.
    pub async fn session(
        &self,
        runner: Arc<Runner>,
        role_arn: &str,
        external_id: &str,
        region: &str,
    ) -> Result<Session, ReadFailure> {
        let Some((account, _)) = role_parts(role_arn) else {
            return Err(ReadFailure {
                kind: ReadFailureKind::Failed,
                message: format!("{role_arn} is not an IAM role ARN"),
                advice: "reconnect the account with the ARN of the role Canopy assumes".into(),
            });
        };
        let mut config =
            aws_sdk_sts::config::Builder::from(&self.base).region(Region::new(region.to_string()));
        if let Some(url) = &self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        let sts =
            aws_sdk_sts::Client::from_conf(config.retry_config(RetryConfig::disabled()).build());
        let duration = i32::try_from(self.settings.session_duration.as_secs()).unwrap_or(3_600);
        let out = runner
            .run(&Tally::default(), "sts:AssumeRole", region, || {
                sts.assume_role()
                    .role_arn(role_arn)
                    .external_id(external_id)
                    .role_session_name("canopy-detection-scan")
                    .duration_seconds(duration)
                    .send()
            })
            .await
            .map_err(|f| {
                let advice = match f.kind {
                    ReadFailureKind::AccessDenied => format!(
                        "check that {role_arn} exists, trusts Canopy's AWS account and requires \
                         this organization's External ID"
                    ),
                    _ => "scan again later".to_string(),
                };
                let cause = match &f.code {
                    Some(code) => format!("{code}: {}", f.message),
                    None => f.message.clone(),
                };
                ReadFailure {
                    kind: f.kind,
                    message: format!("Canopy could not assume {role_arn} ({cause})"),
                    advice,
                }
            })?;
        let c = out.credentials().ok_or_else(|| ReadFailure {
            kind: ReadFailureKind::Failed,
            message: format!("STS returned no credentials for {role_arn}"),
            advice: "scan again later".into(),
        })?;
        Ok(Session {
            role: role_arn.to_string(),
            account: account.to_string(),
            base: self.base.clone(),
            endpoint: self.settings.endpoint_url.clone(),
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                SystemTime::try_from(*c.expiration()).ok(),
                "canopy-detection-scan",
            ),
            runner,
        })
    }
}

/// One assumed role for the length of a scan.
pub(crate) struct Session {
    /// The role's ARN (named in advice; not a secret).
    pub role: String,
    /// Its account.
    pub account: String,
    base: SdkConfig,
    endpoint: Option<String>,
    credentials: Credentials,
    /// The scan's call runner.
    pub runner: Arc<Runner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials stay out of every log line.
        f.debug_struct("Session")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

macro_rules! client {
    ($(#[$doc:meta])* $name:ident, $krate:ident) => {
        $(#[$doc])*
        pub fn $name(&self, region: &str) -> $krate::Client {
            let mut config = $krate::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .retry_config(RetryConfig::disabled())
                .credentials_provider(self.credentials.clone());
            if let Some(url) = &self.endpoint {
                config = config.endpoint_url(url);
            }
            $krate::Client::from_conf(config.build())
        }
    };
}

impl Session {
    /// Runs `call` (the IAM `action` in `region`) through the scan's runner, as this role.
    pub async fn call<T, E, F, Fut>(
        &self,
        tally: &Tally,
        action: &'static str,
        region: &str,
        call: F,
    ) -> Result<T, CallFailure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.runner
            .run(tally, action, region, call)
            .await
            .map_err(|mut f| {
                f.role.clone_from(&self.role);
                f
            })
    }

    client!(
        /// CloudTrail in `region`.
        cloudtrail,
        aws_sdk_cloudtrail
    );
    client!(
        /// GuardDuty in `region`.
        guardduty,
        aws_sdk_guardduty
    );
    client!(
        /// Security Hub in `region`.
        securityhub,
        aws_sdk_securityhub
    );
    client!(
        /// AWS Config in `region`.
        config,
        aws_sdk_config
    );
    client!(
        /// CloudWatch in `region`.
        cloudwatch,
        aws_sdk_cloudwatch
    );
    client!(
        /// CloudWatch Logs in `region`.
        logs,
        aws_sdk_cloudwatchlogs
    );
    client!(
        /// AWS Organizations (one global endpoint, in us-east-1).
        organizations,
        aws_sdk_organizations
    );
}

#[cfg(test)]
mod tests {
    use super::role_parts;

    #[test]
    fn a_role_arn_gives_its_account_and_name() {
        assert_eq!(
            role_parts("arn:aws:iam::123456789012:role/ops/Canopy"),
            Some(("123456789012", "ops/Canopy"))
        );
        assert_eq!(role_parts("arn:aws:iam::123456789012:user/x"), None);
        assert_eq!(role_parts("arn:aws:iam::1234:role/x"), None);
    }
}
