//! The audit log: who did what to which target, when. Written in the same transaction as the
//! change it describes, so the log and the data never disagree.

use canopy_kernel::id::{AuditEventId, OrganizationId, UserId};
use chrono::{DateTime, Utc};

/// An audit event to record alongside a change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// Id.
    pub id: AuditEventId,
    /// The organization the change belongs to.
    pub organization_id: OrganizationId,
    /// Who made the change (`None` for the system or a token-only flow).
    pub actor_id: Option<UserId>,
    /// Stable action name, `noun.verb` (`member.role_changed`).
    pub action: String,
    /// Kind of target (`organization`, `member`, `invitation`).
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Extra facts (old and new role, email, ...).
    pub details: serde_json::Value,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

impl NewAuditEvent {
    /// Builds an event with a new id.
    pub fn new(
        organization_id: OrganizationId,
        actor_id: Option<UserId>,
        action: &str,
        target: (&str, String),
        details: serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: AuditEventId::new(),
            organization_id,
            actor_id,
            action: action.to_string(),
            target_type: target.0.to_string(),
            target_id: target.1,
            details,
            occurred_at,
        }
    }
}

/// A recorded audit event.
pub type AuditEvent = NewAuditEvent;
