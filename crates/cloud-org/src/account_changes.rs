//! Edits to a connected account: which settings a client may change after connecting, and
//! the rules they must meet (the same rules as connecting).

use std::collections::BTreeMap;

use canopy_kernel::{FieldError, ValidationErrors};

use crate::account::{
    CloudAccount, CloudIdentity, Features, check_configuration_set, check_domains, check_tags,
    parse_environment,
};
use crate::identifiers::{AwsRegion, RoleArn};

/// Changes to an account; `None` leaves a field alone, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    /// Alias.
    pub alias: Option<Option<String>>,
    /// Environment.
    pub environment: Option<Option<String>>,
    /// Tags (replaced whole).
    pub tags: Option<BTreeMap<String, String>>,
    /// AWS primary region.
    pub region: Option<String>,
    /// AWS role ARN.
    pub role_arn: Option<String>,
    /// Features (replaced whole).
    pub features: Option<Features>,
    /// SES domains (replaced whole).
    pub ses_domains: Option<Vec<String>>,
    /// SES configuration set.
    pub ses_configuration_set: Option<Option<String>>,
}

impl AccountChanges {
    /// Applies the changes to `account`, reporting every broken rule at once; on success
    /// returns the names of the fields changed (for the audit event). On failure `account` is
    /// left as it was.
    pub fn apply(self, account: &mut CloudAccount) -> Result<Vec<&'static str>, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut settings = account.settings.clone();
        let mut identity = account.identity.clone();
        let mut changed = vec![];
        if let Some(alias) = self.alias {
            changed.push("alias");
            settings.alias = match alias {
                None => None,
                Some(a) if a.trim().is_empty() || a.chars().count() > 255 => {
                    errors.push(FieldError::new(
                        "alias",
                        "length",
                        "must be 1 to 255 characters",
                    ));
                    None
                }
                Some(a) => Some(a.trim().to_string()),
            };
        }
        if let Some(env) = self.environment {
            changed.push("environment");
            settings.environment =
                env.and_then(|e| errors.collect(parse_environment(&e, "environment")));
        }
        if let Some(tags) = self.tags {
            changed.push("tags");
            if errors.collect(check_tags(&tags, "tags")).is_some() {
                settings.tags = tags;
            }
        }
        if let Some(features) = self.features {
            changed.push("features");
            settings.features = features;
        }
        if let Some(domains) = self.ses_domains {
            changed.push("sesDomains");
            if let Some(d) = errors.collect(check_domains(&domains, "sesDomains")) {
                settings.ses_domains = d;
            }
        }
        if let Some(set) = self.ses_configuration_set {
            changed.push("sesConfigurationSet");
            settings.ses_configuration_set = set
                .and_then(|s| errors.collect(check_configuration_set(&s, "sesConfigurationSet")));
        }
        if self.region.is_some() || self.role_arn.is_some() {
            match &mut identity {
                CloudIdentity::Aws {
                    account_id,
                    role_arn,
                    region,
                } => {
                    if let Some(raw) = self.role_arn.as_deref() {
                        changed.push("roleArn");
                        if let Some(arn) = errors.collect(RoleArn::parse(raw, "roleArn")) {
                            if arn.account() == account_id {
                                *role_arn = arn;
                            } else {
                                errors.push(FieldError::new(
                                    "roleArn",
                                    "account_mismatch",
                                    format!("the role must be in account {}", account_id.as_str()),
                                ));
                            }
                        }
                    }
                    if let Some(raw) = self.region.as_deref() {
                        changed.push("region");
                        if let Some(r) = errors.collect(AwsRegion::parse(raw, "region")) {
                            *region = r;
                        }
                    }
                    if region.partition() != role_arn.partition() {
                        errors.push(FieldError::new(
                            "region",
                            "partition",
                            "region and role must share a partition",
                        ));
                    }
                }
                CloudIdentity::Gcp { .. } => {
                    errors.push(FieldError::new(
                        "region",
                        "provider",
                        "region and role apply to AWS accounts only",
                    ));
                }
            }
        }
        errors.into_result()?;
        account.settings = settings;
        account.identity = identity;
        Ok(changed)
    }
}
