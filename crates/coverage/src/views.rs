//! The organization-wide view served from folded detections: each member's own detections come
//! as [`Marks`] through the [`MarksStore`] port (kept by the store in the transaction of every
//! detection write), so a view over 1,000 accounts reads 1,000 small rows, the organization's
//! own detections and its tree, not every detection of the estate.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::service::{DetectionError, DetectionService};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;
use uuid::Uuid;

use crate::organization::{OrganizationCoverage, organization_coverage};
use crate::summary::{AccountSummary, Marks, Member, estate_summaries};

/// Each account's own detections, folded. Implemented by `canopy-store`, which folds them
/// again in the transaction of every write to an account's detections.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MarksStore: Send + Sync {
    /// The own marks of these accounts of `org` against `catalog`. An account whose marks
    /// are missing (written before marks existed) or were folded against another catalog is
    /// folded again from its detections, and kept. Accounts of another tenant are left out.
    async fn own_marks(
        &self,
        org: OrganizationId,
        accounts: &[Uuid],
        catalog: &'static Catalog,
    ) -> Result<HashMap<Uuid, Marks>, StoreError>;
}

/// Serves coverage views that span a whole cloud organization.
#[derive(Clone)]
pub struct CoverageViews {
    detections: DetectionService,
    marks: Arc<dyn MarksStore>,
}

impl CoverageViews {
    /// Wires the views over their ports.
    pub fn new(detections: DetectionService, marks: Arc<dyn MarksStore>) -> Self {
        Self { detections, marks }
    }

    /// The organization-wide view of a cloud organization (any member); another tenant's is
    /// `NotFound`.
    pub async fn organization(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<OrganizationCoverage, DetectionError> {
        let rows = self.summaries(access, id).await?;
        Ok(organization_coverage(Catalog::embedded(), &rows))
    }

    /// Every connected member's summary `(cloud account, provider id, summary)`, by provider
    /// id (any member); another tenant's cloud organization is `NotFound`.
    pub async fn summaries(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Vec<(Uuid, String, AccountSummary)>, DetectionError> {
        access.require(Action::View)?;
        let org = access.org_id();
        let frame = self
            .detections
            .organization_frame_of(org, id)
            .await?
            .ok_or(DetectionError::NotFound)?;
        let catalog = Catalog::embedded();
        let ids: Vec<Uuid> = frame.members.iter().map(|m| m.cloud_account_id).collect();
        let own = self.marks.own_marks(org, &ids, catalog).await?;
        let empty = Marks::empty(catalog);
        let members: Vec<Member<'_>> = frame
            .members
            .iter()
            .map(|m| Member {
                key: &m.key,
                parent: Some(m.parent_id.as_str()),
                own: own.get(&m.cloud_account_id).unwrap_or(&empty),
            })
            .collect();
        let summaries = estate_summaries(catalog, &frame.hierarchy, &members, &frame.organization);
        Ok(frame
            .members
            .iter()
            .zip(summaries)
            .map(|(m, s)| (m.cloud_account_id, m.key.clone(), s))
            .collect())
    }
}
