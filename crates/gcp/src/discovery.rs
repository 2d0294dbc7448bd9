//! Discovery of a whole GCP Organization: `organizations.get`, then the folder tree read
//! breadth-first, every page of `folders.list` and `projects.list` under every parent, with a
//! bounded number of calls in flight. A folder the service account may not list is recorded
//! and the rest goes on; the organization itself unreadable fails the discovery with the
//! permission to grant.

use std::collections::HashSet;
use std::sync::Arc;

use canopy_cloud_org::health::{AccessFailure, FailureKind};
use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, GCP_MAX_DEPTH, NodeKind};
use canopy_cloud_org::organization::member::{DiscoveredMember, MemberState};
use canopy_cloud_org::organization::{
    Discovery, DiscoveryFailure, DiscoveryProgress, OrganizationIdentity,
};
use canopy_kernel::Stop;
use futures::stream::{self, StreamExt};
use google_cloudresourcemanager3::CloudResourceManager;
use google_cloudresourcemanager3::api::{Project, Scope};

use crate::calls::{CallError, Calls};
use crate::client::{Google, READ_ONLY};
use crate::impersonation::GcpCredentials;
use crate::{GcpSettings, Hub, ServiceAccountKey, SetupError};

const ORGANIZATIONS_GET: &str = "resourcemanager.organizations.get";
const FOLDERS_LIST: &str = "resourcemanager.folders.list";
const PROJECTS_LIST: &str = "resourcemanager.projects.list";

/// A project as `projects.get` shows it: proof that the key reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    /// The project id (`tokyo-rain-123`).
    pub project_id: String,
    /// The project number (`415104041262`).
    pub number: Option<String>,
    /// Display name; the project id when it has none.
    pub display_name: String,
    /// Lifecycle state.
    pub state: MemberState,
    /// `organizations/N` or `folders/N`.
    pub parent: Option<String>,
}

/// Reads GCP Organizations and projects through Resource Manager v3, as the service account of
/// the key each call is given. Cheap to share: one connection pool serves every tenant.
#[derive(Clone)]
pub struct ResourceManagerDiscoverer {
    google: Google,
    base_url: String,
}

impl std::fmt::Debug for ResourceManagerDiscoverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceManagerDiscoverer")
            .field("settings", self.google.settings())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// `organizations/123` (or `123`) checked and spelled as the API wants it. The name goes into
/// the URL path unescaped, so nothing but digits may follow the prefix.
pub(crate) fn organization_name(raw: &str) -> Result<String, DiscoveryFailure> {
    let id = raw.trim();
    let id = id.strip_prefix("organizations/").unwrap_or(id);
    if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("organizations/{id}"))
    } else {
        Err(DiscoveryFailure::Other(format!(
            "{raw:?} is not an organization name (organizations/123)"
        )))
    }
}

/// A project id (6-30 of `a-z0-9-`, starting with a letter) or a project number.
pub(crate) fn valid_project(raw: &str) -> bool {
    let numeric = !raw.is_empty() && raw.len() <= 32 && raw.bytes().all(|b| b.is_ascii_digit());
    let id = (6..=30).contains(&raw.len())
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && !raw.ends_with('-')
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    numeric || id
}

fn member_from(project: &Project, listed_under: &str) -> Option<DiscoveredMember> {
    let key = project.project_id.clone()?;
    Some(DiscoveredMember {
        number: project
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("projects/"))
            .map(str::to_string),
        name: project
            .display_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| key.clone()),
        email: None,
        state: project
            .state
            .as_deref()
            .map_or(MemberState::Other, MemberState::from_provider),
        joined_method: None,
        joined_at: None,
        parent_id: project
            .parent
            .clone()
            .unwrap_or_else(|| listed_under.to_string()),
        is_management: false,
        delegated_admin_services: Vec::new(),
        key,
    })
}

/// The failure of a whole discovery from one call's.
fn failure(permission: &str, resource: &str, e: CallError, retries: u64) -> DiscoveryFailure {
    match e {
        CallError::Denied(_) => DiscoveryFailure::PermissionMissing {
            provider: canopy_cloud_org::Provider::Gcp,
            permission: format!("{permission} on {resource}"),
        },
        CallError::NotFound(m) => DiscoveryFailure::Other(format!("{resource} was not found: {m}")),
        CallError::ThrottledOut => DiscoveryFailure::ThrottledOut(retries),
        CallError::KeyRefused(code) => DiscoveryFailure::KeyRefused(code),
        CallError::ImpersonationRefused(m) => DiscoveryFailure::ImpersonationRefused(m),
        CallError::Network(m) => DiscoveryFailure::Network(m),
        CallError::Timeout => DiscoveryFailure::Network(format!(
            "Resource Manager did not answer {permission} on {resource} in time"
        )),
        CallError::Other(m) => DiscoveryFailure::Other(format!("{permission} on {resource}: {m}")),
        CallError::Stopped => DiscoveryFailure::Stopped,
    }
}

/// What one parent holds.
struct ParentRead {
    folders: Vec<DiscoveredNode>,
    members: Vec<DiscoveredMember>,
}

/// Every folder and project directly under `parent`, every page; on failure, the permission
/// of the call that failed.
async fn read_parent(calls: &Calls, parent: &str) -> Result<ParentRead, (&'static str, CallError)> {
    let mut folders = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = calls
            .run(|| {
                let mut call = calls
                    .hub
                    .folders()
                    .list()
                    .parent(parent)
                    .add_scope(Scope::CloudPlatformReadOnly);
                if let Some(t) = &token {
                    call = call.page_token(t);
                }
                call.doit()
            })
            .await
            .map_err(|e| (FOLDERS_LIST, e))?;
        folders.extend(
            page.folders
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| {
                    Some(DiscoveredNode {
                        id: f.name?,
                        // A folder moved while the tree is read names its new parent.
                        parent_id: Some(f.parent.unwrap_or_else(|| parent.to_string())),
                        name: f.display_name.unwrap_or_default(),
                        kind: NodeKind::Folder,
                    })
                }),
        );
        match next_token(page.next_page_token, &token) {
            Next::Page(t) => token = Some(t),
            Next::Done => break,
            Next::Repeated => {
                return Err((
                    FOLDERS_LIST,
                    CallError::Other("the same page token came back twice".into()),
                ));
            }
        }
    }
    let mut members = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = calls
            .run(|| {
                // DELETE_REQUESTED projects still exist for 30 days and still cost money.
                let mut call = calls
                    .hub
                    .projects()
                    .list()
                    .parent(parent)
                    .show_deleted(true)
                    .add_scope(Scope::CloudPlatformReadOnly);
                if let Some(t) = &token {
                    call = call.page_token(t);
                }
                call.doit()
            })
            .await
            .map_err(|e| (PROJECTS_LIST, e))?;
        members.extend(
            page.projects
                .unwrap_or_default()
                .iter()
                .filter_map(|p| member_from(p, parent)),
        );
        match next_token(page.next_page_token, &token) {
            Next::Page(t) => token = Some(t),
            Next::Done => break,
            Next::Repeated => {
                return Err((
                    PROJECTS_LIST,
                    CallError::Other("the same page token came back twice".into()),
                ));
            }
        }
    }
    Ok(ParentRead { folders, members })
}

pub(crate) enum Next {
    Page(String),
    Done,
    /// A server handing back the token it was given would page forever.
    Repeated,
}

pub(crate) fn next_token(next: Option<String>, current: &Option<String>) -> Next {
    match next.filter(|t| !t.is_empty()) {
        None => Next::Done,
        Some(t) if current.as_deref() == Some(t.as_str()) => Next::Repeated,
        Some(t) => Next::Page(t),
    }
}

impl ResourceManagerDiscoverer {
    /// A discoverer with its own connection pool and TLS configuration (no process-wide
    /// crypto provider needed).
    pub fn new(settings: GcpSettings) -> Result<Self, SetupError> {
        let google = Google::new(settings)?;
        let base_url = google.base_url(crate::RESOURCE_MANAGER_URL);
        Ok(Self { google, base_url })
    }

    /// The same discoverer acting, where asked to impersonate, as `own` (Canopy's own service
    /// account, from the operator).
    pub fn with_own_identity(mut self, own: Option<ServiceAccountKey>) -> Self {
        self.google.set_own(own);
        self
    }

    /// The client the scanners share with this discoverer (pools, settings, own identity).
    pub(crate) fn google(&self) -> &Google {
        &self.google
    }

    /// A hub acting as `who`. A key's authenticator caches the token per scope set, and every
    /// call asks for the same read-only scope, so one discovery fetches one token; an
    /// impersonated account's token is fetched once per hub.
    async fn hub(&self, who: &GcpCredentials) -> Result<Hub, CallError> {
        let auth = self.google.auth(who, READ_ONLY).await?;
        let mut hub = CloudResourceManager::new(self.google.api(), auth);
        hub.base_url(self.base_url.clone());
        hub.user_agent(Google::user_agent());
        Ok(hub)
    }

    async fn calls(&self, who: &GcpCredentials, max_retries: u32) -> Result<Calls, CallError> {
        Ok(Calls::new(
            self.hub(who).await?,
            self.google.settings(),
            max_retries,
        ))
    }

    /// `organizations.get` on a hub already made.
    async fn describe(calls: &Calls, name: &str) -> Result<OrganizationIdentity, DiscoveryFailure> {
        let org = calls
            .run(|| {
                calls
                    .hub
                    .organizations()
                    .get(name)
                    .add_scope(Scope::CloudPlatformReadOnly)
                    .doit()
            })
            .await
            .map_err(|e| match e {
                CallError::NotFound(_) => DiscoveryFailure::Other(format!(
                    "organization not found: {name}; check the organization id"
                )),
                e => failure(ORGANIZATIONS_GET, name, e, calls.throttling().0),
            })?;
        Ok(OrganizationIdentity {
            cloud_org_id: org.name.unwrap_or_else(|| name.to_string()),
            arn: None,
            management_account_id: None,
            management_account_email: None,
            display_name: org.display_name,
            directory_customer_id: org.directory_customer_id,
            lifecycle_state: org.state,
        })
    }

    /// Who the organization is (`organizations.get`): checked before it is recorded, so a key
    /// without access is refused at once, with the permission to grant.
    pub async fn identify(
        &self,
        who: impl Into<GcpCredentials>,
        organization: &str,
    ) -> Result<OrganizationIdentity, DiscoveryFailure> {
        let name = organization_name(organization)?;
        let calls = self
            .calls(&who.into(), self.google.settings().max_retries)
            .await
            .map_err(|e| failure(ORGANIZATIONS_GET, &name, e, 0))?;
        Self::describe(&calls, &name).await
    }

    /// Reads the whole organization: its identity, every folder at any depth and every
    /// project, `DELETE_REQUESTED` ones included. A folder that cannot be listed is an entry
    /// of [`Discovery::unreadable`], not a failure.
    pub async fn discover(
        &self,
        who: impl Into<GcpCredentials>,
        organization: &str,
        progress: Arc<dyn DiscoveryProgress>,
        stop: Stop,
    ) -> Result<Discovery, DiscoveryFailure> {
        let name = organization_name(organization)?;
        if stop.requested() {
            return Err(DiscoveryFailure::Stopped);
        }
        let calls = self
            .calls(&who.into(), self.google.settings().max_retries)
            .await
            .map_err(|e| failure(ORGANIZATIONS_GET, &name, e, 0))?
            .stopping(stop);
        let identity = Self::describe(&calls, &name).await?;
        let root = DiscoveredNode {
            id: name.clone(),
            parent_id: None,
            name: identity
                .display_name
                .clone()
                .unwrap_or_else(|| name.clone()),
            kind: NodeKind::Root,
        };
        let mut seen: HashSet<String> = HashSet::from([root.id.clone()]);
        let mut folders: Vec<DiscoveredNode> = Vec::new();
        let mut members: Vec<DiscoveredMember> = Vec::new();
        let mut unreadable: Vec<(String, String)> = Vec::new();
        let mut level = vec![root.id.clone()];
        let mut depth = 0usize;
        while !level.is_empty() {
            let reads: Vec<_> = stream::iter(level.drain(..))
                .map(|parent| {
                    let calls = &calls;
                    async move {
                        let read = read_parent(calls, &parent).await;
                        (parent, read)
                    }
                })
                .buffer_unordered(self.google.settings().max_in_flight.max(1))
                .collect()
                .await;
            for (parent, read) in reads {
                match read {
                    Ok(read) => {
                        for folder in read.folders {
                            // A folder moved between levels can be listed twice.
                            if seen.insert(folder.id.clone()) {
                                level.push(folder.id.clone());
                                folders.push(folder);
                            }
                        }
                        members.extend(read.members);
                    }
                    // The organization unreadable is the whole discovery failing; a folder is
                    // recorded and the rest goes on (status `partial`).
                    Err((permission, e)) if parent == name => {
                        return Err(failure(permission, &name, e, calls.throttling().0));
                    }
                    Err((permission, CallError::Denied(m))) => {
                        unreadable.push((parent, format!("permission denied: {permission} ({m})")));
                    }
                    Err((_, CallError::NotFound(_))) => {
                        unreadable.push((parent, "deleted while it was being read".into()));
                    }
                    Err((permission, e)) => {
                        return Err(failure(permission, &parent, e, calls.throttling().0));
                    }
                }
            }
            depth += 1;
            if depth == usize::from(GCP_MAX_DEPTH) + 1 && !level.is_empty() {
                tracing::warn!(organization = %name, "folders deeper than GCP's documented limit");
            }
            let (retries, waited) = calls.throttling();
            progress
                .read(
                    1 + folders.len() as u64,
                    members.len() as u64,
                    retries,
                    waited,
                )
                .await;
        }
        folders.sort_by(|a, b| a.id.cmp(&b.id));
        members.sort_by(|a, b| a.key.cmp(&b.key));
        members.dedup_by(|a, b| a.key == b.key);
        unreadable.sort();
        let mut nodes = Vec::with_capacity(1 + folders.len());
        nodes.push(root);
        nodes.extend(folders);
        let (throttled_retries, throttled_ms) = calls.throttling();
        Ok(Discovery {
            identity,
            nodes,
            members,
            unreadable,
            throttled_retries,
            throttled_ms,
        })
    }

    /// Proves the key reaches one project (`projects.get`). One attempt: a throttled check is
    /// reported as such and the health schedule tries again.
    pub async fn verify_project(
        &self,
        who: impl Into<GcpCredentials>,
        project_id: &str,
    ) -> Result<ProjectInfo, AccessFailure> {
        let who = who.into();
        let project_id = project_id.trim();
        if !valid_project(project_id) {
            return Err(AccessFailure {
                kind: FailureKind::Other,
                message: format!("{project_id:?} is not a project id"),
            });
        }
        let name = format!("projects/{project_id}");
        let result = match self.calls(&who, 0).await {
            Ok(calls) => {
                calls
                    .run(|| {
                        calls
                            .hub
                            .projects()
                            .get(&name)
                            .add_scope(Scope::CloudPlatformReadOnly)
                            .doit()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        let project = result.map_err(|e| {
            let (kind, message) = match e {
                CallError::Denied(m) => {
                    (FailureKind::AccessDenied, format!("PERMISSION_DENIED: {m}"))
                }
                CallError::NotFound(_) => (
                    FailureKind::RoleNotFound,
                    format!("project not found: {project_id}"),
                ),
                CallError::ThrottledOut => (
                    FailureKind::Throttled,
                    "RESOURCE_EXHAUSTED: Resource Manager throttled the request".into(),
                ),
                CallError::KeyRefused(code) => (
                    FailureKind::AccessDenied,
                    format!("the service account key was refused: {code}"),
                ),
                CallError::ImpersonationRefused(m) => (FailureKind::AccessDenied, m),
                CallError::Network(m) => (FailureKind::Network, m),
                CallError::Timeout => (
                    FailureKind::Timeout,
                    format!(
                        "no answer from Resource Manager within {} ms",
                        self.google.settings().call_timeout.as_millis()
                    ),
                ),
                CallError::Other(m) => (FailureKind::Other, m),
                CallError::Stopped => (FailureKind::Other, "stopped before the call".into()),
            };
            AccessFailure { kind, message }
        })?;
        let member = member_from(&project, "").ok_or_else(|| AccessFailure {
            kind: FailureKind::Other,
            message: "Resource Manager returned a project without an id".into(),
        })?;
        Ok(ProjectInfo {
            project_id: member.key,
            number: member.number,
            display_name: member.name,
            state: member.state,
            parent: project.parent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The app drives these from `async_trait` ports and spawned jobs, which need `Send`.
    #[allow(dead_code)]
    fn futures_are_send(
        d: &ResourceManagerDiscoverer,
        key: &ServiceAccountKey,
        progress: Arc<dyn DiscoveryProgress>,
    ) {
        fn send<T: Send>(_: T) {}
        send(d.discover(key, "organizations/1", progress, Stop::never()));
        send(d.identify(key, "organizations/1"));
        send(d.verify_project(key, "my-project"));
    }

    #[test]
    fn names_that_would_bend_the_url_path_are_refused() {
        assert_eq!(organization_name(" 123 "), Ok("organizations/123".into()));
        assert_eq!(
            organization_name("organizations/123"),
            Ok("organizations/123".into())
        );
        for bad in [
            "",
            "organizations/",
            "organizations/1/../2",
            "folders/1",
            "12a",
        ] {
            assert!(organization_name(bad).is_err(), "{bad}");
        }
        for good in ["tokyo-rain-123", "abcdef", "415104041262"] {
            assert!(valid_project(good), "{good}");
        }
        for bad in [
            "../organizations/1",
            "short",
            "Upper-case1",
            "ends-with-",
            "1abcdefg",
            "a/b/c/d/e",
        ] {
            assert!(!valid_project(bad), "{bad}");
        }
    }

    #[test]
    fn page_tokens_end_on_empty_and_stop_on_repeats() {
        assert!(matches!(next_token(None, &None), Next::Done));
        assert!(matches!(next_token(Some(String::new()), &None), Next::Done));
        assert!(matches!(next_token(Some("a".into()), &None), Next::Page(t) if t == "a"));
        assert!(matches!(
            next_token(Some("a".into()), &Some("a".into())),
            Next::Repeated
        ));
    }
}
