//! The page an invitation e-mail links to (`/invitations/{id}`). Signed out, it offers to log
//! in or sign up and comes back; signed in, it shows the invitation addressed to the viewer
//! (organization, inviter, role, expiry) with Accept and Decline. The page never says
//! anything about an invitation to someone it is not addressed to.

use askama::Template;
use canopy_kernel::id::InvitationId;
use canopy_tenancy::InvitationError;
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::{check_form, plan_limit_message};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;
use crate::session;

#[derive(Template)]
#[template(path = "invitation_signed_out.html")]
struct SignedOutPage {
    id: String,
}

/// The invitation as its invitee sees it.
struct Shown {
    organization: String,
    invited_by: String,
    role: &'static str,
    expires: String,
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    chrome: Chrome,
    id: String,
    invitation: Option<Shown>,
    error: Option<String>,
}

fn parse(id: &str) -> Result<InvitationId, Failure> {
    Uuid::parse_str(id)
        .map(InvitationId)
        .map_err(|_| Failure::NotFound)
}

async fn render(
    state: &ConsoleState,
    req: &Request,
    id: InvitationId,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, Failure> {
    let (viewer, chrome) = chrome::personal(state, req, "orgs").await?;
    let now = state.tenancy.clock().now();
    let mine = state
        .tenancy
        .my_invitations(&viewer.principal)
        .await
        .map_err(|e| match e {
            InvitationError::Store(s) => Failure::Store(s),
            _ => Failure::SignIn(format!("/invitations/{id}")),
        })?;
    let invitation = mine
        .into_iter()
        .find(|v| v.invitation.id == id)
        .map(|v| Shown {
            organization: v.organization_name,
            invited_by: v.invited_by_name,
            role: v.invitation.role.as_str(),
            expires: format::ago(v.invitation.expires_at, now),
        });
    let status = if invitation.is_none() && status == StatusCode::OK {
        StatusCode::NOT_FOUND
    } else {
        status
    };
    Ok(page(
        status,
        &InvitationPage {
            chrome,
            id: id.to_string(),
            invitation,
            error,
        },
    ))
}

/// `GET /invitations/{id}`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let id = parse(&id)?;
    if session::viewer(&state.tenancy, req).await?.is_none() {
        return Ok(page(StatusCode::OK, &SignedOutPage { id: id.to_string() }));
    }
    render(&state, req, id, StatusCode::OK, None).await
}

/// The answer.
#[derive(Debug, Deserialize)]
pub struct Answer {
    csrf: String,
    answer: String,
}

/// `POST /invitations/{id}`: accept (then open the organization) or decline.
#[handler]
pub async fn answer(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(id): Path<String>,
    Form(form): Form<Answer>,
) -> Result<Response, Failure> {
    let id = parse(&id)?;
    let viewer = chrome::viewer(&state, req).await?;
    check_form(&viewer, req, &form.csrf)?;
    let result = match form.answer.as_str() {
        "accept" => match state.tenancy.accept_invitation(&viewer.principal, id).await {
            Ok(member) => {
                let slug = state
                    .tenancy
                    .list_organizations(&viewer.principal)
                    .await?
                    .into_iter()
                    .find(|o| o.organization.id == member.organization_id)
                    .map(|o| o.organization.slug.as_str().to_string());
                return Ok(match slug {
                    Some(slug) => {
                        // The organization just joined is where the person wants to be.
                        let _ = state
                            .tenancy
                            .set_active_organization(&viewer.principal, &slug)
                            .await;
                        redirect(&format!("/org/{slug}/dashboard?done=joined"))
                    }
                    None => redirect("/orgs?done=joined"),
                });
            }
            Err(e) => e,
        },
        "decline" => match state.tenancy.reject_invitation(&viewer.principal, id).await {
            Ok(()) => return Ok(redirect("/orgs?done=declined")),
            Err(e) => e,
        },
        _ => return Err(Failure::NotFound),
    };
    let (status, sentence) = match result {
        InvitationError::Expired => (
            StatusCode::GONE,
            "This invitation expired. Ask the organization for a new one.".to_string(),
        ),
        InvitationError::NotPending => (
            StatusCode::CONFLICT,
            "This invitation was already answered or cancelled.".to_string(),
        ),
        InvitationError::AlreadyMember => (
            StatusCode::CONFLICT,
            "You are already a member of this organization.".to_string(),
        ),
        InvitationError::PlanLimit(limit) => (
            StatusCode::PAYMENT_REQUIRED,
            format!(
                "The organization has no seat left for you. {} An owner can upgrade.",
                plan_limit_message(&limit)
            ),
        ),
        InvitationError::EmailUnverified => (
            StatusCode::FORBIDDEN,
            "Verify your e-mail address first: open the link we sent you (your account page \
             sends a new one), then accept."
                .to_string(),
        ),
        InvitationError::NotFound | InvitationError::EmailMismatch => {
            return Err(Failure::NotFound);
        }
        InvitationError::Store(e) => return Err(Failure::Store(e)),
        InvitationError::Unauthenticated => {
            return Err(Failure::SignIn(format!("/invitations/{id}")));
        }
        other => {
            tracing::error!(error = %other, "answering an invitation failed");
            return Err(Failure::NotFound);
        }
    };
    render(&state, req, id, status, Some(sentence)).await
}
