//! The job that discovers (and re-syncs) a cloud organization: read the whole organization,
//! compare with what is stored, write only what changed.
//!
//! Idempotent: a run after a dead worker reads the organization again and diffs against what
//! the first run managed to store, so nothing is written twice and nothing is lost.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use canopy_jobs::{
    Job, JobContext, JobFailure, JobHandler, JobKind, JobStatus, Progress, Throttling,
};
use serde_json::{Value, json};

use super::hierarchy::{AWS_MAX_DEPTH, GCP_MAX_DEPTH, Hierarchy};
use super::ports::DiscoveryWrite;
use super::service::{CloudOrganizationError, CloudOrganizationService, DISCOVER_KIND};
use super::sync::{Change, diff, keep_unreadable};
use super::{CloudOrganizationId, ConnectionStatus, DiscoveryFailure, DiscoveryProgress};
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

impl DiscoveryHandler {
    /// Marks the cloud organization `error` with why, for its page to say.
    async fn record_error(&self, id: CloudOrganizationId, message: &str) -> Result<(), JobFailure> {
        let ports = self.service.ports();
        ports
            .repository
            .set_status(
                id,
                ConnectionStatus::Error,
                Some(message.to_string()),
                vec![],
                false,
                ports.clock.now(),
            )
            .await
            .map_err(|e| JobFailure::Transient(e.to_string()))
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

        let latest = Latest::default();
        let access = match self.service.access_for(&cloud_org).await {
            Ok(access) => access,
            Err(CloudOrganizationError::Store(e)) => return Err(transient(e)),
            Err(e) => {
                let message = format!("the stored service-account key: {e}");
                self.record_error(id, &message).await?;
                return Err(JobFailure::Permanent(message));
            }
        };
        let (discoverer, max_depth) = match cloud_org.provider {
            Provider::Aws => (ports.aws.clone(), AWS_MAX_DEPTH),
            Provider::Gcp => (ports.gcp.clone(), GCP_MAX_DEPTH),
        };
        let found = discoverer
            .discover(
                &access,
                Arc::new(ToJob {
                    latest: latest.clone(),
                }),
                ctx.stop(),
            )
            .await;
        if let Some(p) = latest.take() {
            ctx.progress(p).await?;
        }
        let found = match found {
            Ok(found) => found,
            // Cancelled (or the lease lost): stop without recording anything; the wrap-up
            // puts the cloud organization back in its last known state.
            Err(DiscoveryFailure::Stopped) => return Err(JobFailure::Interrupted),
            Err(failure) => {
                let message = failure.to_string();
                self.record_error(id, &message).await?;
                return Err(if failure.is_transient() {
                    JobFailure::Transient(message)
                } else {
                    JobFailure::Permanent(message)
                });
            }
        };
        // What throttling cost stays on the job to the end, not only while reading.
        ctx.progress(Progress {
            throttling: Throttling {
                retries: found.throttled_retries,
                waited_ms: found.throttled_ms,
            },
            ..Progress::phase(
                "saving",
                found.members.len() as u64,
                Some(found.members.len() as u64),
            )
        })
        .await?;
        let (stored_tree, stored_members) =
            ports.repository.snapshot(id).await.map_err(transient)?;
        let mut found = found;
        let unreadable_ids: Vec<String> = found
            .unreadable
            .iter()
            .map(|(node, _)| node.clone())
            .collect();
        keep_unreadable(
            &stored_tree,
            &stored_members,
            &unreadable_ids,
            &mut found.nodes,
            &mut found.members,
        );
        let tree = Hierarchy::build(found.nodes.clone(), max_depth)
            .map_err(|e| JobFailure::Permanent(e.to_string()))?;
        let changes = diff(&stored_tree, &stored_members, &found.nodes, &found.members);
        let tree_changed = stored_tree.is_empty()
            || changes
                .iter()
                .any(|c| matches!(c, Change::HierarchyChanged { .. }));
        let mut changed_keys: BTreeSet<&str> = changes
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
        // A member whose folder (or an ancestor) moved or was renamed keeps its parent but
        // not its path: it is rewritten too, and its linked account follows.
        if tree_changed {
            changed_keys.extend(
                found
                    .members
                    .iter()
                    .filter(|m| {
                        stored_tree.get(&m.parent_id).map(|n| &n.path)
                            != tree.get(&m.parent_id).map(|n| &n.path)
                    })
                    .map(|m| m.key.as_str()),
            );
        }
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

    async fn wrap_up(&self, job: &Job) -> Result<(), JobFailure> {
        let ports = self.service.ports();
        let transient = |e: canopy_kernel::StoreError| JobFailure::Transient(e.to_string());
        let Some(id) = job.subject.map(CloudOrganizationId) else {
            return Ok(());
        };
        let Some(cloud_org) = ports
            .repository
            .get(job.organization_id, id)
            .await
            .map_err(transient)?
        else {
            return Ok(()); // disconnected meanwhile: nothing left to settle
        };
        // A newer discovery owns the status now, whether it runs or already ended.
        let latest = ports
            .jobs
            .latest_for(
                job.organization_id,
                id.as_uuid(),
                &JobKind::from_static(DISCOVER_KIND),
            )
            .await
            .map_err(transient)?;
        if latest.is_some_and(|latest| latest.id != job.id) {
            return Ok(());
        }
        let (status, error, unreadable) = match job.status {
            JobStatus::Failed => (
                ConnectionStatus::Error,
                Some(format!(
                    "The discovery failed: {}. Sync again to retry (Sync now, or POST \
                     .../cloud-organizations/{id}/sync).",
                    job.error
                        .as_deref()
                        .unwrap_or("no reason recorded")
                        .trim_end_matches('.')
                )),
                Vec::new(),
            ),
            // Cancelled before it changed anything: back to what the last discovery found.
            _ if cloud_org.status != ConnectionStatus::Discovering => return Ok(()),
            _ if cloud_org.last_discovered_at.is_some() => {
                let status = if cloud_org.unreadable.is_empty() {
                    ConnectionStatus::Connected
                } else {
                    ConnectionStatus::Partial
                };
                (status, None, cloud_org.unreadable.clone())
            }
            _ => (
                ConnectionStatus::Error,
                Some(format!(
                    "The discovery was cancelled before it finished, so nothing is known of \
                     this organization yet. Sync to discover it (Sync now, or POST \
                     .../cloud-organizations/{id}/sync)."
                )),
                Vec::new(),
            ),
        };
        ports
            .repository
            .set_status(id, status, error, unreadable, false, ports.clock.now())
            .await
            .map_err(transient)
    }
}
