//! An organization's subscription and its usage against the plan: what a settings page and
//! usage meters show, and the owner's tier change.

use std::collections::BTreeMap;

use canopy_billing::{Grace, Price, SubscriptionView, Terms, UsageReport};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::plans::{PlanLimitsDto, feature_matrix};
use super::problem::{ApiError, ProblemLimit};
use super::wire::{OrgText, SelfServiceTierDto};
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Subscription endpoints.
pub struct SubscriptionApi;

/// A grace period after the legacy-tier migration.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct GraceDto {
    /// When the subscribed tier's own terms start.
    pub until: DateTime<Utc>,
    /// The legacy tier whose limits and rate (see `terms`) apply until then.
    pub legacy_tier: String,
}

impl From<Grace> for GraceDto {
    fn from(g: Grace) -> Self {
        Self {
            until: g.until,
            legacy_tier: g.legacy_tier.as_str().to_string(),
        }
    }
}

/// The terms in force now.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TermsDto {
    /// Name to show.
    pub display_name: String,
    /// `monthly`, `per_account` (legacy) or `custom`.
    pub pricing: String,
    /// Flat monthly price in US cents (`monthly`).
    pub price_monthly_cents: Option<u32>,
    /// Price per connected account and month in US cents (`per_account`).
    pub price_per_account_cents: Option<u32>,
    /// Limits; absent is unlimited.
    pub limits: PlanLimitsDto,
    /// Every feature key with whether it is included.
    pub features: BTreeMap<String, bool>,
}

impl From<&Terms> for TermsDto {
    fn from(t: &Terms) -> Self {
        let (pricing, monthly, per_account) = match t.price {
            Price::Monthly(c) => ("monthly", Some(c), None),
            Price::PerAccount(c) => ("per_account", None, Some(c)),
            Price::Custom => ("custom", None, None),
        };
        Self {
            display_name: t.display_name.to_string(),
            pricing: pricing.to_string(),
            price_monthly_cents: monthly,
            price_per_account_cents: per_account,
            limits: PlanLimitsDto {
                max_accounts: t.limits.max_accounts,
                max_team_members: t.limits.max_team_members,
                history_retention_days: t.limits.history_retention_days,
            },
            features: feature_matrix(|f| t.has(f)),
        }
    }
}

/// An organization's subscription.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SubscriptionDto {
    /// The organization.
    pub organization_id: Uuid,
    /// free, individual, pro or enterprise (free_scan or subscriber before the legacy
    /// migration).
    pub tier: String,
    /// What applies now: the tier's terms, or the legacy terms during a grace period.
    pub terms: TermsDto,
    /// The grace period, while it runs.
    pub grace: Option<GraceDto>,
    /// Since when the organization is subscribed.
    pub created_at: DateTime<Utc>,
    /// Last tier change.
    pub updated_at: DateTime<Utc>,
}

impl From<SubscriptionView> for SubscriptionDto {
    fn from(v: SubscriptionView) -> Self {
        let s = v.subscription;
        Self {
            organization_id: s.organization_id.as_uuid(),
            tier: s.tier.as_str().to_string(),
            grace: v.terms.grace_until.and(s.grace).map(Into::into),
            terms: (&v.terms).into(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// `PUT .../subscription`.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChangeTierRequest {
    /// The tier to move to (Enterprise is arranged with sales).
    pub tier: SelfServiceTierDto,
}

/// One usage meter.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MeterDto {
    /// In use.
    pub used: u64,
    /// Allowed; absent is unlimited.
    pub limit: Option<u32>,
    /// Left before the limit; absent is unlimited.
    pub remaining: Option<u64>,
}

impl MeterDto {
    fn new(used: u64, limit: Option<u32>) -> Self {
        Self {
            used,
            limit,
            remaining: limit.map(|l| u64::from(l).saturating_sub(used)),
        }
    }
}

/// The team meter: members plus pending invitations.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TeamMeterDto {
    /// Members plus pending invitations.
    pub used: u64,
    /// Allowed; absent is unlimited.
    pub limit: Option<u32>,
    /// Left before the limit; absent is unlimited.
    pub remaining: Option<u64>,
    /// Members.
    pub members: u64,
    /// Pending, unexpired invitations.
    pub pending_invitations: u64,
}

/// Usage against the plan.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UsageDto {
    /// The subscribed tier.
    pub tier: String,
    /// Connected cloud accounts.
    pub cloud_accounts: MeterDto,
    /// Team members.
    pub team_members: TeamMeterDto,
    /// Days of history served and kept; absent is unlimited.
    pub history_retention_days: Option<u32>,
    /// Every feature key with whether the plan includes it now.
    pub features: BTreeMap<String, bool>,
    /// The least tier that fits the current usage.
    pub required_tier: String,
    /// True when the usage goes beyond the plan (after a downgrade by an operator or a
    /// legacy migration): new accounts or members are refused until an upgrade.
    pub upgrade_needed: bool,
    /// Every limit the usage goes beyond.
    pub exceeded: Vec<ProblemLimit>,
    /// When a running grace period ends.
    pub grace_until: Option<DateTime<Utc>>,
}

impl From<UsageReport> for UsageDto {
    fn from(r: UsageReport) -> Self {
        let terms = &r.subscription.terms;
        let u = r.usage;
        Self {
            tier: r.subscription.subscription.tier.as_str().to_string(),
            cloud_accounts: MeterDto::new(u.cloud_accounts, terms.limits.max_accounts),
            team_members: {
                let meter = MeterDto::new(u.team_members(), terms.limits.max_team_members);
                TeamMeterDto {
                    used: meter.used,
                    limit: meter.limit,
                    remaining: meter.remaining,
                    members: u.members,
                    pending_invitations: u.pending_invitations,
                }
            },
            history_retention_days: terms.limits.history_retention_days,
            features: feature_matrix(|f| terms.has(f)),
            required_tier: r.required_tier.as_str().to_string(),
            upgrade_needed: r.upgrade_needed,
            exceeded: r.exceeded.into_iter().map(Into::into).collect(),
            grace_until: terms.grace_until,
        }
    }
}

#[OpenApi(tag = "ApiTags::Billing")]
impl SubscriptionApi {
    /// The organization's subscription and the terms in force (any member).
    #[oai(
        path = "/organizations/:org/subscription",
        method = "get",
        operation_id = "getSubscription"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<Json<SubscriptionDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(state.billing.subscription(&access).await?.into()))
    }

    /// Changes the tier (owner). Free, Individual and Pro are self-service; a downgrade the
    /// current usage does not fit is refused with 409 `downgrade_exceeds_limits` listing
    /// every limit it would break. Choosing a tier ends a legacy grace period.
    #[oai(
        path = "/organizations/:org/subscription",
        method = "put",
        operation_id = "changeSubscription"
    )]
    async fn put(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<ChangeTierRequest>,
    ) -> Result<Json<SubscriptionDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(
            state
                .billing
                .change_tier(&access, body.0.tier.as_str())
                .await?
                .into(),
        ))
    }

    /// Usage meters: accounts and team members against the limits, retention, features,
    /// the tier the usage needs and whether an upgrade is needed (any member).
    #[oai(
        path = "/organizations/:org/usage",
        method = "get",
        operation_id = "getUsage"
    )]
    async fn usage(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<Json<UsageDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(state.billing.usage(&access).await?.into()))
    }
}
