//! The demo cloud behind the discovery and verification ports: it answers for the demo's own
//! organizations, accounts and projects, and hands everything else to the real provider, so
//! a demo server can still connect a real estate beside the demo one.

use canopy_kernel::Stop;
use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::health::AccessFailure;
use canopy_cloud_org::identifiers::{AwsRegion, RoleArn};
use canopy_cloud_org::organization::{
    Discovery, DiscoveryFailure, DiscoveryProgress, OrganizationAccess, OrganizationDiscoverer,
    OrganizationIdentity,
};
use canopy_cloud_org::ports::{AssumedRole, ProjectVerifier, RoleVerifier};
use canopy_cloud_org::{CloudAccount, account::CloudIdentity};

use crate::estate::{
    AWS_MANAGEMENT_ACCOUNT, GCP_ORGANIZATION, aws_discovery, aws_identity, aws_member,
    gcp_discovery, gcp_identity, gcp_project,
};

/// Which demo organization an access reaches: any role of the demo management account, or
/// the demo GCP Organization (the demo does not check credentials: it holds no secret).
fn demo_organization(access: &OrganizationAccess) -> Option<fn() -> Discovery> {
    match access {
        OrganizationAccess::Aws { role_arn, .. } => RoleArn::parse(role_arn, "roleArn")
            .ok()
            .filter(|arn| arn.account().as_str() == AWS_MANAGEMENT_ACCOUNT)
            .map(|_| aws_discovery as fn() -> Discovery),
        OrganizationAccess::Gcp { organization, .. } => {
            (organization == GCP_ORGANIZATION).then_some(gcp_discovery as fn() -> Discovery)
        }
    }
}

/// [`OrganizationDiscoverer`] of the demo cloud, over a real one for other organizations.
pub struct DemoDiscoverer {
    real: Arc<dyn OrganizationDiscoverer>,
}

impl DemoDiscoverer {
    /// Answers for the demo organizations and asks `real` about the rest.
    pub fn new(real: Arc<dyn OrganizationDiscoverer>) -> Self {
        Self { real }
    }
}

#[async_trait]
impl OrganizationDiscoverer for DemoDiscoverer {
    async fn identify(
        &self,
        access: &OrganizationAccess,
    ) -> Result<OrganizationIdentity, DiscoveryFailure> {
        match access {
            _ if demo_organization(access).is_none() => self.real.identify(access).await,
            OrganizationAccess::Aws { .. } => Ok(aws_identity()),
            OrganizationAccess::Gcp { .. } => Ok(gcp_identity()),
        }
    }

    async fn discover(
        &self,
        access: &OrganizationAccess,
        progress: Arc<dyn DiscoveryProgress>,
        stop: Stop,
    ) -> Result<Discovery, DiscoveryFailure> {
        let Some(read) = demo_organization(access) else {
            return self.real.discover(access, progress, stop).await;
        };
        if stop.requested() {
            return Err(DiscoveryFailure::Stopped);
        }
        let found = read();
        progress
            .read(found.nodes.len() as u64, found.members.len() as u64, 0, 0)
            .await;
        Ok(found)
    }
}

/// [`RoleVerifier`] of the demo cloud: the demo AWS Organization's member roles can be
/// assumed; any other role is the real STS's question.
pub struct DemoRoleVerifier {
    real: Arc<dyn RoleVerifier>,
}

impl DemoRoleVerifier {
    /// Answers for the demo accounts and asks `real` about the rest.
    pub fn new(real: Arc<dyn RoleVerifier>) -> Self {
        Self { real }
    }
}

#[async_trait]
impl RoleVerifier for DemoRoleVerifier {
    async fn assume_role(
        &self,
        role_arn: &RoleArn,
        external_id: &str,
        session_name: &str,
        region: &AwsRegion,
    ) -> Result<AssumedRole, AccessFailure> {
        let account = role_arn.account().as_str();
        if aws_member(account).is_none() {
            return self
                .real
                .assume_role(role_arn, external_id, session_name, region)
                .await;
        }
        let role = role_arn.as_str().rsplit('/').next().unwrap_or_default();
        Ok(AssumedRole {
            assumed_role_arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session_name}"),
            expires_at: None,
        })
    }
}

/// [`ProjectVerifier`] of the demo cloud: the demo GCP Organization's projects can be read;
/// any other project is the real Resource Manager's question.
pub struct DemoProjectVerifier {
    real: Arc<dyn ProjectVerifier>,
}

impl DemoProjectVerifier {
    /// Answers for the demo projects and asks `real` about the rest.
    pub fn new(real: Arc<dyn ProjectVerifier>) -> Self {
        Self { real }
    }
}

#[async_trait]
impl ProjectVerifier for DemoProjectVerifier {
    async fn verify_project(&self, account: &CloudAccount) -> Result<(), AccessFailure> {
        match &account.identity {
            CloudIdentity::Gcp { project_id, .. } if gcp_project(project_id.as_str()).is_some() => {
                Ok(())
            }
            _ => self.real.verify_project(account).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use canopy_cloud_org::FailureKind;
    use canopy_cloud_org::organization::MockDiscoveryProgress;
    use canopy_cloud_org::organization::MockOrganizationDiscoverer;
    use canopy_cloud_org::ports::MockRoleVerifier;

    use super::*;
    use crate::estate::{AWS_MANAGEMENT_ROLE, AWS_ORGANIZATION_ID};

    fn aws(role: &str) -> OrganizationAccess {
        OrganizationAccess::Aws {
            role_arn: role.into(),
            external_id: "x".into(),
        }
    }

    #[tokio::test]
    async fn the_demo_organizations_are_answered_here_and_others_by_the_real_provider() {
        let mut real = MockOrganizationDiscoverer::new();
        real.expect_identify()
            .times(1)
            .returning(|_| Err(DiscoveryFailure::RoleRefused("AccessDenied".into())));
        let demo = DemoDiscoverer::new(Arc::new(real));
        let found = demo.identify(&aws(AWS_MANAGEMENT_ROLE)).await.unwrap();
        assert_eq!(found.cloud_org_id, AWS_ORGANIZATION_ID);
        let other = demo
            .identify(&aws("arn:aws:iam::123456789012:role/CanopyManagement"))
            .await;
        assert!(matches!(other, Err(DiscoveryFailure::RoleRefused(_))));
        let mut progress = MockDiscoveryProgress::new();
        progress.expect_read().times(1).returning(|_, _, _, _| ());
        let gcp = demo
            .discover(
                &OrganizationAccess::Gcp {
                    organization: GCP_ORGANIZATION.into(),
                    credentials: canopy_cloud_org::organization::GcpAccess::Impersonate(
                        crate::estate::GCP_SERVICE_ACCOUNT.into(),
                    ),
                },
                Arc::new(progress),
                Stop::never(),
            )
            .await
            .unwrap();
        assert_eq!(gcp.members.len(), 5);
    }

    #[tokio::test]
    async fn member_roles_of_the_demo_are_assumed_and_other_roles_go_to_sts() {
        let mut real = MockRoleVerifier::new();
        real.expect_assume_role().times(1).returning(|_, _, _, _| {
            Err(AccessFailure {
                kind: FailureKind::CanopyCredentials,
                message: "no credentials".into(),
            })
        });
        let demo = DemoRoleVerifier::new(Arc::new(real));
        let region = AwsRegion::parse("us-east-1", "region").unwrap();
        let role = |account: &str| {
            RoleArn::parse(
                &format!("arn:aws:iam::{account}:role/CanopyAccess"),
                "roleArn",
            )
            .unwrap()
        };
        let assumed = demo
            .assume_role(&role("310987654104"), "x", "canopy-demo", &region)
            .await
            .unwrap();
        assert_eq!(
            assumed.assumed_role_arn,
            "arn:aws:sts::310987654104:assumed-role/CanopyAccess/canopy-demo"
        );
        let other = demo
            .assume_role(&role("123456789012"), "x", "canopy-demo", &region)
            .await;
        assert_eq!(other.unwrap_err().kind, FailureKind::CanopyCredentials);
    }
}
