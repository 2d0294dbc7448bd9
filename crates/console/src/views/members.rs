//! Settings → Members: who belongs to the organization with which role, and the pending
//! invitations. Owners change roles and transfer ownership; admins and owners invite, resend,
//! cancel and remove; anyone leaves. Every refusal the domain makes (the last owner, an
//! admin touching an owner, the team limit of the plan) is said in words on the page.

use askama::Template;
use canopy_kernel::PageRequest;
use canopy_kernel::id::{InvitationId, UserId};
use canopy_tenancy::mail::DeliveryStatus;
use canopy_tenancy::service::{InvitationError, MemberError, OrgAccess};
use canopy_tenancy::{Action, Role};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::{FieldErrors, check_form, plan_limit_message};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;

/// One member in the list.
struct MemberRow {
    user_id: String,
    name: String,
    email: String,
    role: &'static str,
    joined: String,
    joined_at: String,
    is_me: bool,
    /// The viewer may remove this member (admins cannot remove an owner).
    removable: bool,
}

/// One pending invitation.
struct InvitationRow {
    id: String,
    email: String,
    role: &'static str,
    sent: String,
    /// Label, badge class and the mail server's words when it refused or deferred.
    delivery: Option<(&'static str, &'static str, Option<String>)>,
    expires: String,
}

#[derive(Template)]
#[template(path = "settings/members.html")]
struct MembersPage {
    chrome: Chrome,
    slug: String,
    members: Vec<MemberRow>,
    next: Option<String>,
    invitations: Vec<InvitationRow>,
    /// The roles the viewer may invite as.
    invite_roles: Vec<&'static str>,
    email: String,
    role: String,
    errors: FieldErrors,
    /// A refusal that belongs to no field (the last owner, the plan's limit).
    alert: Option<String>,
}

/// Paging of the member list.
#[derive(Debug, Deserialize)]
pub struct Paging {
    cursor: Option<String>,
}

/// What a refused form leaves on the page.
#[derive(Default)]
struct Outcome {
    email: String,
    role: String,
    errors: FieldErrors,
    alert: Option<String>,
}

async fn render(
    state: &ConsoleState,
    access: &OrgAccess,
    chrome: Chrome,
    cursor: Option<&str>,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response, Failure> {
    let now = state.tenancy.clock().now();
    let page_req = PageRequest::parse(Some(100), cursor).map_err(|_| Failure::NotFound)?;
    let members = state
        .tenancy
        .list_members(access, page_req)
        .await
        .map_err(member_failure)?;
    let me = access.user_id();
    let viewer_is_owner = access.role() == Role::Owner;
    let rows = members
        .items
        .iter()
        .map(|m| MemberRow {
            user_id: m.user_id.to_string(),
            name: m.name.clone(),
            email: m.email.as_str().to_string(),
            role: m.role.as_str(),
            joined: format::ago(m.joined_at, now),
            joined_at: m.joined_at.to_rfc3339(),
            is_me: m.user_id == me,
            removable: m.user_id != me
                && access.require(Action::RemoveMember).is_ok()
                && (m.role != Role::Owner || viewer_is_owner),
        })
        .collect();
    let invitations = if access.require(Action::Invite).is_ok() {
        let pending = state
            .tenancy
            .list_invitations(
                access,
                PageRequest {
                    limit: PageRequest::MAX_LIMIT,
                    after: None,
                },
            )
            .await
            .map_err(invitation_failure)?
            .items;
        let deliveries = state
            .tenancy
            .invitation_deliveries(access, &pending)
            .await
            .map_err(invitation_failure)?;
        pending
            .iter()
            .zip(deliveries)
            .map(|(i, d)| InvitationRow {
                id: i.id.to_string(),
                email: i.email.as_str().to_string(),
                role: i.role.as_str(),
                sent: format::ago(i.created_at, now),
                delivery: d.map(|d| match d.status {
                    DeliveryStatus::Sent => ("E-mail sent", "status-active", None),
                    DeliveryStatus::Failed => ("Refused", "status-error", d.last_error),
                    DeliveryStatus::Queued if d.attempts > 0 => {
                        ("Retrying", "status-pending", d.last_error)
                    }
                    DeliveryStatus::Queued => ("Queued", "status-pending", None),
                }),
                expires: format::ago(i.expires_at, now),
            })
            .collect()
    } else {
        Vec::new()
    };
    let invite_roles = if viewer_is_owner {
        vec!["member", "admin", "owner"]
    } else {
        vec!["member", "admin"]
    };
    Ok(page(
        status,
        &MembersPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            members: rows,
            next: members.next.map(|c| c.encode()),
            invitations,
            invite_roles,
            email: outcome.email,
            role: if outcome.role.is_empty() {
                "member".into()
            } else {
                outcome.role
            },
            errors: outcome.errors,
            alert: outcome.alert,
        },
    ))
}

fn member_failure(e: MemberError) -> Failure {
    match e {
        MemberError::Forbidden(_) => Failure::Forbidden,
        MemberError::NotFound => Failure::NotFound,
        MemberError::Store(s) => Failure::Store(s),
        other => {
            tracing::error!(error = %other, "listing members failed");
            Failure::NotFound
        }
    }
}

fn invitation_failure(e: InvitationError) -> Failure {
    match e {
        InvitationError::Forbidden(_) => Failure::Forbidden,
        InvitationError::Store(s) => Failure::Store(s),
        _ => Failure::NotFound,
    }
}

/// `GET /org/{slug}/settings/members`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "members").await?;
    render(
        &state,
        &access,
        chrome,
        paging.cursor.as_deref(),
        StatusCode::OK,
        Outcome::default(),
    )
    .await
}

/// The invitation form.
#[derive(Debug, Deserialize)]
pub struct Invite {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// `POST /org/{slug}/settings/members`: invites someone (admin or owner).
#[handler]
pub async fn invite(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<Invite>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "members").await?;
    check_form(&viewer, req, &form.csrf)?;
    let role = match Role::parse(&form.role, "role") {
        Ok(r) => r,
        Err(v) => {
            let outcome = Outcome {
                email: form.email.clone(),
                role: String::new(),
                errors: FieldErrors::from_validation(&v, &[]),
                alert: None,
            };
            return render(
                &state,
                &access,
                chrome,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                outcome,
            )
            .await;
        }
    };
    let refused = |errors: FieldErrors, alert: Option<String>| Outcome {
        email: form.email.clone(),
        role: form.role.clone(),
        errors,
        alert,
    };
    let outcome = match state.tenancy.invite(&access, &form.email, role).await {
        Ok(_) => {
            return Ok(redirect(&format!(
                "/org/{slug}/settings/members?done=invited"
            )));
        }
        Err(InvitationError::Invalid(v)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(FieldErrors::from_validation(&v, &[]), None),
        ),
        Err(InvitationError::OwnerInviteRequiresOwner) => (
            StatusCode::FORBIDDEN,
            refused(
                FieldErrors::one("role", "Only an owner can invite another owner."),
                None,
            ),
        ),
        Err(InvitationError::AlreadyMember) => (
            StatusCode::CONFLICT,
            refused(
                FieldErrors::one(
                    "email",
                    "This person is already a member of this organization.",
                ),
                None,
            ),
        ),
        Err(InvitationError::PlanLimit(limit)) => (
            StatusCode::PAYMENT_REQUIRED,
            refused(FieldErrors::default(), Some(plan_limit_message(&limit))),
        ),
        Err(InvitationError::Forbidden(_)) => return Err(Failure::Forbidden),
        Err(InvitationError::Store(e)) => return Err(Failure::Store(e)),
        Err(other) => {
            tracing::error!(error = %other, "inviting failed");
            return Err(Failure::NotFound);
        }
    };
    render(&state, &access, chrome, None, outcome.0, outcome.1).await
}

/// A form with nothing but its token.
#[derive(Debug, Deserialize)]
pub struct Plain {
    csrf: String,
}

/// The role form.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    csrf: String,
    role: String,
}

fn user_id(raw: &str) -> Result<UserId, Failure> {
    Uuid::parse_str(raw)
        .map(UserId)
        .map_err(|_| Failure::NotFound)
}

/// Turns a member refusal into the page with a sentence, or a failure page.
async fn member_refusal(
    state: &ConsoleState,
    access: &OrgAccess,
    chrome: Chrome,
    e: MemberError,
) -> Result<Response, Failure> {
    let (status, sentence) = match e {
        MemberError::LastOwner => (
            StatusCode::CONFLICT,
            "An organization must keep at least one owner. Make another member an owner first (or transfer ownership), then try again.".to_string(),
        ),
        MemberError::OwnerProtected => (
            StatusCode::FORBIDDEN,
            "Admins cannot remove or change an owner. Ask an owner.".to_string(),
        ),
        MemberError::Invalid(v) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            v.errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        MemberError::Forbidden(_) => return Err(Failure::Forbidden),
        MemberError::NotFound => return Err(Failure::NotFound),
        MemberError::Store(s) => return Err(Failure::Store(s)),
    };
    render(
        state,
        access,
        chrome,
        None,
        status,
        Outcome {
            alert: Some(sentence),
            ..Outcome::default()
        },
    )
    .await
}

/// `POST /org/{slug}/settings/members/{user}/role` (owner).
#[handler]
pub async fn change_role(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, user)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "members").await?;
    check_form(&viewer, req, &form.csrf)?;
    let user = user_id(&user)?;
    let role = match Role::parse(&form.role, "role") {
        Ok(r) => r,
        Err(v) => return member_refusal(&state, &access, chrome, MemberError::Invalid(v)).await,
    };
    match state.tenancy.change_role(&access, user, role).await {
        Ok(_) => Ok(redirect(&format!("/org/{slug}/settings/members?done=role"))),
        Err(e) => member_refusal(&state, &access, chrome, e).await,
    }
}

/// What a confirmed button on a member's row does.
#[derive(Clone, Copy)]
enum OnMember {
    Remove,
    Transfer,
}

async fn on_member(
    state: &ConsoleState,
    req: &Request,
    (slug, user): (String, String),
    csrf: &str,
    action: OnMember,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(state, req, &slug, "members").await?;
    check_form(&viewer, req, csrf)?;
    let user = user_id(&user)?;
    let (result, done) = match action {
        OnMember::Remove => (state.tenancy.remove_member(&access, user).await, "removed"),
        OnMember::Transfer => (
            state.tenancy.transfer_ownership(&access, user).await,
            "transferred",
        ),
    };
    match result {
        Ok(()) => Ok(redirect(&format!(
            "/org/{slug}/settings/members?done={done}"
        ))),
        Err(e) => member_refusal(state, &access, chrome, e).await,
    }
}

/// `POST /org/{slug}/settings/members/{user}/remove` (admin or owner).
#[handler]
pub async fn remove(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(path): Path<(String, String)>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    on_member(&state, req, path, &form.csrf, OnMember::Remove).await
}

/// `POST /org/{slug}/settings/members/{user}/transfer` (owner): the member becomes an owner
/// and the viewer an admin.
#[handler]
pub async fn transfer(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(path): Path<(String, String)>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    on_member(&state, req, path, &form.csrf, OnMember::Transfer).await
}

/// `POST /org/{slug}/settings/leave`: the viewer leaves (the last owner cannot).
#[handler]
pub async fn leave(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "members").await?;
    check_form(&viewer, req, &form.csrf)?;
    match state.tenancy.leave(&access).await {
        Ok(()) => Ok(redirect("/orgs?done=left")),
        Err(e) => member_refusal(&state, &access, chrome, e).await,
    }
}

fn invitation_id(raw: &str) -> Result<InvitationId, Failure> {
    Uuid::parse_str(raw)
        .map(InvitationId)
        .map_err(|_| Failure::NotFound)
}

/// `POST /org/{slug}/settings/invitations/{id}/cancel` (admin or owner).
#[handler]
pub async fn cancel_invitation(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let (viewer, access, _) = chrome::organization(&state, req, &slug, "members").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = invitation_id(&id)?;
    state
        .tenancy
        .cancel_invitation(&access, id)
        .await
        .map_err(invitation_failure)?;
    Ok(redirect(&format!(
        "/org/{slug}/settings/members?done=cancelled"
    )))
}

/// `POST /org/{slug}/settings/invitations/{id}/resend` (admin or owner): a new invitation to
/// the same address with the same role replaces it, so the old link stops working and the
/// expiry starts again.
#[handler]
pub async fn resend_invitation(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "members").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = invitation_id(&id)?;
    let pending = state
        .tenancy
        .list_invitations(
            &access,
            PageRequest {
                limit: PageRequest::MAX_LIMIT,
                after: None,
            },
        )
        .await
        .map_err(invitation_failure)?;
    let Some(old) = pending.items.into_iter().find(|i| i.id == id) else {
        return Err(Failure::NotFound);
    };
    match state
        .tenancy
        .invite(&access, old.email.as_str(), old.role)
        .await
    {
        Ok(_) => Ok(redirect(&format!(
            "/org/{slug}/settings/members?done=resent"
        ))),
        Err(InvitationError::PlanLimit(limit)) => {
            render(
                &state,
                &access,
                chrome,
                None,
                StatusCode::PAYMENT_REQUIRED,
                Outcome {
                    alert: Some(plan_limit_message(&limit)),
                    ..Outcome::default()
                },
            )
            .await
        }
        Err(e) => Err(invitation_failure(e)),
    }
}
