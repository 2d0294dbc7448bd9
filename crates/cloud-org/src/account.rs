//! Cloud accounts: an AWS account or a GCP project connected to an organization.

use std::collections::BTreeMap;

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::{FieldError, ValidationErrors};
use chrono::{DateTime, Utc};

use crate::identifiers::{AwsAccountId, AwsRegion, GcpProjectId, RoleArn, parse_host_name};

canopy_kernel::define_id!(
    /// A connected cloud account (AWS account or GCP project).
    CloudAccountId
);

/// Largest number of tags on one account.
pub const MAX_TAGS: usize = 50;
/// Largest number of SES domains on one account.
pub const MAX_DOMAINS: usize = 100;

/// Which cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Amazon Web Services.
    Aws,
    /// Google Cloud.
    Gcp,
}

impl Provider {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "aws" => Some(Provider::Aws),
            "gcp" => Some(Provider::Gcp),
            _ => None,
        }
    }

    /// Reads a client's spelling; `field` names it in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        Self::from_stored(raw.trim())
            .ok_or_else(|| FieldError::new(field, "enum", "must be aws or gcp"))
    }
}

/// Deployment environment, shown as a coloured badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// Production (red).
    Production,
    /// Staging (yellow).
    Staging,
    /// Development (blue).
    Development,
}

impl Environment {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Development => "development",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "production" => Some(Environment::Production),
            "staging" => Some(Environment::Staging),
            "development" => Some(Environment::Development),
            _ => None,
        }
    }

    /// Reads a client's spelling; `field` names it in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        Self::from_stored(raw.trim()).ok_or_else(|| {
            FieldError::new(field, "enum", "must be production, staging or development")
        })
    }
}

/// Connection health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    /// Connected, but no check has reached the account yet: nothing is verified.
    Pending,
    /// The last check succeeded.
    Active,
    /// Switched off by the organization.
    Inactive,
    /// The last check failed; `last_error` says why.
    Error,
}

impl AccountStatus {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Pending => "pending",
            AccountStatus::Active => "active",
            AccountStatus::Inactive => "inactive",
            AccountStatus::Error => "error",
        }
    }

    /// What the status means, for a person.
    pub fn explain(self) -> &'static str {
        match self {
            AccountStatus::Pending => {
                "Connected, not verified yet: sync the account to check that Canopy can assume its role."
            }
            AccountStatus::Active => "Canopy reached the account at the last check.",
            AccountStatus::Inactive => "Switched off by the organization.",
            AccountStatus::Error => "The last check failed; see the last error.",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(AccountStatus::Pending),
            "active" => Some(AccountStatus::Active),
            "inactive" => Some(AccountStatus::Inactive),
            "error" => Some(AccountStatus::Error),
            _ => None,
        }
    }

    /// Reads a client's spelling; `field` names it in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        Self::from_stored(raw.trim()).ok_or_else(|| {
            FieldError::new(field, "enum", "must be pending, active, inactive or error")
        })
    }
}

/// SES feature switches of an account (spec: `features`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// Sending through SES is enabled.
    pub sending_enabled: bool,
    /// SES event tracking is enabled.
    pub event_tracking: bool,
    /// Message history is stored.
    pub history_storage: bool,
}

/// Provider-specific identity and access of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudIdentity {
    /// An AWS account reached by assuming a role.
    Aws {
        /// The account.
        account_id: AwsAccountId,
        /// The role Canopy assumes.
        role_arn: RoleArn,
        /// Primary region.
        region: AwsRegion,
    },
    /// A GCP project.
    Gcp {
        /// Project id.
        project_id: GcpProjectId,
        /// Project number, when known.
        project_number: Option<String>,
    },
}

impl CloudIdentity {
    /// The provider.
    pub fn provider(&self) -> Provider {
        match self {
            CloudIdentity::Aws { .. } => Provider::Aws,
            CloudIdentity::Gcp { .. } => Provider::Gcp,
        }
    }

    /// The provider's id of the account (12 digits or project id).
    pub fn account_key(&self) -> &str {
        match self {
            CloudIdentity::Aws { account_id, .. } => account_id.as_str(),
            CloudIdentity::Gcp { project_id, .. } => project_id.as_str(),
        }
    }
}

/// Descriptive settings of an account, editable after connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountSettings {
    /// Friendly name.
    pub alias: Option<String>,
    /// Infrastructure stack name.
    pub stack_name: Option<String>,
    /// SES configuration set.
    pub ses_configuration_set: Option<String>,
    /// Verified SES domains.
    pub ses_domains: Vec<String>,
    /// Feature switches.
    pub features: Features,
    /// Environment badge.
    pub environment: Option<Environment>,
    /// Free-form tags.
    pub tags: BTreeMap<String, String>,
}

/// Where an account sits in the cloud organization it was connected from; what coverage
/// inherits organization controls through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationPlacement {
    /// The cloud organization.
    pub cloud_organization_id: uuid::Uuid,
    /// Names from the root, `Root/Production/Web`.
    pub hierarchy_path: Option<String>,
    /// The OU, folder or root it sits directly in.
    pub parent_id: Option<String>,
    /// AWS: the management account.
    pub is_management_account: bool,
    /// Delegated administrator of at least one service.
    pub is_delegated_admin: bool,
    /// The services it administers (`guardduty.amazonaws.com`).
    pub delegated_admin_services: Vec<String>,
    /// When a sync found it gone from the organization. It stays connected (its own role
    /// still works) but no longer inherits the organization's controls.
    pub left_at: Option<DateTime<Utc>>,
}

/// A connected cloud account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudAccount {
    /// Id.
    pub id: CloudAccountId,
    /// Owning organization.
    pub organization_id: OrganizationId,
    /// Provider identity.
    pub identity: CloudIdentity,
    /// Settings.
    pub settings: AccountSettings,
    /// Health.
    pub status: AccountStatus,
    /// Last successful check.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Last failure, classified and explained.
    pub last_error: Option<String>,
    /// Where it sits in a cloud organization, when connected from one.
    pub placement: Option<OrganizationPlacement>,
    /// Who connected it.
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Raw account details from a client (any connection flow), validated by [`validate_new`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountInput {
    /// `aws` or `gcp`.
    pub provider: String,
    /// AWS account id.
    pub account_id: Option<String>,
    /// AWS role ARN.
    pub role_arn: Option<String>,
    /// AWS primary region.
    pub region: Option<String>,
    /// GCP project id.
    pub project_id: Option<String>,
    /// GCP project number.
    pub project_number: Option<String>,
    /// Alias.
    pub alias: Option<String>,
    /// Stack name.
    pub stack_name: Option<String>,
    /// SES configuration set.
    pub ses_configuration_set: Option<String>,
    /// SES domains.
    pub ses_domains: Vec<String>,
    /// Features.
    pub features: Features,
    /// Environment spelling.
    pub environment: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// Longest alias or stack name, in characters.
pub const LABEL_MAX_CHARS: usize = 255;

/// Longest tag key and value, in characters.
pub const TAG_KEY_MAX_CHARS: usize = 128;
/// Longest tag value, in characters.
pub const TAG_VALUE_MAX_CHARS: usize = 256;

/// The published form of the configuration-set rule (ECMA-262).
pub const CONFIGURATION_SET_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// The published form of the project-number rule (ECMA-262).
pub const PROJECT_NUMBER_PATTERN: &str = "^[0-9]{1,20}$";

/// An alias or stack name: the kernel's bounded-text rule, for connecting and editing alike.
pub fn parse_label(raw: &str, field: &str) -> Result<String, FieldError> {
    canopy_kernel::bounded_text(raw, field, LABEL_MAX_CHARS)
}

/// Parses an environment spelling.
pub fn parse_environment(raw: &str, field: &str) -> Result<Environment, FieldError> {
    Environment::parse(raw, field)
}

/// Checks a tag map: at most [`MAX_TAGS`], keys 1-128 characters, values up to 256.
pub fn check_tags(tags: &BTreeMap<String, String>, field: &str) -> Result<(), FieldError> {
    if tags.len() > MAX_TAGS {
        return Err(FieldError::new(
            field,
            "count",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (k, v) in tags {
        if canopy_kernel::text::has_control(k) || canopy_kernel::text::has_control(v) {
            return Err(FieldError::new(
                field,
                "format",
                "tag keys and values must not contain control characters",
            ));
        }
        if k.trim().is_empty()
            || k.chars().count() > TAG_KEY_MAX_CHARS
            || v.chars().count() > TAG_VALUE_MAX_CHARS
        {
            return Err(FieldError::new(
                field,
                "length",
                "tag keys must be 1-128 characters and values at most 256",
            ));
        }
    }
    Ok(())
}

/// Checks SES domains and returns them normalized and de-duplicated.
pub fn check_domains(domains: &[String], field: &str) -> Result<Vec<String>, FieldError> {
    if domains.len() > MAX_DOMAINS {
        return Err(FieldError::new(
            field,
            "count",
            format!("at most {MAX_DOMAINS} domains"),
        ));
    }
    let mut out = Vec::with_capacity(domains.len());
    for d in domains {
        let host = parse_host_name(d, field)?;
        if !out.contains(&host) {
            out.push(host);
        }
    }
    Ok(out)
}

/// Checks an SES configuration set name: letters, digits, `_` and `-`, 1-64 characters.
pub fn check_configuration_set(raw: &str, field: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(FieldError::new(
            field,
            "format",
            "must be 1-64 letters, digits, underscores or hyphens",
        ));
    }
    Ok(name.to_string())
}

/// Validates everything about a new account, reporting every broken rule at once.
pub fn validate_new(
    input: &AccountInput,
) -> Result<(CloudIdentity, AccountSettings), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let identity = match input.provider.as_str() {
        "aws" => {
            let account_id = match input.account_id.as_deref() {
                Some(raw) => errors.collect(AwsAccountId::parse(raw, "accountId")),
                None => {
                    errors.push(FieldError::new(
                        "accountId",
                        "required",
                        "is required for AWS",
                    ));
                    None
                }
            };
            let role_arn = match input.role_arn.as_deref() {
                Some(raw) => errors.collect(RoleArn::parse(raw, "roleArn")),
                None => {
                    errors.push(FieldError::new(
                        "roleArn",
                        "required",
                        "is required for AWS",
                    ));
                    None
                }
            };
            let region = match input.region.as_deref() {
                Some(raw) => errors.collect(AwsRegion::parse(raw, "region")),
                None => {
                    errors.push(FieldError::new("region", "required", "is required for AWS"));
                    None
                }
            };
            if let (Some(id), Some(arn)) = (&account_id, &role_arn)
                && arn.account() != id
            {
                errors.push(FieldError::new(
                    "roleArn",
                    "account_mismatch",
                    format!("the role must be in account {}", id.as_str()),
                ));
            }
            if let (Some(region), Some(arn)) = (&region, &role_arn)
                && region.partition() != arn.partition()
            {
                errors.push(FieldError::new(
                    "region",
                    "partition",
                    format!(
                        "{} is not in the role's partition {}",
                        region.as_str(),
                        arn.partition()
                    ),
                ));
            }
            match (account_id, role_arn, region) {
                (Some(account_id), Some(role_arn), Some(region)) => Some(CloudIdentity::Aws {
                    account_id,
                    role_arn,
                    region,
                }),
                _ => None,
            }
        }
        "gcp" => {
            let project_id = match input.project_id.as_deref() {
                Some(raw) => errors.collect(GcpProjectId::parse(raw, "projectId")),
                None => {
                    errors.push(FieldError::new(
                        "projectId",
                        "required",
                        "is required for GCP",
                    ));
                    None
                }
            };
            let project_number = match input.project_number.as_deref().map(str::trim) {
                Some(n)
                    if n.is_empty() || n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    errors.push(FieldError::new(
                        "projectNumber",
                        "format",
                        "must be up to 20 digits",
                    ));
                    None
                }
                other => other.map(str::to_string),
            };
            project_id.map(|project_id| CloudIdentity::Gcp {
                project_id,
                project_number,
            })
        }
        other => {
            errors.collect(Provider::parse(other, "provider"));
            None
        }
    };
    let settings = validate_settings(input, &mut errors);
    match (identity, errors.errors.is_empty()) {
        (Some(identity), true) => Ok((identity, settings)),
        _ => Err(errors),
    }
}

fn validate_settings(input: &AccountInput, errors: &mut ValidationErrors) -> AccountSettings {
    let alias = input
        .alias
        .as_deref()
        .and_then(|a| errors.collect(parse_label(a, "alias")));
    let stack_name = input
        .stack_name
        .as_deref()
        .and_then(|s| errors.collect(parse_label(s, "stackName")));
    let ses_configuration_set = input
        .ses_configuration_set
        .as_deref()
        .and_then(|s| errors.collect(check_configuration_set(s, "sesConfigurationSet")));
    let ses_domains = errors
        .collect(check_domains(&input.ses_domains, "sesDomains"))
        .unwrap_or_default();
    let environment = input
        .environment
        .as_deref()
        .and_then(|e| errors.collect(parse_environment(e, "environment")));
    errors.collect(check_tags(&input.tags, "tags"));
    AccountSettings {
        alias,
        stack_name,
        ses_configuration_set,
        ses_domains,
        features: input.features,
        environment,
        tags: input.tags.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws() -> AccountInput {
        AccountInput {
            provider: "aws".into(),
            account_id: Some("123456789012".into()),
            role_arn: Some("arn:aws:iam::123456789012:role/CanopyAccess".into()),
            region: Some("us-east-1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_aws_account_validates() {
        let (identity, settings) = validate_new(&AccountInput {
            alias: Some(" Production ".into()),
            ses_domains: vec!["Mail.Acme.com".into(), "mail.acme.com".into()],
            environment: Some("production".into()),
            ..aws()
        })
        .unwrap();
        assert_eq!(identity.account_key(), "123456789012");
        assert_eq!(settings.alias.as_deref(), Some("Production"));
        assert_eq!(settings.ses_domains, vec!["mail.acme.com"]);
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_field() {
        let err = validate_new(&AccountInput {
            account_id: Some("12345".into()),
            region: Some("moon-1".into()),
            environment: Some("prod".into()),
            ses_domains: vec!["not a domain".into()],
            ..aws()
        })
        .unwrap_err();
        let fields: Vec<_> = err
            .errors
            .iter()
            .map(|e| (e.field.as_str(), e.rule.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("accountId", "format"),
                ("region", "region"),
                ("sesDomains", "format"),
                ("environment", "enum")
            ]
        );
    }

    #[test]
    fn role_must_live_in_the_account_and_partition() {
        let err = validate_new(&AccountInput {
            role_arn: Some("arn:aws:iam::999999999999:role/CanopyAccess".into()),
            ..aws()
        })
        .unwrap_err();
        assert_eq!(err.errors[0].rule, "account_mismatch");
        let err = validate_new(&AccountInput {
            region: Some("us-gov-west-1".into()),
            ..aws()
        })
        .unwrap_err();
        assert_eq!(
            (err.errors[0].field.as_str(), err.errors[0].rule.as_str()),
            ("region", "partition")
        );
    }

    #[test]
    fn gcp_projects_and_unknown_providers() {
        let (identity, _) = validate_new(&AccountInput {
            provider: "gcp".into(),
            project_id: Some("acme-prod-1".into()),
            project_number: Some("123456789".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(identity.provider(), Provider::Gcp);
        let err = validate_new(&AccountInput {
            provider: "azure".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.errors[0].field, "provider");
    }

    #[test]
    fn tags_are_bounded() {
        let many: BTreeMap<_, _> = (0..51)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(check_tags(&many, "tags").unwrap_err().rule, "count");
        let long: BTreeMap<_, _> = [("k".to_string(), "v".repeat(257))].into_iter().collect();
        assert_eq!(check_tags(&long, "tags").unwrap_err().rule, "length");
        for (k, v) in [("te\u{0}am", "email"), ("team", "e\u{0}mail")] {
            let nul: BTreeMap<_, _> = [(k.to_string(), v.to_string())].into_iter().collect();
            assert_eq!(check_tags(&nul, "tags").unwrap_err().rule, "format");
        }
    }
}
