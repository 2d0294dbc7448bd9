//! Cloud-organization use cases: connect one by discovery (admin or owner, on a plan with
//! organization features), re-sync it, and read it, its tree, members and changes (any member).

use std::sync::Arc;

use canopy_billing::{BillingService, EntitlementError, Feature};
use canopy_jobs::{Enqueued, Job, JobId, JobKind, JobService, NewJob};
use canopy_kernel::validation::{FieldError, ValidationErrors};
use canopy_kernel::{Clock, FeatureNotInPlan, Page, PageRequest, PlanLimitExceeded, StoreError};
use canopy_tenancy::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use canopy_tenancy::policy::{Action, Forbidden};
use canopy_tenancy::service::OrgAccess;
use serde_json::json;

pub use super::connect::{ConnectPlan, ConnectPreview};
use super::hierarchy::Hierarchy;
use super::ports::{
    CloudOrganizationRepository, MemberFilter, NodeCount, RecordError, RecordedChange, StoredMember,
};
use super::{
    CloudOrganization, CloudOrganizationId, DEFAULT_MEMBER_ROLE, DiscoveryFailure, GcpAccess,
    OrganizationAccess, OrganizationDiscoverer,
};
use crate::account::Provider;
use crate::external_id::ExternalId;
use crate::identifiers::RoleArn;
use crate::ports::{ExternalIdRepository, SecretSource};
use crate::sealing::{SealError, SecretSealer, ServiceAccountKeyJson};

/// The job kind that discovers (and re-syncs) a cloud organization.
pub const DISCOVER_KIND: &str = "cloud_organization.discover";

/// The job kind that connects discovered members as cloud accounts.
pub const CONNECT_KIND: &str = "cloud_organization.connect_members";

/// What an IAM role name may be (`CanopyAccess`).
pub const ROLE_NAME_PATTERN: &str = "^[A-Za-z0-9+=,.@_-]{1,64}$";

/// Outcomes of the cloud-organization operations other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudOrganizationError {
    /// Input broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow it.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The plan has no organization features.
    #[error(transparent)]
    NotInPlan(#[from] FeatureNotInPlan),
    /// The plan has no room for the members asked.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// No such cloud organization in this tenant organization.
    #[error("cloud organization not found")]
    NotFound,
    /// This tenant already connected it.
    #[error("already connected to this organization")]
    AlreadyConnected,
    /// Another tenant connected it.
    #[error("connected to another organization")]
    ConnectedElsewhere,
    /// A discovery or sync of it is queued or running already: this one.
    #[error("a sync of this cloud organization is already queued or running")]
    SyncInProgress(JobId),
    /// A connect of its members is queued or running already: this one.
    #[error("a connect of this cloud organization's members is already queued or running")]
    ConnectInProgress(JobId),
    /// The provider refused or failed, classified with advice.
    #[error(transparent)]
    Discovery(#[from] DiscoveryFailure),
    /// A customer secret could not be sealed (no operator key) or opened.
    #[error(transparent)]
    Sealing(#[from] SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EntitlementError> for CloudOrganizationError {
    fn from(e: EntitlementError) -> Self {
        match e {
            EntitlementError::NotInPlan(f) => Self::NotInPlan(f),
            EntitlementError::Store(s) => Self::Store(s),
        }
    }
}

impl From<RecordError> for CloudOrganizationError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::AlreadyConnected => Self::AlreadyConnected,
            RecordError::ConnectedElsewhere => Self::ConnectedElsewhere,
            RecordError::Store(s) => Self::Store(s),
        }
    }
}

/// What connecting an AWS Organization needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOrganizationInput {
    /// The role in the management (or delegated admin) account.
    pub management_role_arn: RoleArn,
    /// The role name in every member account (default `CanopyAccess`).
    pub member_role_name: Option<String>,
    /// Name shown in Canopy (default: the organization id).
    pub name: Option<String>,
}

/// The adapters the service runs on.
#[derive(Clone)]
pub struct CloudOrganizationPorts {
    /// Cloud organizations.
    pub repository: Arc<dyn CloudOrganizationRepository>,
    /// AWS Organizations.
    pub aws: Arc<dyn OrganizationDiscoverer>,
    /// GCP Resource Manager.
    pub gcp: Arc<dyn OrganizationDiscoverer>,
    /// Seals the GCP service-account keys customers give.
    pub sealer: Arc<dyn SecretSealer>,
    /// The tenant's External ID.
    pub external_ids: Arc<dyn ExternalIdRepository>,
    /// A first External ID when the tenant has none yet.
    pub secrets: Arc<dyn SecretSource>,
    /// The plan gate.
    pub billing: BillingService,
    /// Where discovery runs.
    pub jobs: JobService,
    /// Cloud accounts, which connected members become.
    pub accounts: crate::CloudAccountService,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The cloud-organization use cases.
#[derive(Clone)]
pub struct CloudOrganizationService {
    ports: CloudOrganizationPorts,
}

/// What disconnecting a cloud organization did.
#[derive(Debug, Clone, PartialEq)]
pub struct Disconnected {
    /// The cloud organization as it was.
    pub cloud_organization: CloudOrganization,
    /// Its cloud accounts, still connected, now standalone.
    pub kept_accounts: Vec<crate::CloudAccountId>,
}

/// A cloud organization's tree with member counts.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeView {
    /// The nodes.
    pub hierarchy: Hierarchy,
    /// Member counts per node.
    pub counts: Vec<NodeCount>,
}

impl CloudOrganizationService {
    /// Builds the service.
    pub fn new(ports: CloudOrganizationPorts) -> Self {
        Self { ports }
    }

    /// The adapters, for the discovery job.
    pub(super) fn ports(&self) -> &CloudOrganizationPorts {
        &self.ports
    }

    /// The tenant's External ID (created on first use, as for cloud accounts), for jobs that
    /// assume the tenant's roles.
    pub async fn external_id(
        &self,
        org: canopy_kernel::id::OrganizationId,
    ) -> Result<String, StoreError> {
        Ok(self
            .ports
            .external_ids
            .current_or_create(ExternalId {
                organization_id: org,
                value: self.ports.secrets.external_id(),
                created_at: self.ports.clock.now(),
                retired_at: None,
            })
            .await?
            .value)
    }

    /// How a job reaches `cloud_org`: the management role with the tenant's External ID, or
    /// the GCP service account (its sealed key opened for this use only, or impersonated).
    /// Fails when a stored key cannot be opened.
    pub async fn access_for(
        &self,
        cloud_org: &CloudOrganization,
    ) -> Result<OrganizationAccess, CloudOrganizationError> {
        Ok(match cloud_org.provider {
            Provider::Aws => OrganizationAccess::Aws {
                role_arn: cloud_org.management_role_arn.clone().unwrap_or_default(),
                external_id: self.external_id(cloud_org.organization_id).await?,
            },
            Provider::Gcp => {
                let credentials = match (&cloud_org.gcp_credentials, &cloud_org.gcp_service_account)
                {
                    (Some(sealed), _) => self
                        .ports
                        .sealer
                        .open(sealed, cloud_org.id.as_uuid().as_bytes())
                        .and_then(|plain| String::from_utf8(plain).map_err(|_| SealError::Corrupt))
                        .map(|key| GcpAccess::Key(ServiceAccountKeyJson::new(key)))?,
                    (None, Some(email)) => GcpAccess::Impersonate(email.clone()),
                    (None, None) => return Err(SealError::Corrupt.into()),
                };
                OrganizationAccess::Gcp {
                    organization: cloud_org.identity.cloud_org_id.clone(),
                    credentials,
                }
            }
        })
    }

    /// Connects an AWS Organization (admin or owner, Pro or Enterprise): the management role
    /// is assumed and the organization described at once (a wrong role is refused here, with
    /// advice), the cloud organization is recorded `discovering`, and a discovery job is
    /// queued. Returns both.
    pub async fn discover_aws(
        &self,
        access: &OrgAccess,
        input: AwsOrganizationInput,
    ) -> Result<(CloudOrganization, Job), CloudOrganizationError> {
        access.require(Action::ConnectCloudAccount)?;
        self.ports
            .billing
            .require_feature(access.org_id(), Feature::OrgFeatures)
            .await?;
        let member_role_name = match input.member_role_name {
            None => DEFAULT_MEMBER_ROLE.to_string(),
            Some(name) => valid_role_name(&name)?,
        };
        let external_id = self.external_id(access.org_id()).await?;
        let identity = self
            .ports
            .aws
            .identify(&OrganizationAccess::Aws {
                role_arn: input.management_role_arn.as_str().to_string(),
                external_id,
            })
            .await?;
        // Any member account may describe its organization, so an answer proves nothing: the
        // role must live in the management account, or every later call fails.
        let role_account = input.management_role_arn.account().as_str();
        if let Some(management) = identity.management_account_id.as_deref()
            && management != role_account
        {
            return Err(DiscoveryFailure::MemberAccountRole {
                role_account: role_account.to_string(),
                management_account: management.to_string(),
                organization: identity.cloud_org_id.clone(),
            }
            .into());
        }
        let now = self.ports.clock.now();
        let name = input
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| identity.cloud_org_id.clone());
        let cloud_org = CloudOrganization {
            management_role_arn: Some(input.management_role_arn.as_str().to_string()),
            member_role_name,
            ..CloudOrganization::discovering(
                CloudOrganizationId::new(),
                access.org_id(),
                Provider::Aws,
                identity,
                name,
                access.user_id(),
                now,
            )
        };
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            AuditAction::CloudOrganizationConnected,
            AuditTarget::new(TargetKind::CloudOrganization, cloud_org.id.to_string()),
            json!({
                "provider": "aws",
                "cloudOrgId": cloud_org.identity.cloud_org_id,
            }),
            now,
        );
        let job = self.record(access, &cloud_org, audit).await?;
        Ok((cloud_org, job))
    }

    /// Records a new cloud organization with its audit event and its first discovery job, in
    /// one transaction; the job.
    pub(super) async fn record(
        &self,
        access: &OrgAccess,
        cloud_org: &CloudOrganization,
        audit: NewAuditEvent,
    ) -> Result<Job, CloudOrganizationError> {
        Ok(self
            .ports
            .repository
            .create(
                cloud_org.clone(),
                audit,
                Some(self.discovery_job(access, cloud_org)),
            )
            .await?
            .ok_or_else(|| StoreError::internal("the discovery job was not queued"))?)
    }

    /// Re-discovers now (admin or owner): the job diffs against what is stored.
    pub async fn sync(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<(CloudOrganization, Job), CloudOrganizationError> {
        access.require(Action::ConnectCloudAccount)?;
        let cloud_org = self.get(access, id).await?;
        self.ports
            .billing
            .require_feature(access.org_id(), Feature::OrgFeatures)
            .await?;
        let audit = self.audit(
            access,
            AuditAction::CloudOrganizationSyncRequested,
            id,
            json!({"cloudOrgId": cloud_org.identity.cloud_org_id}),
        );
        let job = self
            .ports
            .jobs
            .submit(self.discovery_job(access, &cloud_org).audited(audit))
            .await?
            .queued()
            .map_err(CloudOrganizationError::SyncInProgress)?;
        Ok((cloud_org, job))
    }

    pub(super) fn audit(
        &self,
        access: &OrgAccess,
        action: AuditAction,
        id: CloudOrganizationId,
        details: serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            action,
            AuditTarget::new(TargetKind::CloudOrganization, id.to_string()),
            details,
            self.ports.clock.now(),
        )
    }

    /// The discovery job of a request on `cloud_org`.
    pub(super) fn discovery_job(
        &self,
        access: &OrgAccess,
        cloud_org: &CloudOrganization,
    ) -> NewJob {
        NewJob::new(
            access.org_id(),
            JobKind::from_static(DISCOVER_KIND),
            Some(cloud_org.id.as_uuid()),
            json!({"provider": cloud_org.provider.as_str()}),
        )
        .by(access.user_id())
    }

    /// One cloud organization (any member).
    pub async fn get(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<CloudOrganization, CloudOrganizationError> {
        access.require(Action::View)?;
        self.ports
            .repository
            .get(access.org_id(), id)
            .await?
            .ok_or(CloudOrganizationError::NotFound)
    }

    /// The tenant's cloud organizations (any member).
    pub async fn list(
        &self,
        access: &OrgAccess,
        page: PageRequest,
    ) -> Result<Page<CloudOrganization>, CloudOrganizationError> {
        access.require(Action::View)?;
        Ok(self.ports.repository.list(access.org_id(), page).await?)
    }

    /// The OU / folder tree with member counts per node (any member).
    pub async fn hierarchy(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<TreeView, CloudOrganizationError> {
        self.get(access, id).await?;
        let hierarchy = self.ports.repository.hierarchy(id).await?;
        let counts = self.ports.repository.node_counts(id).await?;
        Ok(TreeView { hierarchy, counts })
    }

    /// Members, filtered, by account id (any member).
    pub async fn members(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<StoredMember>, CloudOrganizationError> {
        self.get(access, id).await?;
        Ok(self
            .ports
            .repository
            .members(access.org_id(), id, filter, page)
            .await?)
    }

    /// What syncs changed, newest first (any member).
    pub async fn changes(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        page: PageRequest,
    ) -> Result<Page<RecordedChange>, CloudOrganizationError> {
        self.get(access, id).await?;
        Ok(self
            .ports
            .repository
            .changes(access.org_id(), id, page)
            .await?)
    }
}

impl CloudOrganizationService {
    /// Queues a re-discovery of every cloud organization last attempted more than `every`
    /// ago that has no discovery queued or running; returns how many were queued. Run by the
    /// server on a schedule, so an organization is re-synced even if nobody asks.
    pub async fn queue_due_syncs(&self, every: chrono::Duration) -> Result<usize, StoreError> {
        let now = self.ports.clock.now();
        let due = self.ports.repository.due_for_sync(now - every).await?;
        let mut queued = 0;
        for (org, id) in due {
            // One already queued or running (asked for by a member) is left to run alone.
            let submitted = self
                .ports
                .jobs
                .submit(NewJob::new(
                    org,
                    JobKind::from_static(DISCOVER_KIND),
                    Some(id.as_uuid()),
                    json!({"scheduled": true}),
                ))
                .await?;
            if matches!(submitted, Enqueued::Queued(_)) {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Excludes a member from bulk connects, or includes it again (admin or owner).
    pub async fn set_excluded(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        key: &str,
        excluded: bool,
    ) -> Result<StoredMember, CloudOrganizationError> {
        access.require(Action::ConnectCloudAccount)?;
        let action = if excluded {
            AuditAction::CloudOrganizationMemberExcluded
        } else {
            AuditAction::CloudOrganizationMemberIncluded
        };
        let audit = self.audit(access, action, id, json!({"accountId": key}));
        self.ports
            .repository
            .set_excluded(
                access.org_id(),
                id,
                key,
                excluded,
                audit,
                self.ports.clock.now(),
            )
            .await?
            .ok_or(CloudOrganizationError::NotFound)
    }

    /// Disconnects (deletes) a cloud organization (admin or owner), confirmed by repeating its
    /// cloud org id (`o-...` / `organizations/...`): its tree, members and change log go and
    /// its jobs are cancelled. The cloud accounts connected from it stay connected as
    /// standalone accounts (their roles still work and their history stays); their ids are
    /// returned so a caller can disconnect them too.
    pub async fn delete(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        confirm: &str,
    ) -> Result<Disconnected, CloudOrganizationError> {
        access.require(Action::DisconnectCloudAccount)?;
        let cloud_org = self.get(access, id).await?;
        if confirm.trim() != cloud_org.identity.cloud_org_id {
            return Err(ValidationErrors::single(FieldError::new(
                "confirm",
                "mismatch",
                "repeat the cloud organization's id (o-... or organizations/...) to confirm",
            ))
            .into());
        }
        let audit = self.audit(
            access,
            AuditAction::CloudOrganizationDisconnected,
            id,
            json!({"cloudOrgId": cloud_org.identity.cloud_org_id}),
        );
        let kept = self
            .ports
            .repository
            .delete(access.org_id(), id, audit, self.ports.clock.now())
            .await?
            .ok_or(CloudOrganizationError::NotFound)?;
        Ok(Disconnected {
            cloud_organization: cloud_org,
            kept_accounts: kept.into_iter().map(crate::CloudAccountId).collect(),
        })
    }
}

fn valid_role_name(name: &str) -> Result<String, ValidationErrors> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(ValidationErrors::single(FieldError::new(
            "memberRoleName",
            "pattern",
            "must be an IAM role name: 1-64 letters, digits and +=,.@_-",
        )))
    }
}
