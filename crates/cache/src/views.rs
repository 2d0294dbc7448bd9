//! [`ViewCache`] in process with moka: computed coverage views, bounded by the members they
//! summarize, dropped after a quarter of an hour unread. What is kept is only ever served
//! while the tenant's coverage revision has not moved (the domain checks it on every read),
//! so the bound and the idle time are about memory, not about staleness.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_coverage::views::{KeptView, ViewCache};
use canopy_kernel::id::OrganizationId;
use moka::future::Cache;
use uuid::Uuid;

/// Members summed over the kept views: a member's summary is about 1 KiB, so the cache stays
/// under about 64 MiB.
const MAX_MEMBERS: u64 = 65_536;

/// Kept views unread for this long are dropped.
const IDLE: Duration = Duration::from_secs(15 * 60);

/// Coverage views kept in this process.
#[derive(Clone)]
pub struct InProcessViews {
    cache: Cache<(Uuid, Uuid), Arc<KeptView>>,
}

impl std::fmt::Debug for InProcessViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessViews")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl Default for InProcessViews {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessViews {
    /// An empty cache with the default bounds.
    pub fn new() -> Self {
        Self {
            cache: Cache::builder()
                .weigher(|_, view: &Arc<KeptView>| {
                    u32::try_from(view.summaries.len().max(1)).unwrap_or(u32::MAX)
                })
                .max_capacity(MAX_MEMBERS)
                .time_to_idle(IDLE)
                .build(),
        }
    }
}

#[async_trait]
impl ViewCache for InProcessViews {
    async fn get(&self, org: OrganizationId, id: CloudOrganizationId) -> Option<Arc<KeptView>> {
        self.cache.get(&(org.as_uuid(), id.as_uuid())).await
    }

    async fn put(&self, org: OrganizationId, id: CloudOrganizationId, view: Arc<KeptView>) {
        self.cache.insert((org.as_uuid(), id.as_uuid()), view).await;
    }
}

#[cfg(test)]
mod tests {
    use canopy_coverage::organization::organization_coverage;
    use canopy_detection::catalog::Catalog;

    use super::*;

    fn view(revision: i64) -> Arc<KeptView> {
        Arc::new(KeptView {
            revision,
            summaries: Arc::new(Vec::new()),
            organization: Arc::new(organization_coverage(Catalog::embedded(), &[])),
            placement: Arc::default(),
        })
    }

    #[tokio::test]
    async fn a_view_is_kept_per_tenant_and_cloud_organization_and_replaced() {
        let views = InProcessViews::new();
        let (mine, theirs) = (OrganizationId::new(), OrganizationId::new());
        let id = CloudOrganizationId(Uuid::now_v7());
        views.put(mine, id, view(3)).await;
        assert_eq!(views.get(mine, id).await.map(|v| v.revision), Some(3));
        assert!(
            views.get(theirs, id).await.is_none(),
            "another tenant's key"
        );
        views.put(mine, id, view(4)).await;
        assert_eq!(views.get(mine, id).await.map(|v| v.revision), Some(4));
    }
}
