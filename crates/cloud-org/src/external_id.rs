//! External IDs: the per-organization secret a customer's role trust policy requires, so
//! another Canopy customer cannot make Canopy assume this customer's role (the confused-deputy
//! defence AWS recommends). Canopy chooses it; customers never do.

use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};

/// One External ID of an organization; the newest unretired one is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId {
    /// Owning organization.
    pub organization_id: OrganizationId,
    /// The value put in trust policies (`sts:ExternalId`).
    pub value: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When a rotation replaced it; `None` while current.
    pub retired_at: Option<DateTime<Utc>>,
}

/// What a customer needs to create the role Canopy assumes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInstructions {
    /// The AWS principal to trust (Canopy's own account or role).
    pub trusted_principal: String,
    /// The organization's current External ID.
    pub external_id: String,
    /// A ready trust policy document.
    pub trust_policy: serde_json::Value,
}

/// The IAM trust policy that lets `principal` assume the role only with `external_id`.
pub fn trust_policy(principal: &str, external_id: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": principal },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "sts:ExternalId": external_id } }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policy_requires_the_external_id() {
        let p = trust_policy("arn:aws:iam::111122223333:root", "cnp-ext-abc");
        assert_eq!(
            p["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:root"
        );
        assert_eq!(
            p["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "cnp-ext-abc"
        );
        assert_eq!(p["Statement"][0]["Action"], "sts:AssumeRole");
    }
}
