//! The job that connects discovered members as cloud accounts through the member role and
//! verifies each. Idempotent: a member already linked is skipped, and an account a previous run
//! created before it died (or one connected by hand) is linked rather than created twice.

use async_trait::async_trait;
use std::collections::HashSet;

use canopy_jobs::{Job, JobContext, JobFailure, JobHandler, JobKind, JobStatus, Progress};
use canopy_kernel::PageRequest;
use canopy_kernel::id::UserId;
use serde_json::{Value, json};

use super::member::{DiscoveredMember, MemberStatus};
use super::ports::{MemberFilter, StoredMember};
use super::service::{CONNECT_KIND, CloudOrganizationService};
use super::{CloudOrganization, CloudOrganizationId};
use crate::account::{AccountInput, Features, OrganizationPlacement, Provider};
use crate::service::CloudAccountError;

/// Runs `cloud_organization.connect_members` jobs.
pub struct ConnectMembersHandler {
    service: CloudOrganizationService,
}

impl ConnectMembersHandler {
    /// A handler over the cloud-organization service's ports.
    pub fn new(service: CloudOrganizationService) -> Self {
        Self { service }
    }
}

/// `arn:<partition>:iam::<account>:role/<name>`: the partition of the management role.
fn member_role(cloud_org: &CloudOrganization, account: &str) -> String {
    let partition = cloud_org
        .management_role_arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(1))
        .unwrap_or("aws");
    format!(
        "arn:{partition}:iam::{account}:role/{}",
        cloud_org.member_role_name
    )
}

/// The cloud account a member becomes: an AWS account reached through the member role, or a
/// GCP project read with the cloud organization's service account.
fn member_input(cloud_org: &CloudOrganization, member: &DiscoveredMember) -> AccountInput {
    let common = AccountInput {
        alias: Some(member.name.clone()).filter(|n| !n.trim().is_empty()),
        features: Features::default(),
        tags: [(
            "cloudOrganization".to_string(),
            cloud_org.identity.cloud_org_id.clone(),
        )]
        .into(),
        ..AccountInput::default()
    };
    match cloud_org.provider {
        Provider::Aws => AccountInput {
            provider: "aws".into(),
            account_id: Some(member.key.clone()),
            role_arn: Some(member_role(cloud_org, &member.key)),
            region: Some("us-east-1".into()),
            ..common
        },
        Provider::Gcp => AccountInput {
            provider: "gcp".into(),
            project_id: Some(member.key.clone()),
            project_number: member.number.clone(),
            ..common
        },
    }
}

#[async_trait]
impl JobHandler for ConnectMembersHandler {
    fn kind(&self) -> JobKind {
        JobKind::from_static(CONNECT_KIND)
    }

    async fn run(&self, job: &Job, ctx: &dyn JobContext) -> Result<Value, JobFailure> {
        let ports = self.service.ports();
        let transient = |e: canopy_kernel::StoreError| JobFailure::Transient(e.to_string());
        let id =
            CloudOrganizationId(job.subject.ok_or_else(|| {
                JobFailure::Permanent("the job names no cloud organization".into())
            })?);
        let cloud_org = ports
            .repository
            .get(job.organization_id, id)
            .await
            .map_err(transient)?
            .ok_or_else(|| {
                JobFailure::Permanent("the cloud organization was disconnected".into())
            })?;
        let keys = job_keys(job);
        let created_by = job
            .created_by
            .unwrap_or(UserId(cloud_org.created_by.as_uuid()));
        // The members this job still holds: a rerun after a dead worker skips those an earlier
        // attempt settled, and counts them as done.
        let pending = self
            .members(job, id, Some(MemberStatus::Connecting), &keys)
            .await?;
        // Progress and result describe the whole job, whichever attempt finishes it.
        let total = keys.len() as u64;
        let settled_before = total.saturating_sub(pending.len() as u64);
        for (done, member) in (settled_before..).zip(pending) {
            ctx.progress(Progress {
                message: Some(format!("connecting {}", member.found.key)),
                ..Progress::phase("connecting", done, Some(total))
            })
            .await?;
            let input = member_input(&cloud_org, &member.found);
            let now = ports.clock.now();
            let created = ports
                .accounts
                .connect_for_job(
                    job.organization_id,
                    created_by,
                    &input,
                    "cloud_organization",
                )
                .await;
            let outcome = match created {
                // A run that died after creating the account and before linking it: link it.
                Err(CloudAccountError::AlreadyConnected) => ports
                    .accounts
                    .find_for_job(job.organization_id, cloud_org.provider, &member.found.key)
                    .await
                    .and_then(|found| found.ok_or(CloudAccountError::AlreadyConnected)),
                other => other,
            };
            let account = match outcome {
                // Where it sits is recorded when it is settled; the verifier needs it now, to
                // read a GCP project with its organization's key.
                Ok(mut account) => {
                    account.placement = Some(OrganizationPlacement {
                        cloud_organization_id: id.as_uuid(),
                        hierarchy_path: Some(member.hierarchy_path.clone()),
                        parent_id: Some(member.found.parent_id.clone()),
                        is_management_account: member.found.is_management,
                        is_delegated_admin: !member.found.delegated_admin_services.is_empty(),
                        delegated_admin_services: member.found.delegated_admin_services.clone(),
                        left_at: None,
                    });
                    account
                }
                Err(e) => {
                    let reason = match e {
                        CloudAccountError::PlanLimit(_) => {
                            "the plan's account limit was reached".to_string()
                        }
                        CloudAccountError::AlreadyConnected => {
                            "already connected to this organization as a cloud account".into()
                        }
                        CloudAccountError::ConnectedElsewhere => {
                            "connected to another organization".into()
                        }
                        CloudAccountError::Store(s) => return Err(transient(s)),
                        other => other.to_string(),
                    };
                    ports
                        .repository
                        .settle(id, &member.found.key, None, Some(reason), now)
                        .await
                        .map_err(transient)?;
                    continue;
                }
            };
            let failure = match ports
                .accounts
                .verify_for_job(job.organization_id, &account)
                .await
            {
                Ok(check) => check
                    .failure
                    .map(|f| format!("{}: {}", f.kind.advice_for(cloud_org.provider), f.message)),
                Err(CloudAccountError::Store(s)) => return Err(transient(s)),
                Err(other) => Some(other.to_string()),
            };
            ports
                .repository
                .settle(
                    id,
                    &member.found.key,
                    Some(account.id.as_uuid()),
                    failure,
                    ports.clock.now(),
                )
                .await
                .map_err(transient)?;
        }
        ctx.progress(Progress::phase("connecting", total, Some(total)))
            .await?;
        // What the job did is what its members are now, including what an earlier attempt of
        // it settled before its worker died.
        let settled = self.members(job, id, None, &keys).await?;
        let connected = settled
            .iter()
            .filter(|m| m.status == MemberStatus::Connected)
            .count();
        let failed: Vec<Value> = settled
            .iter()
            .filter(|m| m.status == MemberStatus::Failed)
            .map(|m| json!({"accountId": m.found.key, "reason": m.failure}))
            .collect();
        Ok(json!({
            "connected": connected,
            "failed": failed,
            "overLimit": job.payload["overLimit"],
        }))
    }

    async fn wrap_up(&self, job: &Job) -> Result<(), JobFailure> {
        let ports = self.service.ports();
        let Some(id) = job.subject.map(CloudOrganizationId) else {
            return Ok(());
        };
        let reason = match job.status {
            JobStatus::Cancelled => {
                "the connect was cancelled before this account was connected; connect it again"
                    .to_string()
            }
            _ => format!(
                "the connect failed before this account was connected ({}); connect it again",
                job.error.as_deref().unwrap_or("no reason recorded")
            ),
        };
        let keys = job_keys(job);
        // Only members still `connecting` are this job's: one connect runs at a time, and a
        // member it settled is left as it was.
        for member in self
            .members(job, id, Some(MemberStatus::Connecting), &keys)
            .await?
        {
            ports
                .repository
                .settle(
                    id,
                    &member.found.key,
                    None,
                    Some(reason.clone()),
                    ports.clock.now(),
                )
                .await
                .map_err(|e| JobFailure::Transient(e.to_string()))?;
        }
        Ok(())
    }
}

/// The members a connect job was queued for.
fn job_keys(job: &Job) -> HashSet<String> {
    job.payload["accounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl ConnectMembersHandler {
    /// The members of `keys` (with `status`, when given), read page by page: an organization
    /// of 500 has more than one page of them.
    async fn members(
        &self,
        job: &Job,
        id: CloudOrganizationId,
        status: Option<MemberStatus>,
        keys: &HashSet<String>,
    ) -> Result<Vec<StoredMember>, JobFailure> {
        let mut found = Vec::new();
        let mut page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            after: None,
        };
        loop {
            let got = self
                .service
                .ports()
                .repository
                .members(
                    job.organization_id,
                    id,
                    &MemberFilter {
                        status,
                        include_left: true,
                        ..Default::default()
                    },
                    page,
                )
                .await
                .map_err(|e| JobFailure::Transient(e.to_string()))?;
            found.extend(
                got.items
                    .into_iter()
                    .filter(|m| keys.contains(&m.found.key)),
            );
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(found),
            }
        }
    }
}
