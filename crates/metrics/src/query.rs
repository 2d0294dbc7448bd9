//! What a client asks the metrics for: a range (a preset or explicit start and end), some
//! accounts, an environment; parsed here so every entry point refuses bad input alike.

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::account::Environment;
use canopy_kernel::{FieldError, ValidationErrors};
use chrono::{DateTime, Utc};

use crate::window::{RangePreset, RangeSpec};

/// The preset used when a client names no range.
pub const DEFAULT_RANGE: &str = "24h";

/// What a client filters by.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsQuery {
    /// The range.
    pub range: RangeSpec,
    /// Only these accounts (all when empty).
    pub accounts: Vec<CloudAccountId>,
    /// Only accounts of this environment.
    pub environment: Option<Environment>,
}

fn time(raw: Option<&str>, field: &str, errors: &mut ValidationErrors) -> Option<DateTime<Utc>> {
    let raw = raw?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            errors.push(FieldError::new(field, "format", "must be an RFC 3339 time"));
            None
        }
    }
}

impl MetricsQuery {
    /// Reads the query parameters: `range` (1h, 24h, 7d, 30d) or `start` and `end` (RFC 3339),
    /// `account` (ids, repeated or comma-separated), `environment`. Every bad one is reported.
    pub fn parse(
        range: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
        accounts: &[String],
        environment: Option<&str>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let spec = if start.is_some() || end.is_some() {
            if range.is_some() {
                errors.push(FieldError::new(
                    "range",
                    "exclusive",
                    "give either range or start and end",
                ));
            }
            for (field, value) in [("start", start), ("end", end)] {
                if value.is_none() {
                    errors.push(FieldError::new(
                        field,
                        "required",
                        "start and end go together",
                    ));
                }
            }
            match (
                time(start, "start", &mut errors),
                time(end, "end", &mut errors),
            ) {
                (Some(start), Some(end)) => Some(RangeSpec::Between { start, end }),
                _ => None,
            }
        } else {
            errors
                .collect(RangePreset::parse(range.unwrap_or(DEFAULT_RANGE), "range"))
                .map(RangeSpec::Preset)
        };
        let mut ids = vec![];
        for raw in accounts.iter().flat_map(|a| a.split(',')) {
            match raw.trim().parse::<CloudAccountId>() {
                Ok(id) => ids.push(id),
                Err(_) => errors.push(FieldError::new(
                    "account",
                    "format",
                    "must be cloud account ids",
                )),
            }
        }
        let environment =
            environment.and_then(|e| errors.collect(Environment::parse(e, "environment")));
        errors.clone().into_result()?;
        let Some(range) = spec else {
            return Err(errors);
        };
        Ok(Self {
            range,
            accounts: ids,
            environment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_or_an_explicit_range_but_not_both() {
        let q = MetricsQuery::parse(None, None, None, &[], None).unwrap();
        assert_eq!(q.range, RangeSpec::Preset(RangePreset::Day));
        let err = MetricsQuery::parse(Some("7d"), Some("2026-11-01T00:00:00Z"), None, &[], None)
            .unwrap_err();
        let rules: Vec<_> = err
            .errors
            .iter()
            .map(|e| (e.field.as_str(), e.rule.as_str()))
            .collect();
        assert_eq!(rules, [("range", "exclusive"), ("end", "required")]);
    }

    #[test]
    fn accounts_and_environment_are_checked() {
        let id = CloudAccountId::new();
        let q = MetricsQuery::parse(
            Some("1h"),
            None,
            None,
            &[format!("{id},{id}")],
            Some("staging"),
        )
        .unwrap();
        assert_eq!(q.accounts, vec![id, id]);
        assert_eq!(q.environment, Some(Environment::Staging));
        let err =
            MetricsQuery::parse(None, None, None, &["nope".into()], Some("prod")).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["account", "environment"]);
    }
}
