//! What surrounds every signed-in page: who is signed in, the organization switcher, the
//! navigation of the organization in view, the CSRF token its forms carry, and a notice
//! after a form succeeded. Resolving it is also where a page learns its caller: no session
//! sends the browser to the log-in page, an organization the caller is not a member of is a
//! 404, exactly as the API answers.

use canopy_cloud_org::organization::service::CloudOrganizationError;
use canopy_kernel::StoreError;
use canopy_tenancy::service::OrgAccess;
use canopy_tenancy::{AccessError, Action, OrganizationSummary, SessionError};
use poem::Request;

use crate::ConsoleState;
use crate::error::Failure;
use crate::session::{self, Viewer};

/// One organization in the switcher.
#[derive(Debug, Clone)]
pub struct OrgItem {
    /// Display name.
    pub name: String,
    /// URL slug.
    pub slug: String,
    /// The viewer's role in it.
    pub role: &'static str,
    /// The one in view (or the active one, outside an organization).
    pub current: bool,
}

/// A cloud organization in the sidebar and the switcher, on that section's pages.
#[derive(Debug, Clone)]
pub struct CloudOrgLink {
    /// Its name.
    pub name: String,
    /// Its overview.
    pub href: String,
    /// `aws` or `gcp`.
    pub provider: &'static str,
    /// The badge class of its status.
    pub status_class: &'static str,
    /// Its status in words.
    pub status: &'static str,
    /// The one in view.
    pub current: bool,
}

/// Cloud organizations listed in the sidebar at most; the list page has the rest.
const CLOUD_ORGS_LISTED: u32 = 20;

/// What the controls of a page may offer, from the one policy table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Can {
    /// Edit the organization.
    pub update_org: bool,
    /// Delete it.
    pub delete_org: bool,
    /// Invite and cancel invitations.
    pub invite: bool,
    /// Change roles.
    pub change_role: bool,
    /// Transfer ownership.
    pub transfer: bool,
    /// Connect accounts.
    pub connect: bool,
    /// Disconnect accounts.
    pub disconnect: bool,
    /// Read the audit log.
    pub audit: bool,
    /// Change the plan.
    pub billing: bool,
}

impl Can {
    fn of(access: &OrgAccess) -> Self {
        let may = |a: Action| access.require(a).is_ok();
        Self {
            update_org: may(Action::UpdateOrganization),
            delete_org: may(Action::DeleteOrganization),
            invite: may(Action::Invite),
            change_role: may(Action::ChangeRole),
            transfer: may(Action::TransferOwnership),
            connect: may(Action::ConnectCloudAccount),
            disconnect: may(Action::DisconnectCloudAccount),
            audit: may(Action::ReadAuditLog),
            billing: may(Action::ManageBilling),
        }
    }
}

/// The frame of a signed-in page.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The viewer's name.
    pub user_name: String,
    /// The viewer's e-mail.
    pub user_email: String,
    /// The viewer has not opened their verification link yet.
    pub unverified: bool,
    /// The first letter of the name, for the avatar.
    pub initial: String,
    /// The token every form carries.
    pub csrf: String,
    /// Every organization of the viewer.
    pub orgs: Vec<OrgItem>,
    /// The organization in view.
    pub org: Option<OrgItem>,
    /// The navigation entry to mark (`dashboard`, `accounts`, ...).
    pub section: &'static str,
    /// What the viewer may do in the organization in view.
    pub can: Can,
    /// A sentence after a form succeeded.
    pub notice: Option<String>,
    /// The organization's cloud organizations, on that section's pages.
    pub cloud_orgs: Vec<CloudOrgLink>,
    /// More than the sidebar lists.
    pub more_cloud_orgs: bool,
}

impl Chrome {
    /// The cloud organization in view, if a page of one is.
    pub fn cloud_org(&self) -> Option<&CloudOrgLink> {
        self.cloud_orgs.iter().find(|c| c.current)
    }
}

fn role_name(summary: &OrganizationSummary) -> &'static str {
    summary.role.as_str()
}

/// A sentence for the `done` query parameter a form's redirect carries. Only these fixed
/// sentences are shown: nothing from the URL reaches the page.
fn notice(req: &Request) -> Option<String> {
    let done = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("done=").map(str::to_string))
    })?;
    Some(
        match done.as_str() {
            "connected" => "Cloud account connected. Sync it to check that Canopy can reach it.",
            "synced" => "Checked the account's access.",
            "saved" => "Saved.",
            "disconnected" => "Cloud account disconnected.",
            "invited" => "Invitation sent.",
            "resent" => "A new invitation was sent; the old link no longer works.",
            "cancelled" => "Invitation cancelled.",
            "role" => "Role changed.",
            "removed" => "Member removed.",
            "transferred" => "Ownership transferred. You are now an admin.",
            "created" => "Organization created.",
            "confirmed" => "Connection request confirmed: the account is connected.",
            "revoked" => "API key revoked.",
            "tier" => "Plan changed.",
            "joined" => "Invitation accepted: you are a member now.",
            "declined" => "Invitation declined.",
            "left" => "You left the organization.",
            "deleted" => "Organization deleted.",
            "verification" => {
                "A new verification link is on its way; earlier links no longer work."
            }
            "verified" => "Your e-mail address is verified.",
            "email-changed" => "Your e-mail address changed. Log in with the new one from now on.",
            "email-requested" => "Open the link we sent to the new address to confirm it.",
            "password" => "Password changed. Your other sessions were ended.",
            "session" => "Session ended.",
            "sessions" => "Every other session was ended.",
            "detection-created" => {
                "Custom detection created. Coverage counts it wherever its scope reaches."
            }
            "detection-deleted" => "Custom detection deleted. Coverage no longer counts it.",
            _ => return None,
        }
        .to_string(),
    )
}

/// The viewer, or a redirect to the log-in page that comes back here.
pub async fn viewer(state: &ConsoleState, req: &Request) -> Result<Viewer, Failure> {
    match session::viewer(&state.tenancy, req).await? {
        Some(v) => Ok(v),
        None => Err(Failure::SignIn(next_of(req))),
    }
}

/// Where to come back after log-in: this page's path and query (only our own paths).
fn next_of(req: &Request) -> String {
    let path = req.uri().path();
    match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// The frame of a page outside any one organization (organizations list, API keys).
pub async fn personal(
    state: &ConsoleState,
    req: &Request,
    section: &'static str,
) -> Result<(Viewer, Chrome), Failure> {
    let viewer = viewer(state, req).await?;
    let me = state
        .tenancy
        .me(&viewer.principal)
        .await
        .map_err(session_failure)?;
    let orgs = me
        .organizations
        .iter()
        .map(|o| OrgItem {
            name: o.organization.name.clone(),
            slug: o.organization.slug.as_str().to_string(),
            role: role_name(o),
            current: Some(o.organization.id) == me.active_organization_id,
        })
        .collect();
    let chrome = Chrome {
        user_name: me.user.name.clone(),
        user_email: me.user.email.as_str().to_string(),
        unverified: me.user.email_verified_at.is_none(),
        initial: me
            .user
            .name
            .chars()
            .next()
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default(),
        csrf: viewer.csrf.clone(),
        orgs,
        org: None,
        section,
        can: Can::default(),
        notice: notice(req),
        cloud_orgs: Vec::new(),
        more_cloud_orgs: false,
    };
    Ok((viewer, chrome))
}

/// The frame of a page of organization `slug`, with the viewer's access to it.
pub async fn organization(
    state: &ConsoleState,
    req: &Request,
    slug: &str,
    section: &'static str,
) -> Result<(Viewer, OrgAccess, Chrome), Failure> {
    let (viewer, mut chrome) = personal(state, req, section).await?;
    let access = state
        .tenancy
        .access(&viewer.principal, slug)
        .await
        .map_err(|e| match e {
            AccessError::Unauthenticated => Failure::SignIn(next_of(req)),
            AccessError::NotFound | AccessError::NotInPlan(_) => Failure::NotFound,
            AccessError::Store(s) => Failure::Store(s),
        })?;
    for item in &mut chrome.orgs {
        item.current = item.slug == access.organization().slug.as_str();
    }
    chrome.org = chrome.orgs.iter().find(|o| o.current).cloned().or_else(|| {
        Some(OrgItem {
            name: access.organization().name.clone(),
            slug: access.organization().slug.as_str().to_string(),
            role: access.role().as_str(),
            current: true,
        })
    });
    chrome.can = Can::of(&access);
    if section == "cloud-orgs" {
        cloud_orgs(state, req, &access, &mut chrome).await?;
    }
    Ok((viewer, access, chrome))
}

/// The cloud organizations the section's pages list, the one in the path marked current.
async fn cloud_orgs(
    state: &ConsoleState,
    req: &Request,
    access: &OrgAccess,
    chrome: &mut Chrome,
) -> Result<(), Failure> {
    let current = req
        .uri()
        .path()
        .split('/')
        .skip_while(|s| *s != "cloud-organizations")
        .nth(1)
        .and_then(|s| uuid::Uuid::parse_str(s).ok());
    let page = canopy_kernel::PageRequest {
        limit: CLOUD_ORGS_LISTED,
        after: None,
    };
    let found = match state.cloud_orgs.list(access, page).await {
        Ok(found) => found,
        Err(CloudOrganizationError::Store(s)) => return Err(Failure::Store(s)),
        // A role that may not list them sees the section's pages refuse on their own.
        Err(_) => return Ok(()),
    };
    let slug = access.organization().slug.as_str();
    chrome.more_cloud_orgs = found.next.is_some();
    chrome.cloud_orgs = found
        .items
        .iter()
        .map(|o| CloudOrgLink {
            name: o.name.clone(),
            href: format!("/org/{slug}/cloud-organizations/{}", o.id.as_uuid()),
            provider: o.provider.as_str(),
            status_class: crate::views::status_class(o.status),
            status: o.status.as_str(),
            current: Some(o.id.as_uuid()) == current,
        })
        .collect();
    Ok(())
}

fn session_failure(e: SessionError) -> Failure {
    match e {
        SessionError::Store(s) => Failure::Store(s),
        SessionError::Unauthenticated => Failure::SignIn("/".into()),
        other => {
            tracing::error!(error = %other, "reading the signed-in user failed");
            Failure::Store(StoreError::internal("reading the signed-in user failed"))
        }
    }
}
