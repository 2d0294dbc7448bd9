//! One Google API call at a time, as a discovery or a scan sees it: under a permit of its
//! in-flight budget, inside a deadline (the client has none), retried with
//! exponential back-off and full jitter while Google answers `RESOURCE_EXHAUSTED`, and
//! classified from Google's error JSON into what Canopy can tell a customer.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canopy_kernel::Stop;
use google_cloudresourcemanager3::common;
use rand::Rng;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::{GcpSettings, Hub};

/// Why one call failed, after any retries. No variant carries a token or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// 401 / 403: the service account lacks the permission (Google's message).
    Denied(String),
    /// 404 (Google's message).
    NotFound(String),
    /// Still throttled after every retry allowed.
    ThrottledOut,
    /// The token endpoint refused the key; the OAuth error code only.
    KeyRefused(String),
    /// Canopy may not impersonate the customer's service account (or has no identity to).
    ImpersonationRefused(String),
    /// Resource Manager or the token endpoint could not be reached.
    Network(String),
    /// No answer within the call's deadline.
    Timeout,
    /// Anything else Google answered.
    Other(String),
    /// The work was asked to stop (its job cancelled); the call was not made.
    Stopped,
}

/// What an error answer says, from Google's `{"error": {code, status, message}}`.
fn google_error(value: &Value) -> (u16, String, String) {
    let error = &value["error"];
    let code = error["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(0);
    let status = error["status"].as_str().unwrap_or_default().to_string();
    let message = error["message"]
        .as_str()
        .or_else(|| value["error_description"].as_str())
        .unwrap_or_default()
        .to_string();
    (code, status, message)
}

fn by_status(code: u16, status: &str, message: String) -> (CallError, bool) {
    match (code, status) {
        (429, _) | (_, "RESOURCE_EXHAUSTED") => (CallError::Other(message), true),
        (401 | 403, _) | (_, "PERMISSION_DENIED" | "UNAUTHENTICATED") => {
            (CallError::Denied(message), false)
        }
        (404, _) | (_, "NOT_FOUND") => (CallError::NotFound(message), false),
        _ => {
            let label = if status.is_empty() {
                code.to_string()
            } else {
                format!("{code} {status}")
            };
            (CallError::Other(format!("{label}: {message}")), false)
        }
    }
}

/// Why no access token was had. yup-oauth2's own text may quote the token endpoint's whole
/// answer, so only its error code and the kind of failure are kept.
pub(crate) fn token_failure(err: &(dyn std::error::Error + Send + Sync + 'static)) -> CallError {
    match err.downcast_ref::<yup_oauth2::Error>() {
        Some(yup_oauth2::Error::AuthError(auth)) => {
            CallError::KeyRefused(auth.error.as_str().chars().take(64).collect())
        }
        Some(yup_oauth2::Error::HttpError(_) | yup_oauth2::Error::HttpClientError(_)) => {
            CallError::Network("Google's token endpoint could not be reached".into())
        }
        Some(yup_oauth2::Error::JSONError(_) | yup_oauth2::Error::MissingAccessToken) => {
            CallError::Other("the token endpoint answered without an access token".into())
        }
        Some(yup_oauth2::Error::LowLevelError(_)) => {
            CallError::Other("the service account key could not sign its assertion".into())
        }
        _ => CallError::Other("no access token could be obtained".into()),
    }
}

/// Classifies a client error; `true` when it is throttling worth retrying.
pub(crate) fn classify(err: &common::Error) -> (CallError, bool) {
    match err {
        common::Error::BadRequest(value) => {
            let (code, status, message) = google_error(value);
            by_status(code, &status, message)
        }
        common::Error::Failure(response) => {
            let status = response.status();
            by_status(
                status.as_u16(),
                "",
                status.canonical_reason().unwrap_or("error").to_string(),
            )
        }
        common::Error::MissingToken(e) => (token_failure(e.as_ref()), false),
        common::Error::HttpError(e) => {
            // hyper's errors name the cause (refused, reset, DNS), never a header.
            // Discovery says Resource Manager; the scanners replace the text with their API.
            tracing::warn!(cause = %e, source = ?std::error::Error::source(e), "Google API unreachable");
            (
                CallError::Network("Resource Manager could not be reached".into()),
                false,
            )
        }
        common::Error::JsonDecodeError(_, e) => (
            CallError::Other(format!("the answer could not be read: {e}")),
            false,
        ),
        common::Error::Io(e) => (
            CallError::Network(format!("I/O error: {}", e.kind())),
            false,
        ),
        other => (
            CallError::Other(other.to_string().trim().to_string()),
            false,
        ),
    }
}

/// Full jitter: anywhere between nothing and the doubled ceiling, so callers throttled
/// together do not come back together.
fn backoff(settings: &GcpSettings, attempt: u32) -> Duration {
    let ceiling = settings
        .base_backoff
        .saturating_mul(1 << attempt.min(16))
        .min(settings.max_backoff);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=ceiling_ms))
}

/// Shared by every call of one discovery (or one verification, or one scanner's source),
/// through one API's hub (Resource Manager's unless said otherwise).
pub(crate) struct Calls<H = Hub> {
    pub(crate) hub: H,
    permits: Arc<Semaphore>,
    settings: GcpSettings,
    max_retries: u32,
    attempts: AtomicU64,
    retries: AtomicU64,
    waited_ms: AtomicU64,
    stop: Stop,
}

/// How often a back-off wait looks at the stop signal.
const STOP_CHECK: Duration = Duration::from_millis(100);

impl<H> Calls<H> {
    /// Calls through `hub`, at most `settings.max_in_flight` at once, retrying throttling up to
    /// `max_retries` times.
    pub(crate) fn new(hub: H, settings: &GcpSettings, max_retries: u32) -> Self {
        let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        Self::sharing(hub, settings, max_retries, permits)
    }

    /// Calls through `hub` under `permits` shared with other hubs, so calls to several APIs
    /// at once stay within one in-flight budget.
    pub(crate) fn sharing(
        hub: H,
        settings: &GcpSettings,
        max_retries: u32,
        permits: Arc<Semaphore>,
    ) -> Self {
        Self {
            hub,
            permits,
            settings: settings.clone(),
            max_retries,
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            stop: Stop::never(),
        }
    }

    /// The same calls, none of which starts once `stop` is raised ([`CallError::Stopped`]).
    pub(crate) fn stopping(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// Runs `call` under a permit and the deadline, retrying throttled answers.
    pub(crate) async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = common::Result<(common::Response, T)>>,
    {
        let mut attempt = 0u32;
        loop {
            let outcome = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| CallError::Other(e.to_string()))?;
                if self.stop.requested() {
                    return Err(CallError::Stopped);
                }
                self.attempts.fetch_add(1, Ordering::Relaxed);
                tokio::time::timeout(self.settings.call_timeout, call()).await
            };
            let err = match outcome {
                Err(_) => return Err(CallError::Timeout),
                Ok(Ok((_, value))) => return Ok(value),
                Ok(Err(err)) => err,
            };
            let (error, throttled) = classify(&err);
            if !throttled {
                return Err(error);
            }
            if attempt >= self.max_retries {
                return Err(CallError::ThrottledOut);
            }
            attempt += 1;
            let wait = backoff(&self.settings, attempt);
            self.retries.fetch_add(1, Ordering::Relaxed);
            self.waited_ms.fetch_add(
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let mut left = wait;
            while !left.is_zero() {
                if self.stop.requested() {
                    return Err(CallError::Stopped);
                }
                let slice = left.min(STOP_CHECK);
                tokio::time::sleep(slice).await;
                left -= slice;
            }
        }
    }

    /// Requests sent so far, retries included.
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Retries so far and milliseconds spent waiting them out.
    pub(crate) fn throttling(&self) -> (u64, u64) {
        (
            self.retries.load(Ordering::Relaxed),
            self.waited_ms.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bad_request(body: Value) -> (CallError, bool) {
        classify(&common::Error::BadRequest(body))
    }

    #[test]
    fn google_error_answers_are_classified_by_code_and_status() {
        let denied = json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
            "message": "Permission 'resourcemanager.folders.list' denied"}});
        assert_eq!(
            bad_request(denied),
            (
                CallError::Denied("Permission 'resourcemanager.folders.list' denied".into()),
                false
            )
        );
        let throttled =
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}});
        assert!(bad_request(throttled).1);
        // Status alone is enough: some front ends answer 400 with RESOURCE_EXHAUSTED.
        let status_only =
            json!({"error": {"code": 400, "status": "RESOURCE_EXHAUSTED", "message": "q"}});
        assert!(bad_request(status_only).1);
        let missing = json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "gone"}});
        assert_eq!(
            bad_request(missing),
            (CallError::NotFound("gone".into()), false)
        );
        let unauthenticated =
            json!({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "m"}});
        assert_eq!(
            bad_request(unauthenticated),
            (CallError::Denied("m".into()), false)
        );
        let other = json!({"error": {"code": 500, "status": "INTERNAL", "message": "boom"}});
        assert_eq!(
            bad_request(other),
            (CallError::Other("500 INTERNAL: boom".into()), false)
        );
    }

    #[test]
    fn a_refused_key_keeps_only_the_oauth_error_code() {
        let auth: yup_oauth2::error::AuthError = serde_json::from_value(json!({
            "error": "invalid_grant",
            "error_description": "Invalid JWT Signature. assertion=eyJhbGciOi..."
        }))
        .unwrap();
        let err = common::Error::MissingToken(Box::new(yup_oauth2::Error::AuthError(auth)));
        assert_eq!(
            classify(&err),
            (CallError::KeyRefused("invalid_grant".into()), false)
        );
    }

    #[test]
    fn backoff_grows_with_full_jitter_up_to_the_cap() {
        let settings = GcpSettings {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
            ..GcpSettings::default()
        };
        for attempt in 1..=10u32 {
            let cap = (100u64 << attempt.min(16)).min(1_000);
            for _ in 0..20 {
                assert!(backoff(&settings, attempt) <= Duration::from_millis(cap));
            }
        }
        // With jitter the waits differ; 50 draws below a 1 s cap all equal is vanishingly rare.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(&settings, 8)).collect();
        assert!(draws.len() > 1);
    }
}
