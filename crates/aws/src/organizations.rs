//! Discovery of a whole AWS Organization through aws-sdk-organizations: the management role
//! is assumed with the tenant's External ID, then the tree is read breadth-first, every page of
//! every parent, with a bounded number of calls in flight (Organizations has one global endpoint
//! and throttles hard) and throttled calls retried with exponential back-off and full jitter.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_organizations::error::{ProvideErrorMetadata, SdkError};
use canopy_cloud_org::Provider;
use canopy_cloud_org::health::FailureKind;
use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, NodeKind};
use canopy_cloud_org::organization::member::{DiscoveredMember, MemberState};
use canopy_cloud_org::organization::{
    Discovery, DiscoveryFailure, DiscoveryProgress, OrganizationAccess, OrganizationDiscoverer,
    OrganizationIdentity,
};
use canopy_kernel::Stop;
use chrono::{DateTime, SubsecRound, Utc};
use futures::stream::{self, StreamExt};
use rand::Rng;
use tokio::sync::Semaphore;

/// Settings of the discovery adapter.
#[derive(Debug, Clone)]
pub struct OrganizationsSettings {
    /// Endpoint override for STS and Organizations (moto or a local server in tests).
    pub endpoint_url: Option<String>,
    /// Organizations calls in flight for one discovery.
    pub max_in_flight: usize,
    /// Retries of one throttled call before the discovery gives up.
    pub max_retries: u32,
    /// First back-off; doubles per retry, with full jitter.
    pub base_backoff: Duration,
    /// Longest single back-off.
    pub max_backoff: Duration,
}

impl Default for OrganizationsSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            max_in_flight: 8,
            max_retries: 8,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
        }
    }
}

/// [`OrganizationDiscoverer`] on AWS Organizations.
#[derive(Debug, Clone)]
pub struct OrganizationsDiscoverer {
    base: SdkConfig,
    settings: OrganizationsSettings,
}

/// Codes AWS uses for "slow down".
const THROTTLED: [&str; 4] = [
    "TooManyRequestsException",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
];

/// Why one call failed, after retries.
#[derive(Debug)]
enum CallError {
    Denied(String),
    NotInUse,
    ThrottledOut,
    Network(String),
    Other(String),
    /// The discovery was asked to stop; the call was not made.
    Stopped,
}

/// Shared by every call of one discovery.
struct Calls {
    client: aws_sdk_organizations::Client,
    permits: Semaphore,
    settings: OrganizationsSettings,
    retries: AtomicU64,
    waited_ms: AtomicU64,
    stop: Stop,
}

impl Calls {
    /// Runs `call` with a permit, retrying throttled answers with back-off and full jitter.
    async fn run<T, E, R, F, Fut>(&self, mut call: F) -> Result<T, CallError>
    where
        F: FnMut(aws_sdk_organizations::Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let mut attempt = 0u32;
        loop {
            let outcome = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| CallError::Other(e.to_string()))?;
                // Looked at with the permit in hand: a call that waited for one while the job
                // was cancelled does not start either.
                if self.stop.requested() {
                    return Err(CallError::Stopped);
                }
                call(self.client.clone()).await
            };
            let err = match outcome {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let code = match &err {
                SdkError::ServiceError(s) => s.err().code().unwrap_or("Unknown").to_string(),
                SdkError::DispatchFailure(f) if f.is_io() || f.is_timeout() => {
                    tracing::warn!(cause = ?err, "AWS Organizations unreachable");
                    return Err(CallError::Network(
                        "AWS Organizations could not be reached".into(),
                    ));
                }
                SdkError::TimeoutError(_) => return Err(CallError::Network("timed out".into())),
                other => {
                    tracing::warn!(cause = ?other, "AWS Organizations call failed");
                    return Err(CallError::Other(other.to_string()));
                }
            };
            if THROTTLED.contains(&code.as_str()) {
                if attempt >= self.settings.max_retries {
                    return Err(CallError::ThrottledOut);
                }
                attempt += 1;
                let ceiling = self
                    .settings
                    .base_backoff
                    .saturating_mul(1 << attempt.min(16))
                    .min(self.settings.max_backoff);
                let wait = Duration::from_millis(
                    rand::rng().random_range(0..=u64::try_from(ceiling.as_millis()).unwrap_or(0)),
                );
                self.retries.fetch_add(1, Ordering::Relaxed);
                self.waited_ms.fetch_add(
                    u64::try_from(wait.as_millis()).unwrap_or(0),
                    Ordering::Relaxed,
                );
                if !crate::wait_unless_stopped(&self.stop, wait).await {
                    return Err(CallError::Stopped);
                }
                continue;
            }
            let message = match &err {
                SdkError::ServiceError(s) => s.err().message().unwrap_or("").to_string(),
                _ => String::new(),
            };
            return Err(match code.as_str() {
                "AccessDeniedException" | "AccessDenied" => CallError::Denied(message),
                "AWSOrganizationsNotInUseException" => CallError::NotInUse,
                _ => CallError::Other(format!("{code}: {message}")),
            });
        }
    }

    fn throttling(&self) -> (u64, u64) {
        (
            self.retries.load(Ordering::Relaxed),
            self.waited_ms.load(Ordering::Relaxed),
        )
    }
}

/// A call that failed after retries, as the discovery's failure. The role was checked to be
/// the management account's, so a denial is a permission its policy lacks.
fn failure(call: &str, e: CallError, retries: u64) -> DiscoveryFailure {
    match e {
        CallError::Denied(_) => DiscoveryFailure::PermissionMissing {
            provider: Provider::Aws,
            permission: format!("organizations:{call}"),
        },
        CallError::NotInUse => DiscoveryFailure::OrganizationsNotEnabled,
        CallError::ThrottledOut => DiscoveryFailure::ThrottledOut(retries),
        CallError::Network(m) => DiscoveryFailure::Network(m),
        CallError::Other(m) => DiscoveryFailure::Other(format!("{call}: {m}")),
        CallError::Stopped => DiscoveryFailure::Stopped,
    }
}

/// A provider timestamp at the precision both stores keep (microseconds), so a re-discovery
/// of an unchanged account compares equal to what was stored.
fn timestamp(t: &aws_sdk_organizations::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()).map(|d| d.trunc_subsecs(6))
}

fn member_from(account: &aws_sdk_organizations::types::Account, parent: &str) -> DiscoveredMember {
    // `State` replaces the deprecated `Status`; older endpoints (and moto) send only `Status`.
    #[allow(deprecated)]
    let state = account
        .state()
        .map(|s| s.as_str().to_string())
        .or_else(|| account.status().map(|s| s.as_str().to_string()))
        .map(|s| MemberState::from_provider(&s))
        .unwrap_or(MemberState::Other);
    DiscoveredMember {
        key: account.id().unwrap_or_default().to_string(),
        number: None,
        name: account.name().unwrap_or_default().to_string(),
        email: account.email().map(str::to_string),
        state,
        joined_method: account.joined_method().map(|m| m.as_str().to_string()),
        joined_at: account.joined_timestamp().and_then(timestamp),
        parent_id: parent.to_string(),
        is_management: false,
        delegated_admin_services: Vec::new(),
    }
}

/// What one parent holds: its OUs and its accounts, or why they could not be read.
struct ParentRead {
    units: Vec<DiscoveredNode>,
    accounts: Vec<DiscoveredMember>,
}

impl OrganizationsDiscoverer {
    /// A discoverer acting as Canopy's identity in `base` (its credentials assume the
    /// management roles).
    pub fn new(base: SdkConfig, settings: OrganizationsSettings) -> Self {
        Self { base, settings }
    }

    async fn assume(
        &self,
        role_arn: &str,
        external_id: &str,
    ) -> Result<Credentials, DiscoveryFailure> {
        let mut config =
            aws_sdk_sts::config::Builder::from(&self.base).region(Region::new("us-east-1"));
        if let Some(url) = &self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        let output = aws_sdk_sts::Client::from_conf(config.build())
            .assume_role()
            .role_arn(role_arn)
            .external_id(external_id)
            .role_session_name("canopy-discovery")
            .duration_seconds(3_600)
            .send()
            .await
            .map_err(|e| {
                let failure = crate::classify(&e, "STS");
                match failure.kind {
                    FailureKind::AccessDenied | FailureKind::RoleNotFound => {
                        DiscoveryFailure::RoleRefused(format!(
                            "{} ({})",
                            failure.kind.advice_for(Provider::Aws),
                            failure.message
                        ))
                    }
                    FailureKind::Throttled => DiscoveryFailure::ThrottledOut(0),
                    // The cause stays in the operator's log; the answer says what happened.
                    FailureKind::Network | FailureKind::Timeout => {
                        tracing::warn!(cause = %failure.message, "STS unreachable during discovery");
                        DiscoveryFailure::Network("AWS STS could not be reached".into())
                    }
                    FailureKind::CanopyCredentials => DiscoveryFailure::Other(
                        "Canopy's own AWS credentials are missing".into(),
                    ),
                    FailureKind::Other => DiscoveryFailure::Other(failure.message),
                }
            })?;
        let c = output
            .credentials()
            .ok_or_else(|| DiscoveryFailure::RoleRefused("STS returned no credentials".into()))?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            SystemTime::try_from(*c.expiration()).ok(),
            "canopy-discovery",
        ))
    }

    fn organizations(&self, credentials: Credentials) -> aws_sdk_organizations::Client {
        // Our own retry loop backs off, bounds calls in flight and counts what throttling
        // cost for the job's progress; the SDK's retries would hide all three.
        let mut config = aws_sdk_organizations::config::Builder::from(&self.base)
            .region(Region::new("us-east-1"))
            .retry_config(RetryConfig::disabled())
            .credentials_provider(credentials);
        if let Some(url) = &self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        aws_sdk_organizations::Client::from_conf(config.build())
    }

    /// Every OU and account directly under `parent`, every page; the two listings run side
    /// by side (both still take permits), so a level of the tree costs one round trip less.
    async fn read_parent(calls: &Calls, parent: String) -> Result<ParentRead, CallError> {
        let units = async {
            let mut units = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = calls
                    .run(|c| {
                        c.list_organizational_units_for_parent()
                            .parent_id(parent.clone())
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                units.extend(page.organizational_units().iter().map(|ou| DiscoveredNode {
                    id: ou.id().unwrap_or_default().to_string(),
                    parent_id: Some(parent.clone()),
                    name: ou.name().unwrap_or_default().to_string(),
                    kind: NodeKind::OrganizationalUnit,
                }));
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    return Ok::<_, CallError>(units);
                }
            }
        };
        let accounts = async {
            let mut accounts = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = calls
                    .run(|c| {
                        c.list_accounts_for_parent()
                            .parent_id(parent.clone())
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                accounts.extend(page.accounts().iter().map(|a| member_from(a, &parent)));
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    return Ok::<_, CallError>(accounts);
                }
            }
        };
        let (units, accounts) = futures::try_join!(units, accounts)?;
        Ok(ParentRead { units, accounts })
    }

    /// Which services each delegated administrator administers.
    async fn delegated_admins(calls: &Calls) -> Result<Vec<(String, Vec<String>)>, CallError> {
        let mut admins = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = calls
                .run(|c| {
                    c.list_delegated_administrators()
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            admins.extend(
                page.delegated_administrators()
                    .iter()
                    .filter_map(|a| a.id().map(str::to_string)),
            );
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let mut out = Vec::new();
        for admin in admins {
            let mut services = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = calls
                    .run(|c| {
                        c.list_delegated_services_for_account()
                            .account_id(admin.clone())
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                services.extend(
                    page.delegated_services()
                        .iter()
                        .filter_map(|s| s.service_principal().map(str::to_string)),
                );
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            services.sort();
            out.push((admin, services));
        }
        Ok(out)
    }
}

async fn describe(calls: &Calls) -> Result<OrganizationIdentity, DiscoveryFailure> {
    let org = calls
        .run(|c| c.describe_organization().send())
        .await
        .map_err(|e| failure("DescribeOrganization", e, calls.throttling().0))?;
    let org = org
        .organization()
        .ok_or_else(|| DiscoveryFailure::Other("DescribeOrganization: no organization".into()))?;
    Ok(OrganizationIdentity {
        cloud_org_id: org.id().unwrap_or_default().to_string(),
        arn: org.arn().map(str::to_string),
        management_account_id: org.master_account_id().map(str::to_string),
        management_account_email: org.master_account_email().map(str::to_string),
        display_name: None,
        directory_customer_id: None,
        lifecycle_state: None,
    })
}

impl OrganizationsDiscoverer {
    async fn calls(
        &self,
        role_arn: &str,
        external_id: &str,
        stop: Stop,
    ) -> Result<Arc<Calls>, DiscoveryFailure> {
        if stop.requested() {
            return Err(DiscoveryFailure::Stopped);
        }
        let credentials = self.assume(role_arn, external_id).await?;
        Ok(Arc::new(Calls {
            client: self.organizations(credentials),
            permits: Semaphore::new(self.settings.max_in_flight.max(1)),
            settings: self.settings.clone(),
            retries: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            stop,
        }))
    }
}

/// Refuses a role outside the organization's management account: any member account may
/// describe its organization, but only the management account reads its tree, so every call
/// after this one would be denied (and a denial would read as a missing permission). The
/// service refuses such a role before recording anything; this holds a record made before it
/// did to the same answer.
fn in_management_account(
    role_arn: &str,
    identity: &OrganizationIdentity,
) -> Result<(), DiscoveryFailure> {
    let role_account = role_arn.split(':').nth(4).unwrap_or_default();
    match identity.management_account_id.as_deref() {
        Some(management) if management != role_account => {
            Err(DiscoveryFailure::MemberAccountRole {
                role_account: role_account.to_string(),
                management_account: management.to_string(),
                organization: identity.cloud_org_id.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// The role and External ID of an AWS access; another provider's is a wiring mistake.
fn aws_access(access: &OrganizationAccess) -> Result<(&str, &str), DiscoveryFailure> {
    match access {
        OrganizationAccess::Aws {
            role_arn,
            external_id,
        } => Ok((role_arn, external_id)),
        OrganizationAccess::Gcp { .. } => Err(DiscoveryFailure::Other(
            "AWS Organizations was given a GCP organization".into(),
        )),
    }
}

#[async_trait]
impl OrganizationDiscoverer for OrganizationsDiscoverer {
    async fn identify(
        &self,
        access: &OrganizationAccess,
    ) -> Result<OrganizationIdentity, DiscoveryFailure> {
        let (role_arn, external_id) = aws_access(access)?;
        let calls = self.calls(role_arn, external_id, Stop::never()).await?;
        describe(&calls).await
    }

    async fn discover(
        &self,
        access: &OrganizationAccess,
        progress: Arc<dyn DiscoveryProgress>,
        stop: Stop,
    ) -> Result<Discovery, DiscoveryFailure> {
        let (role_arn, external_id) = aws_access(access)?;
        let calls = self.calls(role_arn, external_id, stop).await?;
        let retries = |calls: &Calls| calls.throttling().0;
        let identity = describe(&calls).await?;
        in_management_account(role_arn, &identity)?;

        let roots = calls
            .run(|c| c.list_roots().send())
            .await
            .map_err(|e| failure("ListRoots", e, retries(&calls)))?;
        let root = roots
            .roots()
            .first()
            .ok_or_else(|| DiscoveryFailure::Other("ListRoots: no root".into()))?;
        let mut nodes = vec![DiscoveredNode {
            id: root.id().unwrap_or_default().to_string(),
            parent_id: None,
            name: root.name().unwrap_or("Root").to_string(),
            kind: NodeKind::Root,
        }];
        let mut members = Vec::new();
        let mut unreadable = Vec::new();
        // No level barriers: a parent's children are queued the moment it is read, so the
        // permits stay busy until the whole tree is in (the delegated administrators are read
        // alongside).
        let root_id = nodes[0].id.clone();
        let read = |parent: String| {
            let calls = calls.clone();
            async move {
                let outcome = Self::read_parent(&calls, parent.clone()).await;
                (parent, outcome)
            }
        };
        let tree = async {
            let mut pending = stream::FuturesUnordered::new();
            pending.push(read(root_id.clone()));
            while let Some((parent, outcome)) = pending.next().await {
                match outcome {
                    Ok(found) => {
                        for unit in &found.units {
                            pending.push(read(unit.id.clone()));
                        }
                        nodes.extend(found.units);
                        members.extend(found.accounts);
                    }
                    // The root unreadable is a failure of the whole discovery; a subtree is
                    // recorded and the rest goes on (status `partial`).
                    Err(CallError::Denied(_)) if parent == root_id => {
                        return Err(DiscoveryFailure::PermissionMissing {
                            provider: Provider::Aws,
                            permission: "organizations:ListOrganizationalUnitsForParent and \
                                         organizations:ListAccountsForParent on the root"
                                .into(),
                        });
                    }
                    Err(CallError::Denied(m)) => {
                        unreadable.push((parent, format!("access denied: {m}")))
                    }
                    Err(e) => return Err(failure("ListAccountsForParent", e, retries(&calls))),
                }
                let (r, w) = calls.throttling();
                progress
                    .read(nodes.len() as u64, members.len() as u64, r, w)
                    .await;
            }
            Ok(())
        };
        let (tree, admins) = futures::join!(tree, Self::delegated_admins(&calls));
        tree?;

        let management = identity.management_account_id.clone();
        match admins {
            Ok(admins) => {
                for member in &mut members {
                    member.is_management = management.as_deref() == Some(member.key.as_str());
                    if let Some((_, services)) = admins.iter().find(|(id, _)| *id == member.key) {
                        member.delegated_admin_services = services.clone();
                    }
                }
            }
            // Reading delegated administrators needs the management account; a delegated
            // Organizations admin may not see them. The tree stands without them.
            Err(CallError::Denied(m)) => {
                unreadable.push((
                    "delegated-administrators".into(),
                    format!("access denied: {m}"),
                ));
                for member in &mut members {
                    member.is_management = management.as_deref() == Some(member.key.as_str());
                }
            }
            Err(e) => return Err(failure("ListDelegatedAdministrators", e, retries(&calls))),
        }
        members.sort_by(|a, b| a.key.cmp(&b.key));
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
}
