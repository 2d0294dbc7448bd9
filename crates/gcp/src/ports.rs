//! The domain's ports on the GCP adapter: discovery of a GCP Organization
//! ([`OrganizationDiscoverer`]) and verification of a project ([`ProjectVerifier`]) with the
//! right credentials: its cloud organization's service account, or Canopy's own.

use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::account::{CloudAccount, CloudIdentity};
use canopy_cloud_org::health::{AccessFailure, FailureKind};
use canopy_cloud_org::organization::ports::CloudOrganizationRepository;
use canopy_cloud_org::organization::{
    CloudOrganizationId, Discovery, DiscoveryFailure, DiscoveryProgress, GcpAccess,
    OrganizationAccess, OrganizationDiscoverer, OrganizationIdentity,
};
use canopy_cloud_org::ports::ProjectVerifier;
use canopy_cloud_org::sealing::SecretSealer;

use crate::{GcpCredentials, ResourceManagerDiscoverer, ServiceAccountKey};

/// The organization and credentials of a GCP access; an AWS one is a wiring mistake.
fn gcp_access(access: &OrganizationAccess) -> Result<(&str, GcpCredentials), DiscoveryFailure> {
    match access {
        OrganizationAccess::Gcp {
            organization,
            credentials,
        } => {
            let who = match credentials {
                GcpAccess::Key(key) => GcpCredentials::Key(
                    ServiceAccountKey::parse(key.expose())
                        .map_err(|e| DiscoveryFailure::KeyRefused(format!("unusable: {e}")))?,
                ),
                GcpAccess::Impersonate(email) => GcpCredentials::Impersonate(email.clone()),
            };
            Ok((organization, who))
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
        let (organization, who) = gcp_access(access)?;
        ResourceManagerDiscoverer::identify(self, who, organization).await
    }

    async fn discover(
        &self,
        access: &OrganizationAccess,
        progress: Arc<dyn DiscoveryProgress>,
        stop: canopy_kernel::Stop,
    ) -> Result<Discovery, DiscoveryFailure> {
        let (organization, who) = gcp_access(access)?;
        ResourceManagerDiscoverer::discover(self, who, organization, progress, stop).await
    }
}

/// [`ProjectVerifier`] on Resource Manager `projects.get`.
pub struct GcpProjectVerifier {
    rm: ResourceManagerDiscoverer,
    access: ProjectAccess,
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
            access: ProjectAccess {
                organizations,
                sealer,
                own_key,
            },
        }
    }
}

/// Who reaches a connected project: the service account of the cloud organization it was
/// connected from (its key opened through the sealer, or impersonated), or for a project
/// connected on its own, Canopy's own Google identity (which the customer granted roles on
/// the project). Shared by project verification and the project scanner.
#[derive(Clone)]
pub(crate) struct ProjectAccess {
    pub(crate) organizations: Arc<dyn CloudOrganizationRepository>,
    pub(crate) sealer: Arc<dyn SecretSealer>,
    pub(crate) own_key: Option<ServiceAccountKey>,
}

impl ProjectAccess {
    /// How to act for `account`.
    pub(crate) async fn credentials(
        &self,
        account: &CloudAccount,
    ) -> Result<GcpCredentials, AccessFailure> {
        match &account.placement {
            Some(placement) => {
                self.organization_credentials(account, placement.cloud_organization_id)
                    .await
            }
            None => self
                .own_key
                .clone()
                .map(GcpCredentials::Key)
                .ok_or_else(|| AccessFailure {
                    kind: FailureKind::CanopyCredentials,
                    message:
                        "Canopy has no Google identity of its own to read a project connected \
                          on its own: connect it through its GCP organization, or the operator \
                          sets CANOPY_GCP_CREDENTIALS_FILE"
                            .into(),
                }),
        }
    }

    /// How to act as the cloud organization `account` was connected from.
    async fn organization_credentials(
        &self,
        account: &CloudAccount,
        cloud_org: uuid::Uuid,
    ) -> Result<GcpCredentials, AccessFailure> {
        let unusable = |why: String| AccessFailure {
            kind: FailureKind::Other,
            message: format!("the cloud organization's service-account key: {why}"),
        };
        let id = CloudOrganizationId(cloud_org);
        let cloud_org = self
            .organizations
            .get(account.organization_id, id)
            .await
            .map_err(|e| unusable(e.to_string()))?
            .ok_or_else(|| unusable("its cloud organization is gone".into()))?;
        let Some(found) = cloud_org.gcp_credentials else {
            return cloud_org
                .gcp_service_account
                .map(GcpCredentials::Impersonate)
                .ok_or_else(|| unusable("none is stored".into()));
        };
        let plain = self
            .sealer
            .open(&found, id.as_uuid().as_bytes())
            .map_err(|e| unusable(e.to_string()))?;
        let text = String::from_utf8(plain).map_err(|_| unusable("not text".into()))?;
        ServiceAccountKey::parse(&text)
            .map(GcpCredentials::Key)
            .map_err(|e| unusable(e.to_string()))
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
        let who = self.access.credentials(account).await?;
        self.rm
            .verify_project(who, project_id.as_str())
            .await
            .map(|_| ())
    }
}
