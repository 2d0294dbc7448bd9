//! Scans as durable jobs: a cloud organization's own controls (`detection.scan_organization`),
//! every connected member account (`detection.scan_members`, bounded concurrency, progress per
//! account) and one account (`detection.scan_account`). Each run reads what is stored, lets
//! [`reconcile`] decide, and writes in one transaction, so a run repeated after a dead worker
//! neither duplicates nor loses anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use canopy_billing::Feature;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::MemberFilter;
use canopy_cloud_org::{AccountFilter, CloudAccount, CloudAccountId, Provider};
use canopy_jobs::{Enqueued, Job, JobContext, JobFailure, JobHandler, JobKind, NewJob, Progress};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{PageRequest, Stop, StoreError};
use canopy_tenancy::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::detection::{ScopeKind, Source};
use crate::ports::{
    AccountScanRequest, DetectionFilter, OrganizationScanRequest, SourceReport, Target,
};
use crate::reconcile::{ScanScope, SourceSummary, account_scope, organization_scope, reconcile};
use crate::service::{DetectionError, DetectionService};

/// Scans a cloud organization's own controls.
pub const SCAN_ORGANIZATION_KIND: &str = "detection.scan_organization";

/// Scans every connected member account of a cloud organization.
pub const SCAN_MEMBERS_KIND: &str = "detection.scan_members";

/// Scans one cloud account.
pub const SCAN_ACCOUNT_KIND: &str = "detection.scan_account";

/// Member accounts scanned at once unless configured otherwise.
pub const DEFAULT_ACCOUNTS_IN_FLIGHT: usize = 16;

/// The latest scans of a cloud organization.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanStatus {
    /// The latest organization-level scan.
    pub organization: Option<Job>,
    /// The latest scan of its member accounts.
    pub members: Option<Job>,
}

/// How one account's scan went, in a members scan's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    /// The cloud account.
    pub cloud_account_id: uuid::Uuid,
    /// Its provider id.
    pub account: String,
    /// Controls found present.
    pub found: u32,
    /// Sources that could not be read.
    pub errors: u32,
    /// Per source.
    pub sources: Vec<SourceSummary>,
}

fn transient(e: StoreError) -> JobFailure {
    JobFailure::Transient(e.to_string())
}

impl DetectionService {
    fn scan_audit(
        &self,
        access: &OrgAccess,
        action: AuditAction,
        target: AuditTarget,
        what: &str,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            action,
            target,
            json!({"scan": what}),
            self.ports.clock.now(),
        )
    }

    async fn queue(
        &self,
        access: &OrgAccess,
        kind: &'static str,
        subject: uuid::Uuid,
        audit: NewAuditEvent,
    ) -> Result<Job, DetectionError> {
        self.ports
            .jobs
            .submit(
                NewJob::new(
                    access.org_id(),
                    JobKind::from_static(kind),
                    Some(subject),
                    json!({}),
                )
                .by(access.user_id())
                .audited(audit),
            )
            .await?
            .queued()
            .map_err(DetectionError::ScanInProgress)
    }

    /// Queues a scan of a cloud organization's own controls (admin or owner; Pro or
    /// Enterprise).
    pub async fn scan_cloud_org(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Job, DetectionError> {
        self.queue_for_cloud_org(access, id, SCAN_ORGANIZATION_KIND, "organization")
            .await
    }

    /// Queues a scan of every connected member account (admin or owner; Pro or Enterprise).
    pub async fn scan_members(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Job, DetectionError> {
        self.queue_for_cloud_org(access, id, SCAN_MEMBERS_KIND, "members")
            .await
    }

    async fn queue_for_cloud_org(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        kind: &'static str,
        what: &str,
    ) -> Result<Job, DetectionError> {
        access.require(Action::RunJobs)?;
        self.cloud_org(access, id).await?;
        self.ports
            .billing
            .require_feature(access.org_id(), Feature::OrgFeatures)
            .await?;
        let target = AuditTarget::new(TargetKind::CloudOrganization, id.to_string());
        let audit = self.scan_audit(
            access,
            AuditAction::CloudOrganizationScanRequested,
            target,
            what,
        );
        self.queue(access, kind, id.as_uuid(), audit).await
    }

    /// Queues a scan of one account (admin or owner; every plan).
    pub async fn scan_account(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
    ) -> Result<Job, DetectionError> {
        access.require(Action::RunJobs)?;
        self.account(access, id).await?;
        let target = AuditTarget::new(TargetKind::CloudAccount, id.to_string());
        let audit = self.scan_audit(
            access,
            AuditAction::CloudAccountScanRequested,
            target,
            "account",
        );
        self.queue(access, SCAN_ACCOUNT_KIND, id.as_uuid(), audit)
            .await
    }

    /// The latest scans of a cloud organization (any member).
    pub async fn scan_status(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<ScanStatus, DetectionError> {
        access.require(Action::View)?;
        self.cloud_org(access, id).await?;
        let latest = |kind: &'static str| {
            let jobs = self.ports.jobs.clone();
            let org = access.org_id();
            async move {
                jobs.latest_for(org, id.as_uuid(), &JobKind::from_static(kind))
                    .await
            }
        };
        Ok(ScanStatus {
            organization: latest(SCAN_ORGANIZATION_KIND).await?,
            members: latest(SCAN_MEMBERS_KIND).await?,
        })
    }

    /// Queues an organization scan and a members scan of every cloud organization (on a plan
    /// with organization features) whose latest organization scan started more than `every`
    /// ago, skipping those with a scan queued or running; returns how many were queued. Run
    /// by the server on a schedule (daily by default).
    pub async fn queue_due_scans(&self, every: chrono::Duration) -> Result<usize, StoreError> {
        let now = self.ports.clock.now();
        let mut queued = 0;
        for (org, id) in self.ports.cloud_organizations.due_for_sync(now).await? {
            match self
                .ports
                .billing
                .require_feature(org, Feature::OrgFeatures)
                .await
            {
                Ok(()) => {}
                Err(canopy_billing::EntitlementError::NotInPlan(_)) => continue,
                Err(canopy_billing::EntitlementError::Store(e)) => return Err(e),
            }
            let kind = JobKind::from_static(SCAN_ORGANIZATION_KIND);
            let last = self.ports.jobs.latest_for(org, id.as_uuid(), &kind).await?;
            if last.is_some_and(|j| j.created_at > now - every) {
                continue;
            }
            for kind in [SCAN_ORGANIZATION_KIND, SCAN_MEMBERS_KIND] {
                // A scan already queued or running (asked for by a member) is left alone.
                let submitted = self
                    .ports
                    .jobs
                    .submit(NewJob::new(
                        org,
                        JobKind::from_static(kind),
                        Some(id.as_uuid()),
                        json!({"scheduled": true}),
                    ))
                    .await?;
                if matches!(submitted, Enqueued::Queued(_)) {
                    queued += 1;
                }
            }
        }
        Ok(queued)
    }

    /// Scans one account and records what was found; the per-source summaries. Once `stop` is
    /// raised nothing is recorded: a source cut short would read as unreadable.
    async fn scan_one_account(
        &self,
        org: OrganizationId,
        account: CloudAccount,
        job_id: Option<uuid::Uuid>,
        stop: &Stop,
    ) -> Result<AccountSummary, JobFailure> {
        if stop.requested() {
            return Err(JobFailure::Interrupted);
        }
        let provider = account.identity.provider();
        let external_id = match provider {
            Provider::Aws => self
                .ports
                .organizations
                .external_id(org)
                .await
                .map_err(transient)?,
            Provider::Gcp => String::new(),
        };
        let scanner = match provider {
            Provider::Aws => self.ports.aws_account.clone(),
            Provider::Gcp => self.ports.gcp_account.clone(),
        };
        let id = account.id;
        let key = account.identity.account_key().to_string();
        let reports = scanner
            .scan_account(&AccountScanRequest {
                account,
                external_id,
                stop: stop.clone(),
            })
            .await;
        if stop.requested() {
            return Err(JobFailure::Interrupted);
        }
        let scope = ScanScope {
            organization_id: org,
            scope: account_scope,
            target: id.as_uuid(),
            job_id,
        };
        let sources = self
            .record(org, Target::Account(id.as_uuid()), &scope, &reports)
            .await?;
        Ok(AccountSummary {
            cloud_account_id: id.as_uuid(),
            account: key,
            found: sources.iter().map(|s| s.found).sum(),
            errors: sources.iter().filter(|s| s.error.is_some()).count() as u32,
            sources,
        })
    }

    /// Reconciles `reports` with what `target` has stored and writes the difference.
    async fn record(
        &self,
        org: OrganizationId,
        target: Target,
        scope: &ScanScope,
        reports: &[SourceReport],
    ) -> Result<Vec<SourceSummary>, JobFailure> {
        let scanned: Vec<Source> = reports.iter().map(|r| r.source).collect();
        let existing = self
            .ports
            .repository
            .all(org, target, &DetectionFilter::default())
            .await
            .map_err(transient)?
            .into_iter()
            .filter(|d| scanned.contains(&d.source))
            .collect();
        let (write, summaries) = reconcile(scope, existing, reports, self.ports.clock.now());
        self.ports
            .repository
            .apply_scan(write)
            .await
            .map_err(transient)?;
        Ok(summaries)
    }

    /// The connected member accounts of a cloud organization.
    pub(crate) async fn connected_members(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Vec<CloudAccount>, StoreError> {
        let filter = MemberFilter {
            status: Some(MemberStatus::Connected),
            ..MemberFilter::default()
        };
        let mut page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            after: None,
        };
        let mut linked = Vec::new();
        loop {
            let members = self
                .ports
                .cloud_organizations
                .members(org, id, &filter, page)
                .await?;
            linked.extend(
                members
                    .items
                    .iter()
                    .filter_map(|m| m.linked_cloud_account_id),
            );
            match members.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        // A few are read one by one; an organization's worth is read page by page through
        // the tenant's accounts (5 reads for 1,000, not 1,000).
        if linked.len() <= 8 {
            let mut accounts = Vec::new();
            for id in linked {
                if let Some(account) = self.ports.accounts.get(org, CloudAccountId(id)).await? {
                    accounts.push(account);
                }
            }
            return Ok(accounts);
        }
        let wanted: std::collections::HashSet<uuid::Uuid> = linked.into_iter().collect();
        let mut page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            after: None,
        };
        let mut accounts = Vec::new();
        loop {
            let got = self
                .ports
                .accounts
                .list(org, &AccountFilter::default(), page)
                .await?;
            accounts.extend(
                got.items
                    .into_iter()
                    .filter(|a| wanted.contains(&a.id.as_uuid())),
            );
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(accounts),
            }
        }
    }
}

/// Runs the three scan kinds.
pub struct ScanHandler {
    service: DetectionService,
    kind: &'static str,
    accounts_in_flight: usize,
}

impl ScanHandler {
    /// The handlers of every scan kind, scanning up to `accounts_in_flight` member accounts
    /// at once.
    pub fn all(service: DetectionService, accounts_in_flight: usize) -> Vec<Arc<dyn JobHandler>> {
        [SCAN_ORGANIZATION_KIND, SCAN_MEMBERS_KIND, SCAN_ACCOUNT_KIND]
            .into_iter()
            .map(|kind| {
                Arc::new(ScanHandler {
                    service: service.clone(),
                    kind,
                    accounts_in_flight: accounts_in_flight.max(1),
                }) as Arc<dyn JobHandler>
            })
            .collect()
    }

    async fn organization(&self, job: &Job, ctx: &dyn JobContext) -> Result<Value, JobFailure> {
        let ports = &self.service.ports;
        let id = CloudOrganizationId(subject(job)?);
        let org = job.organization_id;
        let cloud_org = ports
            .cloud_organizations
            .get(org, id)
            .await
            .map_err(transient)?
            .ok_or_else(|| {
                JobFailure::Permanent("the cloud organization was disconnected".into())
            })?;
        let access = ports
            .organizations
            .access_for(&cloud_org)
            .await
            .map_err(|e| JobFailure::Permanent(e.to_string()))?;
        let (hierarchy, members) = ports
            .cloud_organizations
            .snapshot(id)
            .await
            .map_err(transient)?;
        let sources = Source::scanners(cloud_org.provider, ScopeKind::Organization);
        ctx.progress(Progress::phase("scanning", 0, Some(sources.len() as u64)))
            .await?;
        let scanner = match cloud_org.provider {
            Provider::Aws => ports.aws_organization.clone(),
            Provider::Gcp => ports.gcp_organization.clone(),
        };
        let reports = scanner
            .scan_organization(&OrganizationScanRequest {
                cloud_organization: cloud_org,
                access,
                hierarchy,
                members: members.into_iter().map(|m| m.key).collect(),
                stop: ctx.stop(),
            })
            .await;
        if ctx.interrupted() {
            return Err(JobFailure::Interrupted);
        }
        ctx.progress(Progress::phase(
            "saving",
            reports.len() as u64,
            Some(sources.len() as u64),
        ))
        .await?;
        let scope = ScanScope {
            organization_id: org,
            scope: organization_scope,
            target: id.as_uuid(),
            job_id: Some(job.id.as_uuid()),
        };
        let summaries = self
            .service
            .record(
                org,
                Target::CloudOrganization(id.as_uuid()),
                &scope,
                &reports,
            )
            .await?;
        Ok(json!({
            "found": summaries.iter().map(|s| s.found).sum::<u32>(),
            "errors": summaries.iter().filter(|s| s.error.is_some()).count(),
            "sources": summaries,
        }))
    }

    async fn members(&self, job: &Job, ctx: &dyn JobContext) -> Result<Value, JobFailure> {
        let id = CloudOrganizationId(subject(job)?);
        let org = job.organization_id;
        let accounts = self
            .service
            .connected_members(org, id)
            .await
            .map_err(transient)?;
        let total = accounts.len() as u64;
        ctx.progress(Progress::phase("accounts", 0, Some(total)))
            .await?;
        let done = AtomicU64::new(0);
        let reporting = futures::lock::Mutex::new(());
        let job_id = Some(job.id.as_uuid());
        // Raised by a cancel (through the job's signal) or by the first account that fails:
        // accounts not started yet are not scanned, those in flight stop calling and record
        // nothing, and the scans already recording finish their write.
        let stop = ctx.stop();
        // Progress is written inside each account's future, not by the loop draining the
        // stream: while the loop awaits a write it stops polling the other scans, and on a
        // one-connection pool (SQLite) a scan parked mid-transaction would hold the only
        // connection that write waits for. The lock keeps the written count monotonic.
        let mut scans = futures::stream::iter(accounts.into_iter().map(|account| {
            let (service, done, reporting, stop) = (&self.service, &done, &reporting, &stop);
            async move {
                let summary = service.scan_one_account(org, account, job_id, stop).await?;
                done.fetch_add(1, Ordering::Relaxed);
                let _turn = reporting.lock().await;
                let n = done.load(Ordering::Relaxed);
                ctx.progress(Progress::phase("accounts", n, Some(total)))
                    .await?;
                Ok::<_, JobFailure>(summary)
            }
        }))
        .buffer_unordered(self.accounts_in_flight);
        let mut summaries = Vec::new();
        let mut failure = None;
        // Drained to the end, never dropped half-way: a dropped scan could be mid-transaction.
        while let Some(outcome) = scans.next().await {
            match outcome {
                Ok(summary) => summaries.push(summary),
                Err(e) => {
                    stop.request();
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        summaries.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(json!({
            "accounts": summaries.len(),
            "found": summaries.iter().map(|s| s.found).sum::<u32>(),
            "accountsWithErrors": summaries.iter().filter(|s| s.errors > 0).count(),
            "perAccount": summaries,
        }))
    }

    async fn account(&self, job: &Job, ctx: &dyn JobContext) -> Result<Value, JobFailure> {
        let id = CloudAccountId(subject(job)?);
        let org = job.organization_id;
        let account = self
            .service
            .ports
            .accounts
            .get(org, id)
            .await
            .map_err(transient)?
            .ok_or_else(|| JobFailure::Permanent("the cloud account was disconnected".into()))?;
        ctx.progress(Progress::phase("scanning", 0, Some(1)))
            .await?;
        let summary = self
            .service
            .scan_one_account(org, account, Some(job.id.as_uuid()), &ctx.stop())
            .await?;
        Ok(json!({
            "found": summary.found,
            "errors": summary.errors,
            "sources": summary.sources,
        }))
    }
}

fn subject(job: &Job) -> Result<uuid::Uuid, JobFailure> {
    job.subject
        .ok_or_else(|| JobFailure::Permanent("the job names nothing to scan".into()))
}

#[async_trait]
impl JobHandler for ScanHandler {
    fn kind(&self) -> JobKind {
        JobKind::from_static(self.kind)
    }

    async fn run(&self, job: &Job, ctx: &dyn JobContext) -> Result<Value, JobFailure> {
        match self.kind {
            SCAN_ORGANIZATION_KIND => self.organization(job, ctx).await,
            SCAN_MEMBERS_KIND => self.members(job, ctx).await,
            _ => self.account(job, ctx).await,
        }
    }
}
