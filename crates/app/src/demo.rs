//! `canopy serve --demo`: a demo user and organization with several AWS accounts whose
//! metrics come from the demo cloud (one of them refusing access), created through the same
//! services as any other, so a newcomer sees a full dashboard without AWS credentials. Then
//! ([`complete`]) the demo cloud's AWS Organization and GCP Organization, connected,
//! discovered, their members connected and everything scanned by the job workers (the
//! standalone accounts too), so coverage with its inherited part, the organization view and
//! Navigator layers can be read without cloud credentials either.

use canopy_tenancy::account::ClientInfo;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use canopy_cloud_org::identifiers::RoleArn;
use canopy_cloud_org::organization::gcp::GcpOrganizationInput;
use canopy_cloud_org::organization::ports::Selection;
use canopy_cloud_org::organization::service::{
    AwsOrganizationInput, CONNECT_KIND, CloudOrganizationError, DISCOVER_KIND,
};
use canopy_cloud_org::organization::{CloudOrganization, ConnectionStatus};
use canopy_cloud_org::{AccountFilter, AccountInput, CloudAccount};
use canopy_demo::estate;
use canopy_detection::scan::{SCAN_ACCOUNT_KIND, SCAN_MEMBERS_KIND, SCAN_ORGANIZATION_KIND};
use canopy_jobs::{Job, JobKind, JobStatus};
use canopy_kernel::PageRequest;
use canopy_tenancy::service::OrgAccess;
use canopy_tenancy::{OrganizationError, Principal, SessionError};

use crate::state::AppState;

/// The demo user's email.
pub const EMAIL: &str = "demo@canopy.dev";
/// The demo user's password (the demo holds nothing worth protecting).
pub const PASSWORD: &str = "canopy demo password";
/// The demo organization's slug.
pub const SLUG: &str = "demo";
/// The demo organization's name.
const NAME: &str = "Demo Corp";
/// The demo AWS Organization's name in Canopy.
const AWS_NAME: &str = "Demo AWS Organization";
/// How long [`complete`] waits for one job: the workers may be busy with other tenants'.
const PATIENCE: Duration = Duration::from_secs(300);
/// The demo account whose role refuses Canopy, to show partial failure.
pub const FAILING_ACCOUNT: &str = "210987654006";

const ACCOUNTS: [(&str, &str, &str, &str); 6] = [
    ("210987654001", "Production US", "production", "us-east-1"),
    ("210987654002", "Production EU", "production", "eu-west-1"),
    ("210987654003", "Marketing", "production", "us-east-1"),
    ("210987654004", "Staging", "staging", "us-east-1"),
    ("210987654005", "Development", "development", "us-west-2"),
    (FAILING_ACCOUNT, "Legacy mailer", "production", "us-east-1"),
];

/// What the seed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    /// Created the user, the organization (on Pro) and its accounts.
    Created {
        /// The organization's slug.
        slug: String,
    },
    /// The demo user existed already (a restart on the same database): nothing changed.
    AlreadyThere,
}

/// Creates the demo user, organization and accounts, once.
pub async fn seed(state: &AppState) -> anyhow::Result<Seeded> {
    let signed_in = match state
        .tenancy
        .sign_up(EMAIL, "Demo", PASSWORD.to_string(), &ClientInfo::default())
        .await
    {
        Ok(s) => s,
        Err(SessionError::EmailTaken) => return Ok(Seeded::AlreadyThere),
        Err(e) => return Err(e).context("creating the demo user"),
    };
    // The demo's address reaches nobody: it counts as verified, so its keys and invitations
    // work as a real user's do.
    state
        .tenancy
        .verify_email_as_operator(EMAIL)
        .await
        .context("verifying the demo user")?;
    let principal = state.tenancy.authenticate(&signed_in.token).await?;
    let org = match state
        .tenancy
        .create_organization(&principal, NAME, Some(SLUG))
        .await
    {
        Ok(org) => org,
        Err(OrganizationError::SlugTaken) => state
            .tenancy
            .create_organization(&principal, NAME, None)
            .await
            .context("creating the demo organization")?,
        Err(e) => return Err(e).context("creating the demo organization"),
    };
    state
        .billing
        .set_tier_as_operator(&org.id.to_string(), "pro")
        .await
        .context("putting the demo organization on Pro")?;
    let access = state
        .tenancy
        .access(&principal, &org.id.to_string())
        .await?;
    for (account, alias, environment, region) in ACCOUNTS {
        state
            .cloud
            .connect(
                &access,
                &AccountInput {
                    provider: "aws".into(),
                    account_id: Some(account.into()),
                    role_arn: Some(format!("arn:aws:iam::{account}:role/CanopyAccess")),
                    region: Some(region.into()),
                    alias: Some(alias.into()),
                    environment: Some(environment.into()),
                    ses_domains: vec![format!(
                        "mail.{}.demo.canopy.dev",
                        alias.to_lowercase().replace(' ', "-")
                    )],
                    ..AccountInput::default()
                },
            )
            .await
            .with_context(|| format!("connecting demo account {alias}"))?;
    }
    Ok(Seeded::Created {
        slug: org.slug.to_string(),
    })
}

/// What [`complete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Jobs it queued: none when a previous run finished everything.
    pub queued: usize,
    /// The demo cloud organizations' ids in Canopy, AWS then GCP.
    pub cloud_organizations: Vec<uuid::Uuid>,
}

/// Connects the demo cloud's AWS Organization and GCP Organization to the demo organization
/// through the cloud-organization service, as the API does (discovery, then every member),
/// and scans them, their members and the standalone accounts, waiting for each job. The jobs run on the job workers,
/// which must be running. Safe on every start: it picks up where a previous run stopped
/// and queues nothing once everything has been done.
pub async fn complete(state: &AppState) -> anyhow::Result<Completed> {
    let signed_in = state
        .tenancy
        .log_in(EMAIL, PASSWORD.to_string(), &ClientInfo::default())
        .await
        .context("logging in as the demo user")?;
    let principal = state.tenancy.authenticate(&signed_in.token).await?;
    let outcome = complete_as(state, &principal).await;
    // The session was only for this run.
    state.tenancy.log_out(&principal, &signed_in.token).await?;
    outcome
}

async fn complete_as(state: &AppState, principal: &Principal) -> anyhow::Result<Completed> {
    let organizations = state.tenancy.list_organizations(principal).await?;
    let Some(org) = organizations
        .iter()
        .map(|o| &o.organization)
        .find(|o| o.name == NAME)
    else {
        bail!("the demo user has no organization named {NAME}: run the seed first");
    };
    let access = state.tenancy.access(principal, &org.id.to_string()).await?;
    let mut done = Completed {
        queued: 0,
        cloud_organizations: Vec::new(),
    };
    for cloud_org_id in [estate::AWS_ORGANIZATION_ID, estate::GCP_ORGANIZATION] {
        let id = connect(state, &access, cloud_org_id, &mut done.queued).await?;
        done.cloud_organizations.push(id);
    }
    for account in standalone(state, &access).await? {
        let id = account.id;
        ensure(
            state,
            &access,
            id.as_uuid(),
            SCAN_ACCOUNT_KIND,
            &mut done.queued,
            || async { Ok(state.detections.scan_account(&access, id).await?) },
        )
        .await?;
    }
    Ok(done)
}

/// The standalone accounts [`seed`] connected, still there.
async fn standalone(state: &AppState, access: &OrgAccess) -> anyhow::Result<Vec<CloudAccount>> {
    let mut found = Vec::new();
    let mut page = PageRequest {
        limit: PageRequest::MAX_LIMIT,
        after: None,
    };
    loop {
        let got = state
            .cloud
            .list(access, &AccountFilter::default(), page)
            .await?;
        found.extend(got.items.into_iter().filter(|a| {
            ACCOUNTS
                .iter()
                .any(|(key, ..)| a.identity.account_key() == *key)
        }));
        match got.next {
            Some(next) => page.after = Some(next),
            None => return Ok(found),
        }
    }
}

/// One demo cloud organization: discovered, every member connected, scanned.
async fn connect(
    state: &AppState,
    access: &OrgAccess,
    cloud_org_id: &str,
    queued: &mut usize,
) -> anyhow::Result<uuid::Uuid> {
    let cloud_org = match find(state, access, cloud_org_id).await? {
        Some(found) => found,
        None => {
            *queued += 1;
            discover(state, access, cloud_org_id).await?.0
        }
    };
    let id = cloud_org.id;
    let subject = id.as_uuid();
    ensure(state, access, subject, DISCOVER_KIND, queued, || async {
        Ok(state.cloud_orgs.sync(access, id).await?.1)
    })
    .await?;
    let discovered = state.cloud_orgs.get(access, id).await?;
    if discovered.status != ConnectionStatus::Connected {
        bail!(
            "the demo cloud organization {cloud_org_id} is {} after discovery: {}",
            discovered.status.as_str(),
            discovered.error.unwrap_or_default()
        );
    }
    // A connect left running by a previous start settles its members first.
    if let Some(job) = latest(state, access, subject, CONNECT_KIND).await? {
        finished(state, access, job).await?;
    }
    match state
        .cloud_orgs
        .connect_members(access, id, Selection::All, false)
        .await
    {
        Ok(plan) => {
            *queued += 1;
            let job = finished(state, access, plan.job).await?;
            if job.status != JobStatus::Succeeded {
                bail!("connecting the members of {cloud_org_id}: {job:?}");
            }
        }
        Err(CloudOrganizationError::Invalid(e))
            if e.errors.iter().any(|f| f.rule == "none_connectable") => {}
        Err(e) => return Err(e).context("connecting the demo members"),
    }
    ensure(
        state,
        access,
        subject,
        SCAN_ORGANIZATION_KIND,
        queued,
        || async { Ok(state.detections.scan_cloud_org(access, id).await?) },
    )
    .await?;
    ensure(
        state,
        access,
        subject,
        SCAN_MEMBERS_KIND,
        queued,
        || async { Ok(state.detections.scan_members(access, id).await?) },
    )
    .await?;
    Ok(subject)
}

/// The tenant's cloud organization with this provider id, if connected.
async fn find(
    state: &AppState,
    access: &OrgAccess,
    cloud_org_id: &str,
) -> anyhow::Result<Option<CloudOrganization>> {
    let mut page = PageRequest {
        limit: PageRequest::MAX_LIMIT,
        after: None,
    };
    loop {
        let got = state.cloud_orgs.list(access, page).await?;
        if let Some(found) = got
            .items
            .into_iter()
            .find(|c| c.identity.cloud_org_id == cloud_org_id)
        {
            return Ok(Some(found));
        }
        match got.next {
            Some(next) => page.after = Some(next),
            None => return Ok(None),
        }
    }
}

/// Connects a demo cloud organization as an admin would: the AWS one through its management
/// role, the GCP one by impersonating its service account (nothing to seal).
async fn discover(
    state: &AppState,
    access: &OrgAccess,
    cloud_org_id: &str,
) -> anyhow::Result<(CloudOrganization, Job)> {
    let started = if cloud_org_id == estate::AWS_ORGANIZATION_ID {
        state
            .cloud_orgs
            .discover_aws(
                access,
                AwsOrganizationInput {
                    management_role_arn: RoleArn::parse(estate::AWS_MANAGEMENT_ROLE, "roleArn")
                        .map_err(|e| anyhow::anyhow!("{}", e.message))?,
                    member_role_name: None,
                    name: Some(AWS_NAME.into()),
                },
            )
            .await
    } else {
        state
            .cloud_orgs
            .discover_gcp(
                access,
                GcpOrganizationInput {
                    organization_id: estate::GCP_ORGANIZATION.into(),
                    service_account_key: None,
                    service_account_email: Some(estate::GCP_SERVICE_ACCOUNT.into()),
                    name: None,
                },
            )
            .await
    };
    started.with_context(|| format!("connecting the demo cloud organization {cloud_org_id}"))
}

/// The newest job of `kind` on `subject`.
async fn latest(
    state: &AppState,
    access: &OrgAccess,
    subject: uuid::Uuid,
    kind: &'static str,
) -> anyhow::Result<Option<Job>> {
    Ok(state
        .jobs
        .latest_for(access.org_id(), subject, &JobKind::from_static(kind))
        .await?)
}

/// Waits for the newest job of `kind` on `subject` to succeed, queuing one with `queue` when
/// there is none or the newest did not succeed.
async fn ensure<F, Fut>(
    state: &AppState,
    access: &OrgAccess,
    subject: uuid::Uuid,
    kind: &'static str,
    queued: &mut usize,
    queue: F,
) -> anyhow::Result<Job>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<Job>>,
{
    let job = match latest(state, access, subject, kind).await? {
        Some(job) if !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) => job,
        _ => {
            *queued += 1;
            queue().await.with_context(|| format!("queuing {kind}"))?
        }
    };
    let job = finished(state, access, job).await?;
    if job.status != JobStatus::Succeeded {
        bail!(
            "{kind} ended {}: {}",
            job.status.as_str(),
            job.error.unwrap_or_default()
        );
    }
    Ok(job)
}

/// `job` once it is no longer queued or running.
async fn finished(state: &AppState, access: &OrgAccess, job: Job) -> anyhow::Result<Job> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut job = job;
    while matches!(job.status, JobStatus::Queued | JobStatus::Running) {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "job {} ({}) is still {} after {}s: are the job workers running?",
                job.id,
                job.kind,
                job.status.as_str(),
                PATIENCE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        job = state.jobs.get(access, job.id).await?;
    }
    Ok(job)
}
