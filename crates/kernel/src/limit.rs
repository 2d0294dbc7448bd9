//! Plan refusals as every domain speaks of them: a countable resource at its cap, or a feature
//! the plan does not include. The billing domain owns the tier table and fills these in
//! (including the tier to recommend); other domains and the edge only pass them on.

/// A countable resource a plan caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedResource {
    /// Connected cloud accounts (AWS accounts and GCP projects).
    CloudAccounts,
    /// Team members: members plus pending, unexpired invitations.
    TeamMembers,
    /// Days of history served: a request reaching further back than the plan keeps.
    HistoryDays,
}

impl LimitedResource {
    /// Stable wire name.
    pub fn key(self) -> &'static str {
        match self {
            LimitedResource::CloudAccounts => "cloudAccounts",
            LimitedResource::TeamMembers => "teamMembers",
            LimitedResource::HistoryDays => "historyRetentionDays",
        }
    }
}

/// A change refused because the organization's plan has no room for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plan {plan} allows {allowed} {}, {used} in use", .resource.key())]
pub struct PlanLimitExceeded {
    /// What is capped.
    pub resource: LimitedResource,
    /// How many are in use now, before the refused change (for history: the days asked for).
    pub used: u64,
    /// How many the plan allows.
    pub allowed: u64,
    /// The plan whose limits apply (its stored spelling; a legacy plan during a grace period).
    pub plan: String,
    /// The least tier with room for the change (its stored spelling).
    pub required_tier: String,
}

/// An action refused because the organization's plan does not include a feature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{feature} is not in the {plan} plan")]
pub struct FeatureNotInPlan {
    /// The feature's stable key (`api_access`, `org_features`, ...).
    pub feature: String,
    /// Its display name, for a sentence.
    pub feature_name: String,
    /// The plan in force (stored spelling).
    pub plan: String,
    /// The least tier that includes the feature (stored spelling).
    pub required_tier: String,
}
