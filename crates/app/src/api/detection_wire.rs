//! The detection API's wire enums: the domain's stored spellings, one-to-one.

use canopy_detection::detection::{ScopeKind, Source, Status};
use canopy_detection::mapping::{Category, Value};

macro_rules! mirror_enum {
    ($(#[$doc:meta])* $dto:ident => $domain:ty { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
        pub enum $dto {
            $($(#[$vdoc])* #[oai(rename = $wire)] $variant,)*
        }

        impl From<$domain> for $dto {
            fn from(v: $domain) -> Self {
                match v { $(<$domain>::$variant => Self::$variant,)* }
            }
        }

        impl From<$dto> for $domain {
            fn from(v: $dto) -> Self {
                match v { $($dto::$variant => Self::$variant,)* }
            }
        }
    };
}

mirror_enum! {
    /// Where a detection lives.
    DetectionScopeDto => ScopeKind {
        /// One cloud account.
        Account = "account",
        /// A cloud organization, reaching some or all of its accounts.
        Organization = "organization",
    }
}

mirror_enum! {
    /// Whether a detection works.
    DetectionStatusDto => Status {
        /// Found and working.
        Active = "active",
        /// Found but weakened; `reason` says how.
        Degraded = "degraded",
        /// Found before, gone now; `lastSeenAt` says when it was last there.
        Absent = "absent",
        /// Could not be checked (denied, throttled, failed); `reason` and `advice` say why.
        Unknown = "unknown",
    }
}

mirror_enum! {
    /// What a detection does about a technique.
    CategoryDto => Category {
        /// Notices it.
        Detect = "detect",
        /// Prevents it.
        Protect = "protect",
        /// Acts on it.
        Respond = "respond",
    }
}

mirror_enum! {
    /// How well.
    ValueDto => Value {
        /// Few procedures, or late.
        Minimal = "minimal",
        /// Some.
        Partial = "partial",
        /// Most, accurately and in time.
        Significant = "significant",
    }
}

mirror_enum! {
    /// The scanner that found a detection, or `custom`.
    SourceDto => Source {
        /// Organization CloudTrail trail.
        AwsCloudTrailOrgTrail = "aws.cloudtrail.org_trail",
        /// GuardDuty with a delegated administrator.
        AwsGuardDutyDelegatedAdmin = "aws.guardduty.delegated_admin",
        /// Security Hub for the organization.
        AwsSecurityHubOrg = "aws.securityhub.org",
        /// AWS Config organization aggregator.
        AwsConfigOrgAggregator = "aws.config.org_aggregator",
        /// Service control policy.
        AwsOrganizationsScp = "aws.organizations.scp",
        /// An account's GuardDuty detector.
        AwsGuardDutyDetector = "aws.guardduty.detector",
        /// An account's own CloudTrail trail.
        AwsCloudTrailTrail = "aws.cloudtrail.trail",
        /// An account's AWS Config recorder.
        AwsConfigRecorder = "aws.config.recorder",
        /// An account's AWS Config rules.
        AwsConfigRules = "aws.config.rules",
        /// Security Hub in an account.
        AwsSecurityHubAccount = "aws.securityhub.account",
        /// CloudWatch alarm on a CloudTrail metric filter.
        AwsCloudWatchAlarm = "aws.cloudwatch.alarm",
        /// GCP organization log sink.
        GcpLoggingOrgSink = "gcp.logging.org_sink",
        /// GCP folder log sink.
        GcpLoggingFolderSink = "gcp.logging.folder_sink",
        /// GCP project log sink.
        GcpLoggingProjectSink = "gcp.logging.project_sink",
        /// Security Command Center at the organization.
        GcpSccOrg = "gcp.scc.org",
        /// Organization policy constraint.
        GcpOrgPolicyConstraint = "gcp.orgpolicy.constraint",
        /// Cloud Asset Inventory organization feed.
        GcpCloudAssetOrgFeed = "gcp.cloudasset.org_feed",
        /// Declared by a person.
        Custom = "custom",
    }
}

mirror_enum! {
    /// Why an organization detection reaches an account.
    AppliesBecauseDto => AppliesBecauseKind {
        /// It applies to every account of the organization.
        AllAccounts = "all_accounts",
        /// The account is listed.
        ListedAccount = "listed_account",
        /// The account sits under `node`.
        UnderNode = "under_node",
    }
}

/// [`AppliesBecause`] without its node, for the wire enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliesBecauseKind {
    /// All accounts.
    AllAccounts,
    /// Listed.
    ListedAccount,
    /// Under a node.
    UnderNode,
}
