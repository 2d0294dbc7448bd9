//! The organization's subscription: read it, change tier (owner), read usage (any member).

use canopy_kernel::id::UserId;
use canopy_kernel::{FieldError, StoreError, ValidationErrors};
use canopy_tenancy::{
    Action, AuditAction, AuditTarget, Forbidden, NewAuditEvent, OrgAccess, OrgRef, TargetKind,
};
use serde_json::json;

use super::BillingService;
use crate::plan::Tier;
use crate::ports::ChangeSubscriptionError;
use crate::subscription::{SubscribedTier, Subscription, Terms};
use crate::usage::{Exceeded, Usage};

/// Outcomes of reading and changing a subscription.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// Input broke a rule (an unknown tier, Enterprise asked for self-service).
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow it (changing tiers is the owner's).
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The organization does not exist.
    #[error("organization not found")]
    NotFound,
    /// The organization's usage does not fit the tier asked for.
    #[error("usage exceeds the {tier:?} plan")]
    DowngradeExceeds {
        /// The tier asked for.
        tier: Tier,
        /// Every limit the usage goes beyond.
        exceeded: Vec<Exceeded>,
    },
    /// Enterprise subscriptions are changed by an operator, not through the API.
    #[error("enterprise subscriptions are managed by Canopy")]
    ManagedByOperator,
    /// Someone else changed the subscription between reading and writing it.
    #[error("the subscription changed meanwhile")]
    Changed,
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A subscription with the terms in force now.
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    /// The stored subscription.
    pub subscription: Subscription,
    /// Its terms now.
    pub terms: Terms,
}

/// What a usage meter shows.
#[derive(Debug, Clone)]
pub struct UsageReport {
    /// The subscription and its terms.
    pub subscription: SubscriptionView,
    /// Counts.
    pub usage: Usage,
    /// Every limit the usage goes beyond (after a legacy migration or an operator change).
    pub exceeded: Vec<Exceeded>,
    /// The least tier that fits the usage.
    pub required_tier: Tier,
    /// True when the organization must upgrade to keep what it has.
    pub upgrade_needed: bool,
}

fn parse_self_service_tier(raw: &str) -> Result<Tier, ValidationErrors> {
    match Tier::from_stored(raw.trim()) {
        Some(Tier::Enterprise) => Err(ValidationErrors::single(FieldError::new(
            "tier",
            "self_service",
            "Enterprise is arranged with sales (custom pricing); contact us",
        ))),
        Some(tier) => Ok(tier),
        None => Err(ValidationErrors::single(FieldError::new(
            "tier",
            "enum",
            "must be free, individual or pro",
        ))),
    }
}

impl BillingService {
    async fn load(&self, org: &OrgRef) -> Result<Subscription, SubscriptionError> {
        self.subscriptions
            .get(org)
            .await?
            .ok_or(SubscriptionError::NotFound)
    }

    fn view(&self, subscription: Subscription) -> SubscriptionView {
        SubscriptionView {
            terms: subscription.terms(self.clock.now()),
            subscription,
        }
    }

    /// The organization's subscription (any member).
    pub async fn subscription(
        &self,
        access: &OrgAccess,
    ) -> Result<SubscriptionView, SubscriptionError> {
        access.require(Action::View)?;
        Ok(self.view(self.load(&OrgRef::Id(access.org_id())).await?))
    }

    /// Moves the organization to `tier` (owner). Free, Individual and Pro are self-service;
    /// Enterprise is arranged with sales and set by an operator. A move the current usage
    /// does not fit is refused with every limit it would break. Choosing a tier ends a
    /// running grace period.
    pub async fn change_tier(
        &self,
        access: &OrgAccess,
        tier: &str,
    ) -> Result<SubscriptionView, SubscriptionError> {
        access.require(Action::ManageBilling)?;
        let tier = parse_self_service_tier(tier)?;
        let current = self.load(&OrgRef::Id(access.org_id())).await?;
        if current.tier == SubscribedTier::Current(Tier::Enterprise) {
            return Err(SubscriptionError::ManagedByOperator);
        }
        self.change(current, tier, Some(access.user_id()), "api")
            .await
    }

    /// Sets any tier, Enterprise included, from an operator command. Refused like a
    /// self-service change when the usage does not fit.
    pub async fn set_tier_as_operator(
        &self,
        org: &str,
        tier: &str,
    ) -> Result<SubscriptionView, SubscriptionError> {
        let tier = Tier::from_stored(tier).ok_or_else(|| {
            ValidationErrors::single(FieldError::new(
                "tier",
                "enum",
                "must be free, individual, pro or enterprise",
            ))
        })?;
        let reference = OrgRef::parse(org).ok_or(SubscriptionError::NotFound)?;
        let current = self.load(&reference).await?;
        self.change(current, tier, None, "operator").await
    }

    async fn change(
        &self,
        current: Subscription,
        tier: Tier,
        actor: Option<UserId>,
        via: &str,
    ) -> Result<SubscriptionView, SubscriptionError> {
        let now = self.clock.now();
        let in_grace = current.active_grace(now).is_some();
        if current.tier == SubscribedTier::Current(tier) && !in_grace {
            return Ok(self.view(current));
        }
        let next = Subscription {
            tier: SubscribedTier::Current(tier),
            grace: None,
            updated_at: now,
            ..current.clone()
        };
        let audit = NewAuditEvent::new(
            current.organization_id,
            actor,
            AuditAction::SubscriptionChanged,
            AuditTarget::new(TargetKind::Subscription, current.organization_id),
            json!({
                "from": current.tier.as_str(),
                "to": tier.as_str(),
                "via": via,
                "endedGrace": in_grace,
            }),
            now,
        );
        match self
            .subscriptions
            .change(next, current.tier, now, audit)
            .await
        {
            Ok(saved) => Ok(self.view(saved)),
            Err(ChangeSubscriptionError::Exceeds(exceeded)) => {
                Err(SubscriptionError::DowngradeExceeds { tier, exceeded })
            }
            Err(ChangeSubscriptionError::NotFound) => Err(SubscriptionError::NotFound),
            Err(ChangeSubscriptionError::Changed) => Err(SubscriptionError::Changed),
            Err(ChangeSubscriptionError::Store(e)) => Err(e.into()),
        }
    }

    /// Usage against the limits, the tier the usage needs and whether to upgrade (any member).
    pub async fn usage(&self, access: &OrgAccess) -> Result<UsageReport, SubscriptionError> {
        access.require(Action::View)?;
        let subscription = self.view(self.load(&OrgRef::Id(access.org_id())).await?);
        let usage = self
            .subscriptions
            .usage(access.org_id(), self.clock.now())
            .await?;
        let exceeded = subscription.terms.exceeded_by(&usage);
        // No organization-level feature is in use until cloud organizations land.
        let wants_org_features = false;
        Ok(UsageReport {
            required_tier: usage.required_tier(wants_org_features),
            upgrade_needed: !exceeded.is_empty(),
            exceeded,
            usage,
            subscription,
        })
    }
}
