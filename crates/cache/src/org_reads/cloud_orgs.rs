//! Cloud organizations in front of [`OrgReadCache`]: disconnecting one detaches its accounts
//! in the same transaction, so a request that disconnects and then lists its accounts on this
//! replica must see them detached at once. Nothing is cached here; every call goes to the
//! store. The writes a job makes (a sync's moves, a connect settling its members) reach the
//! cache by notification within milliseconds: a job's caller learns of its end only later.

use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_cloud_org::organization::member::DiscoveredMember;
use canopy_cloud_org::organization::ports::{
    CloudOrganizationRepository, ConnectClaim, ConnectedPlacement, DiscoveryWrite, MemberFilter,
    NodeCount, RecordError, RecordedChange, Selection, StoredMember,
};
use canopy_cloud_org::organization::{CloudOrganization, CloudOrganizationId, ConnectionStatus};
use canopy_cloud_org::sealing::SealedSecret;
use canopy_jobs::{Job, NewJob};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Page, PageRequest, StoreError};
use canopy_tenancy::{GrantChange, NewAuditEvent};
use chrono::{DateTime, Utc};

use super::OrgReadCache;

impl OrgReadCache {
    /// `repository` with its disconnects dropping the organization's reads at once.
    pub fn wrap_cloud_organizations(
        &self,
        repository: Arc<dyn CloudOrganizationRepository>,
    ) -> Arc<dyn CloudOrganizationRepository> {
        Arc::new(CachedCloudOrganizations {
            cache: self.clone(),
            repository,
        })
    }
}

struct CachedCloudOrganizations {
    cache: OrgReadCache,
    repository: Arc<dyn CloudOrganizationRepository>,
}

#[async_trait]
impl CloudOrganizationRepository for CachedCloudOrganizations {
    async fn create(
        &self,
        cloud_org: CloudOrganization,
        audit: NewAuditEvent,
        job: Option<NewJob>,
    ) -> Result<Option<Job>, RecordError> {
        self.repository.create(cloud_org, audit, job).await
    }

    async fn get(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Option<CloudOrganization>, StoreError> {
        self.repository.get(org, id).await
    }

    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<CloudOrganization>, StoreError> {
        self.repository.list(org, page).await
    }

    async fn hierarchy(&self, id: CloudOrganizationId) -> Result<Hierarchy, StoreError> {
        self.repository.hierarchy(id).await
    }

    async fn connected_placements(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Vec<ConnectedPlacement>, StoreError> {
        self.repository.connected_placements(org, id).await
    }

    async fn snapshot(
        &self,
        id: CloudOrganizationId,
    ) -> Result<(Hierarchy, Vec<DiscoveredMember>), StoreError> {
        self.repository.snapshot(id).await
    }

    async fn apply(
        &self,
        id: CloudOrganizationId,
        write: DiscoveryWrite,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.repository.apply(id, write, now).await
    }

    async fn set_status(
        &self,
        id: CloudOrganizationId,
        status: ConnectionStatus,
        error: Option<String>,
        unreadable: Vec<String>,
        discovered: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.repository
            .set_status(id, status, error, unreadable, discovered, now)
            .await
    }

    async fn members(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<StoredMember>, StoreError> {
        self.repository.members(org, id, filter, page).await
    }

    async fn node_counts(&self, id: CloudOrganizationId) -> Result<Vec<NodeCount>, StoreError> {
        self.repository.node_counts(id).await
    }

    async fn connectable(
        &self,
        id: CloudOrganizationId,
        selection: &Selection,
    ) -> Result<Vec<StoredMember>, StoreError> {
        self.repository.connectable(id, selection).await
    }

    async fn claim_for_connect(
        &self,
        id: CloudOrganizationId,
        keys: &[String],
        now: DateTime<Utc>,
        job: NewJob,
    ) -> Result<ConnectClaim, StoreError> {
        self.repository.claim_for_connect(id, keys, now, job).await
    }

    async fn settle(
        &self,
        id: CloudOrganizationId,
        key: &str,
        account: Option<uuid::Uuid>,
        failure: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.repository.settle(id, key, account, failure, now).await
    }

    async fn set_excluded(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        key: &str,
        excluded: bool,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredMember>, StoreError> {
        self.repository
            .set_excluded(org, id, key, excluded, audit, now)
            .await
    }

    async fn delete(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<uuid::Uuid>>, StoreError> {
        let outcome = self.repository.delete(org, id, audit, now).await;
        self.cache.changed(outcome, GrantChange::Data(org))
    }

    async fn due_for_sync(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(OrganizationId, CloudOrganizationId)>, StoreError> {
        self.repository.due_for_sync(before).await
    }

    async fn sealed_with_other_keys(
        &self,
        current_key_id: &str,
    ) -> Result<Vec<(CloudOrganizationId, SealedSecret)>, StoreError> {
        self.repository.sealed_with_other_keys(current_key_id).await
    }

    async fn replace_sealed(
        &self,
        id: CloudOrganizationId,
        expected: &SealedSecret,
        sealed: SealedSecret,
    ) -> Result<bool, StoreError> {
        self.repository.replace_sealed(id, expected, sealed).await
    }

    async fn changes(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        page: PageRequest,
    ) -> Result<Page<RecordedChange>, StoreError> {
        self.repository.changes(org, id, page).await
    }
}
