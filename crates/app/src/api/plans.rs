//! The plans: everything a pricing page needs, straight from the billing table.

use std::collections::BTreeMap;

use canopy_billing::{Feature, PLANS, Plan};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::problem::ApiError;

/// Plan endpoints.
pub struct PlansApi;

/// Limits of a plan; absent is unlimited.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PlanLimitsDto {
    /// Connected cloud accounts.
    pub max_accounts: Option<u32>,
    /// Team members, counting pending invitations.
    pub max_team_members: Option<u32>,
    /// Days of history kept and served.
    pub history_retention_days: Option<u32>,
}

/// One tier.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PlanDto {
    /// free, individual, pro or enterprise.
    pub tier: String,
    /// Name to show.
    pub display_name: String,
    /// Monthly price in US cents; absent is custom pricing (contact sales).
    pub price_monthly_cents: Option<u32>,
    /// Limits.
    pub limits: PlanLimitsDto,
    /// Every feature key with whether this plan includes it.
    pub features: BTreeMap<String, bool>,
}

impl From<&Plan> for PlanDto {
    fn from(p: &Plan) -> Self {
        Self {
            tier: p.tier.as_str().to_string(),
            display_name: p.display_name.to_string(),
            price_monthly_cents: p.price_monthly_cents,
            limits: PlanLimitsDto {
                max_accounts: p.max_accounts,
                max_team_members: p.max_team_members,
                history_retention_days: p.history_retention_days,
            },
            features: feature_matrix(|f| p.has(f)),
        }
    }
}

/// Every feature key with whether `has` includes it.
pub fn feature_matrix(has: impl Fn(Feature) -> bool) -> BTreeMap<String, bool> {
    Feature::ALL
        .iter()
        .map(|f| (f.key().to_string(), has(*f)))
        .collect()
}

/// A feature row of the pricing matrix.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct FeatureDto {
    /// Key used in each plan's `features`.
    pub key: String,
    /// Name to show.
    pub display_name: String,
}

/// The plans and the feature matrix.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PlansDto {
    /// Every tier, smallest first.
    pub plans: Vec<PlanDto>,
    /// Every feature, in display order.
    pub features: Vec<FeatureDto>,
}

#[OpenApi(tag = "ApiTags::Billing")]
impl PlansApi {
    /// The tiers with price, limits and the feature matrix (no sign-in needed).
    #[oai(path = "/plans", method = "get", operation_id = "listPlans")]
    async fn plans(&self) -> Result<Json<PlansDto>, ApiError> {
        Ok(Json(PlansDto {
            plans: PLANS.iter().map(Into::into).collect(),
            features: Feature::ALL
                .iter()
                .map(|f| FeatureDto {
                    key: f.key().to_string(),
                    display_name: f.display_name().to_string(),
                })
                .collect(),
        }))
    }
}
