//! Every domain outcome a handler can meet, as the problem a client sees. The app translates;
//! the domains decided (which refusal, which tier to recommend). One place, so the same
//! outcome reads the same on every endpoint.

use canopy_billing::{EntitlementError, SubscriptionError};
use canopy_cloud_org::connection::TokenRefusal;
use canopy_cloud_org::{CloudAccountError, ConnectionError, ExternalIdError};
use canopy_kernel::validation::{FieldError, ValidationErrors};
use canopy_kernel::{FeatureNotInPlan, PlanLimitExceeded, StoreError};
use canopy_metrics::MetricsError;
use canopy_tenancy::ports::CryptoError;
use canopy_tenancy::{
    AccessError, AccountError, ApiKeyError, AuditLogError, Forbidden, InvitationError, MemberError,
    OrganizationError, SessionError,
};
use poem::http::StatusCode as S;

use super::problem::ApiError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::store(e)
    }
}

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        Self::forbidden(e.0)
    }
}

impl From<PlanLimitExceeded> for ApiError {
    fn from(e: PlanLimitExceeded) -> Self {
        Self::plan_limit(e)
    }
}

impl From<FeatureNotInPlan> for ApiError {
    fn from(e: FeatureNotInPlan) -> Self {
        Self::feature_not_in_plan(e)
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Unauthenticated => Self::unauthenticated(),
            AccessError::NotFound => Self::not_found("organization"),
            AccessError::NotInPlan(f) => f.into(),
            AccessError::Store(s) => s.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Invalid(v) => v.into(),
            SessionError::EmailTaken => Self::new(
                S::CONFLICT,
                "email_taken",
                "This email is already registered.",
            ),
            SessionError::SlugTaken => {
                Self::new(S::CONFLICT, "slug_taken", "This slug is already taken.")
            }
            SessionError::InvalidCredentials => Self::new(
                S::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid email or password.",
            ),
            SessionError::Unauthenticated => Self::unauthenticated(),
            SessionError::Crypto(CryptoError::Busy) => Self::unavailable(
                "busy",
                "Too many sign-ins are being checked at once. Retry in a moment.",
                1,
            ),
            SessionError::Crypto(CryptoError::Failed(c)) => {
                tracing::error!(error = %c, "password hashing failed");
                Self::internal()
            }
            SessionError::Store(s) => s.into(),
        }
    }
}

impl From<OrganizationError> for ApiError {
    fn from(e: OrganizationError) -> Self {
        match e {
            OrganizationError::Invalid(v) => v.into(),
            OrganizationError::Forbidden(f) => f.into(),
            OrganizationError::SlugTaken => {
                Self::new(S::CONFLICT, "slug_taken", "This slug is already taken.")
            }
            OrganizationError::NotFound => Self::not_found("organization"),
            OrganizationError::Store(s) => s.into(),
        }
    }
}

impl From<MemberError> for ApiError {
    fn from(e: MemberError) -> Self {
        match e {
            MemberError::Invalid(v) => v.into(),
            MemberError::Forbidden(f) => f.into(),
            MemberError::NotFound => Self::not_found("member"),
            MemberError::OwnerProtected => Self::new(
                S::FORBIDDEN,
                "owner_protected",
                "Only an owner can remove or change another owner.",
            ),
            MemberError::LastOwner => Self::new(
                S::CONFLICT,
                "last_owner",
                "An organization must keep at least one owner. Make another member owner first.",
            ),
            MemberError::Store(s) => s.into(),
        }
    }
}

impl From<InvitationError> for ApiError {
    fn from(e: InvitationError) -> Self {
        match e {
            InvitationError::Invalid(v) => v.into(),
            InvitationError::Forbidden(f) => f.into(),
            InvitationError::OwnerInviteRequiresOwner => Self::new(
                S::FORBIDDEN,
                "owner_invite_requires_owner",
                "Only an owner can invite someone as owner.",
            ),
            InvitationError::AlreadyMember => Self::new(
                S::CONFLICT,
                "already_member",
                "This person is already a member of the organization.",
            ),
            InvitationError::NotFound => Self::not_found("invitation"),
            InvitationError::NotPending => Self::new(
                S::CONFLICT,
                "invitation_not_pending",
                "This invitation was already answered, cancelled or replaced.",
            ),
            InvitationError::Expired => Self::new(
                S::GONE,
                "invitation_expired",
                "This invitation has expired. Ask for a new one.",
            ),
            InvitationError::EmailMismatch => Self::new(
                S::FORBIDDEN,
                "invitation_email_mismatch",
                "This invitation is addressed to a different email than yours.",
            ),
            InvitationError::PlanLimit(l) => l.into(),
            InvitationError::EmailUnverified => ApiError::email_unverified(
                "Verify your e-mail address before accepting invitations: open the link we sent \
                 you, or ask for a new one (POST /v1/me/verification-email).",
            ),
            InvitationError::Unauthenticated => Self::unauthenticated(),
            InvitationError::Store(s) => s.into(),
        }
    }
}

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Invalid(v) => v.into(),
            ApiKeyError::NotFound => Self::not_found("api key"),
            ApiKeyError::EmailUnverified => ApiError::email_unverified(
                "Verify your e-mail address before creating API keys: open the link we sent \
                 you, or ask for a new one (POST /v1/me/verification-email).",
            ),
            ApiKeyError::Unauthenticated => Self::unauthenticated(),
            ApiKeyError::Store(s) => s.into(),
        }
    }
}

impl ApiError {
    /// 403 `email_unverified`: the action needs a proven address.
    fn email_unverified(detail: &str) -> Self {
        Self::new(S::FORBIDDEN, "email_unverified", detail)
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(v) => v.into(),
            AccountError::WrongPassword => ValidationErrors::single(FieldError::new(
                "currentPassword",
                "incorrect",
                "is not your current password",
            ))
            .into(),
            AccountError::LinkInvalid => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "link_invalid",
                "This link is not valid: it was already used, or a newer one replaced it. \
                 Ask for a new one.",
            ),
            AccountError::LinkExpired => Self::new(
                S::GONE,
                "link_expired",
                "This link has expired. Ask for a new one.",
            ),
            AccountError::AlreadyVerified => Self::new(
                S::CONFLICT,
                "already_verified",
                "This address is already verified.",
            ),
            AccountError::EmailTaken => Self::new(
                S::CONFLICT,
                "email_taken",
                "This email is already registered.",
            ),
            AccountError::SessionNotFound => Self::not_found("session"),
            AccountError::LastOwner(held) => {
                let names: Vec<String> = held
                    .iter()
                    .map(|o| format!("{} ({})", o.name, o.slug))
                    .collect();
                let mut e = Self::new(
                    S::CONFLICT,
                    "last_owner",
                    format!(
                        "You are the only owner of {}, which other people belong to. Make one of them an owner, or remove them, before deleting your account.",
                        names.join(", ")
                    ),
                );
                e.problem.organizations = held
                    .into_iter()
                    .map(|o| super::problem::ProblemOrganization {
                        id: o.id.as_uuid(),
                        slug: o.slug.as_str().to_string(),
                        name: o.name,
                        other_members: o.other_members,
                    })
                    .collect();
                e
            }
            AccountError::Unauthenticated => Self::unauthenticated(),
            AccountError::Crypto(CryptoError::Busy) => Self::unavailable(
                "busy",
                "Too many passwords are being checked at once. Retry in a moment.",
                1,
            ),
            AccountError::Crypto(CryptoError::Failed(c)) => {
                tracing::error!(error = %c, "password hashing failed");
                Self::internal()
            }
            AccountError::Store(s) => s.into(),
        }
    }
}

impl From<AuditLogError> for ApiError {
    fn from(e: AuditLogError) -> Self {
        match e {
            AuditLogError::Forbidden(f) => f.into(),
            AuditLogError::Store(s) => s.into(),
        }
    }
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Invalid(v) => v.into(),
            SubscriptionError::Forbidden(f) => f.into(),
            SubscriptionError::NotFound => Self::not_found("organization"),
            SubscriptionError::DowngradeExceeds { tier, exceeded } => {
                let list = exceeded
                    .iter()
                    .map(|x| format!("{} {} of {} allowed", x.used, x.resource.key(), x.allowed))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut e = Self::new(
                    S::CONFLICT,
                    "downgrade_exceeds_limits",
                    format!(
                        "Your usage does not fit the {} plan: {list}. Remove what exceeds it first.",
                        tier.display_name()
                    ),
                );
                e.problem.exceeded = exceeded.into_iter().map(Into::into).collect();
                e
            }
            SubscriptionError::ManagedByOperator => Self::new(
                S::CONFLICT,
                "subscription_managed",
                "Enterprise subscriptions are changed with your Canopy account team.",
            ),
            SubscriptionError::Changed => Self::new(
                S::CONFLICT,
                "subscription_changed",
                "The subscription changed while this request was handled. Reload it and try again.",
            ),
            SubscriptionError::Store(s) => s.into(),
        }
    }
}

impl From<EntitlementError> for ApiError {
    fn from(e: EntitlementError) -> Self {
        match e {
            EntitlementError::NotInPlan(f) => f.into(),
            EntitlementError::Store(s) => s.into(),
        }
    }
}

fn already_connected() -> ApiError {
    ApiError::new(
        S::CONFLICT,
        "cloud_account_already_connected",
        "This account is already connected to this organization.",
    )
}

fn connected_elsewhere() -> ApiError {
    ApiError::new(
        S::CONFLICT,
        "cloud_account_connected_elsewhere",
        "This account is connected to another organization. An account can belong to one organization.",
    )
}

impl From<canopy_cloud_org::organization::service::CloudOrganizationError> for ApiError {
    fn from(e: canopy_cloud_org::organization::service::CloudOrganizationError) -> Self {
        use canopy_cloud_org::organization::DiscoveryFailure as F;
        use canopy_cloud_org::organization::service::CloudOrganizationError as E;
        match e {
            E::Invalid(v) => v.into(),
            E::Forbidden(f) => f.into(),
            E::NotInPlan(f) => f.into(),
            E::PlanLimit(l) => l.into(),
            E::NotFound => Self::not_found("cloud organization"),
            E::AlreadyConnected => Self::new(
                S::CONFLICT,
                "cloud_organization_already_connected",
                "This cloud organization is already connected to this organization.",
            ),
            E::ConnectedElsewhere => Self::new(
                S::CONFLICT,
                "cloud_organization_connected_elsewhere",
                "This cloud organization is connected to another organization. A cloud \
                 organization can belong to one organization.",
            ),
            E::SyncInProgress(job) => Self::job_in_progress(
                "sync_in_progress",
                "A discovery of this cloud organization is already queued or running",
                job,
            ),
            E::ConnectInProgress(job) => Self::job_in_progress(
                "connect_in_progress",
                "A connect of this cloud organization's members is already queued or running",
                job,
            ),
            E::Discovery(failure) => {
                // The field the customer must fix: the AWS role, or the GCP key.
                let (field, code) = match &failure {
                    F::RoleRefused(_) => ("managementRoleArn", "role_refused"),
                    F::MemberAccountRole { .. } => ("managementRoleArn", "not_management_account"),
                    F::OrganizationsNotEnabled => {
                        ("managementRoleArn", "organizations_not_enabled")
                    }
                    F::KeyRefused(_) => ("serviceAccountKey", "key_refused"),
                    F::ImpersonationRefused(_) => ("serviceAccountEmail", "impersonation_refused"),
                    F::PermissionMissing {
                        provider: canopy_cloud_org::Provider::Aws,
                        ..
                    } => ("managementRoleArn", "permission_missing"),
                    F::PermissionMissing {
                        provider: canopy_cloud_org::Provider::Gcp,
                        ..
                    } => ("serviceAccountKey", "permission_missing"),
                    // A request's own call is never stopped; answered as a passing failure.
                    F::ThrottledOut(_) | F::Network(_) | F::Other(_) | F::Stopped => {
                        return Self::unavailable(
                            "cloud_unavailable",
                            format!("{failure}. Retry in a minute."),
                            60,
                        );
                    }
                };
                ApiError::validation(ValidationErrors::single(FieldError::new(
                    field,
                    code,
                    failure.to_string(),
                )))
            }
            E::Sealing(canopy_cloud_org::sealing::SealError::NotConfigured) => Self::unavailable(
                "secret_key_missing",
                "This Canopy cannot store GCP credentials yet: its operator sets \
                 CANOPY_SECRET_KEY (see docs/operations.md)."
                    .to_string(),
                3600,
            ),
            E::Sealing(other) => {
                tracing::error!(cause = %other, "a sealed secret did not open");
                Self::internal()
            }
            E::Store(s) => s.into(),
        }
    }
}

impl From<canopy_detection::service::DetectionError> for ApiError {
    fn from(e: canopy_detection::service::DetectionError) -> Self {
        use canopy_detection::service::DetectionError as E;
        match e {
            E::Invalid(v) => v.into(),
            E::Forbidden(f) => f.into(),
            E::NotInPlan(f) => f.into(),
            E::NotFound => Self::not_found("detection, cloud account or cloud organization"),
            E::NotCustom => Self::new(
                S::CONFLICT,
                "detection_not_custom",
                "Only custom detections can be edited or deleted; scanners keep theirs up to \
                 date on every scan.",
            ),
            E::ScanInProgress(job) => Self::job_in_progress(
                "scan_in_progress",
                "A scan of this is already queued or running",
                job,
            ),
            E::Store(s) => s.into(),
        }
    }
}

impl From<canopy_coverage::history::HistoryError> for ApiError {
    fn from(e: canopy_coverage::history::HistoryError) -> Self {
        use canopy_coverage::history::HistoryError as E;
        match e {
            E::Detection(d) => d.into(),
            E::Limit(l) => l.into(),
            E::Invalid(v) => v.into(),
            E::Store(s) => s.into(),
        }
    }
}

impl From<canopy_jobs::JobError> for ApiError {
    fn from(e: canopy_jobs::JobError) -> Self {
        use canopy_jobs::JobError;
        match e {
            JobError::Forbidden(f) => f.into(),
            JobError::NotFound => Self::not_found("job"),
            JobError::Store(s) => s.into(),
        }
    }
}

impl From<CloudAccountError> for ApiError {
    fn from(e: CloudAccountError) -> Self {
        match e {
            CloudAccountError::Invalid(v) => v.into(),
            CloudAccountError::Forbidden(f) => f.into(),
            CloudAccountError::NotFound => Self::not_found("cloud account"),
            CloudAccountError::AlreadyConnected => already_connected(),
            CloudAccountError::ConnectedElsewhere => connected_elsewhere(),
            CloudAccountError::PlanLimit(l) => l.into(),
            CloudAccountError::Store(s) => s.into(),
        }
    }
}

impl From<ExternalIdError> for ApiError {
    fn from(e: ExternalIdError) -> Self {
        match e {
            ExternalIdError::Forbidden(f) => f.into(),
            ExternalIdError::Store(s) => s.into(),
        }
    }
}

impl From<TokenRefusal> for ApiError {
    fn from(e: TokenRefusal) -> Self {
        match e {
            TokenRefusal::Unknown => Self::new(
                S::NOT_FOUND,
                "connection_token_unknown",
                "No such connection token, or it is not yours to use.",
            ),
            TokenRefusal::Expired => Self::new(
                S::GONE,
                "connection_token_expired",
                "This connection token expired (they last 10 minutes). Create a new one.",
            ),
            TokenRefusal::Used => Self::new(
                S::CONFLICT,
                "connection_token_used",
                "This connection token was already used.",
            ),
            TokenRefusal::Cancelled => Self::new(
                S::CONFLICT,
                "connection_token_cancelled",
                "This connection request was cancelled.",
            ),
        }
    }
}

impl From<ConnectionError> for ApiError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Invalid(v) => v.into(),
            ConnectionError::Forbidden(f) => f.into(),
            ConnectionError::Token(t) => t.into(),
            ConnectionError::PlanLimit(l) => l.into(),
            ConnectionError::NotInPlan(f) => f.into(),
            ConnectionError::AlreadyConnected => already_connected(),
            ConnectionError::ConnectedElsewhere => connected_elsewhere(),
            ConnectionError::Store(s) => s.into(),
        }
    }
}

impl From<MetricsError> for ApiError {
    fn from(e: MetricsError) -> Self {
        match e {
            MetricsError::Invalid(v) => v.into(),
            MetricsError::Forbidden(f) => f.into(),
            MetricsError::PlanLimit(l) => l.into(),
            MetricsError::AccountNotFound => Self::not_found("cloud account"),
            MetricsError::Store(s) => s.into(),
        }
    }
}
