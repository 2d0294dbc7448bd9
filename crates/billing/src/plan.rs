//! The tier table (spec "New Billing Model", `TIER_CONFIG`) and the upgrade logic.

use canopy_kernel::LimitedResource;

/// A billing tier. Ordered from smallest to largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Try it out: one account.
    Free,
    /// $29/month: up to 6 accounts, account-level policies.
    Individual,
    /// $250/month: up to 500 accounts, organization-level features.
    Pro,
    /// Custom: unlimited, SSO, dedicated support, SLAs.
    Enterprise,
}

impl Tier {
    /// Every tier, smallest first.
    pub const ALL: [Tier; 4] = [Tier::Free, Tier::Individual, Tier::Pro, Tier::Enterprise];

    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Individual => "individual",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Tier::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// Display name.
    pub fn display_name(self) -> &'static str {
        plan(self).display_name
    }
}

/// A feature a plan may include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Scheduled scans.
    ScheduledScans,
    /// API access.
    ApiAccess,
    /// Organization-level features: AWS/GCP Organization connection, org-level scanning.
    OrgFeatures,
    /// Report export.
    ExportReports,
    /// The unified organization coverage dashboard.
    OrgDashboard,
    /// Auto-discovery of member accounts.
    AutoDiscovery,
    /// Delegated-admin scanning.
    DelegatedScanning,
    /// SSO / SAML.
    SsoSaml,
    /// Dedicated support.
    DedicatedSupport,
    /// Custom integrations.
    CustomIntegrations,
    /// Contractual SLA.
    Sla,
}

impl Feature {
    /// Every feature, in pricing-page order.
    pub const ALL: [Feature; 11] = [
        Feature::ScheduledScans,
        Feature::ApiAccess,
        Feature::OrgFeatures,
        Feature::ExportReports,
        Feature::OrgDashboard,
        Feature::AutoDiscovery,
        Feature::DelegatedScanning,
        Feature::SsoSaml,
        Feature::DedicatedSupport,
        Feature::CustomIntegrations,
        Feature::Sla,
    ];

    /// Reads a key.
    pub fn from_key(raw: &str) -> Option<Self> {
        Feature::ALL.into_iter().find(|f| f.key() == raw)
    }

    /// Stable key (`TIER_CONFIG`'s names).
    pub fn key(self) -> &'static str {
        match self {
            Feature::ScheduledScans => "scheduled_scans",
            Feature::ApiAccess => "api_access",
            Feature::OrgFeatures => "org_features",
            Feature::ExportReports => "export_reports",
            Feature::OrgDashboard => "org_dashboard",
            Feature::AutoDiscovery => "auto_discovery",
            Feature::DelegatedScanning => "delegated_scanning",
            Feature::SsoSaml => "sso_saml",
            Feature::DedicatedSupport => "dedicated_support",
            Feature::CustomIntegrations => "custom_integrations",
            Feature::Sla => "sla",
        }
    }

    /// Name for a pricing page.
    pub fn display_name(self) -> &'static str {
        match self {
            Feature::ScheduledScans => "Scheduled scans",
            Feature::ApiAccess => "API access",
            Feature::OrgFeatures => "AWS and GCP Organization connection, org-level scanning",
            Feature::ExportReports => "Export reports",
            Feature::OrgDashboard => "Unified organization coverage dashboard",
            Feature::AutoDiscovery => "Auto-discovery of accounts",
            Feature::DelegatedScanning => "Delegated admin scanning",
            Feature::SsoSaml => "SSO / SAML",
            Feature::DedicatedSupport => "Dedicated support",
            Feature::CustomIntegrations => "Custom integrations",
            Feature::Sla => "Custom SLAs",
        }
    }
}

/// One tier's price, limits and features. `None` limits are unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The tier.
    pub tier: Tier,
    /// Name on the pricing page.
    pub display_name: &'static str,
    /// Monthly price in US cents; `None` is custom pricing.
    pub price_monthly_cents: Option<u32>,
    /// Connected cloud accounts allowed.
    pub max_accounts: Option<u32>,
    /// Team members (members plus pending invitations) allowed.
    pub max_team_members: Option<u32>,
    /// Days of history served and kept.
    pub history_retention_days: Option<u32>,
    /// Included features.
    pub features: &'static [Feature],
}

impl Plan {
    /// True when the plan includes `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }

    /// The plan's cap on `resource`; `None` is unlimited.
    pub fn limit(&self, resource: LimitedResource) -> Option<u32> {
        match resource {
            LimitedResource::CloudAccounts => self.max_accounts,
            LimitedResource::TeamMembers => self.max_team_members,
            LimitedResource::HistoryDays => self.history_retention_days,
        }
    }
}

pub(crate) const PAID: &[Feature] = &[
    Feature::ScheduledScans,
    Feature::ApiAccess,
    Feature::ExportReports,
];
const ORG: &[Feature] = &[
    Feature::ScheduledScans,
    Feature::ApiAccess,
    Feature::OrgFeatures,
    Feature::ExportReports,
    Feature::OrgDashboard,
    Feature::AutoDiscovery,
    Feature::DelegatedScanning,
];

/// The tier table, exactly as the spec's `TIER_CONFIG`.
pub const PLANS: [Plan; 4] = [
    Plan {
        tier: Tier::Free,
        display_name: "Free",
        price_monthly_cents: Some(0),
        max_accounts: Some(1),
        max_team_members: Some(1),
        history_retention_days: Some(30),
        features: &[],
    },
    Plan {
        tier: Tier::Individual,
        display_name: "Individual",
        price_monthly_cents: Some(2_900),
        max_accounts: Some(6),
        max_team_members: Some(3),
        history_retention_days: Some(90),
        features: PAID,
    },
    Plan {
        tier: Tier::Pro,
        display_name: "Pro",
        price_monthly_cents: Some(25_000),
        max_accounts: Some(500),
        max_team_members: Some(10),
        history_retention_days: Some(365),
        features: ORG,
    },
    Plan {
        tier: Tier::Enterprise,
        display_name: "Enterprise",
        price_monthly_cents: None,
        max_accounts: None,
        max_team_members: None,
        history_retention_days: None,
        features: &Feature::ALL,
    },
];

/// The plan of a tier.
pub fn plan(tier: Tier) -> &'static Plan {
    match tier {
        Tier::Free => &PLANS[0],
        Tier::Individual => &PLANS[1],
        Tier::Pro => &PLANS[2],
        Tier::Enterprise => &PLANS[3],
    }
}

/// The least tier whose plan includes `feature`.
pub fn least_tier_with(feature: Feature) -> Tier {
    PLANS
        .iter()
        .find(|p| p.has(feature))
        .map_or(Tier::Enterprise, |p| p.tier)
}

/// The least tier whose plan allows `count` of `resource`. For cloud accounts this agrees
/// with [`required_tier`] without organization features.
pub fn least_tier_allowing(resource: LimitedResource, count: u64) -> Tier {
    PLANS
        .iter()
        .find(|p| p.limit(resource).is_none_or(|max| count <= u64::from(max)))
        .map_or(Tier::Enterprise, |p| p.tier)
}

/// The least tier a usage needs, exactly as the spec's `get_required_tier`: wanting
/// organization features needs Pro (whatever the count); otherwise more than 500 accounts
/// needs Enterprise, more than 6 Pro, more than 1 Individual.
pub fn required_tier(account_count: u64, wants_org_features: bool) -> Tier {
    if wants_org_features {
        return Tier::Pro;
    }
    if account_count > 500 {
        return Tier::Enterprise;
    }
    if account_count > 6 {
        return Tier::Pro;
    }
    if account_count > 1 {
        return Tier::Individual;
    }
    Tier::Free
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_tier_at_every_boundary() {
        let cases = [
            (0, Tier::Free),
            (1, Tier::Free),
            (2, Tier::Individual),
            (6, Tier::Individual),
            (7, Tier::Pro),
            (500, Tier::Pro),
            (501, Tier::Enterprise),
        ];
        for (count, tier) in cases {
            assert_eq!(required_tier(count, false), tier, "{count} accounts");
            assert_eq!(
                required_tier(count, true),
                Tier::Pro,
                "{count} accounts with org features"
            );
        }
    }

    #[test]
    fn the_required_tier_always_fits_the_count_without_org_features() {
        for count in 0..=600u64 {
            let p = plan(required_tier(count, false));
            assert!(
                p.max_accounts.is_none_or(|max| count <= u64::from(max)),
                "{count}"
            );
            if let Some(smaller) = Tier::ALL.iter().rev().find(|t| **t < p.tier) {
                let max = plan(*smaller).max_accounts.map(u64::from);
                assert!(
                    max.is_some_and(|m| count > m) || count <= 1,
                    "{count} would fit {smaller:?}"
                );
            }
        }
    }

    #[test]
    fn least_tier_allowing_agrees_with_required_tier_for_accounts() {
        for count in 0..=600u64 {
            assert_eq!(
                least_tier_allowing(LimitedResource::CloudAccounts, count),
                required_tier(count, false),
                "{count}"
            );
        }
        let members = |n| least_tier_allowing(LimitedResource::TeamMembers, n);
        assert_eq!(
            [
                members(1),
                members(2),
                members(3),
                members(4),
                members(10),
                members(11)
            ],
            [
                Tier::Free,
                Tier::Individual,
                Tier::Individual,
                Tier::Pro,
                Tier::Pro,
                Tier::Enterprise
            ]
        );
    }

    #[test]
    fn each_feature_is_first_offered_where_the_matrix_says() {
        assert_eq!(least_tier_with(Feature::ApiAccess), Tier::Individual);
        assert_eq!(least_tier_with(Feature::ScheduledScans), Tier::Individual);
        assert_eq!(least_tier_with(Feature::OrgFeatures), Tier::Pro);
        assert_eq!(least_tier_with(Feature::AutoDiscovery), Tier::Pro);
        assert_eq!(least_tier_with(Feature::SsoSaml), Tier::Enterprise);
        for f in Feature::ALL {
            assert_eq!(Feature::from_key(f.key()), Some(f));
        }
    }

    #[test]
    fn the_table_matches_the_spec() {
        let limits: Vec<_> = PLANS
            .iter()
            .map(|p| {
                (
                    p.price_monthly_cents,
                    p.max_accounts,
                    p.max_team_members,
                    p.history_retention_days,
                )
            })
            .collect();
        assert_eq!(
            limits,
            [
                (Some(0), Some(1), Some(1), Some(30)),
                (Some(2_900), Some(6), Some(3), Some(90)),
                (Some(25_000), Some(500), Some(10), Some(365)),
                (None, None, None, None)
            ]
        );
        assert!(!plan(Tier::Free).has(Feature::ApiAccess));
        assert!(
            plan(Tier::Individual).has(Feature::ApiAccess)
                && !plan(Tier::Individual).has(Feature::OrgFeatures)
        );
        assert!(
            plan(Tier::Pro).has(Feature::OrgFeatures) && !plan(Tier::Pro).has(Feature::SsoSaml)
        );
        assert!(Feature::ALL.iter().all(|f| plan(Tier::Enterprise).has(*f)));
        for t in Tier::ALL {
            assert_eq!(plan(t).tier, t);
            assert_eq!(Tier::from_stored(t.as_str()), Some(t));
        }
    }
}
