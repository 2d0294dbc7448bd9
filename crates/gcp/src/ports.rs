//! The domain's ports on the GCP adapter: discovery of a GCP Organization
//! ([`OrganizationDiscoverer`]) and verification of a project ([`ProjectVerifier`]) with the
//! right credentials: its cloud organization's service account, or Canopy's own.

use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::account::{CloudAccount, CloudIdentity};
use canopy_cloud_org::health::{AccessFailure, FailureKind};
use canopy_cloud_org::organization::ports::CloudOrganizationRepository;
use canopy_cloud_org::organization::{
    CloudOrganizationId, Discovery, DiscoveryFailure, DiscoveryProgress, OrganizationAccess,
    OrganizationDiscoverer, OrganizationIdentity,
};
use canopy_cloud_org::ports::ProjectVerifier;
use canopy_cloud_org::sealing::SecretSealer;

use crate::{ResourceManagerDiscoverer, ServiceAccountKey};

/// The organization and parsed key of a GCP access; an AWS one is a wiring mistake.
fn gcp_access(access: &OrganizationAccess) -> Result<(&str, ServiceAccountKey), DiscoveryFailure> {
    match access {
        OrganizationAccess::Gcp { organization, key } => {
            let key = ServiceAccountKey::parse(key.expose())
                .map_err(|e| DiscoveryFailure::KeyRefused(format!("unusable: {e}")))?;
            Ok((organization, key))
        }
        OrganizationAccess::Aws { .. } => Err(DiscoveryFailure::Other(
            "Resource Manager was given an AWS organization".into(),
        )),
    }
}

#[async_trait]
impl OrganizationDiscoverer for ResourceManagerDiscoverer {
    async fn identify(
        &self,
        access: &OrganizationAccess,
    ) -> Result<OrganizationIdentity, DiscoveryFailure> {
        let (organization, key) = gcp_access(access)?;
        ResourceManagerDiscoverer::identify(self, &key, organization).await
    }

    async fn discover(
        &self,
        access: &OrganizationAccess,
        progress: Arc<dyn DiscoveryProgress>,
    ) -> Result<Discovery, DiscoveryFailure> {
        let (organization, key) = gcp_access(access)?;
        ResourceManagerDiscoverer::discover(self, &key, organization, progress).await
    }
}

/// [`ProjectVerifier`] on Resource Manager `projects.get`.
pub struct GcpProjectVerifier {
    rm: ResourceManagerDiscoverer,
    organizations: Arc<dyn CloudOrganizationRepository>,
    sealer: Arc<dyn SecretSealer>,
    own_key: Option<ServiceAccountKey>,
}

impl GcpProjectVerifier {
    /// A verifier reading keys of cloud organizations from `organizations` (opened with
    /// `sealer`), and `own_key` (Canopy's own Google identity, when the operator gave one)
    /// for projects connected on their own.
    pub fn new(
        rm: ResourceManagerDiscoverer,
        organizations: Arc<dyn CloudOrganizationRepository>,
        sealer: Arc<dyn SecretSealer>,
        own_key: Option<ServiceAccountKey>,
    ) -> Self {
        Self {
            rm,
            organizations,
            sealer,
            own_key,
        }
    }

    /// The key of the cloud organization `account` was connected from.
    async fn organization_key(
        &self,
        account: &CloudAccount,
        cloud_org: uuid::Uuid,
    ) -> Result<ServiceAccountKey, AccessFailure> {
        let unusable = |why: String| AccessFailure {
            kind: FailureKind::Other,
            message: format!("the cloud organization's service-account key: {why}"),
        };
        let id = CloudOrganizationId(cloud_org);
        let found = self
            .organizations
            .get(account.organization_id, id)
            .await
            .map_err(|e| unusable(e.to_string()))?
            .and_then(|o| o.gcp_credentials)
            .ok_or_else(|| unusable("none is stored".into()))?;
        let plain = self
            .sealer
            .open(&found, id.as_uuid().as_bytes())
            .map_err(|e| unusable(e.to_string()))?;
        let text = String::from_utf8(plain).map_err(|_| unusable("not text".into()))?;
        ServiceAccountKey::parse(&text).map_err(|e| unusable(e.to_string()))
    }
}

#[async_trait]
impl ProjectVerifier for GcpProjectVerifier {
    async fn verify_project(&self, account: &CloudAccount) -> Result<(), AccessFailure> {
        let CloudIdentity::Gcp { project_id, .. } = &account.identity else {
            return Err(AccessFailure {
                kind: FailureKind::Other,
                message: "not a GCP project".into(),
            });
        };
        let key = match &account.placement {
            Some(placement) => {
                self.organization_key(account, placement.cloud_organization_id)
                    .await?
            }
            None => self.own_key.clone().ok_or_else(|| AccessFailure {
                kind: FailureKind::CanopyCredentials,
                message: "Canopy has no Google identity of its own to read a project connected \
                          on its own: connect it through its GCP organization, or the operator \
                          sets CANOPY_GCP_CREDENTIALS_FILE"
                    .into(),
            })?,
        };
        self.rm
            .verify_project(&key, project_id.as_str())
            .await
            .map(|_| ())
    }
}
