//! The token flows (spec "AWS Account Connection Flow"): a connect token issued in the
//! console and redeemed by the CLI, and a connection request filed by the CLI and confirmed
//! in the console. Both tokens are single use, live 10 minutes and are stored as a digest.

use canopy_billing::RoomError;
use canopy_kernel::id::UserId;
use canopy_kernel::{
    FeatureNotInPlan, LimitedResource, PlanLimitExceeded, StoreError, ValidationErrors,
};
use canopy_tenancy::{
    AccessError, Action, AuditAction, AuditTarget, Forbidden, NewAuditEvent, OrgAccess,
    Organization, Principal, TargetKind,
};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::CloudAccountService;
use crate::account::{AccountInput, CloudAccount, validate_new};
use crate::connection::{ConnectionToken, TOKEN_TTL, TokenKind, TokenRefusal, TokenStatus};
use crate::ports::RedeemError;

/// Outcomes of the token flows.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The account details broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow connecting accounts.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The token is unknown, expired, used or cancelled.
    #[error(transparent)]
    Token(#[from] TokenRefusal),
    /// The organization's plan has no room for another account.
    #[error(transparent)]
    PlanLimit(#[from] PlanLimitExceeded),
    /// The caller used an API key and the plan has no API access.
    #[error(transparent)]
    NotInPlan(#[from] FeatureNotInPlan),
    /// The account is already connected to this organization.
    #[error("already connected to this organization")]
    AlreadyConnected,
    /// The account is connected to another organization.
    #[error("connected to another organization")]
    ConnectedElsewhere,
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RedeemError> for ConnectionError {
    fn from(e: RedeemError) -> Self {
        match e {
            RedeemError::Refused(r) => r.into(),
            RedeemError::Connect(c) => c.into(),
        }
    }
}

impl From<RoomError> for ConnectionError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::Full(limit) => limit.into(),
            RoomError::Store(e) => e.into(),
        }
    }
}

/// A freshly issued connect token or connection request; the token is shown only here.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
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

impl CloudAccountService {
    async fn issue(
        &self,
        access: &OrgAccess,
        kind: TokenKind,
        input: Option<AccountInput>,
    ) -> Result<IssuedToken, ConnectionError> {
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
            created_by: access.user_id(),
            input,
            status: TokenStatus::Pending,
            expires_at: now + TOKEN_TTL,
            cloud_account_id: None,
            created_at: now,
        };
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            match kind {
                TokenKind::ConnectToken => AuditAction::ConnectTokenCreated,
                TokenKind::ConnectionRequest => AuditAction::ConnectionRequestCreated,
            },
            AuditTarget::new(TargetKind::Organization, access.org_id()),
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
    ) -> Result<IssuedToken, ConnectionError> {
        access.require(Action::ConnectCloudAccount)?;
        self.issue(access, TokenKind::ConnectToken, None).await
    }

    /// Redeems a connect token with account details: the token is the only credential.
    pub async fn connect_with_token(
        &self,
        token: &str,
        input: &AccountInput,
    ) -> Result<CloudAccount, ConnectionError> {
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
    ) -> Result<(String, ConnectionToken), ConnectionError> {
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
    fn ensure_usable(&self, stored: &ConnectionToken) -> Result<(), TokenRefusal> {
        match stored.refusal(self.ports.clock.now()) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// Creates the account a token stands for and consumes the token, atomically.
    async fn redeem(
        &self,
        digest: &str,
        stored: &ConnectionToken,
        actor: UserId,
        input: &AccountInput,
        via: &str,
    ) -> Result<CloudAccount, ConnectionError> {
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
    ) -> Result<IssuedToken, ConnectionError> {
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
    ) -> Result<(String, ConnectionToken, OrgAccess), ConnectionError> {
        let (digest, stored) = self.find_token(token, TokenKind::ConnectionRequest).await?;
        let access = match self
            .ports
            .tenancy
            .access(principal, &stored.organization_id.to_string())
            .await
        {
            Ok(access) => access,
            Err(AccessError::NotFound | AccessError::Unauthenticated) => {
                return Err(TokenRefusal::Unknown.into());
            }
            Err(AccessError::NotInPlan(refusal)) => return Err(refusal.into()),
            Err(AccessError::Store(e)) => return Err(e.into()),
        };
        access.require(Action::ConnectCloudAccount)?;
        Ok((digest, stored, access))
    }

    /// Shows a connection request to an admin or owner of its organization.
    pub async fn preview_request(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<RequestPreview, ConnectionError> {
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
    ) -> Result<CloudAccount, ConnectionError> {
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
    ) -> Result<(), ConnectionError> {
        let (digest, stored, access) = self.request_for(principal, token).await?;
        self.ensure_usable(&stored)?;
        let audit = NewAuditEvent::new(
            access.org_id(),
            Some(principal.user_id),
            AuditAction::ConnectionRequestCancelled,
            AuditTarget::new(TargetKind::Organization, access.org_id()),
            json!({}),
            self.ports.clock.now(),
        );
        if self.ports.tokens.cancel(&digest, audit).await? {
            Ok(())
        } else {
            Err(TokenRefusal::Used.into())
        }
    }
}
