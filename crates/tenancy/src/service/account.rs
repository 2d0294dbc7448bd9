//! A person looks after their own account: proving their address, changing or resetting the
//! password, changing the address, seeing and ending their sessions. Each link sent is
//! single-use, stored as a digest, and bound to a purpose and an expiry.

use canopy_kernel::id::SessionId;
use canopy_kernel::{StoreError, ValidationErrors};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::TenancyService;
use super::sessions::plausible_token;
use crate::account::{
    ClientInfo, DeletedAccount, HeldOrganization, Redemption, SecurityAction, SecurityEvent,
    SessionInfo, TokenPurpose, UserToken,
};
use crate::credential::{CredentialKind, Principal};
use crate::mail::{Mail, MailContent};
use crate::ports::{CryptoError, DeleteAccountError, RedeemError};
use crate::user::{Email, Password, User};

/// How long a verification link works.
pub const VERIFY_TTL: Duration = Duration::hours(24);
/// How long a password-reset link works.
pub const RESET_TTL: Duration = Duration::minutes(30);
/// How long a new-address confirmation link works.
pub const CHANGE_EMAIL_TTL: Duration = Duration::hours(24);

/// Outcomes of the self-service operations.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Input broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The current password given does not match.
    #[error("the current password is not correct")]
    WrongPassword,
    /// The link is unknown, already used, or was replaced by a newer one.
    #[error("this link is not valid")]
    LinkInvalid,
    /// The link's time ran out.
    #[error("this link has expired")]
    LinkExpired,
    /// The address is already the account's, or already verified.
    #[error("already verified")]
    AlreadyVerified,
    /// Another account has this address.
    #[error("email already registered")]
    EmailTaken,
    /// No session with this id among the caller's.
    #[error("session not found")]
    SessionNotFound,
    /// The account is the only owner of organizations that have other members: ownership
    /// must move (or the members go) before it can be deleted.
    #[error("the last owner of organizations with other members")]
    LastOwner(Vec<HeldOrganization>),
    /// No credential, or one that is unknown, expired or revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// Hashing failed or is saturated.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RedeemError> for AccountError {
    fn from(e: RedeemError) -> Self {
        match e {
            RedeemError::Invalid => AccountError::LinkInvalid,
            RedeemError::Expired => AccountError::LinkExpired,
            RedeemError::EmailTaken => AccountError::EmailTaken,
            RedeemError::Store(s) => AccountError::Store(s),
        }
    }
}

/// What a redeemed link did, for the page that opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The account, as it is now.
    pub user: User,
    /// What the link was for.
    pub purpose: TokenPurpose,
}

impl TenancyService {
    /// Issues a single-use link of `purpose` for `user` to `to`, voiding the earlier unused
    /// ones of the same purpose; the link (with its token) and its expiry.
    async fn issue_link(
        &self,
        user: &User,
        purpose: TokenPurpose,
        to: &Email,
        ttl: Duration,
        path: &str,
    ) -> Result<(String, DateTime<Utc>), StoreError> {
        let secret = self.ports.crypto.new_token(purpose.token_kind());
        let now = self.now();
        let token = UserToken {
            id: Uuid::now_v7(),
            user_id: user.id,
            purpose,
            token_digest: secret.digest,
            email: to.clone(),
            expires_at: now + ttl,
            created_at: now,
        };
        let expires_at = token.expires_at;
        self.ports.users.issue_token(token).await?;
        Ok((
            self.link(&format!("{path}?token={}", secret.plain)),
            expires_at,
        ))
    }

    /// Records an entry in the user's security log.
    async fn log_security(
        &self,
        user: &User,
        action: SecurityAction,
        client: &ClientInfo,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.ports
            .security_log
            .record(SecurityEvent {
                id: Uuid::now_v7(),
                user_id: user.id,
                action,
                client: client.clone(),
                details,
                occurred_at: self.now(),
            })
            .await
    }

    /// Sends `user` the link that verifies their address (at sign-up, or again on request).
    pub(super) async fn send_verification(&self, user: &User) -> Result<(), StoreError> {
        let (link, expires_at) = self
            .issue_link(
                user,
                TokenPurpose::VerifyEmail,
                &user.email,
                VERIFY_TTL,
                "/verify-email",
            )
            .await?;
        self.send_mail(Mail {
            to: user.email.clone(),
            content: MailContent::VerifyEmail {
                name: user.name.clone(),
                link,
                expires_at,
            },
        })
        .await
    }

    /// Sends the verification link again; `AlreadyVerified` once the address is proven.
    pub async fn resend_verification(&self, principal: &Principal) -> Result<(), AccountError> {
        let user = self.account_of(principal).await?;
        if user.email_verified_at.is_some() {
            return Err(AccountError::AlreadyVerified);
        }
        self.send_verification(&user).await?;
        Ok(())
    }

    /// Redeems a verification or new-address link (the token from its query string).
    pub async fn confirm_email(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Redeemed, AccountError> {
        if !plausible_token(token) {
            return Err(AccountError::LinkInvalid);
        }
        let digest = self.ports.crypto.digest(token);
        let purpose = if token.starts_with(TokenPurpose::ChangeEmail.token_kind()) {
            TokenPurpose::ChangeEmail
        } else {
            TokenPurpose::VerifyEmail
        };
        let redemption = match purpose {
            TokenPurpose::ChangeEmail => Redemption::ChangeEmail,
            _ => Redemption::VerifyEmail,
        };
        let (user, old_email) = self
            .ports
            .users
            .redeem_token(&digest, redemption, self.now())
            .await?;
        let (action, details) = match purpose {
            TokenPurpose::ChangeEmail => (
                SecurityAction::EmailChanged,
                json!({"from": old_email.as_str(), "to": user.email.as_str()}),
            ),
            _ => (
                SecurityAction::EmailVerified,
                json!({"email": user.email.as_str()}),
            ),
        };
        self.log_security(&user, action, client, details).await?;
        Ok(Redeemed { user, purpose })
    }

    /// Changes the password after checking the current one; every other session of the user
    /// ends (the one making the change stays, when it is a session).
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
        client: &ClientInfo,
    ) -> Result<u64, AccountError> {
        let password = Password::parse(new, "newPassword").map_err(ValidationErrors::single)?;
        let user = self.account_of(principal).await?;
        self.check_password(&user, current).await?;
        let hash = self
            .ports
            .crypto
            .hash_password(password.expose().to_string())
            .await?;
        let keep = match principal.credential {
            CredentialKind::Session(id) => Some(id),
            CredentialKind::ApiKey(_) => None,
        };
        let ended = self
            .ports
            .users
            .set_password(user.id, hash, keep, self.now())
            .await?;
        self.log_security(
            &user,
            SecurityAction::PasswordChanged,
            client,
            json!({"sessionsEnded": ended}),
        )
        .await?;
        self.send_mail(Mail {
            to: user.email.clone(),
            content: MailContent::PasswordChanged {
                name: user.name.clone(),
                at: self.now(),
            },
        })
        .await?;
        Ok(ended)
    }

    /// Sends a reset link when `email` belongs to an account, and does nothing otherwise. The
    /// caller answers the same either way and must not wait for this to decide how fast to
    /// answer (the edge runs it after replying), so neither reveals who has an account.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let Ok(email) = Email::parse(email, "email") else {
            return Ok(());
        };
        let Some(found) = self.ports.users.find_credentials(&email).await? else {
            return Ok(());
        };
        let user = found.user;
        let (link, expires_at) = self
            .issue_link(
                &user,
                TokenPurpose::ResetPassword,
                &user.email,
                RESET_TTL,
                "/reset-password",
            )
            .await?;
        self.log_security(
            &user,
            SecurityAction::PasswordResetRequested,
            client,
            json!({}),
        )
        .await?;
        self.send_mail(Mail {
            to: user.email.clone(),
            content: MailContent::PasswordReset {
                name: user.name.clone(),
                link,
                expires_at,
            },
        })
        .await?;
        Ok(())
    }

    /// Sets a new password through a reset link: the link is used up, every session ends, and
    /// the address counts as verified (the link reached it).
    pub async fn reset_password(
        &self,
        token: &str,
        new: String,
        client: &ClientInfo,
    ) -> Result<User, AccountError> {
        let password = Password::parse(new, "newPassword").map_err(ValidationErrors::single)?;
        if !plausible_token(token) {
            return Err(AccountError::LinkInvalid);
        }
        let digest = self.ports.crypto.digest(token);
        let password_hash = self
            .ports
            .crypto
            .hash_password(password.expose().to_string())
            .await?;
        let (user, _) = self
            .ports
            .users
            .redeem_token(
                &digest,
                Redemption::ResetPassword { password_hash },
                self.now(),
            )
            .await?;
        self.log_security(&user, SecurityAction::PasswordReset, client, json!({}))
            .await?;
        self.send_mail(Mail {
            to: user.email.clone(),
            content: MailContent::PasswordChanged {
                name: user.name.clone(),
                at: self.now(),
            },
        })
        .await?;
        Ok(user)
    }

    /// Asks to change the account's address: the current password is required, the new
    /// address gets a confirmation link, the old one a notice. Nothing changes until the link
    /// is opened.
    pub async fn request_email_change(
        &self,
        principal: &Principal,
        new_email: &str,
        current: String,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let new_email = Email::parse(new_email, "newEmail").map_err(ValidationErrors::single)?;
        let user = self.account_of(principal).await?;
        let found = self
            .ports
            .users
            .find_credentials(&user.email)
            .await?
            .ok_or(AccountError::Unauthenticated)?;
        if !self
            .ports
            .crypto
            .verify_password(current, found.password_hash)
            .await?
        {
            return Err(AccountError::WrongPassword);
        }
        if new_email == user.email {
            return Err(AccountError::AlreadyVerified);
        }
        if self
            .ports
            .users
            .find_credentials(&new_email)
            .await?
            .is_some()
        {
            return Err(AccountError::EmailTaken);
        }
        let (link, expires_at) = self
            .issue_link(
                &user,
                TokenPurpose::ChangeEmail,
                &new_email,
                CHANGE_EMAIL_TTL,
                "/verify-email",
            )
            .await?;
        self.send_mail(Mail {
            to: new_email.clone(),
            content: MailContent::ConfirmNewEmail {
                name: user.name.clone(),
                link,
                expires_at,
            },
        })
        .await?;
        self.send_mail(Mail {
            to: user.email.clone(),
            content: MailContent::EmailChangeRequested {
                name: user.name.clone(),
                new_email: new_email.as_str().to_string(),
            },
        })
        .await?;
        self.log_security(
            &user,
            SecurityAction::EmailChangeRequested,
            client,
            json!({"to": new_email.as_str()}),
        )
        .await?;
        Ok(())
    }

    /// The caller's sessions that have not expired, newest first.
    pub async fn list_sessions(
        &self,
        principal: &Principal,
    ) -> Result<Vec<SessionInfo>, AccountError> {
        let user = self.account_of(principal).await?;
        Ok(self
            .ports
            .credentials
            .list_sessions(user.id, self.now())
            .await?)
    }

    /// Ends one of the caller's sessions (the current one too, if asked).
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        id: SessionId,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let user = self.account_of(principal).await?;
        if !self
            .ports
            .credentials
            .delete_user_session(user.id, id)
            .await?
        {
            return Err(AccountError::SessionNotFound);
        }
        self.log_security(
            &user,
            SecurityAction::SessionRevoked,
            client,
            json!({"sessionId": id.to_string()}),
        )
        .await?;
        Ok(())
    }

    /// Ends every session of the caller but the current one (all of them when the caller
    /// uses an API key); how many ended.
    pub async fn revoke_other_sessions(
        &self,
        principal: &Principal,
        client: &ClientInfo,
    ) -> Result<u64, AccountError> {
        let user = self.account_of(principal).await?;
        let keep = match principal.credential {
            CredentialKind::Session(id) => Some(id),
            CredentialKind::ApiKey(_) => None,
        };
        let ended = self
            .ports
            .credentials
            .delete_other_sessions(user.id, keep)
            .await?;
        self.log_security(
            &user,
            SecurityAction::OtherSessionsRevoked,
            client,
            json!({"sessionsEnded": ended}),
        )
        .await?;
        Ok(ended)
    }

    /// The caller's security log, newest first.
    pub async fn security_log(
        &self,
        principal: &Principal,
        page: canopy_kernel::PageRequest,
    ) -> Result<canopy_kernel::Page<SecurityEvent>, AccountError> {
        let user = self.account_of(principal).await?;
        Ok(self.ports.security_log.list(user.id, page).await?)
    }

    /// Notes that a session was used now; the adapter writes at most about once a minute per
    /// session.
    pub async fn touch_session(&self, principal: &Principal) -> Result<(), StoreError> {
        if let CredentialKind::Session(id) = principal.credential {
            self.ports.credentials.touch_session(id, self.now()).await?;
        }
        Ok(())
    }

    /// Operators (`canopy admin verify-email`) and the demo mark an address verified without
    /// a link. `false` when no account has it.
    pub async fn verify_email_as_operator(&self, email: &str) -> Result<bool, AccountError> {
        let email = Email::parse(email, "email").map_err(ValidationErrors::single)?;
        let Some(found) = self.ports.users.find_credentials(&email).await? else {
            return Ok(false);
        };
        self.ports
            .users
            .mark_verified(found.user.id, self.now())
            .await?;
        Ok(true)
    }

    /// `WrongPassword` unless `password` is the account's current one.
    async fn check_password(&self, user: &User, password: String) -> Result<(), AccountError> {
        let found = self
            .ports
            .users
            .find_credentials(&user.email)
            .await?
            .ok_or(AccountError::Unauthenticated)?;
        if self
            .ports
            .crypto
            .verify_password(password, found.password_hash)
            .await?
        {
            Ok(())
        } else {
            Err(AccountError::WrongPassword)
        }
    }

    /// Deletes the caller's account after checking the password: organizations they are
    /// alone in go, their other memberships end, the records that stay name a tombstone
    /// instead of their address. Refused with `LastOwner`, naming the organizations, while
    /// they are the only owner of one that has other members.
    pub async fn delete_account(
        &self,
        principal: &Principal,
        password: String,
    ) -> Result<DeletedAccount, AccountError> {
        let user = self.account_of(principal).await?;
        self.check_password(&user, password).await?;
        let deleted = self
            .ports
            .users
            .delete_account(user.id, self.now())
            .await
            .map_err(|e| match e {
                DeleteAccountError::LastOwner(held) => AccountError::LastOwner(held),
                DeleteAccountError::Store(s) => AccountError::Store(s),
            })?
            .ok_or(AccountError::Unauthenticated)?;
        tracing::info!(
            user = %user.id,
            organizations_deleted = deleted.organizations_deleted.len(),
            memberships_ended = deleted.memberships_ended.len(),
            "account deleted"
        );
        Ok(deleted)
    }

    async fn account_of(&self, principal: &Principal) -> Result<User, AccountError> {
        self.ports
            .users
            .get(principal.user_id)
            .await?
            .ok_or(AccountError::Unauthenticated)
    }
}
