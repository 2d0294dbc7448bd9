//! Connection checks: the outcome of assuming an account's role, kept as a timeline.

use chrono::{DateTime, Utc};

use crate::account::{CloudAccountId, Provider};

/// Why a check failed, in terms a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The role refused us: wrong External ID, missing trust, or an SCP.
    AccessDenied,
    /// The role (or account) does not exist.
    RoleNotFound,
    /// AWS throttled the call; retry later.
    Throttled,
    /// The endpoint could not be reached.
    Network,
    /// The call did not answer in time.
    Timeout,
    /// Canopy itself has no usable AWS credentials, so no customer role can be assumed:
    /// the operator's problem, not the customer's.
    CanopyCredentials,
    /// Anything else the provider said.
    Other,
}

impl FailureKind {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::AccessDenied => "access_denied",
            FailureKind::RoleNotFound => "role_not_found",
            FailureKind::Throttled => "throttled",
            FailureKind::Network => "network",
            FailureKind::Timeout => "timeout",
            FailureKind::CanopyCredentials => "canopy_credentials",
            FailureKind::Other => "other",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Some(match raw {
            "access_denied" => FailureKind::AccessDenied,
            "role_not_found" => FailureKind::RoleNotFound,
            "throttled" => FailureKind::Throttled,
            "network" => FailureKind::Network,
            "timeout" => FailureKind::Timeout,
            "canopy_credentials" => FailureKind::CanopyCredentials,
            "other" => FailureKind::Other,
            _ => return None,
        })
    }

    /// What the customer of `provider` should do about it: advice for that provider only (a
    /// customer whose AWS role refused Canopy has no use for GCP's roles).
    pub fn advice_for(self, provider: Provider) -> &'static str {
        match (self, provider) {
            (FailureKind::AccessDenied, Provider::Aws) => {
                "Access was refused. Check the role's trust policy names Canopy's principal and the current External ID, and that no SCP denies sts:AssumeRole."
            }
            (FailureKind::AccessDenied, Provider::Gcp) => {
                "Access was refused. Check the service account has roles/browser on the project or its organization."
            }
            (FailureKind::RoleNotFound, Provider::Aws) => {
                "Not found. Check the role ARN and that the stack deployed it."
            }
            (FailureKind::RoleNotFound, Provider::Gcp) => {
                "Not found. Check the project id and that the project still exists."
            }
            (FailureKind::Throttled, _) => {
                "The provider throttled the request. Canopy will retry; no action needed."
            }
            (FailureKind::Network, _) => "The provider could not be reached. Canopy will retry.",
            (FailureKind::Timeout, _) => "The provider did not answer in time. Canopy will retry.",
            (FailureKind::CanopyCredentials, Provider::Aws) => {
                "Canopy itself has no credentials to reach AWS: the operator's problem, not yours. The operator sets CANOPY_AWS_ACCESS_KEY_ID and CANOPY_AWS_SECRET_ACCESS_KEY, or runs Canopy with an instance or task role."
            }
            (FailureKind::CanopyCredentials, Provider::Gcp) => {
                "Canopy itself has no credentials to reach Google Cloud: the operator's problem, not yours. Connect the project through its GCP organization, or the operator sets CANOPY_GCP_CREDENTIALS_FILE."
            }
            (FailureKind::Other, _) => "The provider returned an unexpected error.",
        }
    }
}

/// A failed role assumption, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct AccessFailure {
    /// Class.
    pub kind: FailureKind,
    /// The provider's own words (error code and message), for operators.
    pub message: String,
}

/// One recorded check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The account.
    pub account_id: CloudAccountId,
    /// When it ran.
    pub checked_at: DateTime<Utc>,
    /// `None` when it succeeded.
    pub failure: Option<AccessFailure>,
    /// How long it took, milliseconds.
    pub duration_ms: u64,
}
