//! Edits to a connected account: which settings a client may change after connecting, and
//! the rules they must meet (the same rules as connecting).

use std::collections::BTreeMap;

use canopy_kernel::{FieldError, ValidationErrors};

use crate::account::{
    CloudAccount, CloudIdentity, Features, check_configuration_set, check_domains, check_tags,
    parse_environment, parse_label,
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
            settings.alias = alias.and_then(|a| errors.collect(parse_label(&a, "alias")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountInput, AccountStatus, CloudAccountId, validate_new};
    use canopy_kernel::id::{OrganizationId, UserId};

    fn account() -> CloudAccount {
        let (identity, settings) = validate_new(&AccountInput {
            provider: "aws".into(),
            account_id: Some("123456789012".into()),
            role_arn: Some("arn:aws:iam::123456789012:role/CanopyAccess".into()),
            region: Some("us-east-1".into()),
            alias: Some("Production".into()),
            ..Default::default()
        })
        .unwrap();
        CloudAccount {
            id: CloudAccountId::new(),
            organization_id: OrganizationId::new(),
            identity,
            settings,
            status: AccountStatus::Active,
            last_synced_at: None,
            last_error: None,
            placement: None,
            created_by: UserId::new(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn an_edit_is_held_to_the_same_alias_rule_as_a_connect() {
        for bad in ["Prod\u{0}uction", "Prod\u{7}", "   "] {
            let mut a = account();
            let err = AccountChanges {
                alias: Some(Some(bad.to_string())),
                ..Default::default()
            }
            .apply(&mut a)
            .unwrap_err();
            assert_eq!(err.errors[0].field, "alias", "{bad:?}");
            assert_eq!(a.settings.alias.as_deref(), Some("Production"), "unchanged");
        }
        let mut a = account();
        AccountChanges {
            alias: Some(Some("  Staging ".into())),
            ..Default::default()
        }
        .apply(&mut a)
        .unwrap();
        assert_eq!(a.settings.alias.as_deref(), Some("Staging"));
    }
}
