//! Billing use cases, by concept: the subscription and its usage, entitlements (features,
//! limits, retention, API access), and the operator's work (tier changes, the legacy
//! migration, the retention sweep).

mod entitlements;
mod operator;
mod subscriptions;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Clock, StoreError};
use canopy_tenancy::OrgRef;

use crate::ports::{HistoryStore, SubscriptionRepository};
use crate::subscription::{Subscription, Terms};

pub use entitlements::{EntitlementError, Room, RoomError};
pub use operator::LegacyMigration;
pub use subscriptions::{SubscriptionError, SubscriptionView, UsageReport};

/// The billing use cases.
#[derive(Clone)]
pub struct BillingService {
    subscriptions: Arc<dyn SubscriptionRepository>,
    history: Arc<dyn HistoryStore>,
    clock: Arc<dyn Clock>,
}

impl BillingService {
    /// Builds the service over its adapters.
    pub fn new(
        subscriptions: Arc<dyn SubscriptionRepository>,
        history: Arc<dyn HistoryStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            subscriptions,
            history,
            clock,
        }
    }

    /// The organization's subscription; `None` when the organization does not exist.
    async fn find(&self, org: OrganizationId) -> Result<Option<Subscription>, StoreError> {
        self.subscriptions.get(&OrgRef::Id(org)).await
    }

    /// The terms in force for the organization now. Every organization gets its subscription
    /// when it is created; one without (deleted meanwhile) is held to Free's terms.
    pub async fn terms(&self, org: OrganizationId) -> Result<Terms, StoreError> {
        let now = self.clock.now();
        Ok(self
            .find(org)
            .await?
            .unwrap_or_else(|| Subscription::free(org, now))
            .terms(now))
    }
}
