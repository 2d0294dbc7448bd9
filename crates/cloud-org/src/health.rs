//! Connection checks: the outcome of assuming an account's role, kept as a timeline.

use chrono::{DateTime, Utc};

use crate::account::CloudAccountId;

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

    /// What the customer should do about it (one text for both providers: the message says
    /// which one answered).
    pub fn advice(self) -> &'static str {
        match self {
            FailureKind::AccessDenied => {
                "Access was refused. AWS: check the role's trust policy names Canopy's principal and the current External ID. GCP: check the service account has roles/browser on the project or its organization."
            }
            FailureKind::RoleNotFound => {
                "Not found. AWS: check the role ARN and that the stack deployed it. GCP: check the project id and that the project still exists."
            }
            FailureKind::Throttled => {
                "The provider throttled the request. Canopy will retry; no action needed."
            }
            FailureKind::Network => "The provider could not be reached. Canopy will retry.",
            FailureKind::Timeout => "The provider did not answer in time. Canopy will retry.",
            FailureKind::CanopyCredentials => {
                "Canopy itself has no credentials to reach this provider: the operator's problem, not yours. AWS: the operator sets CANOPY_AWS_ACCESS_KEY_ID and CANOPY_AWS_SECRET_ACCESS_KEY, or runs Canopy with an instance or task role. GCP: connect the project through its GCP organization, or the operator sets CANOPY_GCP_CREDENTIALS_FILE."
            }
            FailureKind::Other => "The provider returned an unexpected error.",
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
