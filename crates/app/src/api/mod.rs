//! The `/v1` HTTP API. Handlers parse, call a domain service and map the answer; they hold no
//! business rules. The OpenAPI document is generated from these same handlers.

mod attack;
mod audit;
mod auth;
mod cloud_accounts;
mod cloud_org_members;
mod cloud_organizations;
mod connections;
mod coverage;
mod coverage_history;
mod detection_wire;
mod detections;
mod device;
mod errors;
mod invitations;
mod jobs;
mod me;
mod members;
mod metrics;
mod organizations;
mod plans;
pub mod problem;
mod scans;
mod subscription;
pub mod wire;

use poem_openapi::auth::Bearer;
use poem_openapi::{ApiResponse, OpenApiService, SecurityScheme, Tags};

use canopy_tenancy::{OrgAccess, Principal};
use problem::ApiError;

use crate::state::AppState;

/// Tags group the operations in the docs and in generated clients.
#[derive(Tags)]
pub enum ApiTags {
    /// Sign up, log in, log out.
    Auth,
    /// The signed-in user, their API keys and invitations.
    Me,
    /// Organizations (tenants).
    Organizations,
    /// Members and roles.
    Members,
    /// Invitations to join an organization.
    Invitations,
    /// The audit log.
    Audit,
    /// AWS accounts and GCP projects connected to an organization, and how to connect them.
    CloudAccounts,
    /// Whole AWS Organizations and GCP Organizations: discovery, the OU / folder tree, members.
    CloudOrganizations,
    /// Tiers, the organization's subscription and its usage against the limits.
    Billing,
    /// SES metrics across the organization's AWS accounts, and the dashboard.
    Metrics,
    /// Long work (discovery, sync, scans): status, progress, cancel.
    Jobs,
    /// The MITRE ATT&CK catalog coverage is measured against.
    Attack,
    /// Detections (found by scans or declared) and the scans that find them.
    Detections,
    /// ATT&CK coverage of accounts and cloud organizations, with inherited controls.
    Coverage,
}

/// `Authorization: Bearer <token>`: a session token from log-in or an API key.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "opaque")]
pub struct BearerAuth(pub Bearer);

impl BearerAuth {
    /// Resolves the token to its caller or answers 401.
    pub async fn principal(&self, state: &AppState) -> Result<Principal, ApiError> {
        let principal = state.tenancy.authenticate(&self.0.token).await?;
        state.note_use(&principal).await;
        Ok(principal)
    }

    /// Resolves the token and the caller's membership in the organization of the path:
    /// 401, then 404 for a non-member, 403 `feature_not_in_plan` for an API key on a plan
    /// without API access (the tenancy domain decides all three).
    pub async fn access(&self, state: &AppState, org: &str) -> Result<OrgAccess, ApiError> {
        let access = state.tenancy.access_by_token(&self.0.token, org).await?;
        state.note_use(access.principal()).await;
        Ok(access)
    }
}

/// The answer of operations that return nothing.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// Every API group, as served and as documented.
pub type Api = (
    auth::AuthApi,
    me::MeApi,
    organizations::OrganizationsApi,
    members::MembersApi,
    invitations::InvitationsApi,
    audit::AuditApi,
    cloud_accounts::CloudAccountsApi,
    connections::ConnectionsApi,
    plans::PlansApi,
    subscription::SubscriptionApi,
    metrics::MetricsApi,
    jobs::JobsApi,
    cloud_organizations::CloudOrganizationsApi,
    cloud_org_members::CloudOrgMembersApi,
    attack::AttackApi,
    // poem-openapi implements OpenApi for tuples of up to 16: newer APIs nest.
    (
        detections::DetectionsApi,
        scans::ScansApi,
        coverage::CoverageApi,
        coverage_history::CoverageHistoryApi,
        device::DeviceApi,
    ),
);

/// Builds the OpenAPI service over the real handlers; the spec and the router come from it.
pub fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            me::MeApi,
            organizations::OrganizationsApi,
            members::MembersApi,
            invitations::InvitationsApi,
            audit::AuditApi,
            cloud_accounts::CloudAccountsApi,
            connections::ConnectionsApi,
            plans::PlansApi,
            subscription::SubscriptionApi,
            metrics::MetricsApi,
            jobs::JobsApi,
            cloud_organizations::CloudOrganizationsApi,
            cloud_org_members::CloudOrgMembersApi,
            attack::AttackApi,
            (
                detections::DetectionsApi,
                scans::ScansApi,
                coverage::CoverageApi,
                coverage_history::CoverageHistoryApi,
                device::DeviceApi,
            ),
        ),
        "Canopy API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Multi-tenant control plane for cloud estates. Errors are application/problem+json \
         with `status`, `title`, `detail`, `code` and, for validation, per-field `errors`.",
    )
    .url_prefix("/v1")
}
