//! Plan limits as every domain speaks of them: which countable resource a plan caps, and the
//! refusal when a change would go past the cap. The billing domain owns the numbers; tenancy
//! and cloud accounts only need to say "this change hit a limit".

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
    /// The tier the organization is on (its stored spelling).
    pub plan: String,
}
