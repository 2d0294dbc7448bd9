//! Filters of the cloud-account list, parsed from what a client sends.

use canopy_kernel::ValidationErrors;

use crate::account::{AccountStatus, Environment, Provider};

/// Filters of the account list; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AccountFilter {
    /// Only this provider.
    pub provider: Option<Provider>,
    /// Only this environment.
    pub environment: Option<Environment>,
    /// Only this status.
    pub status: Option<AccountStatus>,
    /// Only accounts carrying this tag key (and value, when given).
    pub tag: Option<(String, Option<String>)>,
}

impl AccountFilter {
    /// Reads the list's query parameters (`provider`, `environment`, `status`, and `tag` as
    /// `key` or `key:value`), reporting every bad one.
    pub fn parse(
        provider: Option<&str>,
        environment: Option<&str>,
        status: Option<&str>,
        tag: Option<&str>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut filter = AccountFilter::default();
        if let Some(p) = provider {
            filter.provider = errors.collect(Provider::parse(p, "provider"));
        }
        if let Some(e) = environment {
            filter.environment = errors.collect(Environment::parse(e, "environment"));
        }
        if let Some(s) = status {
            filter.status = errors.collect(AccountStatus::parse(s, "status"));
        }
        if let Some(t) = tag {
            if canopy_kernel::text::has_control(t) {
                errors.push(canopy_kernel::FieldError::new(
                    "tag",
                    "format",
                    "must not contain control characters",
                ));
            } else {
                filter.tag = Some(match t.split_once(':') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (t.to_string(), None),
                });
            }
        }
        errors.into_result().map(|()| filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_filter_is_named() {
        let err =
            AccountFilter::parse(Some("azure"), Some("prod"), Some("broken"), None).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["provider", "environment", "status"]);
        let ok =
            AccountFilter::parse(Some("aws"), None, Some("error"), Some("team:email")).unwrap();
        assert_eq!(ok.provider, Some(Provider::Aws));
        assert_eq!(ok.status, Some(AccountStatus::Error));
        assert_eq!(ok.tag, Some(("team".into(), Some("email".into()))));
        let nul = AccountFilter::parse(None, None, None, Some("team\u{0}")).unwrap_err();
        assert_eq!(
            (nul.errors[0].field.as_str(), nul.errors[0].rule.as_str()),
            ("tag", "format")
        );
    }
}
