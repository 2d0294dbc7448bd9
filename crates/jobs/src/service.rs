//! Jobs as members see them: read any time, cancel when an admin or owner.

use std::sync::Arc;

use canopy_kernel::{Clock, Page, PageRequest, StoreError};
use canopy_tenancy::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use canopy_tenancy::policy::{Action, Forbidden};
use canopy_tenancy::service::OrgAccess;
use serde_json::json;

use crate::job::{Enqueued, Job, JobFilter, JobId, NewJob};
use crate::ports::JobStore;

/// Outcomes of the job operations other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The caller's role does not allow it.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such job in this organization.
    #[error("job not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues, reads and cancels jobs. Domain services that start long work (discovery, scans)
/// queue through [`JobService::submit`] after their own authorization.
#[derive(Clone)]
pub struct JobService {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
}

impl JobService {
    /// A service over `store`, timed by `clock`.
    pub fn new(store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Queues `job` now, unless a job of its kind on its subject is queued or running (then
    /// that one comes back as [`Enqueued::AlreadyActive`]); the caller has authorized it.
    pub async fn submit(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        self.store.enqueue(job, self.clock.now()).await
    }

    /// The newest job of `kind` on `subject` in `org`, whatever its status (for "when was
    /// this last scanned").
    pub async fn latest_for(
        &self,
        org: canopy_kernel::id::OrganizationId,
        subject: uuid::Uuid,
        kind: &crate::job::JobKind,
    ) -> Result<Option<Job>, StoreError> {
        let filter = JobFilter {
            kind: Some(kind.clone()),
            statuses: vec![],
            subject: Some(subject),
        };
        let page = self
            .store
            .list(
                org,
                &filter,
                PageRequest {
                    limit: 1,
                    after: None,
                },
            )
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// One job of the caller's organization (any member).
    pub async fn get(&self, access: &OrgAccess, id: JobId) -> Result<Job, JobError> {
        access.require(Action::View)?;
        self.store
            .get(access.org_id(), id)
            .await?
            .ok_or(JobError::NotFound)
    }

    /// The caller's organization's jobs, newest first (any member).
    pub async fn list(
        &self,
        access: &OrgAccess,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Page<Job>, JobError> {
        access.require(Action::View)?;
        Ok(self.store.list(access.org_id(), filter, page).await?)
    }

    /// Cancels a job (admin or owner): a queued job stops at once, a running one at its
    /// worker's next heartbeat; a finished job is returned as it is.
    pub async fn cancel(&self, access: &OrgAccess, id: JobId) -> Result<Job, JobError> {
        access.require(Action::RunJobs)?;
        let now = self.clock.now();
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            AuditAction::JobCancelled,
            AuditTarget::new(TargetKind::Job, id.to_string()),
            json!({}),
            now,
        );
        self.store
            .cancel(access.org_id(), id, audit, now)
            .await?
            .ok_or(JobError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobKind, JobStatus};
    use crate::ports::MockJobStore;
    use canopy_kernel::ManualClock;
    use canopy_kernel::id::{OrganizationId, SessionId, UserId};
    use canopy_tenancy::{CredentialKind, Organization, Principal, Role, Slug};

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(chrono::Utc::now()))
    }

    fn access(role: Role) -> OrgAccess {
        let now = chrono::Utc::now();
        let org = Organization {
            id: OrganizationId::new(),
            name: "Acme".into(),
            slug: Slug::from_trusted("acme".into()),
            logo: None,
            metadata: json!({}),
            created_at: now,
            updated_at: now,
        };
        let principal = Principal {
            user_id: UserId::new(),
            credential: CredentialKind::Session(SessionId::new()),
        };
        OrgAccess::for_tests(org, role, principal)
    }

    fn job(org: OrganizationId) -> Job {
        NewJob::new(org, JobKind::from_static("test.job"), None, json!({}))
            .into_job(chrono::Utc::now())
    }

    #[tokio::test]
    async fn a_member_reads_but_cannot_cancel() {
        let member = access(Role::Member);
        let stored = job(member.org_id());
        let mut store = MockJobStore::new();
        let id = stored.id;
        store
            .expect_get()
            .returning(move |_, _| Ok(Some(stored.clone())));
        store.expect_cancel().never();
        let service = JobService::new(Arc::new(store), clock());
        assert_eq!(service.get(&member, id).await.unwrap().id, id);
        assert!(matches!(
            service.cancel(&member, id).await,
            Err(JobError::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn an_admin_cancels_within_the_organization_and_the_event_is_audited() {
        let admin = access(Role::Admin);
        let org = admin.org_id();
        let mut cancelled = job(org);
        cancelled.status = JobStatus::Cancelled;
        let id = cancelled.id;
        let mut store = MockJobStore::new();
        store
            .expect_cancel()
            .withf(move |o, j, audit, _| {
                *o == org
                    && *j == id
                    && audit.action == AuditAction::JobCancelled
                    && audit.target.id == id.to_string()
            })
            .returning(move |_, _, _, _| Ok(Some(cancelled.clone())));
        let service = JobService::new(Arc::new(store), clock());
        assert_eq!(
            service.cancel(&admin, id).await.unwrap().status,
            JobStatus::Cancelled
        );
    }

    #[tokio::test]
    async fn another_organizations_job_is_not_found() {
        let admin = access(Role::Owner);
        let mut store = MockJobStore::new();
        store.expect_get().returning(|_, _| Ok(None));
        store.expect_cancel().returning(|_, _, _, _| Ok(None));
        let service = JobService::new(Arc::new(store), clock());
        assert_eq!(
            service.get(&admin, JobId::new()).await,
            Err(JobError::NotFound)
        );
        assert_eq!(
            service.cancel(&admin, JobId::new()).await,
            Err(JobError::NotFound)
        );
    }
}
