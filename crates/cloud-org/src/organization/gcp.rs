//! Connecting a GCP Organization: the customer's service-account key is checked, used once to
//! describe the organization (a wrong key or a missing permission is refused at once), sealed
//! with the operator's key bound to the new record, and never returned; or the service
//! account is named for Canopy's own Google identity to impersonate, and nothing is stored.

use canopy_billing::Feature;
use canopy_jobs::Job;
use canopy_kernel::validation::{FieldError, ValidationErrors};
use canopy_tenancy::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use canopy_tenancy::policy::Action;
use canopy_tenancy::service::OrgAccess;
use serde_json::json;

use super::service::{CloudOrganizationError, CloudOrganizationService};
use super::{CloudOrganization, CloudOrganizationId, GcpAccess, OrganizationAccess};
use crate::account::Provider;
use crate::sealing::ServiceAccountKeyJson;

/// Largest key accepted: a real one is about 2.3 KB.
const MAX_KEY_BYTES: usize = 16 * 1024;

/// What connecting a GCP Organization needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpOrganizationInput {
    /// `organizations/123` or `123`.
    pub organization_id: String,
    /// The service account's key, JSON as Google issues it.
    pub service_account_key: Option<ServiceAccountKeyJson>,
    /// Or the service account's e-mail, for Canopy to impersonate.
    pub service_account_email: Option<String>,
    /// Name shown in Canopy (default: the organization's display name).
    pub name: Option<String>,
}

/// A service account's e-mail, checked (`name@project.iam.gserviceaccount.com`).
fn check_email(raw: &str) -> Result<String, ValidationErrors> {
    let email = raw.trim();
    let ok = email.len() <= 254
        && email.split('@').count() == 2
        && email.ends_with(".gserviceaccount.com")
        && !email.starts_with('@')
        && email
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'-' | b'_'));
    if ok {
        Ok(email.to_string())
    } else {
        Err(ValidationErrors::single(FieldError::new(
            "serviceAccountEmail",
            "pattern",
            "must be a service account e-mail (name@project.iam.gserviceaccount.com)",
        )))
    }
}

/// `organizations/123` from `organizations/123` or `123`.
pub fn organization_name(raw: &str) -> Result<String, ValidationErrors> {
    let digits = raw
        .trim()
        .strip_prefix("organizations/")
        .unwrap_or(raw.trim());
    if !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("organizations/{digits}"))
    } else {
        Err(ValidationErrors::single(FieldError::new(
            "organizationId",
            "pattern",
            "must be a GCP organization id: organizations/123456789 or 123456789",
        )))
    }
}

/// Checks the key is a service-account key with what signing needs, naming what is missing;
/// returns the service account's e-mail. The key's content never appears in the error.
pub fn check_key(key: &ServiceAccountKeyJson) -> Result<String, ValidationErrors> {
    let refuse = |rule: &'static str, message: &'static str| {
        ValidationErrors::single(FieldError::new("serviceAccountKey", rule, message))
    };
    if key.expose().len() > MAX_KEY_BYTES {
        return Err(refuse(
            "max_length",
            "is larger than any service-account key",
        ));
    }
    let value: serde_json::Value = serde_json::from_str(key.expose())
        .map_err(|_| refuse("json", "must be the key file's JSON"))?;
    if value.get("type").and_then(|t| t.as_str()) != Some("service_account") {
        return Err(refuse(
            "service_account",
            "must be a service-account key (\"type\": \"service_account\")",
        ));
    }
    let private_key = value.get("private_key").and_then(|k| k.as_str());
    if !private_key.is_some_and(|k| k.contains("PRIVATE KEY")) {
        return Err(refuse("private_key", "has no private_key"));
    }
    value
        .get("client_email")
        .and_then(|e| e.as_str())
        .filter(|e| e.contains('@'))
        .map(str::to_string)
        .ok_or_else(|| refuse("client_email", "has no client_email"))
}

impl CloudOrganizationService {
    /// Connects a GCP Organization (admin or owner, Pro or Enterprise) with a service
    /// account's key: it is used once to describe the organization, sealed, and a discovery
    /// job is queued. Returns the cloud organization (`discovering`) and the job.
    pub async fn discover_gcp(
        &self,
        access: &OrgAccess,
        input: GcpOrganizationInput,
    ) -> Result<(CloudOrganization, Job), CloudOrganizationError> {
        access.require(Action::ConnectCloudAccount)?;
        let ports = self.ports();
        ports
            .billing
            .require_feature(access.org_id(), Feature::OrgFeatures)
            .await?;
        let organization = organization_name(&input.organization_id)?;
        let id = CloudOrganizationId::new();
        let (service_account, sealed, credentials) =
            match (input.service_account_key, input.service_account_email) {
                (Some(key), None) => {
                    let email = check_key(&key)?;
                    // Sealed before any call: without an operator key nothing is stored, so
                    // that is said first.
                    let sealed = ports
                        .sealer
                        .seal(key.expose().as_bytes(), id.as_uuid().as_bytes())?;
                    (email, Some(sealed), GcpAccess::Key(key))
                }
                (None, Some(email)) => {
                    let email = check_email(&email)?;
                    (email.clone(), None, GcpAccess::Impersonate(email))
                }
                _ => {
                    return Err(ValidationErrors::single(FieldError::new(
                        "serviceAccountKey",
                        "one_of",
                        "send either serviceAccountKey (the key file) or serviceAccountEmail \
                         (for Canopy to impersonate), not both",
                    ))
                    .into());
                }
            };
        let identity = ports
            .gcp
            .identify(&OrganizationAccess::Gcp {
                organization,
                credentials,
            })
            .await?;
        let now = ports.clock.now();
        let name = input
            .name
            .filter(|n| !n.trim().is_empty())
            .or_else(|| identity.display_name.clone())
            .unwrap_or_else(|| identity.cloud_org_id.clone());
        let cloud_org = CloudOrganization {
            gcp_service_account: Some(service_account.clone()),
            gcp_credentials: sealed,
            ..CloudOrganization::discovering(
                id,
                access.org_id(),
                Provider::Gcp,
                identity,
                name,
                access.user_id(),
                now,
            )
        };
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            AuditAction::CloudOrganizationConnected,
            AuditTarget::new(TargetKind::CloudOrganization, id.to_string()),
            json!({
                "provider": "gcp",
                "cloudOrgId": cloud_org.identity.cloud_org_id,
                "serviceAccount": service_account,
            }),
            now,
        );
        let job = self.record(access, &cloud_org, audit).await?;
        Ok((cloud_org, job))
    }
}

/// What re-sealing after a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resealed {
    /// Keys moved to the current operator key.
    pub resealed: usize,
    /// Keys that could not be opened (their key is no longer configured), by cloud
    /// organization: their organizations need a new key from the customer.
    pub failed: Vec<(CloudOrganizationId, String)>,
}

impl CloudOrganizationService {
    /// Re-seals every stored customer key that an older operator key sealed with the current
    /// one (the operator's `canopy admin reseal-secrets`, after a rotation), so the retired
    /// key can then be dropped.
    pub async fn reseal_secrets(&self) -> Result<Resealed, CloudOrganizationError> {
        let ports = self.ports();
        let current = ports
            .sealer
            .current_key_id()
            .ok_or(crate::sealing::SealError::NotConfigured)?;
        let mut report = Resealed::default();
        for (id, sealed) in ports.repository.sealed_with_other_keys(&current).await? {
            let context = id.as_uuid();
            let moved = ports
                .sealer
                .open(&sealed, context.as_bytes())
                .and_then(|plain| ports.sealer.seal(&plain, context.as_bytes()));
            match moved {
                Ok(fresh) => {
                    if ports.repository.replace_sealed(id, &sealed, fresh).await? {
                        report.resealed += 1;
                    }
                }
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(json: serde_json::Value) -> ServiceAccountKeyJson {
        ServiceAccountKeyJson::new(json.to_string())
    }

    #[test]
    fn organization_ids_are_normalized_and_checked() {
        assert_eq!(organization_name("123").unwrap(), "organizations/123");
        assert_eq!(
            organization_name(" organizations/42 ").unwrap(),
            "organizations/42"
        );
        for bad in ["", "organizations/", "folders/1", "12a", "../1"] {
            let err = organization_name(bad).unwrap_err();
            assert_eq!(err.errors[0].field, "organizationId", "{bad}");
        }
    }

    #[test]
    fn a_key_must_be_a_service_account_key_with_what_signing_needs() {
        let good = json!({
            "type": "service_account",
            "client_email": "canopy@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMII...\n-----END PRIVATE KEY-----\n",
        });
        assert_eq!(
            check_key(&key(good.clone())).unwrap(),
            "canopy@p.iam.gserviceaccount.com"
        );
        let mut user = good.clone();
        user["type"] = json!("authorized_user");
        let mut no_key = good.clone();
        no_key["private_key"] = json!("");
        let mut no_email = good;
        no_email.as_object_mut().unwrap().remove("client_email");
        for (bad, rule) in [
            (key(user), "service_account"),
            (key(no_key), "private_key"),
            (key(no_email), "client_email"),
            (ServiceAccountKeyJson::new("not json".into()), "json"),
        ] {
            let err = check_key(&bad).unwrap_err();
            assert_eq!(err.errors[0].rule, rule);
            assert!(!err.to_string().contains("BEGIN"));
        }
    }
}
