//! [`OutboxStore`] on SQLite and PostgreSQL: e-mail waits here, rendered, until a relay sends
//! it; with no mail server configured an operator reads it (`canopy admin outbox`), so nothing
//! is lost.
//!
//! A relay claims one message at a time with a guarded `UPDATE` (due, not sent, not failed, no
//! live lease): of relays racing for the same row, exactly one changes it. Every later write
//! is guarded by `lease_owner = worker`, so a relay whose lease lapsed while it was sending
//! records nothing and the message is marked sent once. Once sent, the bodies and the link
//! are dropped: they hold single-use secrets, and the mail server has them now.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_tenancy::mail::{ClaimedMail, Delivery, DeliveryStatus, OutgoingMail, RenderedMail};
use canopy_tenancy::ports::OutboxStore;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::entity::outbox_messages;
use crate::error::db_err;

/// How many times a claim looks for another due message after losing one to another relay.
const CLAIM_TRIES: usize = 8;

/// What a sent message keeps instead of its bodies.
const DROPPED: &str = "(delivered; the body is not kept)";

/// An outbox row as an operator or a test reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// Id.
    pub id: Uuid,
    /// Message kind (`invitation`, `verify_email`, ...).
    pub kind: String,
    /// Email address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body with the link.
    pub body: String,
    /// HTML body.
    pub html: String,
    /// `link` (the single-use action link, until sent) and `reference` (what it is about).
    pub payload: serde_json::Value,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure in the mail server's words.
    pub last_error: Option<String>,
    /// When queued.
    pub created_at: DateTime<Utc>,
    /// When the mail server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it failed for good.
    pub failed_at: Option<DateTime<Utc>>,
}

impl OutboxMessage {
    /// The message's action link, while it is kept.
    pub fn link(&self) -> Option<&str> {
        self.payload["link"].as_str()
    }
}

impl From<outbox_messages::Model> for OutboxMessage {
    fn from(m: outbox_messages::Model) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            recipient: m.recipient,
            subject: m.subject,
            body: m.body,
            html: m.html_body,
            payload: m.payload,
            attempts: u32::try_from(m.attempts).unwrap_or(0),
            last_error: m.last_error,
            created_at: m.created_at,
            sent_at: m.sent_at,
            failed_at: m.failed_at,
        }
    }
}

/// Which messages an operator lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFilter {
    /// Not sent yet: queued, waiting for a retry, or failed for good.
    Unsent,
    /// Failed for good.
    Failed,
}

crate::repository!(
    /// The outbox table: the tenancy service queues rendered e-mail; relays and operators
    /// read it.
    Outbox,
    outbox
);

fn claimed_from(m: outbox_messages::Model) -> ClaimedMail {
    ClaimedMail {
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        mail: OutgoingMail {
            id: m.id,
            to: m.recipient,
            kind: m.kind,
            reference: m.reference,
            link: m.payload["link"].as_str().map(str::to_string),
            rendered: RenderedMail {
                subject: m.subject,
                text: m.body,
                html: m.html_body,
            },
            created_at: m.created_at,
        },
    }
}

/// Due at `now`: neither sent nor failed, its next attempt reached, no live lease.
fn due(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(outbox_messages::Column::SentAt.is_null())
        .add(outbox_messages::Column::FailedAt.is_null())
        .add(
            Condition::any()
                .add(outbox_messages::Column::NextAttemptAt.is_null())
                .add(outbox_messages::Column::NextAttemptAt.lte(now)),
        )
        .add(
            Condition::any()
                .add(outbox_messages::Column::LeaseUntil.is_null())
                .add(outbox_messages::Column::LeaseUntil.lt(now)),
        )
}

/// The update that ends `worker`'s attempt at message `id`: counts it and releases the
/// lease; a no-op when the lease is no longer theirs. The caller adds how it ended.
fn settle(id: Uuid, worker: &str) -> sea_orm::UpdateMany<outbox_messages::Entity> {
    outbox_messages::Entity::update_many()
        .col_expr(
            outbox_messages::Column::Attempts,
            Expr::col(outbox_messages::Column::Attempts).add(1),
        )
        .col_expr(
            outbox_messages::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox_messages::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(outbox_messages::Column::Id.eq(id))
        .filter(outbox_messages::Column::LeaseOwner.eq(worker))
}

#[async_trait]
impl OutboxStore for Outbox {
    async fn queue(&self, mail: OutgoingMail) -> Result<(), StoreError> {
        outbox_messages::ActiveModel {
            id: Set(mail.id),
            kind: Set(mail.kind),
            recipient: Set(mail.to),
            subject: Set(mail.rendered.subject),
            body: Set(mail.rendered.text),
            html_body: Set(mail.rendered.html),
            payload: Set(json!({"link": mail.link, "reference": mail.reference})),
            reference: Set(mail.reference),
            created_at: Set(mail.created_at),
            sent_at: Set(None),
            attempts: Set(0),
            next_attempt_at: Set(None),
            lease_owner: Set(None),
            lease_until: Set(None),
            failed_at: Set(None),
            last_error: Set(None),
        }
        .insert(self.db())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedMail>, StoreError> {
        for _ in 0..CLAIM_TRIES {
            let Some(row) = outbox_messages::Entity::find()
                .filter(due(now))
                .order_by_asc(outbox_messages::Column::CreatedAt)
                .order_by_asc(outbox_messages::Column::Id)
                .one(self.db())
                .await
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            // The guard repeats the whole "due" test: a relay that read the same row and
            // updated it first leaves this update with nothing to change.
            let taken = outbox_messages::Entity::update_many()
                .col_expr(outbox_messages::Column::LeaseOwner, Expr::value(worker))
                .col_expr(
                    outbox_messages::Column::LeaseUntil,
                    Expr::value(lease_until),
                )
                .filter(outbox_messages::Column::Id.eq(row.id))
                .filter(due(now))
                .exec(self.db())
                .await
                .map_err(db_err)?;
            if taken.rows_affected == 1 {
                return Ok(Some(claimed_from(row)));
            }
        }
        Ok(None)
    }

    async fn sent(&self, id: Uuid, worker: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = settle(id, worker)
            .col_expr(outbox_messages::Column::SentAt, Expr::value(now))
            .col_expr(outbox_messages::Column::Body, Expr::value(DROPPED))
            .col_expr(outbox_messages::Column::HtmlBody, Expr::value(DROPPED))
            .col_expr(
                outbox_messages::Column::Payload,
                Expr::value(json!({"link": null})),
            )
            .col_expr(
                outbox_messages::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(outbox_messages::Column::SentAt.is_null())
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected == 1)
    }

    async fn retry(
        &self,
        id: Uuid,
        worker: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        settle(id, worker)
            .col_expr(outbox_messages::Column::NextAttemptAt, Expr::value(at))
            .col_expr(outbox_messages::Column::LastError, Expr::value(error))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn failed(
        &self,
        id: Uuid,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        settle(id, worker)
            .col_expr(outbox_messages::Column::FailedAt, Expr::value(now))
            .col_expr(outbox_messages::Column::LastError, Expr::value(error))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delivery_of(&self, reference: &str) -> Result<Option<Delivery>, StoreError> {
        let row = outbox_messages::Entity::find()
            .filter(outbox_messages::Column::Reference.eq(reference))
            .order_by_desc(outbox_messages::Column::CreatedAt)
            .order_by_desc(outbox_messages::Column::Id)
            .one(self.db())
            .await
            .map_err(db_err)?;
        Ok(row.map(|m| {
            let (status, settled_at) = match (m.sent_at, m.failed_at) {
                (Some(at), _) => (DeliveryStatus::Sent, Some(at)),
                (None, Some(at)) => (DeliveryStatus::Failed, Some(at)),
                (None, None) => (DeliveryStatus::Queued, None),
            };
            Delivery {
                id: m.id,
                status,
                attempts: u32::try_from(m.attempts).unwrap_or(0),
                last_error: m.last_error,
                settled_at,
            }
        }))
    }
}

impl Outbox {
    /// Unsent messages for `recipient`, oldest first.
    pub async fn unsent_for(&self, recipient: &str) -> Result<Vec<OutboxMessage>, StoreError> {
        self.list(OutboxFilter::Unsent, Some(recipient), None).await
    }

    /// Messages matching `filter` (up to `limit`), for `recipient` when given, oldest first.
    pub async fn list(
        &self,
        filter: OutboxFilter,
        recipient: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut query =
            outbox_messages::Entity::find().filter(outbox_messages::Column::SentAt.is_null());
        if filter == OutboxFilter::Failed {
            query = query.filter(outbox_messages::Column::FailedAt.is_not_null());
        }
        if let Some(recipient) = recipient {
            query = query.filter(outbox_messages::Column::Recipient.eq(recipient));
        }
        Ok(query
            .order_by_asc(outbox_messages::Column::CreatedAt)
            .order_by_asc(outbox_messages::Column::Id)
            .limit(limit.map(|l| Ord::min(l, i64::MAX as u64)))
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(OutboxMessage::from)
            .collect())
    }

    /// Every message to `recipient`, sent or not, oldest first: what a test or a support
    /// person checks was delivered once.
    pub async fn all_for(&self, recipient: &str) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(outbox_messages::Entity::find()
            .filter(outbox_messages::Column::Recipient.eq(recipient))
            .order_by_asc(outbox_messages::Column::CreatedAt)
            .order_by_asc(outbox_messages::Column::Id)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(OutboxMessage::from)
            .collect())
    }
}
