//! What a detection is: a control found in (or declared for) the estate, where it applies,
//! which ATT&CK techniques it addresses and how well, and whether it works.
//!
//! Scope follows the spec's CHECK constraint: `account` detections name one cloud account,
//! `organization` detections name one cloud organization and say which of its accounts they
//! reach (all, listed ones, or the subtrees of OUs / folders). The database enforces the same
//! rule, so a row can never claim both or neither.

use std::collections::BTreeSet;

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_cloud_org::{CloudAccountId, Provider};
use canopy_kernel::id::{OrganizationId, UserId};
use chrono::{DateTime, Utc};

use crate::mapping::{Category, Value};

canopy_kernel::define_id!(
    /// One detection.
    DetectionId
);

/// Which scanner found a detection, as a stable dotted id, or `custom` for one a person
/// declared. The id is stored and shown; renaming one is a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An organization CloudTrail trail (`IsOrganizationTrail`).
    AwsCloudTrailOrgTrail,
    /// GuardDuty run by a delegated administrator for the organization.
    AwsGuardDutyDelegatedAdmin,
    /// Security Hub administered for the organization.
    AwsSecurityHubOrg,
    /// An AWS Config aggregator over the organization.
    AwsConfigOrgAggregator,
    /// A service control policy.
    AwsOrganizationsScp,
    /// A GuardDuty detector of one account, per region.
    AwsGuardDutyDetector,
    /// A CloudTrail trail of one account.
    AwsCloudTrailTrail,
    /// The AWS Config recorder of one account, per region.
    AwsConfigRecorder,
    /// AWS Config rules of one account, per region.
    AwsConfigRules,
    /// Security Hub enabled in one account, per region.
    AwsSecurityHubAccount,
    /// A CloudWatch alarm on a CloudTrail metric filter (the CIS monitoring set).
    AwsCloudWatchAlarm,
    /// A log sink at the GCP organization.
    GcpLoggingOrgSink,
    /// A log sink at a GCP folder.
    GcpLoggingFolderSink,
    /// A log sink of one project.
    GcpLoggingProjectSink,
    /// Security Command Center at the organization.
    GcpSccOrg,
    /// An organization policy constraint, at the organization or a folder.
    GcpOrgPolicyConstraint,
    /// A Cloud Asset Inventory feed at the organization.
    GcpCloudAssetOrgFeed,
    /// Declared by a person (a SIEM rule, a third-party tool).
    Custom,
}

/// Where a source's detections live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// One cloud account or project.
    Account,
    /// A cloud organization.
    Organization,
}

impl ScopeKind {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Account => "account",
            ScopeKind::Organization => "organization",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        [Self::Account, Self::Organization]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

impl Source {
    /// Every source, scanners first, `custom` last.
    pub const ALL: [Source; 18] = [
        Source::AwsCloudTrailOrgTrail,
        Source::AwsGuardDutyDelegatedAdmin,
        Source::AwsSecurityHubOrg,
        Source::AwsConfigOrgAggregator,
        Source::AwsOrganizationsScp,
        Source::AwsGuardDutyDetector,
        Source::AwsCloudTrailTrail,
        Source::AwsConfigRecorder,
        Source::AwsConfigRules,
        Source::AwsSecurityHubAccount,
        Source::AwsCloudWatchAlarm,
        Source::GcpLoggingOrgSink,
        Source::GcpLoggingFolderSink,
        Source::GcpLoggingProjectSink,
        Source::GcpSccOrg,
        Source::GcpOrgPolicyConstraint,
        Source::GcpCloudAssetOrgFeed,
        Source::Custom,
    ];

    /// The stable id.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AwsCloudTrailOrgTrail => "aws.cloudtrail.org_trail",
            Source::AwsGuardDutyDelegatedAdmin => "aws.guardduty.delegated_admin",
            Source::AwsSecurityHubOrg => "aws.securityhub.org",
            Source::AwsConfigOrgAggregator => "aws.config.org_aggregator",
            Source::AwsOrganizationsScp => "aws.organizations.scp",
            Source::AwsGuardDutyDetector => "aws.guardduty.detector",
            Source::AwsCloudTrailTrail => "aws.cloudtrail.trail",
            Source::AwsConfigRecorder => "aws.config.recorder",
            Source::AwsConfigRules => "aws.config.rules",
            Source::AwsSecurityHubAccount => "aws.securityhub.account",
            Source::AwsCloudWatchAlarm => "aws.cloudwatch.alarm",
            Source::GcpLoggingOrgSink => "gcp.logging.org_sink",
            Source::GcpLoggingFolderSink => "gcp.logging.folder_sink",
            Source::GcpLoggingProjectSink => "gcp.logging.project_sink",
            Source::GcpSccOrg => "gcp.scc.org",
            Source::GcpOrgPolicyConstraint => "gcp.orgpolicy.constraint",
            Source::GcpCloudAssetOrgFeed => "gcp.cloudasset.org_feed",
            Source::Custom => "custom",
        }
    }

    /// Reads a stored id.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The scope its detections have; `None` for `custom`, which may have either.
    pub fn scope(self) -> Option<ScopeKind> {
        match self {
            Source::AwsCloudTrailOrgTrail
            | Source::AwsGuardDutyDelegatedAdmin
            | Source::AwsSecurityHubOrg
            | Source::AwsConfigOrgAggregator
            | Source::AwsOrganizationsScp
            | Source::GcpLoggingOrgSink
            | Source::GcpLoggingFolderSink
            | Source::GcpSccOrg
            | Source::GcpOrgPolicyConstraint
            | Source::GcpCloudAssetOrgFeed => Some(ScopeKind::Organization),
            Source::Custom => None,
            _ => Some(ScopeKind::Account),
        }
    }

    /// The provider it scans; `None` for `custom`.
    pub fn provider(self) -> Option<Provider> {
        match self {
            Source::Custom => None,
            s if s.as_str().starts_with("aws.") => Some(Provider::Aws),
            _ => Some(Provider::Gcp),
        }
    }

    /// The scanners of one provider at one scope, in a stable order.
    pub fn scanners(provider: Provider, scope: ScopeKind) -> Vec<Source> {
        Self::ALL
            .into_iter()
            .filter(|s| s.provider() == Some(provider) && s.scope() == Some(scope))
            .collect()
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which accounts of its cloud organization an organization detection reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliesTo {
    /// Every account (an organization trail, an org-wide aggregator).
    AllAccounts,
    /// These accounts or projects, by provider id (GuardDuty members that are enabled).
    Accounts(BTreeSet<String>),
    /// Everything under these OUs / folders / the root, subtrees included (an SCP attached to
    /// an OU, a folder sink with `includeChildren`).
    Nodes(BTreeSet<String>),
    /// Everything under `nodes` but what is under `except` (an organization policy enforced at
    /// the organization and turned off at folders beneath it: where it is off, it is not).
    NodesExcept {
        /// Where it applies, subtrees included.
        nodes: BTreeSet<String>,
        /// Subtrees carved out of them.
        except: BTreeSet<String>,
    },
}

impl AppliesTo {
    /// Stored spelling of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            AppliesTo::AllAccounts => "all_accounts",
            AppliesTo::Accounts(_) => "accounts",
            AppliesTo::Nodes(_) | AppliesTo::NodesExcept { .. } => "nodes",
        }
    }

    /// Why it reaches an account with provider id `key` whose parent node is `parent`, or
    /// `None` when it does not. `hierarchy` places the parent in the tree.
    pub fn reaches(
        &self,
        key: &str,
        parent: Option<&str>,
        hierarchy: &Hierarchy,
    ) -> Option<AppliesBecause> {
        match self {
            AppliesTo::AllAccounts => Some(AppliesBecause::AllAccounts),
            AppliesTo::Accounts(keys) => {
                keys.contains(key).then_some(AppliesBecause::ListedAccount)
            }
            AppliesTo::Nodes(nodes) => under_one_of(nodes, parent?, hierarchy),
            AppliesTo::NodesExcept { nodes, except } => {
                let parent = parent?;
                if under_one_of(except, parent, hierarchy).is_some() {
                    return None;
                }
                under_one_of(nodes, parent, hierarchy)
            }
        }
    }
}

/// The first of `nodes` that `parent` is or sits under.
fn under_one_of(
    nodes: &BTreeSet<String>,
    parent: &str,
    hierarchy: &Hierarchy,
) -> Option<AppliesBecause> {
    nodes
        .iter()
        .find(|node| parent == node.as_str() || hierarchy.is_under(parent, node))
        .map(|node| AppliesBecause::UnderNode(node.clone()))
}

/// Why an organization detection applies to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliesBecause {
    /// It applies to every account.
    AllAccounts,
    /// The account is listed.
    ListedAccount,
    /// The account sits under this node.
    UnderNode(String),
}

/// Where a detection lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One cloud account.
    Account(CloudAccountId),
    /// A cloud organization, reaching some of its accounts.
    Organization {
        /// The cloud organization.
        cloud_organization_id: CloudOrganizationId,
        /// Which accounts.
        applies_to: AppliesTo,
    },
}

impl Scope {
    /// Account or organization.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Account(_) => ScopeKind::Account,
            Scope::Organization { .. } => ScopeKind::Organization,
        }
    }

    /// The account or cloud organization it names, as a listing reads it.
    pub fn as_target(&self) -> crate::ports::Target {
        match self {
            Scope::Account(id) => crate::ports::Target::Account(id.as_uuid()),
            Scope::Organization {
                cloud_organization_id,
                ..
            } => crate::ports::Target::CloudOrganization(cloud_organization_id.as_uuid()),
        }
    }

    /// The id of the account or cloud organization it names.
    pub fn target(&self) -> uuid::Uuid {
        match self {
            Scope::Account(id) => id.as_uuid(),
            Scope::Organization {
                cloud_organization_id,
                ..
            } => cloud_organization_id.as_uuid(),
        }
    }
}

/// Whether a detection works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Found and working.
    Active,
    /// Found but weakened (a trail not logging, single-region); the reason says how.
    Degraded,
    /// Was found before and is gone now (last seen says when).
    Absent,
    /// Could not be checked (denied, throttled out, failed); never taken for absent.
    Unknown,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [
        Status::Active,
        Status::Degraded,
        Status::Absent,
        Status::Unknown,
    ];

    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Degraded => "degraded",
            Status::Absent => "absent",
            Status::Unknown => "unknown",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// One technique a detection addresses: what it does about it and how well.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TechniqueScore {
    /// `T1562.008`.
    pub technique: String,
    /// Detect, protect or respond.
    pub category: Category,
    /// Minimal, partial or significant.
    pub value: Value,
}

impl TechniqueScore {
    /// A score.
    pub fn new(technique: &str, category: Category, value: Value) -> Self {
        Self {
            technique: technique.to_string(),
            category,
            value,
        }
    }
}

/// A detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Id.
    pub id: DetectionId,
    /// The tenant organization.
    pub organization_id: OrganizationId,
    /// Where it lives and what it reaches.
    pub scope: Scope,
    /// The scanner that found it, or `custom`.
    pub source: Source,
    /// What it is within its scope and source (a trail ARN, `us-east-1`, a policy id, a sink
    /// name): a re-scan updates the detection with the same key instead of adding one.
    pub resource_key: String,
    /// Name shown.
    pub name: String,
    /// What it is, for people.
    pub description: Option<String>,
    /// Techniques it addresses, sorted, one score per (technique, category).
    pub techniques: Vec<TechniqueScore>,
    /// Whether it works.
    pub status: Status,
    /// Why it is degraded, absent or unknown.
    pub reason: Option<String>,
    /// What to do about it.
    pub advice: Option<String>,
    /// What was read: ARNs, ids, regions, settings.
    pub evidence: serde_json::Value,
    /// First found by a scan (or created).
    pub first_seen_at: DateTime<Utc>,
    /// Last found present by a scan (or edited).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The scan job that last wrote it.
    pub last_scan_job_id: Option<uuid::Uuid>,
    /// Who declared it (custom detections).
    pub created_by: Option<UserId>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Detection {
    /// The cloud organization it belongs to, for organization scope.
    pub fn cloud_organization_id(&self) -> Option<CloudOrganizationId> {
        match &self.scope {
            Scope::Organization {
                cloud_organization_id,
                ..
            } => Some(*cloud_organization_id),
            Scope::Account(_) => None,
        }
    }
}

/// Normalizes a technique list: sorted, one entry per (technique, category) keeping the best
/// value, so two scans that read the same thing write the same list.
pub fn normalize(mut scores: Vec<TechniqueScore>) -> Vec<TechniqueScore> {
    scores.sort_by(|a, b| {
        (a.technique.as_str(), a.category, std::cmp::Reverse(a.value)).cmp(&(
            b.technique.as_str(),
            b.category,
            std::cmp::Reverse(b.value),
        ))
    });
    scores.dedup_by(|later, kept| {
        later.technique == kept.technique && later.category == kept.category
    });
    scores
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, NodeKind};

    fn node(id: &str, parent: Option<&str>) -> DiscoveredNode {
        DiscoveredNode {
            id: id.into(),
            parent_id: parent.map(str::to_string),
            name: id.into(),
            kind: if parent.is_none() {
                NodeKind::Root
            } else {
                NodeKind::OrganizationalUnit
            },
        }
    }

    fn tree() -> Hierarchy {
        Hierarchy::build(
            vec![
                node("r-root", None),
                node("ou-prod", Some("r-root")),
                node("ou-web", Some("ou-prod")),
                node("ou-dev", Some("r-root")),
            ],
            5,
        )
        .expect("a valid tree")
    }

    #[test]
    fn a_node_reaches_its_subtree_and_not_a_sibling() {
        let scp = AppliesTo::Nodes(BTreeSet::from(["ou-prod".to_string()]));
        let tree = tree();
        assert_eq!(
            scp.reaches("111111111111", Some("ou-web"), &tree),
            Some(AppliesBecause::UnderNode("ou-prod".into()))
        );
        assert_eq!(
            scp.reaches("111111111111", Some("ou-prod"), &tree),
            Some(AppliesBecause::UnderNode("ou-prod".into()))
        );
        assert_eq!(scp.reaches("222222222222", Some("ou-dev"), &tree), None);
        assert_eq!(scp.reaches("222222222222", None, &tree), None);
    }

    #[test]
    fn a_carved_out_subtree_is_not_reached_and_the_rest_is() {
        let policy = AppliesTo::NodesExcept {
            nodes: BTreeSet::from(["r-root".to_string()]),
            except: BTreeSet::from(["ou-prod".to_string()]),
        };
        let tree = tree();
        // Under the carved-out folder, at any depth: not reached.
        assert_eq!(policy.reaches("1", Some("ou-prod"), &tree), None);
        assert_eq!(policy.reaches("1", Some("ou-web"), &tree), None);
        // A sibling branch and the root itself: reached through the root.
        assert_eq!(
            policy.reaches("2", Some("ou-dev"), &tree),
            Some(AppliesBecause::UnderNode("r-root".into()))
        );
        assert_eq!(
            policy.reaches("3", Some("r-root"), &tree),
            Some(AppliesBecause::UnderNode("r-root".into()))
        );
        assert_eq!(policy.reaches("4", None, &tree), None);
    }

    #[test]
    fn listed_accounts_reach_only_themselves() {
        let gd = AppliesTo::Accounts(BTreeSet::from(["111111111111".to_string()]));
        assert!(
            gd.reaches("111111111111", Some("ou-dev"), &tree())
                .is_some()
        );
        assert!(
            gd.reaches("222222222222", Some("ou-dev"), &tree())
                .is_none()
        );
    }

    #[test]
    fn sources_round_trip_and_split_by_provider_and_scope() {
        for source in Source::ALL {
            assert_eq!(Source::from_stored(source.as_str()), Some(source));
        }
        let org_aws = Source::scanners(Provider::Aws, ScopeKind::Organization);
        assert_eq!(org_aws.len(), 5);
        assert!(org_aws.contains(&Source::AwsOrganizationsScp));
        let account_gcp = Source::scanners(Provider::Gcp, ScopeKind::Account);
        assert_eq!(account_gcp, vec![Source::GcpLoggingProjectSink]);
        assert_eq!(Source::Custom.scope(), None);
    }

    #[test]
    fn normalize_keeps_the_best_value_per_technique_and_category() {
        let scores = normalize(vec![
            TechniqueScore::new("T1530", Category::Detect, Value::Minimal),
            TechniqueScore::new("T1078.004", Category::Detect, Value::Partial),
            TechniqueScore::new("T1530", Category::Detect, Value::Significant),
            TechniqueScore::new("T1530", Category::Protect, Value::Minimal),
        ]);
        assert_eq!(
            scores,
            vec![
                TechniqueScore::new("T1078.004", Category::Detect, Value::Partial),
                TechniqueScore::new("T1530", Category::Detect, Value::Significant),
                TechniqueScore::new("T1530", Category::Protect, Value::Minimal),
            ]
        );
    }
}
