//! E-mail the product sends: what each message says (its facts and its one action link), how
//! it is queued, and how a relay delivers the queue.
//!
//! The domain decides *what* is said ([`MailContent`]); an adapter renders it into a subject,
//! a plain-text and an HTML body ([`ports::MailRenderer`](crate::ports::MailRenderer)); the
//! rendered message waits in a durable outbox ([`ports::OutboxStore`](crate::ports::OutboxStore))
//! until a relay ([`MailRelay`]) hands it to a transport (SMTP). Without a transport the
//! outbox is read by an operator, so nothing is lost when no mail server is configured.

use std::sync::Arc;

use canopy_kernel::{Clock, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::membership::Role;
use crate::ports::{MailTransport, OutboxStore};
use crate::user::Email;

/// A message to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient.
    pub to: Email,
    /// What it says.
    pub content: MailContent,
}

/// What a message says. Each kind carries the facts its templates show and, where the reader
/// must act, the single-use link; never any other secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailContent {
    /// Someone invited the recipient to an organization.
    Invitation {
        /// The invitation, for the outbox's reference (the link also names it).
        invitation_id: Uuid,
        /// The inviting organization's name.
        organization: String,
        /// Who invited (empty when their account is gone).
        invited_by: String,
        /// The role offered.
        role: Role,
        /// The page that accepts or declines it.
        link: String,
        /// When it stops being acceptable.
        expires_at: DateTime<Utc>,
    },
    /// Confirms that the recipient owns the address they signed up with.
    VerifyEmail {
        /// The user's name.
        name: String,
        /// The single-use verification link.
        link: String,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// Lets the recipient choose a new password.
    PasswordReset {
        /// The user's name.
        name: String,
        /// The single-use reset link.
        link: String,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// Confirms a new address before it replaces the old one (sent to the new one).
    ConfirmNewEmail {
        /// The user's name.
        name: String,
        /// The single-use confirmation link.
        link: String,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// Tells the old address that the account's e-mail is changing (no link: nothing to do
    /// unless it was not them).
    EmailChangeRequested {
        /// The user's name.
        name: String,
        /// The address that will replace this one once confirmed.
        new_email: String,
    },
    /// Tells the user their password was changed or reset.
    PasswordChanged {
        /// The user's name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl MailContent {
    /// The stable name of the kind, as stored and shown to operators.
    pub fn kind(&self) -> &'static str {
        match self {
            MailContent::Invitation { .. } => "invitation",
            MailContent::VerifyEmail { .. } => "verify_email",
            MailContent::PasswordReset { .. } => "password_reset",
            MailContent::ConfirmNewEmail { .. } => "confirm_new_email",
            MailContent::EmailChangeRequested { .. } => "email_change_requested",
            MailContent::PasswordChanged { .. } => "password_changed",
        }
    }

    /// The single-use link the reader acts on, if the message has one.
    pub fn link(&self) -> Option<&str> {
        match self {
            MailContent::Invitation { link, .. }
            | MailContent::VerifyEmail { link, .. }
            | MailContent::PasswordReset { link, .. }
            | MailContent::ConfirmNewEmail { link, .. } => Some(link),
            MailContent::EmailChangeRequested { .. } | MailContent::PasswordChanged { .. } => None,
        }
    }

    /// What the message is about, for finding its delivery later (the invitation's id).
    pub fn reference(&self) -> Option<String> {
        match self {
            MailContent::Invitation { invitation_id, .. } => Some(invitation_id.to_string()),
            _ => None,
        }
    }
}

/// A message rendered for delivery.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl std::fmt::Debug for RenderedMail {
    // The bodies hold single-use links: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A rendered message entering the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Id; also the message's `Message-ID`, so a receiver can tell a repeat from a new one.
    pub id: Uuid,
    /// Recipient address.
    pub to: String,
    /// [`MailContent::kind`].
    pub kind: String,
    /// [`MailContent::reference`].
    pub reference: Option<String>,
    /// [`MailContent::link`]: kept beside the bodies for an operator reading the outbox, and
    /// dropped with them once sent.
    pub link: Option<String>,
    /// The rendered message.
    pub rendered: RenderedMail,
    /// When queued.
    pub created_at: DateTime<Utc>,
}

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for a relay (first attempt, or a retry after a temporary failure).
    Queued,
    /// The mail server accepted it.
    Sent,
    /// The mail server refused it for good, or every attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// A message's delivery, as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The outbox message.
    pub id: Uuid,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure in the mail server's words.
    pub last_error: Option<String>,
    /// When it was sent or failed for good.
    pub settled_at: Option<DateTime<Utc>>,
}

/// A message a relay holds under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    /// The message as queued.
    pub mail: OutgoingMail,
    /// Attempts before this one.
    pub attempts: u32,
}

/// Why a transport did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The server refused the message for good (a 5xx reply): retrying cannot help.
    #[error("refused: {0}")]
    Permanent(String),
    /// The server was unreachable, timed out or answered 4xx: try again later.
    #[error("temporary failure: {0}")]
    Transient(String),
}

/// What one pass of the relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Messages the server accepted.
    pub sent: usize,
    /// Messages queued again after a temporary failure.
    pub retried: usize,
    /// Messages that failed for good.
    pub failed: usize,
}

/// Tunables of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// How long a claimed message stays with one relay: longer than a send can take (the
    /// transport's timeout), so no second relay sends it while the first still may.
    pub lease: Duration,
    /// Attempts before a message that keeps failing temporarily fails for good.
    pub max_attempts: u32,
    /// Messages one pass handles at most.
    pub batch: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            lease: Duration::minutes(5),
            max_attempts: 10,
            batch: 50,
        }
    }
}

/// The wait before retry number `attempt` (1-based): 15 s doubling, at most an hour, so ten
/// attempts span about five hours, as a mail server's own queue would.
pub fn retry_delay(attempt: u32) -> Duration {
    let secs = 15_i64.saturating_mul(1_i64 << attempt.saturating_sub(1).min(8));
    Duration::seconds(secs.min(3_600))
}

/// Drains the outbox into a transport: claims a message under a lease, sends it, records how
/// it went. Several relays (one per worker process) may run at once; the outbox's lease makes
/// each message theirs alone, and the conditional updates make "sent" happen once.
#[derive(Clone)]
pub struct MailRelay {
    outbox: Arc<dyn OutboxStore>,
    transport: Arc<dyn MailTransport>,
    clock: Arc<dyn Clock>,
    settings: RelaySettings,
    worker: String,
}

impl MailRelay {
    /// A relay named `worker` (in leases) over `outbox` and `transport`.
    pub fn new(
        outbox: Arc<dyn OutboxStore>,
        transport: Arc<dyn MailTransport>,
        clock: Arc<dyn Clock>,
        settings: RelaySettings,
        worker: impl Into<String>,
    ) -> Self {
        Self {
            outbox,
            transport,
            clock,
            settings,
            worker: worker.into(),
        }
    }

    /// The same relay under another lease owner name (one per worker process).
    pub fn named(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }

    /// One pass: sends what is due, up to the batch size, one message at a time.
    pub async fn drain(&self) -> Result<RelayReport, StoreError> {
        let mut report = RelayReport::default();
        for _ in 0..self.settings.batch {
            let now = self.clock.now();
            let Some(claimed) = self
                .outbox
                .claim(&self.worker, now, now + self.settings.lease)
                .await?
            else {
                break;
            };
            let id = claimed.mail.id;
            let attempt = claimed.attempts + 1;
            match self.transport.send(&claimed).await {
                Ok(()) => {
                    if self.outbox.sent(id, &self.worker, self.clock.now()).await? {
                        tracing::info!(mail = %id, kind = %claimed.mail.kind, attempt, "mail sent");
                        report.sent += 1;
                    } else {
                        tracing::warn!(mail = %id, "mail sent after this relay lost its lease");
                    }
                }
                Err(DeliveryError::Transient(why)) if attempt < self.settings.max_attempts => {
                    let at = self.clock.now() + retry_delay(attempt);
                    tracing::warn!(mail = %id, attempt, error = %why, retry_at = %at, "mail not sent; will retry");
                    self.outbox.retry(id, &self.worker, at, &why).await?;
                    report.retried += 1;
                }
                Err(e) => {
                    let why = e.to_string();
                    tracing::warn!(mail = %id, attempt, error = %why, "mail failed for good");
                    self.outbox
                        .failed(id, &self.worker, &why, self.clock.now())
                        .await?;
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use canopy_kernel::ManualClock;
    use mockall::predicate::{always, eq};

    use super::*;
    use crate::ports::{MockMailTransport, MockOutboxStore};

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn claimed(attempts: u32) -> ClaimedMail {
        ClaimedMail {
            mail: OutgoingMail {
                id: Uuid::from_u128(7),
                to: "ada@example.com".into(),
                kind: "verify_email".into(),
                reference: None,
                link: None,
                rendered: RenderedMail {
                    subject: "s".into(),
                    text: "t".into(),
                    html: "h".into(),
                },
                created_at: start(),
            },
            attempts,
        }
    }

    /// An outbox that hands out `mail` once, then nothing.
    fn outbox_with(mail: ClaimedMail) -> MockOutboxStore {
        let mut outbox = MockOutboxStore::new();
        let mut held = Some(mail);
        outbox
            .expect_claim()
            .withf(|worker, now, until| worker == "w1" && *until == *now + Duration::minutes(5))
            .returning(move |_, _, _| Ok(held.take()));
        outbox
    }

    fn relay(outbox: MockOutboxStore, transport: MockMailTransport) -> MailRelay {
        MailRelay::new(
            Arc::new(outbox),
            Arc::new(transport),
            Arc::new(ManualClock::new(start())),
            RelaySettings::default(),
            "w1",
        )
    }

    #[tokio::test]
    async fn a_delivered_message_is_marked_sent_by_its_holder() {
        let mut outbox = outbox_with(claimed(0));
        outbox
            .expect_sent()
            .with(eq(Uuid::from_u128(7)), eq("w1"), always())
            .times(1)
            .returning(|_, _, _| Ok(true));
        let mut transport = MockMailTransport::new();
        transport.expect_send().times(1).returning(|_| Ok(()));
        let report = relay(outbox, transport).drain().await.unwrap();
        assert_eq!(
            report,
            RelayReport {
                sent: 1,
                retried: 0,
                failed: 0
            }
        );
    }

    #[tokio::test]
    async fn a_temporary_failure_is_retried_later_with_the_reason() {
        let mut outbox = outbox_with(claimed(2));
        outbox
            .expect_retry()
            .withf(|id, worker, at, error| {
                *id == Uuid::from_u128(7)
                    && worker == "w1"
                    && *at == start() + retry_delay(3)
                    && error.contains("connection refused")
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let mut transport = MockMailTransport::new();
        transport
            .expect_send()
            .returning(|_| Err(DeliveryError::Transient("connection refused".into())));
        let report = relay(outbox, transport).drain().await.unwrap();
        assert_eq!(report.retried, 1);
    }

    #[tokio::test]
    async fn a_refusal_fails_at_once_and_the_last_attempt_fails_for_good() {
        for (attempts, error) in [
            (0, DeliveryError::Permanent("550 5.1.1 no such user".into())),
            (9, DeliveryError::Transient("421 try later".into())),
        ] {
            let mut outbox = outbox_with(claimed(attempts));
            let expected = error.to_string();
            outbox
                .expect_failed()
                .withf(move |_, worker, why, _| worker == "w1" && why == expected)
                .times(1)
                .returning(|_, _, _, _| Ok(()));
            let mut transport = MockMailTransport::new();
            transport
                .expect_send()
                .returning(move |_| Err(error.clone()));
            let report = relay(outbox, transport).drain().await.unwrap();
            assert_eq!(report.failed, 1, "after {attempts} attempts");
        }
    }

    #[tokio::test]
    async fn a_send_after_the_lease_was_lost_is_not_counted() {
        let mut outbox = outbox_with(claimed(0));
        outbox.expect_sent().returning(|_, _, _| Ok(false));
        let mut transport = MockMailTransport::new();
        transport.expect_send().returning(|_| Ok(()));
        let report = relay(outbox, transport).drain().await.unwrap();
        assert_eq!(report.sent, 0);
    }

    #[test]
    fn retries_back_off_and_stop_growing_at_an_hour() {
        assert_eq!(retry_delay(1), Duration::seconds(15));
        assert_eq!(retry_delay(2), Duration::seconds(30));
        assert_eq!(retry_delay(5), Duration::seconds(240));
        assert_eq!(retry_delay(9), Duration::seconds(3_600));
        assert_eq!(retry_delay(40), Duration::seconds(3_600));
        let total: i64 = (1..10).map(|a| retry_delay(a).num_seconds()).sum();
        // Ten attempts in all span about two hours: past a reset link's half hour, well
        // inside an invitation's week.
        assert!((2 * 3_600..3 * 3_600).contains(&total), "{total}");
    }

    #[test]
    fn content_serializes_with_its_kind() {
        let content = MailContent::PasswordChanged {
            name: "Ada".into(),
            at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["kind"], content.kind());
        let back: MailContent = serde_json::from_value(json).unwrap();
        assert_eq!(back, content);
    }
}
