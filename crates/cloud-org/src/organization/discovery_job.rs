//! The job that discovers (and re-syncs) a cloud organization: read the whole organization,
//! compare with what is stored, write only what changed.
//!
//! Idempotent: a run after a dead worker reads the organization again and diffs against what
//! the first run managed to store, so nothing is written twice and nothing is lost.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use canopy_jobs::{Job, JobContext, JobFailure, JobHandler, JobKind, Progress, Throttling};
use serde_json::{Value, json};

use super::hierarchy::{AWS_MAX_DEPTH, Hierarchy};
use super::ports::DiscoveryWrite;
use super::service::{CloudOrganizationService, DISCOVER_KIND};
use super::sync::{Change, diff};
use super::{CloudOrganizationId, ConnectionStatus, DiscoveryProgress};
use crate::account::Provider;

/// Runs `cloud_organization.discover` jobs.
pub struct DiscoveryHandler {
    service: CloudOrganizationService,
}

impl DiscoveryHandler {
    /// A handler over the cloud-organization service's ports.
    pub fn new(service: CloudOrganizationService) -> Self {
        Self { service }
    }
}

/// Forwards the discoverer's counts to the job's progress.
struct ToJob {
    latest: Latest,
}

#[async_trait]
impl DiscoveryProgress for ToJob {
    async fn read(&self, nodes: u64, members: u64, retries: u64, waited_ms: u64) {
        self.latest.set(Progress {
            phase: "reading".into(),
            done: members,
            total: None,
            message: Some(format!("{nodes} OUs or folders, {members} accounts so far")),
            throttling: Throttling { retries, waited_ms },
        });
    }
}

/// The discoverer's latest counts, handed to the job's progress between its calls.
#[derive(Debug, Default, Clone)]
struct Latest(Arc<Mutex<Option<Progress>>>);

impl Latest {
    fn set(&self, value: Progress) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    fn take(&self) -> Option<Progress> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[async_trait]
impl JobHandler for DiscoveryHandler {
    fn kind(&self) -> JobKind {
        JobKind::from_static(DISCOVER_KIND)
    }

    async fn run(&self, job: &Job, ctx: &dyn JobContext) -> Result<Value, JobFailure> {
        let ports = self.service.ports();
        let id =
            CloudOrganizationId(job.subject.ok_or_else(|| {
                JobFailure::Permanent("the job names no cloud organization".into())
            })?);
        let transient = |e: canopy_kernel::StoreError| JobFailure::Transient(e.to_string());
        let Some(cloud_org) = ports
            .repository
            .get(job.organization_id, id)
            .await
            .map_err(transient)?
        else {
            return Err(JobFailure::Permanent(
                "the cloud organization was disconnected".into(),
            ));
        };
        let now = ports.clock.now();
        ports
            .repository
            .set_status(id, ConnectionStatus::Discovering, None, vec![], false, now)
            .await
            .map_err(transient)?;
        ctx.progress(Progress::phase("reading", 0, None)).await?;

        let external_id = self
            .service
            .external_id(job.organization_id)
            .await
            .map_err(transient)?;
        let latest = Latest::default();
        let (discoverer, max_depth) = match cloud_org.provider {
            Provider::Aws => (ports.aws.clone(), AWS_MAX_DEPTH),
            Provider::Gcp => {
                return Err(JobFailure::Permanent(
                    "GCP organizations are not discoverable yet".into(),
                ));
            }
        };
        let role = cloud_org.management_role_arn.clone().unwrap_or_default();
        let found = discoverer
            .discover(
                &role,
                &external_id,
                Arc::new(ToJob {
                    latest: latest.clone(),
                }),
            )
            .await;
        if let Some(p) = latest.take() {
            ctx.progress(p).await?;
        }
        let found = match found {
            Ok(found) => found,
            Err(failure) => {
                let message = failure.to_string();
                ports
                    .repository
                    .set_status(
                        id,
                        ConnectionStatus::Error,
                        Some(message.clone()),
                        vec![],
                        false,
                        ports.clock.now(),
                    )
                    .await
                    .map_err(transient)?;
                return Err(if failure.is_transient() {
                    JobFailure::Transient(message)
                } else {
                    JobFailure::Permanent(message)
                });
            }
        };
        ctx.progress(Progress::phase(
            "saving",
            found.members.len() as u64,
            Some(found.members.len() as u64),
        ))
        .await?;
        let tree = Hierarchy::build(found.nodes.clone(), max_depth)
            .map_err(|e| JobFailure::Permanent(e.to_string()))?;
        let (stored_tree, stored_members) =
            ports.repository.snapshot(id).await.map_err(transient)?;
        let changes = diff(&stored_tree, &stored_members, &found.nodes, &found.members);
        let tree_changed = stored_tree.is_empty()
            || changes
                .iter()
                .any(|c| matches!(c, Change::HierarchyChanged { .. }));
        let changed_keys: BTreeSet<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Joined { key }
                | Change::Moved { key, .. }
                | Change::StateChanged { key, .. }
                | Change::Renamed { key, .. }
                | Change::Updated { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        let left: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Left { key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        let written = changes.len();
        if !changes.is_empty() || tree_changed {
            let upsert = found
                .members
                .iter()
                .filter(|m| changed_keys.contains(m.key.as_str()))
                .cloned()
                .collect();
            ports
                .repository
                .apply(
                    id,
                    DiscoveryWrite {
                        identity: found.identity.clone(),
                        hierarchy: tree_changed.then_some(tree.clone()),
                        upsert,
                        left,
                        changes,
                        job_id: Some(job.id.as_uuid()),
                    },
                    ports.clock.now(),
                )
                .await
                .map_err(transient)?;
        }
        let unreadable: Vec<String> = found
            .unreadable
            .iter()
            .map(|(node, why)| format!("{node}: {why}"))
            .collect();
        let status = if unreadable.is_empty() {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::Partial
        };
        ports
            .repository
            .set_status(
                id,
                status,
                None,
                unreadable.clone(),
                true,
                ports.clock.now(),
            )
            .await
            .map_err(transient)?;
        Ok(json!({
            "cloudOrganizationId": id.to_string(),
            "nodes": tree.len(),
            "members": found.members.len(),
            "changes": written,
            "unreadable": unreadable,
            "throttling": {"retries": found.throttled_retries, "waitedMs": found.throttled_ms},
        }))
    }
}
