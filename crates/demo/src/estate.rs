//! The demo cloud's organizations: an AWS Organization (a management account and eight members
//! in an OU tree three levels deep) and a GCP Organization (five projects in a folder tree),
//! with the controls each account holds. Fixed data, so every run of `canopy serve --demo`
//! discovers and scans the same estate.
//!
//! The controls are described, not scored: the scanners (`scanners.rs`) score them with the
//! detection domain's own tables, as the real scanners do.

use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, NodeKind};
use canopy_cloud_org::organization::member::{DiscoveredMember, MemberState};
use canopy_cloud_org::organization::{Discovery, OrganizationIdentity};
use chrono::{DateTime, Utc};

/// The demo AWS Organization's id.
pub const AWS_ORGANIZATION_ID: &str = "o-d3mocanopy1";
/// Its management account.
pub const AWS_MANAGEMENT_ACCOUNT: &str = "310987654100";
/// The role Canopy assumes in the management account.
pub const AWS_MANAGEMENT_ROLE: &str = "arn:aws:iam::310987654100:role/CanopyManagement";
/// Its root.
pub const AWS_ROOT: &str = "r-d3mo";
/// OU Workloads, under the root.
pub const OU_WORKLOADS: &str = "ou-d3mo-wkld0001";
/// OU Prod, under Workloads: the OU the demo's SCP is attached to.
pub const OU_PROD: &str = "ou-d3mo-prod0001";
/// OU PCI, under Prod: inherits Prod's SCP through the subtree.
pub const OU_PCI: &str = "ou-d3mo-pci00001";
/// OU Staging, under Workloads: Prod's sibling, out of the SCP's reach.
pub const OU_STAGING: &str = "ou-d3mo-stag0001";
/// OU Security, under the root.
pub const OU_SECURITY: &str = "ou-d3mo-secu0001";
/// OU Sandbox, under the root.
pub const OU_SANDBOX: &str = "ou-d3mo-sand0001";
/// The member that administers GuardDuty for the organization.
pub const AWS_SECURITY_ACCOUNT: &str = "310987654101";

/// The demo GCP Organization.
pub const GCP_ORGANIZATION: &str = "organizations/530000000001";
/// The service account the demo GCP Organization is connected with (impersonated, so no key
/// is stored).
pub const GCP_SERVICE_ACCOUNT: &str = "canopy-reader@demo-admin.iam.gserviceaccount.com";
/// Folder Production: holds the demo's folder sink and a folder policy.
pub const FOLDER_PRODUCTION: &str = "folders/531000000001";
/// Folder Payments, under Production.
pub const FOLDER_PAYMENTS: &str = "folders/531000000002";
/// Folder Development, Production's sibling.
pub const FOLDER_DEVELOPMENT: &str = "folders/531000000003";
/// Folder Shared.
pub const FOLDER_SHARED: &str = "folders/531000000004";

/// A control one account or project of the demo holds, as a scanner would read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// A GuardDuty detector in us-east-1; suspended when `enabled` is false.
    GuardDuty {
        /// Whether the detector runs.
        enabled: bool,
    },
    /// The account's own CloudTrail trail.
    Trail {
        /// Whether it records every region.
        multi_region: bool,
        /// Whether it records S3 data events.
        data_events: bool,
    },
    /// The AWS Config recorder in us-east-1.
    ConfigRecorder {
        /// Whether it records.
        recording: bool,
    },
    /// AWS Config rules in us-east-1.
    ConfigRules(u32),
    /// Security Hub in us-east-1.
    SecurityHub,
    /// CloudWatch alarms on CloudTrail metric filters, by CIS alarm id.
    Alarms(&'static [&'static str]),
    /// The member role lacks the AWS Config read permissions: Config cannot be read.
    ConfigDenied,
    /// The account's role does not trust Canopy: every read fails at `sts:AssumeRole`.
    RoleRefused,
    /// A project log sink.
    ProjectSink {
        /// Its name.
        name: &'static str,
        /// Whether it is disabled.
        disabled: bool,
        /// Whether it routes Data Access logs as well as Admin Activity.
        data_access: bool,
    },
}

/// One account or project of a demo organization.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    /// AWS account id or GCP project id.
    pub key: &'static str,
    /// GCP project number.
    pub number: Option<&'static str>,
    /// Name.
    pub name: &'static str,
    /// The OU, folder or root it sits in.
    pub parent: &'static str,
    /// What it holds.
    pub controls: &'static [Control],
}

const AWS_NODES: [(&str, Option<&str>, &str); 7] = [
    (AWS_ROOT, None, "Root"),
    (OU_WORKLOADS, Some(AWS_ROOT), "Workloads"),
    (OU_PROD, Some(OU_WORKLOADS), "Prod"),
    (OU_PCI, Some(OU_PROD), "PCI"),
    (OU_STAGING, Some(OU_WORKLOADS), "Staging"),
    (OU_SECURITY, Some(AWS_ROOT), "Security"),
    (OU_SANDBOX, Some(AWS_ROOT), "Sandbox"),
];

/// The AWS Organization's accounts, the management account first. Each holds different
/// controls, so their own coverage differs: one much, one a degraded trail, one a suspended
/// detector, one Config it cannot read, one nothing.
pub(crate) const AWS_MEMBERS: [Member; 9] = [
    Member {
        key: AWS_MANAGEMENT_ACCOUNT,
        number: None,
        name: "demo-management",
        parent: AWS_ROOT,
        controls: &[Control::Alarms(&[
            "root_usage",
            "cloudtrail_changes",
            "organizations_changes",
        ])],
    },
    Member {
        key: AWS_SECURITY_ACCOUNT,
        number: None,
        name: "security-tooling",
        parent: OU_SECURITY,
        controls: &[Control::GuardDuty { enabled: true }, Control::SecurityHub],
    },
    Member {
        key: "310987654102",
        number: None,
        name: "log-archive",
        parent: OU_SECURITY,
        controls: &[Control::ConfigRecorder { recording: false }],
    },
    Member {
        key: "310987654103",
        number: None,
        name: "payments-prod",
        parent: OU_PCI,
        controls: &[
            Control::GuardDuty { enabled: true },
            Control::ConfigRecorder { recording: true },
            Control::ConfigRules(42),
            Control::SecurityHub,
            Control::Alarms(&[
                "iam_policy_changes",
                "console_signin_failures",
                "security_group_changes",
            ]),
        ],
    },
    Member {
        key: "310987654104",
        number: None,
        name: "web-prod",
        parent: OU_PROD,
        controls: &[Control::Trail {
            multi_region: false,
            data_events: true,
        }],
    },
    Member {
        key: "310987654105",
        number: None,
        name: "payments-staging",
        parent: OU_STAGING,
        controls: &[
            Control::GuardDuty { enabled: true },
            Control::ConfigRecorder { recording: true },
        ],
    },
    Member {
        key: "310987654106",
        number: None,
        name: "web-staging",
        parent: OU_STAGING,
        controls: &[],
    },
    Member {
        key: "310987654107",
        number: None,
        name: "sandbox-alice",
        parent: OU_SANDBOX,
        controls: &[Control::ConfigDenied],
    },
    Member {
        key: "310987654108",
        number: None,
        name: "sandbox-bob",
        parent: OU_SANDBOX,
        controls: &[Control::GuardDuty { enabled: false }],
    },
];

const GCP_NODES: [(&str, Option<&str>, &str); 5] = [
    (GCP_ORGANIZATION, None, "demo.canopy.dev"),
    (FOLDER_PRODUCTION, Some(GCP_ORGANIZATION), "Production"),
    (FOLDER_PAYMENTS, Some(FOLDER_PRODUCTION), "Payments"),
    (FOLDER_DEVELOPMENT, Some(GCP_ORGANIZATION), "Development"),
    (FOLDER_SHARED, Some(GCP_ORGANIZATION), "Shared"),
];

/// The GCP Organization's projects.
pub(crate) const GCP_PROJECTS: [Member; 5] = [
    Member {
        key: "pay-api-prod",
        number: Some("532000000001"),
        name: "Payments API",
        parent: FOLDER_PAYMENTS,
        controls: &[Control::ProjectSink {
            name: "payments-audit-to-siem",
            disabled: false,
            data_access: true,
        }],
    },
    Member {
        key: "web-frontend-prod",
        number: Some("532000000002"),
        name: "Web frontend",
        parent: FOLDER_PRODUCTION,
        controls: &[],
    },
    Member {
        key: "analytics-dev",
        number: Some("532000000003"),
        name: "Analytics (dev)",
        parent: FOLDER_DEVELOPMENT,
        controls: &[],
    },
    Member {
        key: "dev-playground",
        number: Some("532000000004"),
        name: "Playground",
        parent: FOLDER_DEVELOPMENT,
        controls: &[],
    },
    Member {
        key: "shared-logging",
        number: Some("532000000005"),
        name: "Shared logging",
        parent: FOLDER_SHARED,
        controls: &[Control::ProjectSink {
            name: "legacy-export",
            disabled: true,
            data_access: false,
        }],
    },
];

/// The demo's standalone AWS accounts (connected one by one for the SES dashboard, in no
/// organization, so `parent` is empty) and what each holds: each its own coverage, with
/// nothing inherited. The last one's role refuses Canopy, as it refuses the metrics reads.
pub(crate) const AWS_STANDALONE: [Member; 6] = [
    Member {
        key: "210987654001",
        number: None,
        name: "Production US",
        parent: "",
        controls: &[
            Control::GuardDuty { enabled: true },
            Control::Trail {
                multi_region: true,
                data_events: true,
            },
            Control::ConfigRecorder { recording: true },
            Control::ConfigRules(18),
            Control::Alarms(&["root_usage", "iam_policy_changes"]),
        ],
    },
    Member {
        key: "210987654002",
        number: None,
        name: "Production EU",
        parent: "",
        controls: &[
            Control::GuardDuty { enabled: true },
            Control::Trail {
                multi_region: false,
                data_events: false,
            },
        ],
    },
    Member {
        key: "210987654003",
        number: None,
        name: "Marketing",
        parent: "",
        controls: &[Control::Alarms(&["console_signin_failures"])],
    },
    Member {
        key: "210987654004",
        number: None,
        name: "Staging",
        parent: "",
        controls: &[Control::GuardDuty { enabled: false }],
    },
    Member {
        key: "210987654005",
        number: None,
        name: "Development",
        parent: "",
        controls: &[],
    },
    Member {
        key: "210987654006",
        number: None,
        name: "Legacy mailer",
        parent: "",
        controls: &[Control::RoleRefused],
    },
];

/// The demo AWS account `key` (a member of the demo organization or a standalone one), when
/// it is one.
pub(crate) fn aws_member(key: &str) -> Option<&'static Member> {
    AWS_MEMBERS
        .iter()
        .chain(AWS_STANDALONE.iter())
        .find(|m| m.key == key)
}

/// The demo GCP project `key`, when it is one.
pub(crate) fn gcp_project(key: &str) -> Option<&'static Member> {
    GCP_PROJECTS.iter().find(|m| m.key == key)
}

/// When the demo's accounts joined: a fixed instant, so discovery reads the same every time.
fn joined() -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339("2024-03-04T09:00:00Z")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn nodes(table: &[(&str, Option<&str>, &str)], kind: NodeKind) -> Vec<DiscoveredNode> {
    table
        .iter()
        .map(|(id, parent, name)| DiscoveredNode {
            id: (*id).to_string(),
            parent_id: parent.map(str::to_string),
            name: (*name).to_string(),
            kind: if parent.is_none() {
                NodeKind::Root
            } else {
                kind
            },
        })
        .collect()
}

/// The AWS Organization as Organizations describes it.
pub(crate) fn aws_identity() -> OrganizationIdentity {
    OrganizationIdentity {
        cloud_org_id: AWS_ORGANIZATION_ID.into(),
        arn: Some(format!(
            "arn:aws:organizations::{AWS_MANAGEMENT_ACCOUNT}:organization/{AWS_ORGANIZATION_ID}"
        )),
        management_account_id: Some(AWS_MANAGEMENT_ACCOUNT.into()),
        management_account_email: Some("aws+management@demo.canopy.dev".into()),
        display_name: None,
        directory_customer_id: None,
        lifecycle_state: None,
    }
}

/// The GCP Organization as Resource Manager describes it.
pub(crate) fn gcp_identity() -> OrganizationIdentity {
    OrganizationIdentity {
        cloud_org_id: GCP_ORGANIZATION.into(),
        arn: None,
        management_account_id: None,
        management_account_email: None,
        display_name: Some("demo.canopy.dev".into()),
        directory_customer_id: Some("C0d3m0c4n".into()),
        lifecycle_state: Some("ACTIVE".into()),
    }
}

/// Everything a discovery of the AWS Organization reads.
pub(crate) fn aws_discovery() -> Discovery {
    let members = AWS_MEMBERS
        .iter()
        .map(|m| DiscoveredMember {
            key: m.key.into(),
            number: None,
            name: m.name.into(),
            email: Some(format!("aws+{}@demo.canopy.dev", m.name)),
            state: MemberState::Active,
            joined_method: Some("CREATED".into()),
            joined_at: joined(),
            parent_id: m.parent.into(),
            is_management: m.key == AWS_MANAGEMENT_ACCOUNT,
            delegated_admin_services: if m.key == AWS_SECURITY_ACCOUNT {
                vec!["guardduty.amazonaws.com".into()]
            } else {
                Vec::new()
            },
        })
        .collect();
    Discovery {
        identity: aws_identity(),
        nodes: nodes(&AWS_NODES, NodeKind::OrganizationalUnit),
        members,
        unreadable: Vec::new(),
        throttled_retries: 0,
        throttled_ms: 0,
    }
}

/// Everything a discovery of the GCP Organization reads.
pub(crate) fn gcp_discovery() -> Discovery {
    let members = GCP_PROJECTS
        .iter()
        .map(|m| DiscoveredMember {
            key: m.key.into(),
            number: m.number.map(str::to_string),
            name: m.name.into(),
            email: None,
            state: MemberState::Active,
            joined_method: None,
            joined_at: None,
            parent_id: m.parent.into(),
            is_management: false,
            delegated_admin_services: Vec::new(),
        })
        .collect();
    Discovery {
        identity: gcp_identity(),
        nodes: nodes(&GCP_NODES, NodeKind::Folder),
        members,
        unreadable: Vec::new(),
        throttled_retries: 0,
        throttled_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use canopy_cloud_org::identifiers::{AwsAccountId, GcpProjectId};
    use canopy_cloud_org::organization::hierarchy::{AWS_MAX_DEPTH, GCP_MAX_DEPTH, Hierarchy};

    use super::*;

    #[test]
    fn both_trees_are_trees_and_every_member_sits_in_one_of_their_nodes() {
        for (found, depth) in [
            (aws_discovery(), AWS_MAX_DEPTH),
            (gcp_discovery(), GCP_MAX_DEPTH),
        ] {
            let tree = Hierarchy::build(found.nodes.clone(), depth).unwrap();
            assert!(
                found
                    .members
                    .iter()
                    .all(|m| tree.get(&m.parent_id).is_some())
            );
        }
        let aws = Hierarchy::build(aws_discovery().nodes, AWS_MAX_DEPTH).unwrap();
        assert!(aws.is_under(OU_PCI, OU_PROD));
        assert!(!aws.is_under(OU_STAGING, OU_PROD));
        assert_eq!(aws.get(OU_PCI).map(|n| n.depth), Some(3));
    }

    #[test]
    fn every_id_is_one_the_connect_flow_accepts() {
        assert!(
            AWS_MEMBERS
                .iter()
                .all(|m| AwsAccountId::parse(m.key, "accountId").is_ok())
        );
        assert!(
            GCP_PROJECTS
                .iter()
                .all(|m| GcpProjectId::parse(m.key, "projectId").is_ok())
        );
    }
}
