//! What a plan allows, asked by the other domains before they act: a feature, room for one
//! more account or member, how far back history is served, whether API keys may be used.

use async_trait::async_trait;
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{FeatureNotInPlan, LimitedResource, PlanLimitExceeded, StoreError};
use canopy_tenancy::ports::{ApiKeyAccess, HistoryRetention};
use chrono::{DateTime, Duration, Utc};

use super::BillingService;
use crate::plan::Feature;

/// Outcomes of the feature check.
#[derive(Debug, thiserror::Error)]
pub enum EntitlementError {
    /// The plan does not include the feature.
    #[error(transparent)]
    NotInPlan(#[from] FeatureNotInPlan),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Outcomes of the advisory room check.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The plan has no room for one more.
    #[error(transparent)]
    Full(#[from] PlanLimitExceeded),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BillingService {
    /// The one entitlement check: refuses with `NotInPlan` unless the organization's terms
    /// include `feature`.
    pub async fn require_feature(
        &self,
        org: OrganizationId,
        feature: Feature,
    ) -> Result<(), EntitlementError> {
        Ok(self.terms(org).await?.require(feature)?)
    }

    /// Refuses early (before any work) when the plan has no room for one more `resource`.
    /// Advisory: the authoritative check runs in the transaction that adds it.
    pub async fn ensure_room(
        &self,
        org: OrganizationId,
        resource: LimitedResource,
    ) -> Result<(), RoomError> {
        let terms = self.terms(org).await?;
        let usage = self.subscriptions.usage(org, self.clock.now()).await?;
        Ok(terms.room_for_one(resource, usage.count(resource))?)
    }
}

/// How many more of a resource the plan allows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// More allowed (`None`: no cap).
    pub remaining: Option<u64>,
    /// The refusal asking for the wanted number would get, when it does not fit.
    pub refusal: Option<PlanLimitExceeded>,
}

impl BillingService {
    /// Advisory, before queueing work: whether `wanted` more of `resource` fit. The
    /// authoritative check runs in each transaction that adds one.
    pub async fn room_for(
        &self,
        org: OrganizationId,
        resource: LimitedResource,
        wanted: u64,
    ) -> Result<Room, StoreError> {
        let terms = self.terms(org).await?;
        let used = self
            .subscriptions
            .usage(org, self.clock.now())
            .await?
            .count(resource);
        Ok(Room {
            remaining: terms.remaining(resource, used),
            refusal: terms.room_for(resource, used, wanted).err(),
        })
    }
}

/// Retention read from the plan: history older than the plan's days is not served.
#[async_trait]
impl HistoryRetention for BillingService {
    async fn served_since(
        &self,
        org: OrganizationId,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(subscription) = self.find(org).await? else {
            return Ok(None);
        };
        Ok(subscription
            .terms(now)
            .limits
            .history_retention_days
            .map(|days| now - Duration::days(i64::from(days))))
    }
}

/// API keys reach an organization only on a plan with API access.
#[async_trait]
impl ApiKeyAccess for BillingService {
    async fn refusal(&self, org: OrganizationId) -> Result<Option<FeatureNotInPlan>, StoreError> {
        Ok(self.terms(org).await?.require(Feature::ApiAccess).err())
    }
}
