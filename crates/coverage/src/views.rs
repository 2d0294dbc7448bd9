//! The organization-wide view served from folded detections: each member's own detections come
//! as [`Marks`] through the [`MarksStore`] port (kept by the store in the transaction of every
//! detection write), so a view over 1,000 accounts reads 1,000 small rows, the organization's
//! own detections and its tree, not every detection of the estate.
//!
//! Each computed view is kept (the [`ViewCache`] port) beside the tenant's coverage revision it was
//! computed after, and served again while a one-row read says that revision has not moved
//! (the store moves it in the transaction of every write a view reads from).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::hierarchy::Hierarchy;
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

    /// The tenant's coverage revision: it moves in the transaction of every write to what a
    /// view is computed from (detections, a cloud organization's tree and members, a cloud
    /// account or organization deleted), and never comes back to an earlier value.
    async fn revision(&self, org: OrganizationId) -> Result<i64, StoreError>;
}

/// Every connected member's summary: `(cloud account, provider id, summary)`.
pub type Summaries = Vec<(Uuid, String, AccountSummary)>;

/// A cloud organization's views as computed after `revision` was read.
#[derive(Debug)]
pub struct KeptView {
    /// The tenant's coverage revision read before the inputs.
    pub revision: i64,
    /// Every connected member's summary.
    pub summaries: Arc<Summaries>,
    /// The organization-wide view over them.
    pub organization: Arc<OrganizationCoverage>,
    /// Where each of them sits.
    pub placement: Arc<Placement>,
}

/// Where a cloud organization's connected members sit, as the view was computed: its tree
/// and each account's OU / folder, so a view can be narrowed to a subtree.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The OU / folder tree.
    pub hierarchy: Hierarchy,
    /// Each connected member's OU / folder, by cloud account.
    pub parent_of: HashMap<Uuid, String>,
}

impl Placement {
    /// True when `account` sits in `node` or anywhere under it.
    pub fn is_under(&self, account: Uuid, node: &str) -> bool {
        self.parent_of
            .get(&account)
            .is_some_and(|parent| self.hierarchy.is_under(parent, node))
    }
}

/// Where computed views are kept between reads (in process: `canopy-cache`'s moka one). It
/// may drop any entry at any time; [`NoViewCache`] keeps nothing.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ViewCache: Send + Sync {
    /// The view kept for this tenant's cloud organization, if any.
    async fn get(&self, org: OrganizationId, id: CloudOrganizationId) -> Option<Arc<KeptView>>;

    /// Keeps `view` for this tenant's cloud organization, replacing what was kept.
    async fn put(&self, org: OrganizationId, id: CloudOrganizationId, view: Arc<KeptView>);
}

/// A [`ViewCache`] that keeps nothing: every read computes (for embedders and tests that
/// want no state between reads).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoViewCache;

#[async_trait]
impl ViewCache for NoViewCache {
    async fn get(&self, _: OrganizationId, _: CloudOrganizationId) -> Option<Arc<KeptView>> {
        None
    }

    async fn put(&self, _: OrganizationId, _: CloudOrganizationId, _: Arc<KeptView>) {}
}

/// Serves coverage views that span a whole cloud organization.
#[derive(Clone)]
pub struct CoverageViews {
    detections: DetectionService,
    marks: Arc<dyn MarksStore>,
    kept: Arc<dyn ViewCache>,
}

impl CoverageViews {
    /// Wires the views over their ports.
    pub fn new(
        detections: DetectionService,
        marks: Arc<dyn MarksStore>,
        kept: Arc<dyn ViewCache>,
    ) -> Self {
        Self {
            detections,
            marks,
            kept,
        }
    }

    /// The organization-wide view of a cloud organization (any member); another tenant's is
    /// `NotFound`.
    pub async fn organization(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Arc<OrganizationCoverage>, DetectionError> {
        Ok(self.current(access, id).await?.organization.clone())
    }

    /// Every connected member's summary, by provider id (any member); another tenant's cloud
    /// organization is `NotFound`.
    pub async fn summaries(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Arc<Summaries>, DetectionError> {
        Ok(self.current(access, id).await?.summaries.clone())
    }

    /// Where its connected members sit, as the views were computed (any member).
    pub async fn placement(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Arc<Placement>, DetectionError> {
        Ok(self.current(access, id).await?.placement.clone())
    }

    /// The kept views when the tenant's revision has not moved since they were computed;
    /// otherwise computed again and kept.
    async fn current(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Arc<KeptView>, DetectionError> {
        access.require(Action::View)?;
        let org = access.org_id();
        // Read before the inputs: a write landing while they are read moves the revision
        // past the one kept, so the next read computes again. Read after, such a write
        // could be kept under its own revision without its rows.
        let revision = self.marks.revision(org).await?;
        if let Some(kept) = self.kept.get(org, id).await
            && kept.revision == revision
        {
            return Ok(kept);
        }
        let (summaries, placement) = self.compute(org, id).await?;
        let organization = organization_coverage(Catalog::embedded(), &summaries);
        let computed = Arc::new(KeptView {
            revision,
            summaries: Arc::new(summaries),
            organization: Arc::new(organization),
            placement: Arc::new(placement),
        });
        self.kept.put(org, id, computed.clone()).await;
        Ok(computed)
    }

    async fn compute(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<(Summaries, Placement), DetectionError> {
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
        let summaries = frame
            .members
            .iter()
            .zip(summaries)
            .map(|(m, s)| (m.cloud_account_id, m.key.clone(), s))
            .collect();
        let placement = Placement {
            parent_of: frame
                .members
                .iter()
                .map(|m| (m.cloud_account_id, m.parent_id.clone()))
                .collect(),
            hierarchy: frame.hierarchy,
        };
        Ok((summaries, placement))
    }
}
