//! The outbox over the in-memory database, which the mail relay claims from.

use async_trait::async_trait;
use canopy_kernel::StoreError;
use canopy_tenancy::mail::{ClaimedMail, Delivery, DeliveryStatus, OutgoingMail};
use canopy_tenancy::ports::OutboxStore;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Memory, Queued};

#[async_trait]
impl OutboxStore for Memory {
    async fn queue(&self, mail: OutgoingMail) -> Result<(), StoreError> {
        self.db().outbox.push(Queued {
            mail,
            attempts: 0,
            next_attempt_at: None,
            lease: None,
            sent_at: None,
            failed_at: None,
            last_error: None,
        });
        Ok(())
    }

    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedMail>, StoreError> {
        // One lock over the pick and the lease: the in-memory form of the guarded update.
        let mut db = self.db();
        let due = db.outbox.iter_mut().find(|q| {
            q.sent_at.is_none()
                && q.failed_at.is_none()
                && q.next_attempt_at.is_none_or(|at| at <= now)
                && q.lease.as_ref().is_none_or(|(_, until)| *until < now)
        });
        Ok(due.map(|q| {
            q.lease = Some((worker.to_string(), lease_until));
            ClaimedMail {
                mail: q.mail.clone(),
                attempts: q.attempts,
            }
        }))
    }

    async fn sent(&self, id: Uuid, worker: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self
            .held(id, worker, |q| {
                q.sent_at = Some(now);
                q.mail.rendered.text.clear();
                q.mail.rendered.html.clear();
                q.mail.link = None;
            })
            .is_some())
    }

    async fn retry(
        &self,
        id: Uuid,
        worker: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.held(id, worker, |q| {
            q.next_attempt_at = Some(at);
            q.last_error = Some(error.to_string());
        });
        Ok(())
    }

    async fn failed(
        &self,
        id: Uuid,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.held(id, worker, |q| {
            q.failed_at = Some(now);
            q.last_error = Some(error.to_string());
        });
        Ok(())
    }

    async fn delivery_of(&self, reference: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .db()
            .outbox
            .iter()
            .rev()
            .find(|q| q.mail.reference.as_deref() == Some(reference))
            .map(|q| Delivery {
                id: q.mail.id,
                status: match (q.sent_at, q.failed_at) {
                    (Some(_), _) => DeliveryStatus::Sent,
                    (None, Some(_)) => DeliveryStatus::Failed,
                    (None, None) => DeliveryStatus::Queued,
                },
                attempts: q.attempts,
                last_error: q.last_error.clone(),
                settled_at: q.sent_at.or(q.failed_at),
            }))
    }
}

impl Memory {
    /// Applies `change` to message `id` if `worker` holds it, counting the attempt and
    /// releasing the lease; `None` when it does not.
    fn held(&self, id: Uuid, worker: &str, change: impl FnOnce(&mut Queued)) -> Option<()> {
        let mut db = self.db();
        let q = db.outbox.iter_mut().find(|q| {
            q.mail.id == id
                && q.sent_at.is_none()
                && q.lease.as_ref().is_some_and(|(w, _)| w == worker)
        })?;
        q.attempts += 1;
        q.lease = None;
        change(q);
        Some(())
    }
}
