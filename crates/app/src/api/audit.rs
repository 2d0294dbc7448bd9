//! The audit log of an organization.

use canopy_kernel::id::UserId;
use canopy_kernel::page::Page;
use canopy_kernel::{FieldError, PageRequest, ValidationErrors};
use canopy_tenancy::audit::{AuditAction, AuditEvent, AuditFilter};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::problem::ApiError;
use super::wire::{IdText, OrgText};
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Audit log endpoints.
pub struct AuditApi;

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// The audit log, newest first (admin or owner), optionally only one action
    /// (`member.role_changed`, ...) or one actor's changes.
    #[oai(
        path = "/organizations/:org/audit-events",
        method = "get",
        operation_id = "listAuditEvents"
    )]
    // Each query parameter is its own argument: that is how poem-openapi documents them.
    #[allow(clippy::too_many_arguments)]
    async fn audit_events(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
        /// Only events of this action.
        action: Query<Option<String>>,
        /// Only changes made by this user.
        #[oai(name = "actorId")]
        actor_id: Query<Option<Uuid>>,
    ) -> Result<Json<AuditEventPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let filter = AuditFilter {
            action: action.0.as_deref().map(parse_action).transpose()?,
            actor: actor_id.0.map(UserId),
        };
        let events = state.tenancy.audit_events(&access, filter, page).await?;
        Ok(Json(events.into()))
    }
}

/// Reads an action's wire name; an unknown one is a field error, not an empty page.
fn parse_action(raw: &str) -> Result<AuditAction, ValidationErrors> {
    AuditAction::from_stored(raw).ok_or_else(|| {
        ValidationErrors::single(FieldError::new(
            "action",
            "enum",
            "must be an audit action name such as member.role_changed",
        ))
    })
}

/// An audit event.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AuditEventDto {
    /// Id.
    pub id: Uuid,
    /// Who (absent for system actions).
    pub actor_id: Option<Uuid>,
    /// `noun.verb` action name.
    pub action: String,
    /// Kind of target.
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Extra facts.
    pub details: serde_json::Value,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventDto {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.as_uuid(),
            actor_id: e.actor_id.map(|a| a.as_uuid()),
            action: e.action.as_str().to_string(),
            target_type: e.target.kind.as_str().to_string(),
            target_id: e.target.id,
            details: e.details,
            occurred_at: e.occurred_at,
        }
    }
}

/// A page of audit events.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AuditEventPage {
    /// Newest first.
    pub items: Vec<AuditEventDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

impl From<Page<AuditEvent>> for AuditEventPage {
    fn from(p: Page<AuditEvent>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}
