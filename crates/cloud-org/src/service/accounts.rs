//! Connected accounts: connect by details, list, read, edit, disconnect, verify access, and
//! the health timeline every access attempt feeds.

use std::time::Instant;

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{FieldError, PageRequest, PlanLimitExceeded, StoreError, ValidationErrors};
use canopy_tenancy::{
    Action, AuditAction, AuditTarget, Forbidden, NewAuditEvent, OrgAccess, TargetKind,
};
use serde_json::json;

use super::{CloudAccountService, ExternalIdError};
use crate::account::{
    AccountInput, AccountStatus, CloudAccount, CloudAccountId, CloudIdentity, validate_new,
};
use crate::account_changes::AccountChanges;
use crate::filter::AccountFilter;
use crate::health::{AccessFailure, HealthCheck};

/// Outcomes of cloud-account operations.
#[derive(Debug, thiserror::Error)]
pub enum CloudAccountError {
    /// Input broke a rule; every field and rule is listed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow it.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such account in this organization.
    #[error("cloud account not found")]
    NotFound,
    /// The account is already connected to this organization.
    #[error("already connected to this organization")]
    AlreadyConnected,
    /// The account is connected to another organization.
    #[error("connected to another organization")]
    ConnectedElsewhere,
    /// The organization's plan has no room for another account.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ExternalIdError> for CloudAccountError {
    fn from(e: ExternalIdError) -> Self {
        match e {
            ExternalIdError::Forbidden(f) => Self::Forbidden(f),
            ExternalIdError::Store(s) => Self::Store(s),
        }
    }
}

fn cloud_account_target(id: CloudAccountId) -> AuditTarget {
    AuditTarget::new(TargetKind::CloudAccount, id)
}

impl CloudAccountService {
    fn audit(
        &self,
        access: &OrgAccess,
        action: AuditAction,
        id: CloudAccountId,
        details: serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            action,
            cloud_account_target(id),
            details,
            self.ports.clock.now(),
        )
    }

    /// A new account of `org` from validated details, and the audit event of connecting it.
    pub(crate) fn new_account(
        &self,
        org: OrganizationId,
        created_by: UserId,
        actor: UserId,
        input: &AccountInput,
        via: &str,
    ) -> Result<(CloudAccount, NewAuditEvent), ValidationErrors> {
        let (identity, settings) = validate_new(input)?;
        let now = self.ports.clock.now();
        let account = CloudAccount {
            id: CloudAccountId::new(),
            organization_id: org,
            identity,
            settings,
            // Nothing is verified until a check reaches the account.
            status: AccountStatus::Pending,
            last_synced_at: None,
            last_error: None,
            placement: None,
            created_by,
            created_at: now,
            updated_at: now,
        };
        let audit = NewAuditEvent::new(
            org,
            Some(actor),
            AuditAction::CloudAccountConnected,
            cloud_account_target(account.id),
            json!({
                "provider": account.identity.provider().as_str(),
                "account": account.identity.account_key(),
                "alias": account.settings.alias,
                "via": via,
            }),
            now,
        );
        Ok((account, audit))
    }

    /// Connects an account from validated details (admin or owner).
    pub async fn connect(
        &self,
        access: &OrgAccess,
        input: &AccountInput,
    ) -> Result<CloudAccount, CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        let user = access.user_id();
        let (account, audit) = self.new_account(access.org_id(), user, user, input, "manual")?;
        self.ports.accounts.create(account.clone(), audit).await?;
        Ok(account)
    }

    /// The organization's accounts (any member).
    pub async fn list(
        &self,
        access: &OrgAccess,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> Result<Page<CloudAccount>, CloudAccountError> {
        access.require(Action::View)?;
        Ok(self
            .ports
            .accounts
            .list(access.org_id(), filter, page)
            .await?)
    }

    /// One account (any member).
    pub async fn get(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
    ) -> Result<CloudAccount, CloudAccountError> {
        access.require(Action::View)?;
        self.ports
            .accounts
            .get(access.org_id(), id)
            .await?
            .ok_or(CloudAccountError::NotFound)
    }

    /// Edits alias, environment, tags, region, role ARN, features and SES settings (admin or owner).
    pub async fn update(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
        changes: AccountChanges,
    ) -> Result<CloudAccount, CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        let mut account = self.get(access, id).await?;
        let changed = changes.apply(&mut account)?;
        account.updated_at = self.ports.clock.now();
        let audit = self.audit(
            access,
            AuditAction::CloudAccountUpdated,
            id,
            json!({"changed": changed}),
        );
        self.ports
            .accounts
            .update(account, audit)
            .await?
            .ok_or(CloudAccountError::NotFound)
    }

    /// Disconnects an account; the caller repeats the provider's account id to confirm
    /// (admin or owner).
    pub async fn disconnect(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
        confirmation: &str,
    ) -> Result<(), CloudAccountError> {
        access.require(Action::DisconnectCloudAccount)?;
        let account = self.get(access, id).await?;
        if confirmation.trim() != account.identity.account_key() {
            return Err(ValidationErrors::single(FieldError::new(
                "confirmAccountId",
                "confirmation",
                "must repeat the account id (or project id) being disconnected",
            ))
            .into());
        }
        let audit = self.audit(
            access,
            AuditAction::CloudAccountDisconnected,
            id,
            json!({"provider": account.identity.provider().as_str(), "account": account.identity.account_key()}),
        );
        if self
            .ports
            .accounts
            .delete(access.org_id(), id, audit)
            .await?
        {
            Ok(())
        } else {
            Err(CloudAccountError::NotFound)
        }
    }

    /// Assumes the account's role with the organization's External ID and records the outcome
    /// (admin or owner).
    pub async fn sync(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
    ) -> Result<(CloudAccount, HealthCheck), CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        let account = self.get(access, id).await?;
        let started = Instant::now();
        let outcome = match &account.identity {
            CloudIdentity::Aws {
                role_arn, region, ..
            } => {
                let session = self.role_session(access).await?;
                self.ports
                    .aws
                    .assume_role(
                        role_arn,
                        &session.external_id,
                        &session.session_name,
                        region,
                    )
                    .await
                    .map(|_| ())
            }
            CloudIdentity::Gcp { .. } => self.ports.gcp.verify_project(&account).await,
        };
        let failure = outcome.err().inspect(|f: &AccessFailure| {
            tracing::info!(account = %id, kind = f.kind.as_str(), "role assumption failed");
        });
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.record_outcome(access, id, failure, duration_ms).await
    }

    /// Records an observed access outcome (a sync, a metrics fetch) in the account's health
    /// timeline and sets its status from it (any member: observing is not changing).
    pub async fn record_outcome(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
        failure: Option<AccessFailure>,
        duration_ms: u64,
    ) -> Result<(CloudAccount, HealthCheck), CloudAccountError> {
        access.require(Action::View)?;
        let check = HealthCheck {
            account_id: id,
            checked_at: self.ports.clock.now(),
            failure,
            duration_ms,
        };
        let updated = self
            .ports
            .accounts
            .record_check(access.org_id(), check.clone())
            .await?
            .ok_or(CloudAccountError::NotFound)?;
        Ok((updated, check))
    }

    /// Every account of the organization matching `filter`, oldest first (any member).
    pub async fn all(
        &self,
        access: &OrgAccess,
        filter: &AccountFilter,
    ) -> Result<Vec<CloudAccount>, CloudAccountError> {
        access.require(Action::View)?;
        let mut out = vec![];
        let mut page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            after: None,
        };
        loop {
            let got = self
                .ports
                .accounts
                .list(access.org_id(), filter, page)
                .await?;
            out.extend(got.items);
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// The account's recent checks within the plan's history, newest first (any member).
    pub async fn health(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
        limit: u32,
    ) -> Result<Vec<HealthCheck>, CloudAccountError> {
        access.require(Action::View)?;
        self.get(access, id).await?;
        let since = self
            .ports
            .tenancy
            .history_served_since(access.org_id())
            .await?;
        Ok(self
            .ports
            .accounts
            .health(access.org_id(), id, since, limit.clamp(1, 200))
            .await?)
    }
}
