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
    /// A ready trust policy document (for an account's role, an AWS Organization's
    /// management role and its member roles alike).
    pub trust_policy: serde_json::Value,
    /// The permissions the management role of an AWS Organization needs to be discovered.
    pub management_role_policy: serde_json::Value,
    /// The role name Canopy assumes in member accounts unless a cloud organization sets
    /// another; each member role trusts [`ConnectionInstructions::trust_policy`].
    pub member_role_name: String,
    /// The roles a GCP service account needs on the organization to be discovered.
    pub gcp_organization_roles: Vec<String>,
}

/// What an AWS Organization's management role must allow: reading the organization, its
/// tree, its accounts and its delegated administrators; nothing else.
pub fn management_role_policy() -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CanopyReadOrganization",
            "Effect": "Allow",
            "Action": ["organizations:Describe*", "organizations:List*"],
            "Resource": "*"
        }]
    })
}

/// The predefined roles that grant what GCP discovery reads: the organization
/// (`resourcemanager.organizations.get`), folders (`resourcemanager.folders.list`) and
/// projects (`resourcemanager.projects.list` / `get`).
pub const GCP_ORGANIZATION_ROLES: [&str; 2] =
    ["roles/resourcemanager.organizationViewer", "roles/browser"];

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
