//! Canopy's browser console: the product in a browser, beside the API and over the same
//! domain services (never the database, never our own HTTP API).
//!
//! API boundary: [`ConsoleState`] (the services and settings the composition root hands
//! over), [`AuthThrottle`] (the API's log-in limiter, shared), [`Fragments`] (rendered
//! fragments kept beside the organization reads they were made of) and [`endpoint`] (every
//! console route, mounted by the app at `/`).
//!
//! How it is built:
//! - Pages are compiled templates (askama) in `templates/`, one view module per resource in
//!   `views/`. A page is a full document; an htmx request (`HX-Request`) for a fragment gets
//!   the fragment, and every answer carries `Vary: HX-Request`. Every view has its own URL, and
//!   every form works with JavaScript off.
//! - Organizations are reached only through tenancy's `OrgAccess`, like the API: the role
//!   matrix is one table, and a page shows a control exactly when the policy allows it.
//! - Assets are pinned files embedded in the binary ([`assets`]) under content-hashed names.
//! - Sessions, CSRF and the origin check are [`session`]; security headers (a CSP with no
//!   inline script or style) are set on every answer ([`security`]).

pub mod assets;
mod chrome;
mod error;
mod format;
mod security;
pub mod session;
mod views;

use std::sync::Arc;

use canopy_billing::BillingService;
use canopy_cloud_org::CloudAccountService;
use canopy_cloud_org::organization::service::CloudOrganizationService;
use canopy_coverage::history::CoverageHistory;
use canopy_coverage::views::CoverageViews;
use canopy_detection::service::DetectionService;
use canopy_jobs::JobService;
use canopy_kernel::id::OrganizationId;
use canopy_metrics::MetricsService;
use canopy_tenancy::TenancyService;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Request, Route, get, post};

#[cfg(test)]
mod tests {
    use super::logged_path;

    #[test]
    fn logged_paths_keep_the_route_and_drop_the_values() {
        assert_eq!(logged_path("/").as_deref(), Some("/"));
        assert_eq!(
            logged_path("/org/acme/settings/accounts/0190c0de-0000-7000-8000-000000000000/sync")
                .as_deref(),
            Some("/org/{slug}/settings/accounts/{id}/sync")
        );
        assert_eq!(
            logged_path("/invitations/cnp_secret-looking-value").as_deref(),
            Some("/invitations/{id}")
        );
        assert_eq!(
            logged_path("/assets/console.0a1b2c3d.css").as_deref(),
            Some("/assets/{file}")
        );
        assert_eq!(logged_path("/wp-admin/setup.php"), None);
    }
}

/// The log-in and sign-up limiter the API uses, so the console is held to the same quota.
pub trait AuthThrottle: Send + Sync {
    /// `Err(seconds to wait)` when the client's address used up its quota.
    fn check(&self, req: &Request) -> Result<(), u64>;

    /// The request's user agent and client address (through the edge's proxy trust), for
    /// sessions and the security log.
    fn client(&self, req: &Request) -> canopy_tenancy::account::ClientInfo;

    /// `false` when `key` (an address or an account) was sent its share of e-mail this hour;
    /// the API and the console draw from one quota.
    fn mail_allowed(&self, key: &str) -> bool;
}

/// Rendered fragments kept per organization, dropped whenever what the organization holds
/// changes (its accounts, its plan), in this process or another; the composition root backs
/// it with the organization read cache. The dashboard's figures are the one kept today.
pub trait Fragments: Send + Sync {
    /// The fragment kept under `key` for `org`, if any.
    fn get(&self, org: OrganizationId, key: &str) -> Option<Arc<str>>;
    /// A mark taken before reading what a fragment is made of.
    fn mark(&self) -> u64;
    /// Keeps `html` under `key` for `org`, unless a change was told since `mark`.
    fn put(&self, org: OrganizationId, key: String, html: Arc<str>, mark: u64);
}

/// The demo log-in shown on the log-in page of `canopy serve --demo`.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// What the console runs on: the domain services and a few settings.
#[derive(Clone)]
pub struct ConsoleState {
    /// Users, organizations, members, invitations, sessions, API keys, the audit log.
    pub tenancy: TenancyService,
    /// Plans, subscriptions, usage.
    pub billing: BillingService,
    /// Cloud accounts and their connection flows.
    pub cloud: CloudAccountService,
    /// The SES dashboard.
    pub metrics: MetricsService,
    /// Cloud organizations: discovery, members, changes.
    pub cloud_orgs: CloudOrganizationService,
    /// Jobs, for following a discovery's or a connect's progress.
    pub jobs: JobService,
    /// Coverage views over whole cloud organizations.
    pub views: CoverageViews,
    /// Coverage snapshots over time.
    pub history: CoverageHistory,
    /// Detections and what each account inherits.
    pub detections: DetectionService,
    /// The public base URL (links, instructions, `Secure` cookies when https).
    pub public_url: String,
    /// Shown on the log-in page when the demo organization is seeded.
    pub demo: Option<DemoLogin>,
    /// The API's log-in limiter.
    pub throttle: Arc<dyn AuthThrottle>,
    /// Rendered fragments kept while what they show is unchanged.
    pub fragments: Arc<dyn Fragments>,
    /// Device log-in: terminals approved here.
    pub devices: canopy_tenancy::device::DeviceLogins,
}

impl ConsoleState {
    /// Whether cookies must be `Secure` (the public URL is https).
    pub(crate) fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Words of console paths that are part of a route, not a value in it.
const PATH_WORDS: &[&str] = &[
    "login",
    "signup",
    "logout",
    "pricing",
    "invitations",
    "orgs",
    "new",
    "switch",
    "settings",
    "api-keys",
    "revoke",
    "org",
    "dashboard",
    "figures",
    "accounts",
    "connect",
    "cloudformation.yaml",
    "connect-token",
    "requests",
    "sync",
    "disconnect",
    "members",
    "role",
    "remove",
    "transfer",
    "leave",
    "cancel",
    "resend",
    "organization",
    "slug",
    "delete",
    "audit",
    "billing",
    "forgot-password",
    "reset-password",
    "verify-email",
    "account",
    "verification",
    "password",
    "email",
    "sessions",
    "revoke-others",
    "cloud-organizations",
    "matrix",
    "coverage",
    "navigator-layer.json",
    "aws",
    "gcp",
    "jobs",
    "select",
    "node",
    "confirm",
    "exclude",
    "include",
    "detections",
    "scans",
    "edit",
    "device",
];

/// What the request log writes for a console path: its route with every value (slug, id,
/// file) replaced by a placeholder, so an id or a mistyped token never reaches a log line;
/// `None` when no console route starts like it.
pub fn logged_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.first().copied() {
        Some("") if segments.len() == 1 => return Some("/".into()),
        Some("assets") => return Some("/assets/{file}".into()),
        Some(first) if PATH_WORDS.contains(&first) => {}
        _ => return None,
    }
    let mut out = String::new();
    for (i, seg) in segments.iter().enumerate() {
        out.push('/');
        if i == 1 && segments[0] == "org" {
            out.push_str("{slug}");
        } else if PATH_WORDS.contains(seg) {
            out.push_str(seg);
        } else {
            out.push_str("{id}");
        }
    }
    Some(out)
}

/// Every console route over `state`, with the security headers; the app mounts it at `/`.
pub fn endpoint(state: ConsoleState) -> impl Endpoint {
    use views::{
        account, account_coverage, accounts, api_keys, audit, auth, billing, cloud_org_detections,
        cloud_org_members, cloud_org_scans, cloud_orgs, connect, dashboard, detection_edit, device,
        invitations, layers, links, matrix, members, organization, orgs, wizard, wizard_tree,
    };
    Route::new()
        .at("/", get(views::home))
        .at("/login", get(auth::login_page).post(auth::log_in))
        .at("/signup", get(auth::signup_page).post(auth::sign_up))
        .at("/logout", post(auth::log_out))
        .at(
            "/forgot-password",
            get(links::forgot_page).post(links::forgot),
        )
        .at("/reset-password", get(links::reset_page).post(links::reset))
        .at("/verify-email", get(links::verify_page).post(links::verify))
        .at("/account", get(account::show))
        .at("/account/verification", post(account::resend))
        .at("/account/password", post(account::change_password))
        .at("/account/email", post(account::change_email))
        .at("/account/delete", post(account::delete))
        .at(
            "/account/sessions/revoke-others",
            post(account::revoke_others),
        )
        .at(
            "/account/sessions/:id/revoke",
            post(account::revoke_session),
        )
        .at("/pricing", get(billing::pricing))
        .at("/device", get(device::show).post(device::answer))
        .at(
            "/invitations/:id",
            get(invitations::show).post(invitations::answer),
        )
        .at("/orgs", get(orgs::list).post(orgs::create))
        .at("/orgs/new", get(orgs::new_page))
        .at("/orgs/switch", post(orgs::switch))
        .at(
            "/settings/api-keys",
            get(api_keys::show).post(api_keys::create),
        )
        .at("/settings/api-keys/:id/revoke", post(api_keys::revoke))
        .at("/assets/:file", get(assets::serve))
        .at("/org/:slug/dashboard", get(dashboard::show))
        .at("/org/:slug/dashboard/figures", get(dashboard::figures))
        .at("/org/:slug/cloud-organizations", get(cloud_orgs::list))
        .at("/org/:slug/cloud-organizations/connect", get(wizard::start))
        .at(
            "/org/:slug/cloud-organizations/connect/aws",
            get(wizard::aws_form).post(wizard::aws_submit),
        )
        .at(
            "/org/:slug/cloud-organizations/connect/gcp",
            get(wizard::gcp_form).post(wizard::gcp_submit),
        )
        .at("/org/:slug/cloud-organizations/:id", get(cloud_orgs::show))
        .at(
            "/org/:slug/cloud-organizations/:id/jobs/:job",
            get(wizard::job_page),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/select",
            get(wizard_tree::select),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/select/node",
            get(wizard_tree::node_members),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/confirm",
            get(wizard_tree::confirm),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/connect",
            post(wizard_tree::connect),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/detections",
            get(cloud_org_detections::show),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/detections/new",
            get(detection_edit::new_page).post(detection_edit::create),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/detections/:det/edit",
            get(detection_edit::edit_page).post(detection_edit::update),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/detections/:det/delete",
            post(detection_edit::delete),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/members",
            get(cloud_org_members::show),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/members/:key/exclude",
            post(cloud_org_members::exclude),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/members/:key/include",
            post(cloud_org_members::include),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/sync",
            post(cloud_org_members::sync),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/disconnect",
            post(cloud_org_members::disconnect),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/scans",
            get(cloud_org_scans::show).post(cloud_org_scans::scan_now),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/scans/:job",
            get(cloud_org_scans::scan_page),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/matrix",
            get(matrix::show),
        )
        .at(
            "/org/:slug/settings/accounts/:id/coverage",
            get(account_coverage::show),
        )
        .at(
            "/org/:slug/settings/accounts/:id/matrix",
            get(matrix::account_matrix),
        )
        .at(
            "/org/:slug/settings/accounts/:id/navigator-layer.json",
            get(layers::account),
        )
        .at(
            "/org/:slug/cloud-organizations/:id/navigator-layer.json",
            get(layers::organization),
        )
        .at(
            "/org/:slug/settings/accounts",
            get(accounts::list).post(connect::connect),
        )
        .at(
            "/org/:slug/settings/accounts/connect",
            get(connect::connect_page),
        )
        .at(
            "/org/:slug/settings/accounts/cloudformation.yaml",
            get(connect::cloudformation_file),
        )
        .at(
            "/org/:slug/settings/accounts/connect-token",
            post(connect::connect_token),
        )
        .at(
            "/org/:slug/settings/accounts/requests",
            get(connect::request_page).post(connect::confirm_request),
        )
        .at(
            "/org/:slug/settings/accounts/:id",
            get(accounts::detail).post(accounts::update),
        )
        .at(
            "/org/:slug/settings/accounts/:id/sync",
            post(accounts::sync),
        )
        .at(
            "/org/:slug/settings/accounts/:id/disconnect",
            post(accounts::disconnect),
        )
        .at(
            "/org/:slug/settings/members",
            get(members::show).post(members::invite),
        )
        .at(
            "/org/:slug/settings/members/:user/role",
            post(members::change_role),
        )
        .at(
            "/org/:slug/settings/members/:user/remove",
            post(members::remove),
        )
        .at(
            "/org/:slug/settings/members/:user/transfer",
            post(members::transfer),
        )
        .at("/org/:slug/settings/leave", post(members::leave))
        .at(
            "/org/:slug/settings/invitations/:id/cancel",
            post(members::cancel_invitation),
        )
        .at(
            "/org/:slug/settings/invitations/:id/resend",
            post(members::resend_invitation),
        )
        .at(
            "/org/:slug/settings/organization",
            get(organization::show).post(organization::update),
        )
        .at(
            "/org/:slug/settings/organization/slug",
            get(organization::slug_check),
        )
        .at(
            "/org/:slug/settings/organization/delete",
            post(organization::delete),
        )
        .at("/org/:slug/settings/audit", get(audit::show))
        .at(
            "/org/:slug/billing",
            get(billing::show).post(billing::change_tier),
        )
        .catch_all_error(error::from_poem)
        .around(security::headers)
        .data(state)
        .into_endpoint()
}
