//! Wire types that publish a domain rule in the OpenAPI document: a string that must match
//! the domain's pattern and length. The pattern comes from the domain crate that enforces it,
//! so the document cannot drift from the rule; the request check (`crate::openapi`) holds
//! bodies to the document, and the domain checks again what a schema cannot say.
//!
//! Only a JSON string is a string here: poem-openapi's `String` also takes numbers and
//! booleans (`{"name": false}` would become "false").

use std::borrow::Cow;
use std::marker::PhantomData;

use canopy_cloud_org::account::{
    CONFIGURATION_SET_PATTERN, LABEL_MAX_CHARS, PROJECT_NUMBER_PATTERN, TAG_VALUE_MAX_CHARS,
};
use canopy_cloud_org::identifiers::{
    AwsAccountId, AwsRegion, GcpProjectId, HOST_NAME_MAX_LEN, HOST_NAME_PATTERN, RoleArn,
};
use canopy_kernel::page::Cursor;
use canopy_kernel::text::{NO_CONTROL_PATTERN, TEXT_PATTERN};
use canopy_tenancy::organization::{LOGO_MAX_LEN, LOGO_PATTERN, OrgRef};
use canopy_tenancy::user::{NAME_MAX_CHARS, Password};
use canopy_tenancy::{Email, Slug};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

/// A string rule the document publishes.
pub trait Rule: Send + Sync + 'static {
    /// Pattern (ECMA-262) every value matches, if any.
    const PATTERN: Option<&'static str>;
    /// Shortest value, in characters.
    const MIN_LENGTH: Option<usize> = None;
    /// Longest value, in characters.
    const MAX_LENGTH: Option<usize> = None;
}

/// A string held to `R` by the document (and by the domain behind it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruled<R: Rule>(String, PhantomData<R>);

impl<R: Rule> Ruled<R> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl<R: Rule> std::ops::Deref for Ruled<R> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<R: Rule> From<String> for Ruled<R> {
    fn from(s: String) -> Self {
        Self(s, PhantomData)
    }
}

impl<R: Rule> Type for Ruled<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.pattern = R::PATTERN.map(str::to_string);
        schema.min_length = R::MIN_LENGTH;
        schema.max_length = R::MAX_LENGTH;
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<R: Rule> ParseFromJSON for Ruled<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(s.into()),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<R: Rule> ParseFromParameter for Ruled<R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(value.to_string().into())
    }
}

impl<R: Rule> ToJSON for Ruled<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// An AWS account id (`AwsAccountId`) or a GCP project id (`GcpProjectId`).
const MEMBER_KEY_PATTERN: &str = "^([0-9]{12}|[a-z][a-z0-9-]{4,28}[a-z0-9])$";

/// Declares a rule from a domain pattern and bounds.
macro_rules! rules {
    ($($(#[$doc:meta])* $name:ident = $pattern:expr, $min:expr, $max:expr;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub struct $name;

            impl Rule for $name {
                const PATTERN: Option<&'static str> = $pattern;
                const MIN_LENGTH: Option<usize> = $min;
                const MAX_LENGTH: Option<usize> = $max;
            }
        )*
    };
}

rules! {
    /// A display name (user, organization, API key).
    NameRule = Some(TEXT_PATTERN), Some(1), Some(NAME_MAX_CHARS);
    /// An alias or a stack name.
    LabelRule = Some(TEXT_PATTERN), Some(1), Some(LABEL_MAX_CHARS);
    /// An email address.
    EmailRule = Some(Email::PATTERN), Some(3), Some(Email::MAX_LEN);
    /// An organization slug.
    SlugRule = Some(Slug::PATTERN), Some(Slug::MIN_LEN), Some(Slug::MAX_LEN);
    /// A logo URL.
    LogoRule = Some(LOGO_PATTERN), None, Some(LOGO_MAX_LEN);
    /// A 12-digit AWS account id.
    AccountIdRule = Some(AwsAccountId::PATTERN), None, None;
    /// An IAM role ARN.
    RoleArnRule = Some(RoleArn::PATTERN), None, Some(RoleArn::PUBLISHED_MAX_LEN);
    /// A GCP project id.
    ProjectIdRule = Some(GcpProjectId::PATTERN), None, None;
    /// A GCP project number.
    ProjectNumberRule = Some(PROJECT_NUMBER_PATTERN), None, None;
    /// An SES configuration set name.
    ConfigurationSetRule = Some(CONFIGURATION_SET_PATTERN), None, None;
    /// A DNS host name (an SES domain).
    HostNameRule = Some(HOST_NAME_PATTERN), None, Some(HOST_NAME_MAX_LEN);
    /// An AWS region Canopy knows.
    RegionRule = Some(AwsRegion::PATTERN), None, None;
    /// An id or a page cursor in a query: one UUID.
    IdRule = Some(Cursor::PATTERN), None, Some(36);
    /// An organization in a path: its slug or its id.
    OrgRule = Some(OrgRef::PATTERN), None, Some(Slug::MAX_LEN);
    /// A tag value.
    TagValueRule = Some(NO_CONTROL_PATTERN), None, Some(TAG_VALUE_MAX_CHARS);
    /// A job kind.
    JobKindRule = Some(canopy_jobs::JobKind::PATTERN), None, Some(64);
    /// An IAM role name (member accounts' role).
    RoleNameRule = Some(canopy_cloud_org::organization::service::ROLE_NAME_PATTERN), None, Some(64);
    /// An OU, folder or root id.
    NodeRule = Some("^[A-Za-z0-9/_-]{1,128}$"), None, Some(128);
    /// A cloud organization's member: an AWS account id or a GCP project id.
    MemberKeyRule = Some(MEMBER_KEY_PATTERN), None, Some(30);
    /// A search text.
    SearchRule = Some(NO_CONTROL_PATTERN), Some(1), Some(100);
    /// An ATT&CK technique or sub-technique id.
    TechniqueRule = Some("^T[0-9]{4}(\\.[0-9]{3})?$"), None, Some(9);
    /// An ATT&CK tactic: its shortname or id.
    TacticRule = Some("^([a-z]+(-[a-z]+)*|TA[0-9]{4})$"), None, Some(40);
    /// A new password (any characters; bounded so hashing work is bounded).
    PasswordRule = None, Some(Password::MIN_CHARS), Some(Password::MAX_CHARS);
}

/// A display name.
pub type Name = Ruled<NameRule>;
/// An alias or stack name.
pub type Label = Ruled<LabelRule>;
/// An email address.
pub type EmailText = Ruled<EmailRule>;
/// An organization slug.
pub type SlugText = Ruled<SlugRule>;
/// A logo URL.
pub type LogoUrl = Ruled<LogoRule>;
/// An AWS account id.
pub type AccountIdText = Ruled<AccountIdRule>;
/// An IAM role ARN.
pub type RoleArnText = Ruled<RoleArnRule>;
/// A GCP project id.
pub type ProjectIdText = Ruled<ProjectIdRule>;
/// A GCP project number.
pub type ProjectNumberText = Ruled<ProjectNumberRule>;
/// An SES configuration set.
pub type ConfigurationSetText = Ruled<ConfigurationSetRule>;
/// A host name.
pub type HostName = Ruled<HostNameRule>;
/// A tag value.
pub type TagValue = Ruled<TagValueRule>;
/// An AWS region.
pub type RegionText = Ruled<RegionRule>;
/// Cloud account ids, one or comma-separated.
pub type IdText = Ruled<IdRule>;
/// An organization slug or id, in a path.
pub type OrgText = Ruled<OrgRule>;
/// A new password.
pub type NewPassword = Ruled<PasswordRule>;
/// A job kind.
pub type JobKindText = Ruled<JobKindRule>;
/// An IAM role name.
pub type RoleNameText = Ruled<RoleNameRule>;
/// An OU, folder or root id.
pub type NodeText = Ruled<NodeRule>;
/// An AWS account id or a GCP project id.
pub type MemberKeyText = Ruled<MemberKeyRule>;
/// A search text.
pub type SearchText = Ruled<SearchRule>;
/// An ATT&CK technique id.
pub type TechniqueText = Ruled<TechniqueRule>;
/// An ATT&CK tactic shortname or id.
pub type TacticText = Ruled<TacticRule>;

/// Declares a wire enum with the domain's stored spellings.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
        pub enum $name {
            $($(#[$vdoc])* #[oai(rename = $wire)] $variant,)*
        }

        impl $name {
            /// The spelling the domain reads.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }
        }
    };
}

wire_enum! {
    /// Which cloud.
    ProviderDto {
        /// Amazon Web Services.
        Aws = "aws",
        /// Google Cloud.
        Gcp = "gcp",
    }
}

wire_enum! {
    /// Deployment environment (a coloured badge).
    EnvironmentDto {
        /// Production.
        Production = "production",
        /// Staging.
        Staging = "staging",
        /// Development.
        Development = "development",
    }
}

wire_enum! {
    /// Connection health of a cloud account.
    AccountStatusDto {
        /// Connected; access not verified yet.
        Pending = "pending",
        /// The last check succeeded.
        Active = "active",
        /// Switched off by the organization.
        Inactive = "inactive",
        /// The last check failed; `lastError` says why.
        Error = "error",
    }
}

wire_enum! {
    /// A metrics range ending now.
    RangeDto {
        /// The last hour, 5-minute buckets.
        Hour = "1h",
        /// The last 24 hours, 5-minute buckets.
        Day = "24h",
        /// The last 7 days, hourly.
        Week = "7d",
        /// The last 30 days, 6-hour buckets.
        Month = "30d",
    }
}

wire_enum! {
    /// A tier an owner may choose (Enterprise is arranged with sales).
    SelfServiceTierDto {
        /// Free.
        Free = "free",
        /// Individual.
        Individual = "individual",
        /// Pro.
        Pro = "pro",
    }
}

wire_enum! {
    /// Where a job is in its life.
    JobStatusDto {
        /// Waiting for a worker.
        Queued = "queued",
        /// A worker holds it.
        Running = "running",
        /// Done.
        Succeeded = "succeeded",
        /// Gave up; `error` says why.
        Failed = "failed",
        /// Stopped at a member's request.
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// Where a cloud organization's connection stands.
    CloudOrgStatusDto {
        /// Created; discovery not started.
        Pending = "pending",
        /// A discovery or sync is running.
        Discovering = "discovering",
        /// The whole organization was read.
        Connected = "connected",
        /// Read, but some OUs or folders could not be (see `unreadable`).
        Partial = "partial",
        /// Discovery failed; `error` says why and what to do.
        Error = "error",
        /// Disconnected.
        Disconnected = "disconnected",
    }
}

impl From<canopy_cloud_org::organization::ConnectionStatus> for CloudOrgStatusDto {
    fn from(s: canopy_cloud_org::organization::ConnectionStatus) -> Self {
        use canopy_cloud_org::organization::ConnectionStatus as S;
        match s {
            S::Pending => Self::Pending,
            S::Discovering => Self::Discovering,
            S::Connected => Self::Connected,
            S::Partial => Self::Partial,
            S::Error => Self::Error,
            S::Disconnected => Self::Disconnected,
        }
    }
}

wire_enum! {
    /// What Canopy did with a discovered account or project.
    MemberStatusDto {
        /// Found, not connected.
        Discovered = "discovered",
        /// Being connected.
        Connecting = "connecting",
        /// Linked to a cloud account.
        Connected = "connected",
        /// Connecting failed; `failure` says why.
        Failed = "failed",
        /// Excluded by an admin.
        Excluded = "excluded",
    }
}

impl From<canopy_jobs::JobStatus> for JobStatusDto {
    fn from(s: canopy_jobs::JobStatus) -> Self {
        use canopy_jobs::JobStatus as S;
        match s {
            S::Queued => Self::Queued,
            S::Running => Self::Running,
            S::Succeeded => Self::Succeeded,
            S::Failed => Self::Failed,
            S::Cancelled => Self::Cancelled,
        }
    }
}

impl JobStatusDto {
    /// The domain's status.
    pub fn into_domain(self) -> canopy_jobs::JobStatus {
        use canopy_jobs::JobStatus as S;
        match self {
            Self::Queued => S::Queued,
            Self::Running => S::Running,
            Self::Succeeded => S::Succeeded,
            Self::Failed => S::Failed,
            Self::Cancelled => S::Cancelled,
        }
    }
}

impl From<canopy_cloud_org::account::AccountStatus> for AccountStatusDto {
    fn from(s: canopy_cloud_org::account::AccountStatus) -> Self {
        use canopy_cloud_org::account::AccountStatus as S;
        match s {
            S::Pending => Self::Pending,
            S::Active => Self::Active,
            S::Inactive => Self::Inactive,
            S::Error => Self::Error,
        }
    }
}
