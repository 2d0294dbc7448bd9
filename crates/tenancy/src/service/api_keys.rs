//! API keys: long-lived bearer tokens for CLIs and generated clients, shown once.

use canopy_kernel::id::ApiKeyId;
use canopy_kernel::{FieldError, StoreError, ValidationErrors};
use chrono::Duration;

use super::TenancyService;
use crate::credential::{ApiKey, Principal};
use crate::user::parse_name;

/// Token prefix of API keys, recognisable by secret scanners.
const API_KEY_TOKEN_KIND: &str = "cnp_key";

/// Longest lifetime of an API key, days.
const MAX_DAYS: u32 = 3650;

/// Outcomes of API key operations.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Input broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller has not verified their address yet: keys act as them, so the address they
    /// would be reached at must be theirs.
    #[error("verify your e-mail address before creating API keys")]
    EmailUnverified,
    /// No credential, or one that is unknown, expired or revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// No such key of the caller's, or it is already revoked.
    #[error("api key not found")]
    NotFound,
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new API key with its secret, shown once.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The token; never retrievable again.
    pub token: String,
}

impl TenancyService {
    /// Creates an API key; the token is in the result and nowhere else.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        name: &str,
        expires_in_days: Option<u32>,
    ) -> Result<IssuedApiKey, ApiKeyError> {
        let mut errors = ValidationErrors::default();
        let name = errors.collect(parse_name(name, "name"));
        if let Some(days) = expires_in_days
            && !(1..=MAX_DAYS).contains(&days)
        {
            errors.push(FieldError::new(
                "expiresInDays",
                "range",
                format!("must be between 1 and {MAX_DAYS}"),
            ));
        }
        let Some(name) = name else {
            return Err(errors.into());
        };
        errors.into_result()?;
        let user = self
            .ports
            .users
            .get(principal.user_id)
            .await?
            .ok_or(ApiKeyError::Unauthenticated)?;
        if user.email_verified_at.is_none() {
            return Err(ApiKeyError::EmailUnverified);
        }
        let secret = self.ports.crypto.new_token(API_KEY_TOKEN_KIND);
        let now = self.now();
        let key = ApiKey {
            id: ApiKeyId::new(),
            user_id: principal.user_id,
            name,
            prefix: secret.display_prefix,
            token_digest: secret.digest,
            expires_at: expires_in_days.map(|d| now + Duration::days(i64::from(d))),
            revoked_at: None,
            created_at: now,
        };
        self.ports.credentials.insert_api_key(key.clone()).await?;
        Ok(IssuedApiKey {
            key,
            token: secret.plain,
        })
    }

    /// The caller's API keys, newest first.
    pub async fn list_api_keys(&self, principal: &Principal) -> Result<Vec<ApiKey>, StoreError> {
        self.ports
            .credentials
            .list_api_keys(principal.user_id)
            .await
    }

    /// Revokes one of the caller's API keys.
    pub async fn revoke_api_key(
        &self,
        principal: &Principal,
        id: ApiKeyId,
    ) -> Result<(), ApiKeyError> {
        if self
            .ports
            .credentials
            .revoke_api_key(principal.user_id, id, self.now())
            .await?
        {
            Ok(())
        } else {
            Err(ApiKeyError::NotFound)
        }
    }
}
