//! Settings → Audit log (admin or owner): who changed what and when, newest first, narrowed
//! to one action or one member, paged with the API's cursor. The filters live in the URL, so
//! a filtered view can be bookmarked and shared.

use askama::Template;
use canopy_kernel::PageRequest;
use canopy_kernel::id::UserId;
use canopy_tenancy::{AuditAction, AuditFilter, AuditLogError};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page};
use crate::format;

/// One event as a line of the log.
struct Row {
    at: String,
    when: String,
    ago: String,
    actor: String,
    action: &'static str,
    label: &'static str,
    target: String,
    details: Vec<(String, String)>,
}

/// One member in the actor filter.
struct Actor {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "settings/audit.html")]
struct AuditPage {
    chrome: Chrome,
    slug: String,
    rows: Vec<Row>,
    actions: Vec<(&'static str, &'static str)>,
    actors: Vec<Actor>,
    action: String,
    actor: String,
    next: Option<String>,
    first_page: bool,
    filter_error: Option<String>,
}

/// The filters and the page, from the query string.
#[derive(Debug, Deserialize, Default)]
pub struct Params {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    cursor: Option<String>,
}

/// A sentence for an action (the wire name stays visible beside it for searching).
fn label(action: AuditAction) -> &'static str {
    use AuditAction as A;
    match action {
        A::OrganizationCreated => "Created the organization",
        A::OrganizationUpdated => "Changed the organization's settings",
        A::OwnershipTransferred => "Transferred ownership",
        A::MemberRoleChanged => "Changed a member's role",
        A::MemberRemoved => "Removed a member",
        A::MemberLeft => "Left the organization",
        A::MemberAccountDeleted => "Deleted their account",
        A::InvitationCreated => "Invited someone",
        A::InvitationCancelled => "Cancelled an invitation",
        A::InvitationAccepted => "Accepted an invitation",
        A::InvitationRejected => "Declined an invitation",
        A::SubscriptionChanged => "Changed the plan",
        A::SubscriptionMigrated => "Moved off a legacy plan",
        A::CloudAccountConnected => "Connected a cloud account",
        A::CloudAccountUpdated => "Changed a cloud account",
        A::CloudAccountDisconnected => "Disconnected a cloud account",
        A::ExternalIdRotated => "Rotated the External ID",
        A::ConnectTokenCreated => "Issued a connect token",
        A::ConnectionRequestCreated => "Filed a connection request",
        A::ConnectionRequestCancelled => "Cancelled a connection request",
        A::JobCancelled => "Cancelled a job",
        A::CloudOrganizationConnected => "Connected a cloud organization",
        A::CloudOrganizationSyncRequested => "Asked to re-sync a cloud organization",
        A::CloudOrganizationMembersConnectRequested => "Queued member accounts to connect",
        A::CloudOrganizationMemberExcluded => "Excluded a member account",
        A::CloudOrganizationMemberIncluded => "Included a member account again",
        A::CloudOrganizationDisconnected => "Disconnected a cloud organization",
        A::CloudOrganizationScanRequested => "Asked for a scan of a cloud organization",
        A::CloudAccountScanRequested => "Asked for a scan of a cloud account",
        A::DetectionCreated => "Created a detection",
        A::DetectionUpdated => "Edited a detection",
        A::DetectionDeleted => "Deleted a detection",
    }
}

/// The event's facts as short `key: value` pairs (strings as they are, the rest as JSON).
fn details(value: &serde_json::Value) -> Vec<(String, String)> {
    let Some(map) = value.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let short: String = text.chars().take(120).collect();
            (k.clone(), short)
        })
        .collect()
}

/// `GET /org/{slug}/settings/audit`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "audit").await?;
    let now = state.tenancy.clock().now();
    let mut filter_error = None;
    let action = match params.action.as_str() {
        "" => None,
        raw => {
            let found = AuditAction::from_stored(raw);
            if found.is_none() {
                filter_error = Some("That action is not one the log records.".to_string());
            }
            found
        }
    };
    let actor = match params.actor.as_str() {
        "" => None,
        raw => {
            let found = Uuid::parse_str(raw).ok().map(UserId);
            if found.is_none() {
                filter_error = Some("That member is not one of this organization.".to_string());
            }
            found
        }
    };
    let cursor = params.cursor.as_deref().filter(|c| !c.is_empty());
    let page_req = PageRequest::parse(Some(50), cursor).map_err(|_| Failure::NotFound)?;
    let members = state
        .tenancy
        .list_members(
            &access,
            PageRequest {
                limit: PageRequest::MAX_LIMIT,
                after: None,
            },
        )
        .await
        .map_err(|e| match e {
            canopy_tenancy::MemberError::Store(s) => Failure::Store(s),
            _ => Failure::Forbidden,
        })?
        .items;
    let events = state
        .tenancy
        .audit_events(&access, AuditFilter { action, actor }, page_req)
        .await
        .map_err(|e| match e {
            AuditLogError::Forbidden(_) => Failure::Forbidden,
            AuditLogError::Store(s) => Failure::Store(s),
        })?;
    let name_of = |id: Option<UserId>| match id {
        None => "Canopy".to_string(),
        Some(id) => members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| "A former member".to_string(), |m| m.name.clone()),
    };
    let rows = events
        .items
        .iter()
        .map(|e| Row {
            at: e.occurred_at.to_rfc3339(),
            when: format::when(e.occurred_at),
            ago: format::ago(e.occurred_at, now),
            actor: name_of(e.actor_id),
            action: e.action.as_str(),
            label: label(e.action),
            target: format!(
                "{} {}",
                e.target.kind.as_str().replace('_', " "),
                e.target.id
            ),
            details: details(&e.details),
        })
        .collect();
    let status = if filter_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(page(
        status,
        &AuditPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            rows,
            actions: AuditAction::ALL
                .iter()
                .map(|a| (a.as_str(), label(*a)))
                .collect(),
            actors: members
                .iter()
                .map(|m| Actor {
                    id: m.user_id.to_string(),
                    name: m.name.clone(),
                })
                .collect(),
            action: params.action.clone(),
            actor: params.actor.clone(),
            next: events.next.map(|c| c.encode()),
            first_page: cursor.is_none(),
            filter_error,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_as_a_distinct_sentence() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(seen.insert(label(*a)), "{a:?} repeats a sentence");
        }
    }

    #[test]
    fn details_keep_strings_as_they_are_and_cut_long_ones() {
        let long = "x".repeat(500);
        let facts =
            details(&serde_json::json!({"email": "<b>a</b>", "n": 3, "gone": null, "long": long}));
        assert!(facts.contains(&("email".into(), "<b>a</b>".into())));
        assert!(facts.contains(&("n".into(), "3".into())));
        assert!(!facts.iter().any(|(k, _)| k == "gone"));
        assert_eq!(
            facts
                .iter()
                .find(|(k, _)| k == "long")
                .map(|(_, v)| v.len()),
            Some(120)
        );
    }
}
