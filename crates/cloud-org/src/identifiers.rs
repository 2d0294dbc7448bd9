//! Validated cloud identifiers: AWS account ids, IAM role ARNs, regions, GCP project ids,
//! host names. Invalid values cannot exist past the edge.

use canopy_kernel::FieldError;

/// AWS regions by partition. A region outside this list is refused rather than tried.
pub const AWS_REGIONS: &[(&str, &str)] = &[
    ("aws", "us-east-1"),
    ("aws", "us-east-2"),
    ("aws", "us-west-1"),
    ("aws", "us-west-2"),
    ("aws", "af-south-1"),
    ("aws", "ap-east-1"),
    ("aws", "ap-east-2"),
    ("aws", "ap-south-1"),
    ("aws", "ap-south-2"),
    ("aws", "ap-southeast-1"),
    ("aws", "ap-southeast-2"),
    ("aws", "ap-southeast-3"),
    ("aws", "ap-southeast-4"),
    ("aws", "ap-southeast-5"),
    ("aws", "ap-southeast-7"),
    ("aws", "ap-northeast-1"),
    ("aws", "ap-northeast-2"),
    ("aws", "ap-northeast-3"),
    ("aws", "ca-central-1"),
    ("aws", "ca-west-1"),
    ("aws", "eu-central-1"),
    ("aws", "eu-central-2"),
    ("aws", "eu-west-1"),
    ("aws", "eu-west-2"),
    ("aws", "eu-west-3"),
    ("aws", "eu-south-1"),
    ("aws", "eu-south-2"),
    ("aws", "eu-north-1"),
    ("aws", "il-central-1"),
    ("aws", "me-south-1"),
    ("aws", "me-central-1"),
    ("aws", "mx-central-1"),
    ("aws", "sa-east-1"),
    ("aws-us-gov", "us-gov-east-1"),
    ("aws-us-gov", "us-gov-west-1"),
    ("aws-cn", "cn-north-1"),
    ("aws-cn", "cn-northwest-1"),
];

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsAccountId(String);

impl AwsAccountId {
    /// The published form of the rule (ECMA-262).
    pub const PATTERN: &'static str = "^[0-9]{12}$";

    /// Exactly 12 ASCII digits.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let id = raw.trim();
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                field,
                "format",
                "must be exactly 12 digits",
            ));
        }
        Ok(Self(id.to_string()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AWS region, with the partition it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsRegion {
    name: &'static str,
    partition: &'static str,
}

impl AwsRegion {
    /// The published form of the rule (ECMA-262): one of [`AWS_REGIONS`].
    pub const PATTERN: &'static str = "^(us-east-1|us-east-2|us-west-1|us-west-2|af-south-1|ap-east-1|ap-east-2|ap-south-1|ap-south-2|ap-southeast-1|ap-southeast-2|ap-southeast-3|ap-southeast-4|ap-southeast-5|ap-southeast-7|ap-northeast-1|ap-northeast-2|ap-northeast-3|ca-central-1|ca-west-1|eu-central-1|eu-central-2|eu-west-1|eu-west-2|eu-west-3|eu-south-1|eu-south-2|eu-north-1|il-central-1|me-south-1|me-central-1|mx-central-1|sa-east-1|us-gov-east-1|us-gov-west-1|cn-north-1|cn-northwest-1)$";

    /// A region AWS operates.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        AWS_REGIONS
            .iter()
            .find(|(_, r)| *r == name)
            .map(|(partition, name)| Self { name, partition })
            .ok_or_else(|| {
                FieldError::new(field, "region", format!("'{name}' is not an AWS region"))
            })
    }

    /// The region code.
    pub fn as_str(&self) -> &'static str {
        self.name
    }

    /// `aws`, `aws-us-gov` or `aws-cn`.
    pub fn partition(&self) -> &'static str {
        self.partition
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<account>:role/<path/>name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleArn {
    arn: String,
    partition: String,
    account: AwsAccountId,
}

impl RoleArn {
    /// The published form of the rule (ECMA-262): partition, IAM, 12 digits, a role path and
    /// a name IAM allows.
    pub const PATTERN: &'static str = "^arn:(aws|aws-us-gov|aws-cn):iam::[0-9]{12}:role/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$";
    /// The longest ARN the published rule allows: the shortest prefix and a 512-character path,
    /// so every ARN it allows has a path IAM allows.
    pub const PUBLISHED_MAX_LEN: usize = "arn:aws:iam::123456789012:role/".len() + 512;

    /// Parses and checks partition, service, account and role name.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let arn = raw.trim();
        let bad = || {
            FieldError::new(
                field,
                "format",
                "must look like arn:aws:iam::123456789012:role/RoleName",
            )
        };
        if arn.len() > 2048 {
            return Err(FieldError::new(
                field,
                "length",
                "must be at most 2048 characters",
            ));
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [scheme, partition, service, region, account, resource] = parts[..] else {
            return Err(bad());
        };
        if scheme != "arn" || service != "iam" || !region.is_empty() {
            return Err(bad());
        }
        if !["aws", "aws-us-gov", "aws-cn"].contains(&partition) {
            return Err(FieldError::new(
                field,
                "partition",
                "partition must be aws, aws-us-gov or aws-cn",
            ));
        }
        let account = AwsAccountId::parse(account, field).map_err(|_| bad())?;
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(bad());
        };
        let name = path_and_name.rsplit('/').next().unwrap_or_default();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        let path_ok = path_and_name.len() <= 512
            && path_and_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
            && !path_and_name.contains("//");
        if !name_ok || !path_ok {
            return Err(FieldError::new(
                field,
                "format",
                "role path or name has characters IAM does not allow",
            ));
        }
        Ok(Self {
            arn: arn.to_string(),
            partition: partition.to_string(),
            account,
        })
    }

    /// The ARN text.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The account the role lives in.
    pub fn account(&self) -> &AwsAccountId {
        &self.account
    }

    /// The partition.
    pub fn partition(&self) -> &str {
        &self.partition
    }
}

/// A GCP project id: 6 to 30 characters, lower-case letters, digits and hyphens, starting with
/// a letter and not ending with a hyphen (Google's rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcpProjectId(String);

impl GcpProjectId {
    /// The published form of Google's rule (ECMA-262).
    pub const PATTERN: &'static str = "^[a-z][a-z0-9-]{4,28}[a-z0-9]$";

    /// Checks Google's project id rule.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let id = raw.trim();
        let ok = (6..=30).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && !id.ends_with('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(FieldError::new(
                field,
                "format",
                "must be 6-30 lower-case letters, digits or hyphens, start with a letter and not end with a hyphen",
            ));
        }
        Ok(Self(id.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The published form of the host-name rule (ECMA-262): dotted labels of letters, digits and
/// inner hyphens, the last one starting with a letter (a little stricter than the rule below,
/// which only asks the last label to hold one: what the document allows is always accepted).
pub const HOST_NAME_PATTERN: &str =
    "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";

/// Longest host name.
pub const HOST_NAME_MAX_LEN: usize = 253;

/// Checks a DNS host name (an SES sending domain): labels of 1-63 letters, digits and inner
/// hyphens, at least two labels, at most 253 characters. Returns it lower-cased.
pub fn parse_host_name(raw: &str, field: &str) -> Result<String, FieldError> {
    let host = raw.trim().trim_end_matches('.').to_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let ok = host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()));
    if !ok {
        return Err(FieldError::new(
            field,
            "format",
            format!("'{}' is not a valid host name", raw.trim()),
        ));
    }
    Ok(host)
}

/// Shows each identifier as the provider writes it.
macro_rules! display_as_str {
    ($($t:ty),*) => {
        $(impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        })*
    };
}

display_as_str!(AwsAccountId, AwsRegion, RoleArn, GcpProjectId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_region_pattern_lists_exactly_the_known_regions() {
        let listed: Vec<&str> = AwsRegion::PATTERN
            .trim_start_matches("^(")
            .trim_end_matches(")$")
            .split('|')
            .collect();
        let known: Vec<&str> = AWS_REGIONS.iter().map(|(_, r)| *r).collect();
        assert_eq!(listed, known);
    }

    #[test]
    fn account_ids_are_exactly_twelve_digits() {
        assert!(AwsAccountId::parse("123456789012", "accountId").is_ok());
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert_eq!(
                AwsAccountId::parse(bad, "accountId").unwrap_err().rule,
                "format",
                "{bad}"
            );
        }
    }

    #[test]
    fn role_arns_parse_with_paths_and_partitions() {
        let arn = RoleArn::parse(
            "arn:aws:iam::123456789012:role/canopy/CanopyReadOnly",
            "roleArn",
        )
        .unwrap();
        assert_eq!(arn.account().as_str(), "123456789012");
        assert_eq!(arn.partition(), "aws");
        assert!(RoleArn::parse("arn:aws-us-gov:iam::123456789012:role/R", "roleArn").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:user/R",
            "arn:aws:s3::123456789012:role/R",
            "arn:aws:iam:us-east-1:123456789012:role/R",
            "arn:aws:iam::12345:role/R",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/bad name",
            "not an arn",
        ] {
            assert!(RoleArn::parse(bad, "roleArn").is_err(), "{bad}");
        }
        assert_eq!(
            RoleArn::parse("arn:aws-xx:iam::123456789012:role/R", "roleArn")
                .unwrap_err()
                .rule,
            "partition"
        );
    }

    #[test]
    fn regions_are_real_and_know_their_partition() {
        assert_eq!(
            AwsRegion::parse("eu-west-1", "region").unwrap().partition(),
            "aws"
        );
        assert_eq!(
            AwsRegion::parse("us-gov-west-1", "region")
                .unwrap()
                .partition(),
            "aws-us-gov"
        );
        assert_eq!(
            AwsRegion::parse("mars-north-1", "region").unwrap_err().rule,
            "region"
        );
    }

    #[test]
    fn gcp_project_ids_follow_googles_rule() {
        assert!(GcpProjectId::parse("my-project-123", "projectId").is_ok());
        for bad in [
            "short",
            "1starts-with-digit",
            "ends-with-",
            "Has-Upper-Case",
            &"a".repeat(31),
        ] {
            assert!(GcpProjectId::parse(bad, "projectId").is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names_are_checked_and_normalized() {
        assert_eq!(
            parse_host_name("Mail.Acme.com.", "d").unwrap(),
            "mail.acme.com"
        );
        for bad in [
            "acme",
            "-acme.com",
            "acme-.com",
            "ac me.com",
            "acme..com",
            "acme.123",
        ] {
            assert!(parse_host_name(bad, "d").is_err(), "{bad}");
        }
    }
}
