//! Connecting a cloud organization's members as cloud accounts: what a selection would take
//! and whether the plan has room (the console's confirmation step), and the connect itself,
//! queued as a job.

use canopy_billing::Feature;
use canopy_jobs::{Job, JobKind, NewJob};
use canopy_kernel::LimitedResource;
use canopy_kernel::validation::{FieldError, ValidationErrors};
use canopy_tenancy::audit::AuditAction;
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;
use serde_json::json;

use super::CloudOrganizationId;
use super::ports::{ConnectClaim, Selection};
use super::service::{CONNECT_KIND, CloudOrganizationError, CloudOrganizationService};

/// What a connect request queued.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPlan {
    /// The job connecting them.
    pub job: Job,
    /// Account ids it will connect.
    pub queued: Vec<String>,
    /// Account ids left out because the plan has no room for them (`upToLimit`).
    pub over_limit: Vec<String>,
}

/// What connecting a selection would do, told before anything is connected.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPreview {
    /// Account ids a connect of the selection would take (connectable ones only).
    pub keys: Vec<String>,
    /// The plan's room for them: how many more fit, and the refusal connecting them all
    /// would get (with the least tier that fits them), when they do not all fit.
    pub room: canopy_billing::Room,
}

impl CloudOrganizationService {
    /// What connecting `selection` would take and whether the plan has room for it (admin or
    /// owner, as for the connect itself): for a confirmation step before anything is
    /// connected. Advisory; the connect checks again, exactly.
    pub async fn preview_connect(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        selection: &Selection,
    ) -> Result<ConnectPreview, CloudOrganizationError> {
        access.require(Action::ConnectCloudAccount)?;
        self.get(access, id).await?;
        self.ports()
            .billing
            .require_feature(access.org_id(), Feature::OrgFeatures)
            .await?;
        let keys: Vec<String> = self
            .ports()
            .repository
            .connectable(id, selection)
            .await?
            .into_iter()
            .map(|m| m.found.key)
            .collect();
        let room = self
            .ports()
            .billing
            .room_for(
                access.org_id(),
                LimitedResource::CloudAccounts,
                keys.len() as u64,
            )
            .await?;
        Ok(ConnectPreview { keys, room })
    }

    /// Connects discovered members as cloud accounts through the member role (admin or
    /// owner): every connectable one, the listed ones or those under OUs / folders; excluded,
    /// connected and departed members are skipped. When they do not all fit in the plan the
    /// whole request is refused (402), unless `up_to_limit` connects as many as fit and
    /// reports the rest. The limit is enforced again, exactly, as each account is inserted.
    pub async fn connect_members(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        selection: Selection,
        up_to_limit: bool,
    ) -> Result<ConnectPlan, CloudOrganizationError> {
        access.require(Action::ConnectCloudAccount)?;
        let cloud_org = self.get(access, id).await?;
        self.ports()
            .billing
            .require_feature(access.org_id(), Feature::OrgFeatures)
            .await?;
        let candidates = self.ports().repository.connectable(id, &selection).await?;
        if candidates.is_empty() {
            return Err(none_connectable().into());
        }
        let mut queued: Vec<String> = candidates.into_iter().map(|m| m.found.key).collect();
        let room = self
            .ports()
            .billing
            .room_for(
                access.org_id(),
                LimitedResource::CloudAccounts,
                queued.len() as u64,
            )
            .await?;
        let mut over_limit = Vec::new();
        if let Some(refusal) = room.refusal {
            if !up_to_limit || room.remaining == Some(0) {
                return Err(refusal.into());
            }
            let fit = usize::try_from(room.remaining.unwrap_or(0)).unwrap_or(usize::MAX);
            over_limit = queued.split_off(fit.min(queued.len()));
        }
        let now = self.ports().clock.now();
        let job = NewJob::new(
            access.org_id(),
            JobKind::from_static(CONNECT_KIND),
            Some(cloud_org.id.as_uuid()),
            json!({"accounts": queued, "overLimit": over_limit}),
        )
        .by(access.user_id())
        .audited(self.audit(
            access,
            AuditAction::CloudOrganizationMembersConnectRequested,
            id,
            json!({"accounts": queued.len(), "overLimit": over_limit.len()}),
        ));
        match self
            .ports()
            .repository
            .claim_for_connect(id, &queued, now, job)
            .await?
        {
            ConnectClaim::Queued { keys, job } => Ok(ConnectPlan {
                job: *job,
                queued: keys,
                over_limit,
            }),
            ConnectClaim::AlreadyRunning(running) => {
                Err(CloudOrganizationError::ConnectInProgress(running))
            }
            // Connected by the request that ran just before this one.
            ConnectClaim::NoneTaken => Err(none_connectable().into()),
        }
    }
}

fn none_connectable() -> ValidationErrors {
    ValidationErrors::single(FieldError::new(
        "members",
        "none_connectable",
        "no member matches that can be connected (excluded, connected and departed members \
         are skipped)",
    ))
}
