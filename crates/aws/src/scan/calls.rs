//! The one way every scanner calls AWS: a permit from this scan's bound and from the
//! scanner-wide bound (so a fan-out over hundreds of accounts cannot storm an API), a
//! timeout per attempt, throttled answers retried with exponential back-off and full jitter,
//! every attempt counted for the source that made it, and failures classified with the IAM
//! action that failed, so a report can name the permission to grant.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use canopy_cloud_org::health::FailureKind;
use canopy_detection::ports::{ReadFailure, ReadFailureKind};
use canopy_kernel::Stop;
use rand::Rng;
use tokio::sync::Semaphore;

/// How hard one call is tried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Retries of a throttled call before the source gives up.
    pub max_retries: u32,
    /// First back-off; doubles per retry, with full jitter.
    pub base_backoff: Duration,
    /// Longest single back-off.
    pub max_backoff: Duration,
    /// Time allowed for one attempt.
    pub call_timeout: Duration,
}

/// Retries of a call that failed for a passing reason (a timeout, a reset connection, a
/// 5xx): few, because a service that is down stays down for the length of a scan.
const TRANSIENT_RETRIES: u32 = 2;

/// Codes `crate::classify_code` does not know that still mean "not allowed".
const DENIED: [&str; 4] = [
    "UnauthorizedOperation",
    "UnauthorizedException",
    "AuthorizationErrorException",
    "AccessDeniedForDependencyException",
];

/// Codes that mean "slow down" besides `crate::classify_code`'s. A scan only reads, so a
/// limit exceeded can only be a rate limit (Security Hub answers throttling with it).
const THROTTLED: [&str; 2] = ["RequestThrottledException", "LimitExceededException"];

/// Codes of a provider-side failure worth another attempt.
const TRANSIENT: [&str; 7] = [
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServerErrorException",
    "InternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Calls one source made (every attempt, retries included).
#[derive(Debug, Default)]
pub(crate) struct Tally(AtomicU32);

impl Tally {
    /// The count so far.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a call failed, after retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallFailure {
    /// The class.
    pub kind: ReadFailureKind,
    /// The IAM action (`cloudtrail:DescribeTrails`).
    pub action: &'static str,
    /// Where it was called.
    pub region: String,
    /// AWS's error code, when AWS answered.
    pub code: Option<String>,
    /// AWS's message or what went wrong on the way (never a credential).
    pub message: String,
    /// The role that made the call (named in the advice; an ARN is not a secret).
    pub role: String,
}

impl CallFailure {
    /// Whether AWS answered with this code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// A denial by a service control policy: the whole region (or service) is closed to the
    /// account, so nothing can be running there for a scanner to find.
    pub fn denied_by_scp(&self) -> bool {
        self.kind == ReadFailureKind::AccessDenied
            && self.message.contains("service control policy")
    }

    /// The report's failure.
    pub fn into_read_failure(self) -> ReadFailure {
        let role = &self.role;
        let service = self.action.split(':').next().unwrap_or(self.action);
        let cause = match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        };
        match self.kind {
            ReadFailureKind::AccessDenied => ReadFailure {
                kind: self.kind,
                message: format!("{} in {} was refused ({cause})", self.action, self.region),
                advice: format!(
                    "grant {} to {role} (AWS's SecurityAudit managed policy includes it), and \
                     check that no service control policy denies it",
                    self.action
                ),
            },
            ReadFailureKind::ThrottledOut => ReadFailure {
                kind: self.kind,
                message: format!(
                    "{} in {} was still throttled after every retry",
                    self.action, self.region
                ),
                advice: format!(
                    "AWS kept throttling {service} for this account; scan again later, or lower \
                     the scanner's calls in flight"
                ),
            },
            ReadFailureKind::Failed => ReadFailure {
                kind: self.kind,
                message: format!("{} in {} failed ({cause})", self.action, self.region),
                advice: format!(
                    "scan again later; if it keeps failing, check that {service} is available \
                     in {} for this account",
                    self.region
                ),
            },
        }
    }
}

/// Bounds and tries the calls of one scan.
#[derive(Debug)]
pub(crate) struct Runner {
    scan: Semaphore,
    all: Arc<Semaphore>,
    limits: Limits,
    stop: Stop,
}

enum Next {
    Throttled,
    Transient,
    Stop(ReadFailureKind),
}

/// What to do after a failure, from its classification, AWS's code and the HTTP status.
fn next_step(kind: FailureKind, code: Option<&str>, status: Option<u16>) -> Next {
    let code = code.unwrap_or_default();
    match kind {
        FailureKind::Throttled => Next::Throttled,
        FailureKind::AccessDenied => Next::Stop(ReadFailureKind::AccessDenied),
        FailureKind::Network | FailureKind::Timeout => Next::Transient,
        _ if THROTTLED.contains(&code) || status == Some(429) => Next::Throttled,
        _ if DENIED.contains(&code) => Next::Stop(ReadFailureKind::AccessDenied),
        _ if TRANSIENT.contains(&code) || status.is_some_and(|s| s >= 500) => Next::Transient,
        _ => Next::Stop(ReadFailureKind::Failed),
    }
}

impl Runner {
    /// At most `in_flight` calls of this scan at once, and at most the permits of `all`
    /// across every scan sharing it.
    /// None of its calls starts once `stop` is raised.
    pub fn new(in_flight: usize, all: Arc<Semaphore>, stop: Stop, limits: Limits) -> Self {
        Self {
            scan: Semaphore::new(in_flight.max(1)),
            all,
            limits,
            stop,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .limits
            .base_backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.limits.max_backoff);
        let ceiling = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }

    /// Runs `call` (the IAM `action` in `region`) under both bounds, retrying throttled and
    /// transient failures; every attempt is counted in `tally`.
    pub async fn run<T, E, F, Fut>(
        &self,
        tally: &Tally,
        action: &'static str,
        region: &str,
        mut call: F,
    ) -> Result<T, CallFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let service = action.split(':').next().unwrap_or(action);
        let fail = |kind, code: Option<String>, message: String| CallFailure {
            kind,
            action,
            region: region.to_string(),
            code,
            message,
            role: String::new(),
        };
        let (mut throttled, mut transient) = (0u32, 0u32);
        loop {
            let outcome = {
                // Always this scan's permit first, then the shared one: one order, no
                // deadlock between scans.
                let _mine = self.scan.acquire().await;
                let _shared = self.all.acquire().await;
                // With both permits in hand: a call that queued for them while its job was
                // cancelled does not start either. What it returns is never recorded.
                if self.stop.requested() {
                    return Err(fail(
                        ReadFailureKind::Failed,
                        None,
                        "not called: the scan was stopped".into(),
                    ));
                }
                tally.add();
                tokio::time::timeout(self.limits.call_timeout, call()).await
            };
            let (next, code, message) = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Err(_) => (
                    Next::Transient,
                    None,
                    format!(
                        "no answer within {} ms",
                        self.limits.call_timeout.as_millis()
                    ),
                ),
                Ok(Err(err)) => {
                    let classified = crate::classify(&err, service);
                    let status = err.raw_response().map(|r| r.status().as_u16());
                    let (code, message) = match &err {
                        SdkError::ServiceError(s) => (
                            s.err().code().map(str::to_string),
                            s.err().message().map_or_else(
                                || format!("HTTP {}", status.unwrap_or_default()),
                                str::to_string,
                            ),
                        ),
                        _ => (None, classified.message),
                    };
                    (
                        next_step(classified.kind, code.as_deref(), status),
                        code,
                        message,
                    )
                }
            };
            let wait = match next {
                Next::Stop(kind) => return Err(fail(kind, code, message)),
                Next::Throttled if throttled < self.limits.max_retries => {
                    throttled += 1;
                    self.backoff(throttled)
                }
                Next::Throttled => {
                    return Err(fail(ReadFailureKind::ThrottledOut, code, message));
                }
                Next::Transient if transient < TRANSIENT_RETRIES => {
                    transient += 1;
                    self.backoff(transient)
                }
                Next::Transient => {
                    tracing::warn!(%action, %region, %message, "AWS call failed after retries");
                    return Err(fail(ReadFailureKind::Failed, code, message));
                }
            };
            if !crate::wait_unless_stopped(&self.stop, wait).await {
                return Err(fail(
                    ReadFailureKind::Failed,
                    None,
                    "not retried: the scan was stopped".into(),
                ));
            }
        }
    }
}

/// Reads every page: `page(token)` returns the items of one page and the next token.
pub(crate) async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, CallFailure>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), CallFailure>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (mut more, next) = page(token.take()).await?;
        items.append(&mut more);
        match next {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_whether_to_retry() {
        assert!(matches!(
            next_step(
                FailureKind::Other,
                Some("LimitExceededException"),
                Some(400)
            ),
            Next::Throttled
        ));
        assert!(matches!(
            next_step(FailureKind::Other, None, Some(429)),
            Next::Throttled
        ));
        assert!(matches!(
            next_step(FailureKind::Other, Some("UnauthorizedOperation"), Some(403)),
            Next::Stop(ReadFailureKind::AccessDenied)
        ));
        assert!(matches!(
            next_step(
                FailureKind::Other,
                Some("InternalServerErrorException"),
                Some(500)
            ),
            Next::Transient
        ));
        assert!(matches!(
            next_step(FailureKind::Other, None, Some(503)),
            Next::Transient
        ));
        assert!(matches!(
            next_step(
                FailureKind::RoleNotFound,
                Some("ResourceNotFoundException"),
                Some(404)
            ),
            Next::Stop(ReadFailureKind::Failed)
        ));
    }

    #[test]
    fn a_denial_names_the_action_to_grant_and_the_role() {
        let f = CallFailure {
            kind: ReadFailureKind::AccessDenied,
            action: "cloudtrail:DescribeTrails",
            region: "eu-west-1".into(),
            code: Some("AccessDeniedException".into()),
            message: "not authorized".into(),
            role: "arn:aws:iam::111111111111:role/Canopy".into(),
        }
        .into_read_failure();
        assert!(f.message.contains("cloudtrail:DescribeTrails in eu-west-1"));
        assert!(f.advice.starts_with(
            "grant cloudtrail:DescribeTrails to arn:aws:iam::111111111111:role/Canopy"
        ));
    }
}
