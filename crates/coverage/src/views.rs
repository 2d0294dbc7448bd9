//! The organization-wide view served from folded detections: each member's own detections come
//! as [`Marks`] through the [`MarksStore`] port (kept by the store in the transaction of every
//! detection write), so a view over 1,000 accounts reads 1,000 small rows, the organization's
//! own detections and its tree, not every detection of the estate.
//!
//! Each computed view is kept in process beside the tenant's coverage revision it was
//! computed after, and served again while a one-row read says that revision has not moved
//! (the store moves it in the transaction of every write a view reads from).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::service::{DetectionError, DetectionService};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;
use moka::future::Cache;
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

/// Members summed over the views kept in process: a member's summary is about 1 KiB, so the
/// cache stays under about 64 MiB.
const CACHED_MEMBERS: u64 = 65_536;

/// Every connected member's summary: `(cloud account, provider id, summary)`.
pub type Summaries = Vec<(Uuid, String, AccountSummary)>;

/// A cloud organization's views as computed after `revision` was read.
struct Computed {
    revision: i64,
    summaries: Arc<Summaries>,
    organization: Arc<OrganizationCoverage>,
}

/// Serves coverage views that span a whole cloud organization.
#[derive(Clone)]
pub struct CoverageViews {
    detections: DetectionService,
    marks: Arc<dyn MarksStore>,
    computed: Cache<(Uuid, Uuid), Arc<Computed>>,
}

impl CoverageViews {
    /// Wires the views over their ports.
    pub fn new(detections: DetectionService, marks: Arc<dyn MarksStore>) -> Self {
        let computed = Cache::builder()
            .weigher(|_, c: &Arc<Computed>| {
                u32::try_from(c.summaries.len().max(1)).unwrap_or(u32::MAX)
            })
            .max_capacity(CACHED_MEMBERS)
            .time_to_idle(Duration::from_secs(15 * 60))
            .build();
        Self {
            detections,
            marks,
            computed,
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

    /// The kept views when the tenant's revision has not moved since they were computed;
    /// otherwise computed again and kept.
    async fn current(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Arc<Computed>, DetectionError> {
        access.require(Action::View)?;
        let org = access.org_id();
        // Read before the inputs: a write landing while they are read moves the revision
        // past the one kept, so the next read computes again. Read after, such a write
        // could be kept under its own revision without its rows.
        let revision = self.marks.revision(org).await?;
        let key = (org.as_uuid(), id.as_uuid());
        if let Some(kept) = self.computed.get(&key).await
            && kept.revision == revision
        {
            return Ok(kept);
        }
        let summaries = self.compute(org, id).await?;
        let organization = organization_coverage(Catalog::embedded(), &summaries);
        let computed = Arc::new(Computed {
            revision,
            summaries: Arc::new(summaries),
            organization: Arc::new(organization),
        });
        self.computed.insert(key, computed.clone()).await;
        Ok(computed)
    }

    async fn compute(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Summaries, DetectionError> {
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
