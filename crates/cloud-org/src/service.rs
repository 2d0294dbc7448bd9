//! Cloud-account use cases. Every call takes the caller's `OrgAccess` (membership already
//! established from the request path) and asks the tenancy policy for the action.

use std::sync::Arc;
use std::time::Instant;

use canopy_billing::{BillingError, BillingService, Feature};
use canopy_kernel::page::Page;
use canopy_kernel::{
    Clock, FieldError, LimitedResource, PageRequest, PlanLimitExceeded, ValidationErrors,
};
use canopy_tenancy::credential::CredentialKind;
use canopy_tenancy::{
    Action, NewAuditEvent, OrgAccess, Organization, Principal, StoreError, TenancyError,
    TenancyService,
};
use serde_json::json;

use crate::account::{
    AccountInput, AccountSettings, AccountStatus, CloudAccount, CloudAccountId, CloudIdentity,
    check_configuration_set, check_domains, check_tags, parse_environment, validate_new,
};
use crate::connection::{ConnectionToken, TOKEN_TTL, TokenKind, TokenRefusal, TokenStatus};
use crate::external_id::{ConnectionInstructions, ExternalId, trust_policy};
use crate::health::{AccessFailure, HealthCheck};
use crate::identifiers::{AwsRegion, RoleArn};
use crate::ports::{
    AccountFilter, CloudAccountRepository, ConnectError, ConnectionTokenRepository,
    ExternalIdRepository, RedeemError, RoleVerifier, SecretSource,
};

/// Everything a cloud-account operation can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum CloudAccountError {
    /// Membership or role refusals, and storage failures, from tenancy.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The account is already connected to this organization.
    #[error("already connected to this organization")]
    AlreadyConnected,
    /// The account is connected to another organization.
    #[error("connected to another organization")]
    ConnectedElsewhere,
    /// No such account in this organization.
    #[error("cloud account not found")]
    NotFound,
    /// The provider has no verification adapter yet.
    #[error("{0} connections cannot be verified yet")]
    VerificationUnsupported(&'static str),
    /// A connect token or connection request cannot be used.
    #[error(transparent)]
    Token(#[from] TokenRefusal),
    /// The organization's plan has no room for another account.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// A billing refusal other than a limit (the organization vanished, storage failed).
    #[error(transparent)]
    Billing(BillingError),
}

impl From<BillingError> for CloudAccountError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::PlanLimit(limit) => Self::PlanLimit(limit),
            BillingError::Tenancy(t) => Self::Tenancy(t),
            other => Self::Billing(other),
        }
    }
}

impl From<ConnectError> for CloudAccountError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::AlreadyConnected => CloudAccountError::AlreadyConnected,
            ConnectError::ConnectedElsewhere => CloudAccountError::ConnectedElsewhere,
            ConnectError::PlanLimit(limit) => CloudAccountError::PlanLimit(limit),
            ConnectError::Store(e) => e.into(),
        }
    }
}

impl From<RedeemError> for CloudAccountError {
    fn from(e: RedeemError) -> Self {
        match e {
            RedeemError::Refused(r) => r.into(),
            RedeemError::Connect(c) => c.into(),
        }
    }
}

/// A freshly issued connect token or connection request; the token is shown only here.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: String,
    /// When it stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The exact CLI command that uses it.
    pub command: String,
    /// Where an admin confirms it (connection requests).
    pub confirm_url: Option<String>,
}

/// A connection request as an admin previews it.
#[derive(Debug, Clone)]
pub struct RequestPreview {
    /// The request.
    pub token: ConnectionToken,
    /// The organization the account would join.
    pub organization: Organization,
    /// True once its 10 minutes are over.
    pub expired: bool,
}

impl From<ValidationErrors> for CloudAccountError {
    fn from(e: ValidationErrors) -> Self {
        Self::Tenancy(TenancyError::Invalid(e))
    }
}

impl From<StoreError> for CloudAccountError {
    fn from(e: StoreError) -> Self {
        Self::Tenancy(TenancyError::Store(e))
    }
}

/// What Canopy presents when it assumes one of an organization's roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    /// The organization's current External ID.
    pub external_id: String,
    /// The STS session name (`canopy-<org>`).
    pub session_name: String,
}

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct CloudAccountConfig {
    /// The AWS principal customers trust (Canopy's account root or role ARN).
    pub trusted_principal: String,
    /// Public base URL of the console, for confirmation links.
    pub public_url: String,
}

/// The adapters the service runs on.
#[derive(Clone)]
pub struct CloudAccountPorts {
    /// Accounts.
    pub accounts: Arc<dyn CloudAccountRepository>,
    /// External IDs.
    pub external_ids: Arc<dyn ExternalIdRepository>,
    /// Connect tokens and connection requests.
    pub tokens: Arc<dyn ConnectionTokenRepository>,
    /// Tenancy, to resolve who may preview and confirm a connection request, and how far back
    /// history is served.
    pub tenancy: TenancyService,
    /// Billing, to refuse issuing a token that the plan's account limit would make useless.
    pub billing: BillingService,
    /// AWS role verification.
    pub aws: Arc<dyn RoleVerifier>,
    /// Randomness.
    pub secrets: Arc<dyn SecretSource>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// Changes to an account; `None` leaves a field alone, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    /// Alias.
    pub alias: Option<Option<String>>,
    /// Environment.
    pub environment: Option<Option<String>>,
    /// Tags (replaced whole).
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// AWS primary region.
    pub region: Option<String>,
    /// AWS role ARN.
    pub role_arn: Option<String>,
    /// Features (replaced whole).
    pub features: Option<crate::account::Features>,
    /// SES domains (replaced whole).
    pub ses_domains: Option<Vec<String>>,
    /// SES configuration set.
    pub ses_configuration_set: Option<Option<String>>,
}

/// The cloud-account use cases.
#[derive(Clone)]
pub struct CloudAccountService {
    ports: CloudAccountPorts,
    config: CloudAccountConfig,
}

impl CloudAccountService {
    /// Builds the service.
    pub fn new(ports: CloudAccountPorts, config: CloudAccountConfig) -> Self {
        Self { ports, config }
    }

    fn audit(
        &self,
        access: &OrgAccess,
        action: &str,
        id: CloudAccountId,
        details: serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            access.org_id(),
            Some(access.principal().user_id),
            action,
            ("cloud_account", id.to_string()),
            details,
            self.ports.clock.now(),
        )
    }

    async fn current_external_id(
        &self,
        access: &OrgAccess,
    ) -> Result<ExternalId, CloudAccountError> {
        Ok(self
            .ports
            .external_ids
            .current_or_create(ExternalId {
                organization_id: access.org_id(),
                value: self.ports.secrets.external_id(),
                created_at: self.ports.clock.now(),
                retired_at: None,
            })
            .await?)
    }

    /// The principal to trust, the External ID and a ready trust policy (admin or owner).
    pub async fn connection_instructions(
        &self,
        access: &OrgAccess,
    ) -> Result<ConnectionInstructions, CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        let external_id = self.current_external_id(access).await?;
        Ok(ConnectionInstructions {
            trust_policy: trust_policy(&self.config.trusted_principal, &external_id.value),
            trusted_principal: self.config.trusted_principal.clone(),
            external_id: external_id.value,
        })
    }

    /// Replaces the External ID; the old one is kept in the history (admin or owner).
    pub async fn rotate_external_id(
        &self,
        access: &OrgAccess,
    ) -> Result<ExternalId, CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        self.current_external_id(access).await?;
        let now = self.ports.clock.now();
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(access.principal().user_id),
            "external_id.rotated",
            ("organization", access.org_id().to_string()),
            json!({}),
            now,
        );
        Ok(self
            .ports
            .external_ids
            .rotate(
                ExternalId {
                    organization_id: access.org_id(),
                    value: self.ports.secrets.external_id(),
                    created_at: now,
                    retired_at: None,
                },
                audit,
            )
            .await?)
    }

    /// Every External ID of the organization, newest first (admin or owner).
    pub async fn external_id_history(
        &self,
        access: &OrgAccess,
    ) -> Result<Vec<ExternalId>, CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        self.current_external_id(access).await?;
        Ok(self.ports.external_ids.history(access.org_id()).await?)
    }

    /// A new account of `org` from validated details, and the audit event of connecting it.
    fn new_account(
        &self,
        org: canopy_kernel::id::OrganizationId,
        created_by: canopy_kernel::id::UserId,
        actor: canopy_kernel::id::UserId,
        input: &AccountInput,
        via: &str,
    ) -> Result<(CloudAccount, NewAuditEvent), CloudAccountError> {
        let (identity, settings) = validate_new(input)?;
        let now = self.ports.clock.now();
        let account = CloudAccount {
            id: CloudAccountId::new(),
            organization_id: org,
            identity,
            settings,
            status: AccountStatus::Active,
            last_synced_at: None,
            last_error: None,
            created_by,
            created_at: now,
            updated_at: now,
        };
        let audit = NewAuditEvent::new(
            org,
            Some(actor),
            "cloud_account.connected",
            ("cloud_account", account.id.to_string()),
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
        let user = access.principal().user_id;
        let (account, audit) = self.new_account(access.org_id(), user, user, input, "manual")?;
        self.ports.accounts.create(account.clone(), audit).await?;
        Ok(account)
    }

    async fn issue(
        &self,
        access: &OrgAccess,
        kind: TokenKind,
        input: Option<AccountInput>,
    ) -> Result<IssuedToken, CloudAccountError> {
        self.ports
            .billing
            .ensure_room(access.org_id(), LimitedResource::CloudAccounts)
            .await?;
        let token = self.ports.secrets.connection_token();
        let now = self.ports.clock.now();
        let stored = ConnectionToken {
            kind,
            digest: self.ports.secrets.token_digest(&token),
            organization_id: access.org_id(),
            created_by: access.principal().user_id,
            input,
            status: TokenStatus::Pending,
            expires_at: now + TOKEN_TTL,
            cloud_account_id: None,
            created_at: now,
        };
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(access.principal().user_id),
            match kind {
                TokenKind::ConnectToken => "connect_token.created",
                TokenKind::ConnectionRequest => "connection_request.created",
            },
            ("organization", access.org_id().to_string()),
            json!({"expiresAt": stored.expires_at.to_rfc3339()}),
            now,
        );
        let expires_at = stored.expires_at;
        self.ports.tokens.insert(stored, audit).await?;
        let base = self.config.public_url.trim_end_matches('/');
        Ok(IssuedToken {
            command: format!("canopy connect --token {token} --api-url {base}"),
            confirm_url: (kind == TokenKind::ConnectionRequest)
                .then(|| format!("{base}/connect?token={token}")),
            token,
            expires_at,
        })
    }

    /// Web-initiated flow: a single-use token, valid 10 minutes, that a CLI presents with the
    /// account details (admin or owner).
    pub async fn create_connect_token(
        &self,
        access: &OrgAccess,
    ) -> Result<IssuedToken, CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        self.issue(access, TokenKind::ConnectToken, None).await
    }

    /// Redeems a connect token with account details: the token is the only credential.
    pub async fn connect_with_token(
        &self,
        token: &str,
        input: &AccountInput,
    ) -> Result<CloudAccount, CloudAccountError> {
        let (digest, stored) = self.find_token(token, TokenKind::ConnectToken).await?;
        self.ensure_usable(&stored)?;
        self.redeem(&digest, &stored, stored.created_by, input, "connect_token")
            .await
    }

    /// The stored token of `kind` for a presented token; any other is unknown.
    async fn find_token(
        &self,
        token: &str,
        kind: TokenKind,
    ) -> Result<(String, ConnectionToken), CloudAccountError> {
        let digest = self.ports.secrets.token_digest(token);
        let stored = self
            .ports
            .tokens
            .find(&digest)
            .await?
            .filter(|t| t.kind == kind)
            .ok_or(TokenRefusal::Unknown)?;
        Ok((digest, stored))
    }

    /// Refuses a token that is used, cancelled or expired now.
    fn ensure_usable(&self, stored: &ConnectionToken) -> Result<(), CloudAccountError> {
        match stored.refusal(self.ports.clock.now()) {
            Some(refusal) => Err(refusal.into()),
            None => Ok(()),
        }
    }

    /// Creates the account a token stands for and consumes the token, atomically.
    async fn redeem(
        &self,
        digest: &str,
        stored: &ConnectionToken,
        actor: canopy_kernel::id::UserId,
        input: &AccountInput,
        via: &str,
    ) -> Result<CloudAccount, CloudAccountError> {
        let (account, audit) =
            self.new_account(stored.organization_id, stored.created_by, actor, input, via)?;
        self.ports
            .tokens
            .redeem(digest, self.ports.clock.now(), account.clone(), audit)
            .await?;
        Ok(account)
    }

    /// CLI-initiated flow: files the account details for an admin or owner to confirm within
    /// 10 minutes (admin or owner).
    pub async fn create_connection_request(
        &self,
        access: &OrgAccess,
        input: &AccountInput,
    ) -> Result<IssuedToken, CloudAccountError> {
        access.require(Action::ConnectCloudAccount)?;
        validate_new(input)?;
        self.issue(access, TokenKind::ConnectionRequest, Some(input.clone()))
            .await
    }

    /// Loads a connection request for an admin or owner of its organization; anyone else is
    /// told it does not exist.
    async fn request_for(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<(String, ConnectionToken, OrgAccess), CloudAccountError> {
        let (digest, stored) = self.find_token(token, TokenKind::ConnectionRequest).await?;
        let access = match self
            .ports
            .tenancy
            .access(principal, &stored.organization_id.to_string())
            .await
        {
            Ok(access) => access,
            Err(TenancyError::NotFound(_)) => return Err(TokenRefusal::Unknown.into()),
            Err(e) => return Err(e.into()),
        };
        access.require(Action::ConnectCloudAccount)?;
        // API keys reach an organization only on a plan with API access, here as everywhere.
        if let CredentialKind::ApiKey(_) = principal.credential {
            self.ports
                .billing
                .require_feature(access.org_id(), Feature::ApiAccess)
                .await?;
        }
        Ok((digest, stored, access))
    }

    /// Shows a connection request to an admin or owner of its organization.
    pub async fn preview_request(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<RequestPreview, CloudAccountError> {
        let (_, stored, access) = self.request_for(principal, token).await?;
        Ok(RequestPreview {
            expired: stored.refusal(self.ports.clock.now()) == Some(TokenRefusal::Expired),
            token: stored,
            organization: access.organization().clone(),
        })
    }

    /// Confirms a connection request: the account is created (admin or owner).
    pub async fn confirm_request(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<CloudAccount, CloudAccountError> {
        let (digest, stored, _) = self.request_for(principal, token).await?;
        self.ensure_usable(&stored)?;
        let input = stored.input.clone().unwrap_or_default();
        self.redeem(
            &digest,
            &stored,
            principal.user_id,
            &input,
            "connection_request",
        )
        .await
    }

    /// Cancels a pending connection request (admin or owner).
    pub async fn cancel_request(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<(), CloudAccountError> {
        let (digest, stored, access) = self.request_for(principal, token).await?;
        self.ensure_usable(&stored)?;
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(principal.user_id),
            "connection_request.cancelled",
            ("organization", access.org_id().to_string()),
            json!({}),
            self.ports.clock.now(),
        );
        if self.ports.tokens.cancel(&digest, audit).await? {
            Ok(())
        } else {
            Err(TokenRefusal::Used.into())
        }
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
        let mut errors = ValidationErrors::default();
        let mut settings: AccountSettings = account.settings.clone();
        let mut changed = vec![];
        if let Some(alias) = changes.alias {
            changed.push("alias");
            settings.alias = match alias {
                None => None,
                Some(a) if a.trim().is_empty() || a.chars().count() > 255 => {
                    errors.push(FieldError::new(
                        "alias",
                        "length",
                        "must be 1 to 255 characters",
                    ));
                    None
                }
                Some(a) => Some(a.trim().to_string()),
            };
        }
        if let Some(env) = changes.environment {
            changed.push("environment");
            settings.environment =
                env.and_then(|e| errors.collect(parse_environment(&e, "environment")));
        }
        if let Some(tags) = changes.tags {
            changed.push("tags");
            if errors.collect(check_tags(&tags, "tags")).is_some() {
                settings.tags = tags;
            }
        }
        if let Some(features) = changes.features {
            changed.push("features");
            settings.features = features;
        }
        if let Some(domains) = changes.ses_domains {
            changed.push("sesDomains");
            if let Some(d) = errors.collect(check_domains(&domains, "sesDomains")) {
                settings.ses_domains = d;
            }
        }
        if let Some(set) = changes.ses_configuration_set {
            changed.push("sesConfigurationSet");
            settings.ses_configuration_set = set
                .and_then(|s| errors.collect(check_configuration_set(&s, "sesConfigurationSet")));
        }
        if changes.region.is_some() || changes.role_arn.is_some() {
            match &mut account.identity {
                CloudIdentity::Aws {
                    account_id,
                    role_arn,
                    region,
                } => {
                    if let Some(raw) = changes.role_arn.as_deref() {
                        changed.push("roleArn");
                        if let Some(arn) = errors.collect(RoleArn::parse(raw, "roleArn")) {
                            if arn.account() == account_id {
                                *role_arn = arn;
                            } else {
                                errors.push(FieldError::new(
                                    "roleArn",
                                    "account_mismatch",
                                    format!("the role must be in account {}", account_id.as_str()),
                                ));
                            }
                        }
                    }
                    if let Some(raw) = changes.region.as_deref() {
                        changed.push("region");
                        if let Some(r) = errors.collect(AwsRegion::parse(raw, "region")) {
                            *region = r;
                        }
                    }
                    if region.partition() != role_arn.partition() {
                        errors.push(FieldError::new(
                            "region",
                            "partition",
                            "region and role must share a partition",
                        ));
                    }
                }
                CloudIdentity::Gcp { .. } => {
                    errors.push(FieldError::new(
                        "region",
                        "provider",
                        "region and role apply to AWS accounts only",
                    ));
                }
            }
        }
        errors.into_result()?;
        account.settings = settings;
        account.updated_at = self.ports.clock.now();
        let audit = self.audit(
            access,
            "cloud_account.updated",
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
            "cloud_account.disconnected",
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
        let CloudIdentity::Aws {
            role_arn, region, ..
        } = &account.identity
        else {
            return Err(CloudAccountError::VerificationUnsupported("GCP"));
        };
        let session = self.role_session(access).await?;
        let started = Instant::now();
        let outcome = self
            .ports
            .aws
            .assume_role(
                role_arn.as_str(),
                &session.external_id,
                &session.session_name,
                region.as_str(),
            )
            .await;
        let failure = outcome.err().inspect(|f: &AccessFailure| {
            tracing::info!(account = %id, kind = f.kind.as_str(), "role assumption failed");
        });
        let duration_ms = started.elapsed().as_millis() as u64;
        self.record_outcome(access, id, failure, duration_ms).await
    }

    /// How Canopy assumes this organization's roles: its current External ID and a session
    /// name that identifies the organization in the customer's CloudTrail (any member: the
    /// metrics fan-out of a viewer needs it; the value never reaches the client).
    pub async fn role_session(&self, access: &OrgAccess) -> Result<RoleSession, CloudAccountError> {
        access.require(Action::View)?;
        let external_id = self.current_external_id(access).await?;
        Ok(RoleSession {
            external_id: external_id.value,
            session_name: format!("canopy-{}", &access.org_id().to_string()[..8]),
        })
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

    /// The account's recent checks, newest first (any member).
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use canopy_billing::ports::{MockHistoryStore, MockSubscriptionRepository};
    use canopy_kernel::ManualClock;
    use canopy_kernel::id::{OrganizationId, SessionId, UserId};
    use canopy_tenancy::credential::CredentialKind;
    use canopy_tenancy::ports::{
        MockAuditLog, MockCredentialCrypto, MockCredentialRepository, MockHistoryRetention,
        MockInvitationRepository, MockInvitationSender, MockMembershipRepository,
        MockOrganizationRepository, MockUserRepository,
    };
    use canopy_tenancy::service::TenancyPorts;
    use canopy_tenancy::{Role, TenancyConfig};
    use chrono::Utc;

    use super::*;
    use crate::health::FailureKind;
    use crate::ports::{
        MockCloudAccountRepository, MockConnectionTokenRepository, MockExternalIdRepository,
        MockRoleVerifier, MockSecretSource,
    };

    fn tenancy_as(role: Role) -> TenancyService {
        let org = Organization {
            id: OrganizationId::new(),
            name: "Acme".into(),
            slug: "acme".into(),
            logo: None,
            metadata: json!({}),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let mut organizations = MockOrganizationRepository::new();
        organizations
            .expect_find_for_credential()
            .returning(move |_, _, _| {
                Ok(Some((
                    Principal {
                        user_id: UserId::new(),
                        credential: CredentialKind::Session(SessionId::new()),
                    },
                    Some((org.clone(), role)),
                )))
            });
        let mut crypto = MockCredentialCrypto::new();
        crypto.expect_digest().returning(|t| t.to_string());
        TenancyService::new(
            TenancyPorts {
                users: Arc::new(MockUserRepository::new()),
                credentials: Arc::new(MockCredentialRepository::new()),
                organizations: Arc::new(organizations),
                members: Arc::new(MockMembershipRepository::new()),
                invitations: Arc::new(MockInvitationRepository::new()),
                audit: Arc::new(MockAuditLog::new()),
                retention: Arc::new(MockHistoryRetention::new()),
                sender: Arc::new(MockInvitationSender::new()),
                crypto: Arc::new(crypto),
                clock: Arc::new(ManualClock::new(Utc::now())),
            },
            TenancyConfig::default(),
        )
    }

    #[derive(Default)]
    struct Mocks {
        accounts: MockCloudAccountRepository,
        external_ids: MockExternalIdRepository,
        aws: MockRoleVerifier,
        subscriptions: MockSubscriptionRepository,
        tokens: MockConnectionTokenRepository,
    }

    impl Mocks {
        async fn service(self, role: Role) -> (CloudAccountService, OrgAccess) {
            let tenancy = tenancy_as(role);
            let access = tenancy.access_by_token("tok", "acme").await.unwrap();
            let mut secrets = MockSecretSource::new();
            secrets.expect_external_id().returning(|| "cnp-ext".into());
            let service = CloudAccountService::new(
                CloudAccountPorts {
                    accounts: Arc::new(self.accounts),
                    external_ids: Arc::new(self.external_ids),
                    tokens: Arc::new(self.tokens),
                    tenancy,
                    billing: BillingService::new(
                        Arc::new(self.subscriptions),
                        Arc::new(MockHistoryStore::new()),
                        Arc::new(ManualClock::new(Utc::now())),
                    ),
                    aws: Arc::new(self.aws),
                    secrets: Arc::new(secrets),
                    clock: Arc::new(ManualClock::new(Utc::now())),
                },
                CloudAccountConfig {
                    trusted_principal: "arn:aws:iam::111122223333:root".into(),
                    public_url: "https://console.example.com".into(),
                },
            );
            (service, access)
        }
    }

    fn aws_input() -> AccountInput {
        AccountInput {
            provider: "aws".into(),
            account_id: Some("123456789012".into()),
            role_arn: Some("arn:aws:iam::123456789012:role/CanopyAccess".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        }
    }

    fn stored(org: canopy_kernel::id::OrganizationId) -> CloudAccount {
        let (identity, settings) = validate_new(&aws_input()).unwrap();
        CloudAccount {
            id: CloudAccountId::new(),
            organization_id: org,
            identity,
            settings,
            status: AccountStatus::Active,
            last_synced_at: None,
            last_error: None,
            created_by: UserId::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_member_cannot_connect_and_storage_is_never_asked() {
        let mut mocks = Mocks::default();
        mocks.accounts.expect_create().never();
        let (service, access) = mocks.service(Role::Member).await;
        let err = service.connect(&access, &aws_input()).await.unwrap_err();
        assert!(
            matches!(
                err,
                CloudAccountError::Tenancy(TenancyError::Forbidden(Action::ConnectCloudAccount))
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn sync_assumes_the_role_with_the_current_external_id_and_records_the_classified_failure()
    {
        let mut mocks = Mocks::default();
        mocks
            .external_ids
            .expect_current_or_create()
            .returning(|c| {
                Ok(ExternalId {
                    value: "cnp-current".into(),
                    ..c
                })
            });
        mocks
            .accounts
            .expect_get()
            .returning(|org, _| Ok(Some(stored(org))));
        mocks
            .aws
            .expect_assume_role()
            .withf(|arn, external_id, session, region| {
                arn == "arn:aws:iam::123456789012:role/CanopyAccess"
                    && external_id == "cnp-current"
                    && session.starts_with("canopy-")
                    && region == "eu-west-1"
            })
            .times(1)
            .returning(|_, _, _, _| {
                Err(AccessFailure {
                    kind: FailureKind::AccessDenied,
                    message: "AccessDenied: no".into(),
                })
            });
        mocks
            .accounts
            .expect_record_check()
            .withf(|_, check| {
                check.failure.as_ref().map(|f| f.kind) == Some(FailureKind::AccessDenied)
            })
            .times(1)
            .returning(|org, _| {
                let mut a = stored(org);
                a.status = AccountStatus::Error;
                Ok(Some(a))
            });
        let (service, access) = mocks.service(Role::Admin).await;
        let (account, check) = service.sync(&access, CloudAccountId::new()).await.unwrap();
        assert_eq!(account.status, AccountStatus::Error);
        assert_eq!(check.failure.unwrap().kind, FailureKind::AccessDenied);
    }

    #[tokio::test]
    async fn disconnect_needs_the_account_id_repeated() {
        let mut mocks = Mocks::default();
        mocks
            .accounts
            .expect_get()
            .returning(|org, _| Ok(Some(stored(org))));
        mocks.accounts.expect_delete().never();
        let (service, access) = mocks.service(Role::Owner).await;
        let err = service
            .disconnect(&access, CloudAccountId::new(), "210987654321")
            .await
            .unwrap_err();
        match err {
            CloudAccountError::Tenancy(TenancyError::Invalid(v)) => {
                assert_eq!(v.errors[0].rule, "confirmation")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn no_token_is_issued_when_the_plan_has_no_room_for_another_account() {
        use canopy_billing::{SubscribedTier, Subscription, Tier, Usage};
        let mut mocks = Mocks::default();
        mocks.subscriptions.expect_get().returning(|_| {
            Ok(Some(Subscription {
                tier: SubscribedTier::Current(Tier::Individual),
                ..Subscription::free(OrganizationId::new(), Utc::now())
            }))
        });
        mocks.subscriptions.expect_usage().returning(|_, _| {
            Ok(Usage {
                cloud_accounts: 6,
                members: 1,
                pending_invitations: 0,
            })
        });
        mocks.tokens.expect_insert().never();
        let (service, access) = mocks.service(Role::Admin).await;
        let err = service.create_connect_token(&access).await.unwrap_err();
        match err {
            CloudAccountError::PlanLimit(limit) => {
                assert_eq!((limit.used, limit.allowed), (6, 6));
                assert_eq!(limit.resource, LimitedResource::CloudAccounts);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn instructions_carry_the_external_id_in_the_trust_policy() {
        let mut mocks = Mocks::default();
        mocks.external_ids.expect_current_or_create().returning(Ok);
        let (service, access) = mocks.service(Role::Admin).await;
        let i = service.connection_instructions(&access).await.unwrap();
        assert_eq!(i.external_id, "cnp-ext");
        assert_eq!(i.trusted_principal, "arn:aws:iam::111122223333:root");
        assert_eq!(
            i.trust_policy["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "cnp-ext"
        );
    }
}
