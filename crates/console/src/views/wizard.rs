//! Connecting a whole AWS Organization or GCP Organization, one step per URL so that back and
//! reload work: the provider, then the credentials (the management role with this
//! organization's External ID, the policies to paste and a CloudFormation template; or a GCP
//! service-account key, or the keyless e-mail with the roles to grant), with the provider's
//! refusal said in words beside the field; then discovery's progress, live from its job.
//! The tree, the plan check and the connect are [`super::wizard_tree`].

use askama::Template;
use canopy_billing::plan::{Feature, least_tier_with};
use canopy_cloud_org::identifiers::RoleArn;
use canopy_cloud_org::organization::gcp::GcpOrganizationInput;
use canopy_cloud_org::organization::service::{
    AwsOrganizationInput, CONNECT_KIND, CloudOrganizationError,
};
use canopy_cloud_org::organization::{CloudOrganizationId, ConnectionStatus, DiscoveryFailure};
use canopy_cloud_org::sealing::ServiceAccountKeyJson;
use canopy_cloud_org::service::ExternalIdError;
use canopy_jobs::{Job, JobId, JobStatus};
use canopy_kernel::validation::ValidationErrors;
use canopy_tenancy::Action;
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Form, Multipart, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::cloud_orgs::{Head, failure, head};
use super::{FieldErrors, check_form, plan_limit_message};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;

/// The steps, for the step list every page of the wizard shows.
const STEPS: [&str; 5] = [
    "Provider",
    "Credentials",
    "Discovery",
    "Accounts",
    "Connect",
];

/// One step in the list: its name and whether it is done, current or to come.
pub(super) struct Step {
    pub(super) name: &'static str,
    pub(super) state: &'static str,
}

/// The step list with `current` (0-based) under way.
pub(super) fn steps(current: usize) -> Vec<Step> {
    STEPS
        .iter()
        .enumerate()
        .map(|(i, name)| Step {
            name,
            state: match i.cmp(&current) {
                std::cmp::Ordering::Less => "done",
                std::cmp::Ordering::Equal => "current",
                std::cmp::Ordering::Greater => "todo",
            },
        })
        .collect()
}

/// What a plan without organization features would gain, and from which tier.
pub(super) struct PlanGate {
    pub(super) plan: String,
    pub(super) tier: String,
}

/// The gate when the organization's plan has no organization features.
pub(super) async fn plan_gate(
    state: &ConsoleState,
    access: &OrgAccess,
) -> Result<Option<PlanGate>, Failure> {
    let terms = state.billing.terms(access.org_id()).await?;
    Ok((!terms.has(Feature::OrgFeatures)).then(|| PlanGate {
        plan: terms.display_name.to_string(),
        tier: least_tier_with(Feature::OrgFeatures)
            .display_name()
            .to_string(),
    }))
}

#[derive(Template)]
#[template(path = "cloud_orgs/connect_provider.html")]
struct ProviderPage {
    chrome: Chrome,
    slug: String,
    steps: Vec<Step>,
    gate: Option<PlanGate>,
}

/// Resolves the organization for a wizard page: admins and owners only, as the API.
async fn wizard_access(
    state: &ConsoleState,
    req: &Request,
    slug: &str,
) -> Result<(crate::session::Viewer, OrgAccess, Chrome), Failure> {
    let (viewer, access, chrome) = chrome::organization(state, req, slug, "cloud-orgs").await?;
    access.require(Action::ConnectCloudAccount)?;
    Ok((viewer, access, chrome))
}

/// `GET /org/{slug}/cloud-organizations/connect`: AWS or GCP.
#[handler]
pub async fn start(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = wizard_access(&state, req, &slug).await?;
    let gate = plan_gate(&state, &access).await?;
    Ok(page(
        StatusCode::OK,
        &ProviderPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            steps: steps(0),
            gate,
        },
    ))
}

/// The AWS credentials form, as typed.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AwsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    management_role_arn: String,
    #[serde(default)]
    member_role_name: String,
    #[serde(default)]
    name: String,
}

#[derive(Template)]
#[template(path = "cloud_orgs/connect_aws.html")]
struct AwsPage {
    chrome: Chrome,
    slug: String,
    steps: Vec<Step>,
    gate: Option<PlanGate>,
    external_id: String,
    principal: String,
    trust_policy: String,
    permissions_policy: String,
    member_role_name: String,
    form: AwsForm,
    other_errors: Vec<String>,
    errors: FieldErrors,
    refusal: Option<Refusal>,
}

/// A refusal said in words: what happened, and what to do.
pub(super) struct Refusal {
    pub(super) title: String,
    pub(super) advice: String,
}

async fn aws_page(
    state: &ConsoleState,
    access: &OrgAccess,
    chrome: Chrome,
    form: AwsForm,
    errors: FieldErrors,
    refusal: Option<Refusal>,
) -> Result<AwsPage, Failure> {
    let instructions = state
        .cloud
        .connection_instructions(access)
        .await
        .map_err(|e| match e {
            ExternalIdError::Forbidden(_) => Failure::Forbidden,
            ExternalIdError::Store(s) => Failure::Store(s),
        })?;
    Ok(AwsPage {
        chrome,
        slug: access.organization().slug.as_str().to_string(),
        steps: steps(1),
        gate: plan_gate(state, access).await?,
        external_id: instructions.external_id,
        principal: instructions.trusted_principal,
        trust_policy: serde_json::to_string_pretty(&instructions.trust_policy).unwrap_or_default(),
        permissions_policy: serde_json::to_string_pretty(&instructions.management_role_policy)
            .unwrap_or_default(),
        member_role_name: instructions.member_role_name,
        form,
        other_errors: errors.others(&["managementRoleArn", "memberRoleName", "name"]),
        errors,
        refusal,
    })
}

/// `GET /org/{slug}/cloud-organizations/connect/aws`.
#[handler]
pub async fn aws_form(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = wizard_access(&state, req, &slug).await?;
    let p = aws_page(
        &state,
        &access,
        chrome,
        AwsForm::default(),
        FieldErrors::default(),
        None,
    )
    .await?;
    Ok(page(StatusCode::OK, &p))
}

fn optional(raw: &str) -> Option<String> {
    let t = raw.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `POST /org/{slug}/cloud-organizations/connect/aws`: assume the role and start discovery.
#[handler]
pub async fn aws_submit(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<AwsForm>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = wizard_access(&state, req, &slug).await?;
    check_form(&viewer, req, &form.csrf)?;
    let outcome = match RoleArn::parse(form.management_role_arn.trim(), "managementRoleArn") {
        Err(e) => Err(CloudOrganizationError::Invalid(ValidationErrors::single(e))),
        Ok(role) => {
            state
                .cloud_orgs
                .discover_aws(
                    &access,
                    AwsOrganizationInput {
                        management_role_arn: role,
                        member_role_name: optional(&form.member_role_name),
                        name: optional(&form.name),
                    },
                )
                .await
        }
    };
    let (status, errors, refusal) = match outcome {
        Ok((cloud_org, job)) => return Ok(to_progress(&access, cloud_org.id, job.id)),
        Err(e) => refused(e, "managementRoleArn")?,
    };
    let p = aws_page(&state, &access, chrome, form, errors, refusal).await?;
    Ok(page(status, &p))
}

fn to_progress(access: &OrgAccess, id: CloudOrganizationId, job: JobId) -> Response {
    redirect(&format!(
        "/org/{}/cloud-organizations/{}/jobs/{}",
        access.organization().slug.as_str(),
        id.as_uuid(),
        job.0
    ))
}

/// A refusal of the credentials step: the status, the field errors and the sentence beside
/// `field` (the role ARN or the key).
fn refused(
    e: CloudOrganizationError,
    field: &str,
) -> Result<(StatusCode, FieldErrors, Option<Refusal>), Failure> {
    let words = |title: String, advice: &str| Refusal {
        title,
        advice: advice.to_string(),
    };
    Ok(match e {
        CloudOrganizationError::Invalid(v) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::from_validation(&v, &[("serviceAccountKey", "keyFile")]),
            None,
        ),
        CloudOrganizationError::Discovery(d) => {
            let advice = match &d {
                DiscoveryFailure::RoleRefused(_) => {
                    "Check the role's ARN, that its trust policy names the principal and this External ID above, and that it was saved in IAM."
                }
                DiscoveryFailure::MemberAccountRole { .. } => {
                    "Create the role in the management account named above and paste its ARN."
                }
                DiscoveryFailure::OrganizationsNotEnabled => {
                    "This account is not part of an AWS Organization. Connect it as a single account under Settings → Cloud accounts instead."
                }
                DiscoveryFailure::KeyRefused(_) => {
                    "Create a new key for the service account in the Google Cloud console and upload it."
                }
                DiscoveryFailure::ImpersonationRefused(_) => {
                    "Grant Canopy's identity the Service Account Token Creator role on the service account, or upload a key instead."
                }
                DiscoveryFailure::PermissionMissing { .. } => {
                    "Grant the permission named above and try again; the policy to paste is above."
                }
                _ => "Try again in a minute; if it persists, check the provider's status page.",
            };
            let errors = FieldErrors::one(field, d.to_string());
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                errors,
                Some(words(capitalized(&d.to_string()), advice)),
            )
        }
        CloudOrganizationError::AlreadyConnected => (
            StatusCode::CONFLICT,
            FieldErrors::default(),
            Some(words(
                "This organization is connected already.".into(),
                "It is listed under Cloud organizations; sync it there.",
            )),
        ),
        CloudOrganizationError::ConnectedElsewhere => (
            StatusCode::CONFLICT,
            FieldErrors::default(),
            Some(words(
                "Another Canopy organization connected it.".into(),
                "A cloud organization belongs to one Canopy organization; disconnect it there first.",
            )),
        ),
        CloudOrganizationError::NotInPlan(f) => (
            StatusCode::PAYMENT_REQUIRED,
            FieldErrors::default(),
            Some(words(
                format!("{} are not in the {} plan.", f.feature_name, f.plan),
                "Upgrade on the Plan & billing page to connect whole organizations.",
            )),
        ),
        CloudOrganizationError::PlanLimit(limit) => (
            StatusCode::PAYMENT_REQUIRED,
            FieldErrors::default(),
            Some(words(plan_limit_message(&limit), "")),
        ),
        CloudOrganizationError::Sealing(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            FieldErrors::default(),
            Some(words(
                "Canopy cannot store a key right now.".into(),
                "The operator has not configured a secret key; use the keyless e-mail instead.",
            )),
        ),
        other => return Err(failure(other)),
    })
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

/// The GCP credentials form, as typed (the key arrives as a file or pasted).
#[derive(Debug, Default, Clone)]
pub struct GcpForm {
    organization_id: String,
    service_account_email: String,
    key_text: String,
    name: String,
}

#[derive(Template)]
#[template(path = "cloud_orgs/connect_gcp.html")]
struct GcpPage {
    chrome: Chrome,
    slug: String,
    steps: Vec<Step>,
    gate: Option<PlanGate>,
    roles: Vec<String>,
    form: GcpForm,
    other_errors: Vec<String>,
    errors: FieldErrors,
    refusal: Option<Refusal>,
}

async fn gcp_page(
    state: &ConsoleState,
    access: &OrgAccess,
    chrome: Chrome,
    form: GcpForm,
    errors: FieldErrors,
    refusal: Option<Refusal>,
) -> Result<GcpPage, Failure> {
    Ok(GcpPage {
        chrome,
        slug: access.organization().slug.as_str().to_string(),
        steps: steps(1),
        gate: plan_gate(state, access).await?,
        roles: canopy_cloud_org::external_id::GCP_ORGANIZATION_ROLES
            .iter()
            .map(ToString::to_string)
            .collect(),
        form,
        other_errors: errors.others(&["organizationId", "keyFile", "serviceAccountEmail", "name"]),
        errors,
        refusal,
    })
}

/// `GET /org/{slug}/cloud-organizations/connect/gcp`.
#[handler]
pub async fn gcp_form(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = wizard_access(&state, req, &slug).await?;
    let p = gcp_page(
        &state,
        &access,
        chrome,
        GcpForm::default(),
        FieldErrors::default(),
        None,
    )
    .await?;
    Ok(page(StatusCode::OK, &p))
}

/// A key file larger than this is not a service-account key.
const MAX_KEY_BYTES: usize = 16 * 1024;

/// `POST /org/{slug}/cloud-organizations/connect/gcp` (multipart: the key is a file).
#[handler]
pub async fn gcp_submit(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = wizard_access(&state, req, &slug).await?;
    let (mut csrf, mut form, mut file) = (String::new(), GcpForm::default(), None::<String>);
    let mut too_large = false;
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let Ok(bytes) = field.bytes().await else {
            return Err(Failure::CrossSite);
        };
        if bytes.len() > MAX_KEY_BYTES {
            too_large = true;
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "csrf" => csrf = text,
            "organizationId" => form.organization_id = text,
            "serviceAccountEmail" => form.service_account_email = text,
            "keyText" => form.key_text = text,
            "name" => form.name = text,
            "keyFile" if !text.trim().is_empty() => file = Some(text),
            _ => {}
        }
    }
    check_form(&viewer, req, &csrf)?;
    if too_large {
        let errors = FieldErrors::one("keyFile", "is larger than a service-account key");
        let p = gcp_page(&state, &access, chrome, form, errors, None).await?;
        return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p));
    }
    let key = file.or_else(|| optional(&form.key_text));
    let outcome = state
        .cloud_orgs
        .discover_gcp(
            &access,
            GcpOrganizationInput {
                organization_id: form.organization_id.trim().to_string(),
                service_account_key: key.map(ServiceAccountKeyJson::new),
                service_account_email: optional(&form.service_account_email),
                name: optional(&form.name),
            },
        )
        .await;
    let (status, errors, refusal) = match outcome {
        Ok((cloud_org, job)) => return Ok(to_progress(&access, cloud_org.id, job.id)),
        Err(e) => refused(e, "keyFile")?,
    };
    // A pasted key is not echoed back into the page.
    form.key_text.clear();
    let p = gcp_page(&state, &access, chrome, form, errors, refusal).await?;
    Ok(page(status, &p))
}

/// A job's progress as shown.
pub(super) struct Progress {
    pub(super) status: &'static str,
    pub(super) finished: bool,
    pub(super) succeeded: bool,
    pub(super) phase: String,
    pub(super) message: Option<String>,
    pub(super) done: u64,
    pub(super) total: Option<u64>,
    pub(super) retries: u64,
    pub(super) waited: String,
    pub(super) error: Option<String>,
    pub(super) elapsed: String,
}

pub(super) fn progress_of(job: &Job, now: chrono::DateTime<chrono::Utc>) -> Progress {
    let p = &job.progress;
    Progress {
        status: job.status.as_str(),
        finished: job.status.is_terminal(),
        succeeded: job.status == JobStatus::Succeeded,
        phase: p.phase.clone(),
        message: p.message.clone(),
        done: p.done,
        total: p.total,
        retries: p.throttling.retries,
        waited: format!("{:.1} s", p.throttling.waited_ms as f64 / 1000.0),
        error: job.error.clone(),
        elapsed: format::ago(job.created_at, now),
    }
}

/// A job's progress: the fragment htmx polls, and the middle of its page.
#[derive(Template)]
#[template(path = "cloud_orgs/job_progress.html")]
struct JobProgress {
    slug: String,
    head: Head,
    job_id: String,
    connect: bool,
    progress: Progress,
    partial: bool,
}

#[derive(Template)]
#[template(path = "cloud_orgs/job.html")]
struct JobPage {
    chrome: Chrome,
    slug: String,
    steps: Vec<Step>,
    job: JobProgress,
}

/// `GET /org/{slug}/cloud-organizations/{id}/jobs/{job}`: a discovery's or a connect's
/// progress; htmx polls it as a fragment until the job ends (any member may follow it).
#[handler]
pub async fn job_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id, job_id)): Path<(String, Uuid, Uuid)>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    let id = CloudOrganizationId(id);
    let cloud_org = state.cloud_orgs.get(&access, id).await.map_err(failure)?;
    let job = state
        .jobs
        .get(&access, JobId(job_id))
        .await
        .map_err(|_| Failure::NotFound)?;
    if job.subject != Some(id.as_uuid()) {
        return Err(Failure::NotFound);
    }
    let now = state.tenancy.clock().now();
    let connect = job.kind.as_str() == CONNECT_KIND;
    let slug = access.organization().slug.as_str().to_string();
    let progress = JobProgress {
        slug: slug.clone(),
        head: head(&cloud_org, now),
        job_id: job.id.0.to_string(),
        connect,
        progress: progress_of(&job, now),
        partial: cloud_org.status == ConnectionStatus::Partial,
    };
    if super::htmx(req) {
        return Ok(page(StatusCode::OK, &progress));
    }
    Ok(page(
        StatusCode::OK,
        &JobPage {
            chrome,
            slug,
            steps: steps(if connect { 4 } else { 2 }),
            job: progress,
        },
    ))
}
