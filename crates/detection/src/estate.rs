//! An account's or a whole cloud organization's effective detections, read once for what is
//! computed over them (coverage): the organization's detections and tree are read once, not
//! per account.

use std::collections::HashMap;

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_cloud_org::organization::ports::ConnectedPlacement;
use canopy_cloud_org::{CloudAccount, CloudAccountId};
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;

use crate::detection::{Detection, Scope};
use crate::ports::{DetectionFilter, Target};
use crate::service::{AccountDetection, DetectionError, DetectionService, Origin, inherit};

/// A cloud organization's tree, its organization detections and its connected members.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The OU / folder tree.
    pub hierarchy: Hierarchy,
    /// Its organization-scope detections, by id.
    pub organization: Vec<Detection>,
    /// Connected members still in it, by provider id.
    pub members: Vec<ConnectedPlacement>,
}

/// A cloud organization's connected member accounts, each with its effective detections.
#[derive(Debug, Clone)]
pub struct Estate {
    /// By provider id.
    pub accounts: Vec<(CloudAccount, Vec<AccountDetection>)>,
}

impl DetectionService {
    /// One account and its effective detections (any member).
    pub async fn account_estate(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
    ) -> Result<(CloudAccount, Vec<AccountDetection>), DetectionError> {
        access.require(Action::View)?;
        self.account_estate_of(access.org_id(), id)
            .await?
            .ok_or(DetectionError::NotFound)
    }

    /// [`Self::account_estate`] for the system (a job): no caller to check; `None` when the
    /// account is not `org`'s.
    pub async fn account_estate_of(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
    ) -> Result<Option<(CloudAccount, Vec<AccountDetection>)>, DetectionError> {
        let Some(account) = self.ports.accounts.get(org, id).await? else {
            return Ok(None);
        };
        let effective = self
            .effective(org, &account, &DetectionFilter::default())
            .await?;
        Ok(Some((account, effective)))
    }

    /// Every connected member account of a cloud organization with its effective detections
    /// (any member). Members that left the organization are not in it.
    pub async fn organization_estate(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Estate, DetectionError> {
        access.require(Action::View)?;
        self.organization_estate_of(access.org_id(), id)
            .await?
            .ok_or(DetectionError::NotFound)
    }

    /// [`Self::organization_estate`] for the system (a job): no caller to check; `None` when
    /// the cloud organization is not `org`'s.
    pub async fn organization_estate_of(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Option<Estate>, DetectionError> {
        let ports = &self.ports;
        if ports.cloud_organizations.get(org, id).await?.is_none() {
            return Ok(None);
        }
        let hierarchy = ports.cloud_organizations.hierarchy(id).await?;
        let organization = self.organization_detections(org, id).await?;
        let members: Vec<CloudAccount> = self
            .connected_members(org, id)
            .await?
            .into_iter()
            .filter(|a| a.placement.as_ref().is_some_and(|p| p.left_at.is_none()))
            .collect();
        // One read for every member's own detections, not one per account.
        let ids: Vec<uuid::Uuid> = members.iter().map(|a| a.id.as_uuid()).collect();
        let mut own: HashMap<uuid::Uuid, Vec<AccountDetection>> = HashMap::new();
        for detection in self.ports.repository.all_of_accounts(org, &ids).await? {
            if let Scope::Account(account) = detection.scope {
                own.entry(account.as_uuid())
                    .or_default()
                    .push(AccountDetection {
                        detection,
                        origin: Origin::Own,
                    });
            }
        }
        let mut accounts = Vec::new();
        for account in members {
            let Some(placement) = account.placement.as_ref() else {
                continue;
            };
            let mut rows = own.remove(&account.id.as_uuid()).unwrap_or_default();
            rows.extend(inherit(
                account.identity.account_key(),
                placement.parent_id.as_deref(),
                id,
                &hierarchy,
                &organization,
            ));
            rows.sort_by_key(|r| r.detection.id);
            accounts.push((account, rows));
        }
        accounts.sort_by(|a, b| a.0.identity.account_key().cmp(b.0.identity.account_key()));
        Ok(Some(Estate { accounts }))
    }

    /// What a cloud organization's coverage is computed over, apart from its members' own
    /// detections: its tree, its organization detections and where each connected member
    /// sits, read from the member rows alone (no cloud account is read). `None` when the cloud
    /// organization is not `org`'s. The organization view reads the members' own detections
    /// folded (`canopy-coverage`'s marks).
    pub async fn organization_frame_of(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Option<Frame>, DetectionError> {
        let ports = &self.ports;
        if ports.cloud_organizations.get(org, id).await?.is_none() {
            return Ok(None);
        }
        let hierarchy = ports.cloud_organizations.hierarchy(id).await?;
        let organization = self.organization_detections(org, id).await?;
        let members = ports
            .cloud_organizations
            .connected_placements(org, id)
            .await?;
        Ok(Some(Frame {
            hierarchy,
            organization,
            members,
        }))
    }

    async fn organization_detections(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Vec<Detection>, DetectionError> {
        Ok(self
            .ports
            .repository
            .all(
                org,
                Target::CloudOrganization(id.as_uuid()),
                &DetectionFilter::default(),
            )
            .await?)
    }
}

impl DetectionService {
    /// Checks `target` is the caller's tenant's (any member): another tenant's is `NotFound`.
    pub async fn require_target(
        &self,
        access: &OrgAccess,
        target: Target,
    ) -> Result<(), DetectionError> {
        access.require(Action::View)?;
        match target {
            Target::Account(id) => self.account(access, CloudAccountId(id)).await.map(drop),
            Target::CloudOrganization(id) => self
                .cloud_org(access, CloudOrganizationId(id))
                .await
                .map(drop),
        }
    }
}
