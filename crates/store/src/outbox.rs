//! The default invitation delivery: an outbox row per message, with the accept link, for a
//! mail relay to drain. Nothing is lost when no mail server is configured.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_tenancy::invitation::InvitationMessage;
use canopy_tenancy::ports::InvitationSender;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::entity::outbox_messages;
use crate::error::db_err;

/// An outbox row as an operator or a relay reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// Id.
    pub id: Uuid,
    /// Message kind (`invitation`).
    pub kind: String,
    /// Email address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body with the link.
    pub body: String,
    /// Structured content (accept URL, invitation id, role).
    pub payload: serde_json::Value,
    /// When queued.
    pub created_at: DateTime<Utc>,
}

crate::repository!(
    /// The outbox table: [`InvitationSender`] writes to it; operators and relays read it.
    Outbox,
    outbox
);

#[async_trait]
impl InvitationSender for Outbox {
    async fn send(&self, message: InvitationMessage) -> Result<(), StoreError> {
        let inv = &message.invitation;
        let subject = format!(
            "You're invited to join {} on Canopy",
            message.organization_name
        );
        let body = format!(
            "{} invited you to join {} as {}.\n\nAccept: {}\n\nThis invitation expires at {}.\n",
            if message.invited_by_name.is_empty() {
                "Someone"
            } else {
                &message.invited_by_name
            },
            message.organization_name,
            inv.role.as_str(),
            message.accept_url,
            inv.expires_at.to_rfc3339(),
        );
        outbox_messages::ActiveModel {
            id: Set(Uuid::now_v7()),
            kind: Set("invitation".into()),
            recipient: Set(inv.email.as_str().to_string()),
            subject: Set(subject),
            body: Set(body),
            payload: Set(json!({
                "invitationId": inv.id.to_string(),
                "organizationId": inv.organization_id.to_string(),
                "role": inv.role.as_str(),
                "acceptUrl": message.accept_url,
                "expiresAt": inv.expires_at.to_rfc3339(),
            })),
            created_at: Set(inv.created_at),
            sent_at: Set(None),
        }
        .insert(self.db())
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

impl Outbox {
    /// Unsent messages for `recipient`, oldest first.
    pub async fn unsent_for(&self, recipient: &str) -> Result<Vec<OutboxMessage>, StoreError> {
        self.unsent(Some(recipient), None).await
    }

    /// Unsent messages (up to `limit`), for `recipient` when given, oldest first.
    pub async fn unsent(
        &self,
        recipient: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut query =
            outbox_messages::Entity::find().filter(outbox_messages::Column::SentAt.is_null());
        if let Some(recipient) = recipient {
            query = query.filter(outbox_messages::Column::Recipient.eq(recipient));
        }
        Ok(query
            .order_by_asc(outbox_messages::Column::Id)
            .limit(limit.map(|l| l.min(i64::MAX as u64)))
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| OutboxMessage {
                id: m.id,
                kind: m.kind,
                recipient: m.recipient,
                subject: m.subject,
                body: m.body,
                payload: m.payload,
                created_at: m.created_at,
            })
            .collect())
    }
}
