//! Cloud-account operations a background job performs for the request that queued it: the
//! request was authorized (its user is the job's `created_by`), the job has no session.

use std::time::Instant;

use canopy_kernel::id::{OrganizationId, UserId};

use super::{CloudAccountError, CloudAccountService};
use crate::account::{AccountInput, CloudAccount, CloudIdentity, Provider};
use crate::external_id::ExternalId;
use crate::health::HealthCheck;

impl CloudAccountService {
    /// Connects an account of `org` for a job queued by `created_by` (`via` names the flow in
    /// the audit event). The plan limit is checked in the transaction that inserts it, so
    /// concurrent jobs never exceed it.
    pub async fn connect_for_job(
        &self,
        org: OrganizationId,
        created_by: UserId,
        input: &AccountInput,
        via: &str,
    ) -> Result<CloudAccount, CloudAccountError> {
        let (account, audit) = self.new_account(org, created_by, created_by, input, via)?;
        self.ports.accounts.create(account.clone(), audit).await?;
        Ok(account)
    }

    /// The account of `org` with this provider key, for a job that must link what a crashed
    /// run of itself already created.
    pub async fn find_for_job(
        &self,
        org: OrganizationId,
        provider: Provider,
        key: &str,
    ) -> Result<Option<CloudAccount>, CloudAccountError> {
        Ok(self.ports.accounts.find_by_key(org, provider, key).await?)
    }

    /// Proves access to `account` (AWS: assumes its role with `org`'s External ID; GCP: reads
    /// its project) and records the outcome in its health timeline; returns the check.
    pub async fn verify_for_job(
        &self,
        org: OrganizationId,
        account: &CloudAccount,
    ) -> Result<HealthCheck, CloudAccountError> {
        let started = Instant::now();
        let failure = match &account.identity {
            CloudIdentity::Aws {
                role_arn, region, ..
            } => {
                let external_id = self
                    .ports
                    .external_ids
                    .current_or_create(ExternalId {
                        organization_id: org,
                        value: self.ports.secrets.external_id(),
                        created_at: self.ports.clock.now(),
                        retired_at: None,
                    })
                    .await?;
                let session_name = format!("canopy-{}", &org.to_string()[..8]);
                self.ports
                    .aws
                    .assume_role(role_arn, &external_id.value, &session_name, region)
                    .await
                    .err()
            }
            CloudIdentity::Gcp { .. } => self.ports.gcp.verify_project(account).await.err(),
        };
        let check = HealthCheck {
            account_id: account.id,
            checked_at: self.ports.clock.now(),
            failure,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        self.ports
            .accounts
            .record_check(org, check.clone())
            .await?
            .ok_or(CloudAccountError::NotFound)?;
        Ok(check)
    }
}
