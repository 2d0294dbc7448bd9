//! What an organization uses of its plan, and which tier that usage needs.

use canopy_kernel::LimitedResource;

use crate::plan::{Tier, least_tier_allowing, required_tier};

/// Counts of what a plan caps, taken at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Connected cloud accounts (any status).
    pub cloud_accounts: u64,
    /// Members.
    pub members: u64,
    /// Pending invitations that have not expired; they hold a seat until answered.
    pub pending_invitations: u64,
}

impl Usage {
    /// Members plus pending invitations: what the team-member limit counts.
    pub fn team_members(&self) -> u64 {
        self.members + self.pending_invitations
    }

    /// The count the cap on `resource` applies to. History is not a count of things in use
    /// (it is checked per request, [`crate::Terms::history_from`]): zero.
    pub fn count(&self, resource: LimitedResource) -> u64 {
        match resource {
            LimitedResource::CloudAccounts => self.cloud_accounts,
            LimitedResource::TeamMembers => self.team_members(),
            LimitedResource::HistoryDays => 0,
        }
    }

    /// The least tier that fits this usage: the spec's rule for accounts and organization
    /// features, raised when the accounts alone (the spec's rule answers Pro for organization
    /// features whatever the count) or the team need a bigger plan.
    pub fn required_tier(&self, wants_org_features: bool) -> Tier {
        required_tier(self.cloud_accounts, wants_org_features)
            .max(required_tier(self.cloud_accounts, false))
            .max(least_tier_allowing(
                LimitedResource::TeamMembers,
                self.team_members(),
            ))
    }
}

/// One cap a usage goes beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// What.
    pub resource: LimitedResource,
    /// In use.
    pub used: u64,
    /// Allowed.
    pub allowed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_tier_takes_the_team_into_account() {
        let usage = |cloud_accounts, members, pending_invitations| Usage {
            cloud_accounts,
            members,
            pending_invitations,
        };
        assert_eq!(usage(1, 1, 0).required_tier(false), Tier::Free);
        assert_eq!(usage(1, 1, 1).required_tier(false), Tier::Individual);
        assert_eq!(usage(3, 2, 2).required_tier(false), Tier::Pro);
        assert_eq!(usage(7, 1, 0).required_tier(false), Tier::Pro);
        assert_eq!(usage(2, 11, 0).required_tier(false), Tier::Enterprise);
        assert_eq!(usage(501, 1, 0).required_tier(true), Tier::Enterprise);
        assert_eq!(usage(0, 1, 0).required_tier(true), Tier::Pro);
    }
}
