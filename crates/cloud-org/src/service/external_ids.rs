//! External IDs: the per-organization secret every customer role's trust policy requires,
//! its rotation and history, and the session Canopy presents when it assumes a role.

use canopy_kernel::StoreError;
use canopy_tenancy::{
    Action, AuditAction, AuditTarget, Forbidden, NewAuditEvent, OrgAccess, TargetKind,
};
use serde_json::json;

use super::CloudAccountService;
use crate::external_id::{ConnectionInstructions, ExternalId, trust_policy};

/// Outcomes of External ID operations.
#[derive(Debug, thiserror::Error)]
pub enum ExternalIdError {
    /// The caller's role does not allow it.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What Canopy presents when it assumes one of an organization's roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    /// The organization's current External ID.
    pub external_id: String,
    /// The STS session name (`canopy-<org>`).
    pub session_name: String,
}

impl CloudAccountService {
    async fn current_external_id(&self, access: &OrgAccess) -> Result<ExternalId, StoreError> {
        self.ports
            .external_ids
            .current_or_create(ExternalId {
                organization_id: access.org_id(),
                value: self.ports.secrets.external_id(),
                created_at: self.ports.clock.now(),
                retired_at: None,
            })
            .await
    }

    /// The principal to trust, the External ID and a ready trust policy (admin or owner).
    pub async fn connection_instructions(
        &self,
        access: &OrgAccess,
    ) -> Result<ConnectionInstructions, ExternalIdError> {
        access.require(Action::ConnectCloudAccount)?;
        let external_id = self.current_external_id(access).await?;
        Ok(ConnectionInstructions {
            trust_policy: trust_policy(&self.config.trusted_principal, &external_id.value),
            trusted_principal: self.config.trusted_principal.clone(),
            external_id: external_id.value,
            management_role_policy: crate::external_id::management_role_policy(),
            member_role_name: crate::organization::DEFAULT_MEMBER_ROLE.to_string(),
            gcp_organization_roles: crate::external_id::GCP_ORGANIZATION_ROLES
                .iter()
                .map(|r| r.to_string())
                .collect(),
        })
    }

    /// Replaces the External ID; the old one is kept in the history (admin or owner).
    pub async fn rotate_external_id(
        &self,
        access: &OrgAccess,
    ) -> Result<ExternalId, ExternalIdError> {
        access.require(Action::ConnectCloudAccount)?;
        self.current_external_id(access).await?;
        let now = self.ports.clock.now();
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            AuditAction::ExternalIdRotated,
            AuditTarget::new(TargetKind::Organization, access.org_id()),
            json!({}),
            now,
        );
        let next = ExternalId {
            organization_id: access.org_id(),
            value: self.ports.secrets.external_id(),
            created_at: now,
            retired_at: None,
        };
        Ok(self.ports.external_ids.rotate(next, audit).await?)
    }

    /// Every External ID of the organization, newest first (admin or owner).
    pub async fn external_id_history(
        &self,
        access: &OrgAccess,
    ) -> Result<Vec<ExternalId>, ExternalIdError> {
        access.require(Action::ConnectCloudAccount)?;
        self.current_external_id(access).await?;
        Ok(self.ports.external_ids.history(access.org_id()).await?)
    }

    /// How Canopy assumes this organization's roles: its current External ID and a session
    /// name that identifies the organization in the customer's CloudTrail (any member: the
    /// metrics fan-out of a viewer needs it; the value never reaches the client).
    pub async fn role_session(&self, access: &OrgAccess) -> Result<RoleSession, ExternalIdError> {
        access.require(Action::View)?;
        let external_id = self.current_external_id(access).await?;
        Ok(RoleSession {
            external_id: external_id.value,
            session_name: format!("canopy-{}", &access.org_id().to_string()[..8]),
        })
    }
}
