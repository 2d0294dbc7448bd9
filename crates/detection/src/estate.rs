//! An account's or a whole cloud organization's effective detections, read once for what is
//! computed over them (coverage): the organization's detections and tree are read once, not
//! per account.

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::{CloudAccount, CloudAccountId};
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;

use crate::ports::{DetectionFilter, Target};
use crate::service::{AccountDetection, DetectionError, DetectionService, Origin, inherit};

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
        let account = self.account(access, id).await?;
        let effective = self
            .effective(access, &account, &DetectionFilter::default())
            .await?;
        Ok((account, effective))
    }

    /// Every connected member account of a cloud organization with its effective detections
    /// (any member). Members that left the organization are not in it.
    pub async fn organization_estate(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Estate, DetectionError> {
        access.require(Action::View)?;
        self.cloud_org(access, id).await?;
        let org = access.org_id();
        let ports = &self.ports;
        let (hierarchy, _) = ports.cloud_organizations.snapshot(id).await?;
        let inherited = ports
            .repository
            .all(
                org,
                Target::CloudOrganization(id.as_uuid()),
                &DetectionFilter::default(),
            )
            .await?;
        let mut accounts = Vec::new();
        for account in self.connected_members(org, id).await? {
            let Some(placement) = account.placement.as_ref().filter(|p| p.left_at.is_none()) else {
                continue;
            };
            let mut rows: Vec<AccountDetection> = ports
                .repository
                .all(
                    org,
                    Target::Account(account.id.as_uuid()),
                    &DetectionFilter::default(),
                )
                .await?
                .into_iter()
                .map(|detection| AccountDetection {
                    detection,
                    origin: Origin::Own,
                })
                .collect();
            rows.extend(inherit(
                account.identity.account_key(),
                placement.parent_id.as_deref(),
                id,
                &hierarchy,
                inherited.iter().cloned(),
            ));
            accounts.push((account, rows));
        }
        accounts.sort_by(|a, b| a.0.identity.account_key().cmp(b.0.identity.account_key()));
        Ok(Estate { accounts })
    }
}
