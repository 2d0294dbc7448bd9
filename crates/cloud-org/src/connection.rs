//! Token-based connection flows (spec "AWS Account Connection Flow").
//!
//! - Web-initiated: an admin creates a connect token; the CLI presents it with the account
//!   details to `POST /v1/connect`; no user session, the token is the credential.
//! - CLI-initiated: a signed-in admin files a connection request with the details; an admin
//!   or owner of that organization previews and confirms (or cancels) it in the console.
//!
//! Both tokens live 10 minutes, are single use and are stored only as a digest.

use canopy_kernel::id::{OrganizationId, UserId};
use chrono::{DateTime, Duration, Utc};

use crate::account::{AccountInput, CloudAccountId};

/// How long a token stays usable (spec: 10 minutes).
pub const TOKEN_TTL: Duration = Duration::minutes(10);

/// Which flow a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Web-initiated: details arrive with the token.
    ConnectToken,
    /// CLI-initiated: details were filed with the request; a person confirms.
    ConnectionRequest,
}

impl TokenKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::ConnectToken => "connect_token",
            TokenKind::ConnectionRequest => "connection_request",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "connect_token" => Some(TokenKind::ConnectToken),
            "connection_request" => Some(TokenKind::ConnectionRequest),
            _ => None,
        }
    }
}

/// Where a token is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Usable until it expires.
    Pending,
    /// Redeemed; an account was created.
    Used,
    /// Cancelled by an admin or owner.
    Cancelled,
}

impl TokenStatus {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Pending => "pending",
            TokenStatus::Used => "used",
            TokenStatus::Cancelled => "cancelled",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(TokenStatus::Pending),
            "used" => Some(TokenStatus::Used),
            "cancelled" => Some(TokenStatus::Cancelled),
            _ => None,
        }
    }
}

/// A connect token or connection request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionToken {
    /// Which flow.
    pub kind: TokenKind,
    /// Digest of the token; the token itself is never stored.
    pub digest: String,
    /// The organization the account will join.
    pub organization_id: OrganizationId,
    /// The admin who issued it.
    pub created_by: UserId,
    /// Account details (connection requests only).
    pub input: Option<AccountInput>,
    /// Status.
    pub status: TokenStatus,
    /// When it stops being usable.
    pub expires_at: DateTime<Utc>,
    /// The account it created.
    pub cloud_account_id: Option<CloudAccountId>,
    /// Issued.
    pub created_at: DateTime<Utc>,
}

/// Why a token could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// No such token (or not visible to the caller).
    #[error("unknown token")]
    Unknown,
    /// Its 10 minutes are over.
    #[error("token expired")]
    Expired,
    /// It was already redeemed.
    #[error("token already used")]
    Used,
    /// It was cancelled.
    #[error("token cancelled")]
    Cancelled,
}

impl ConnectionToken {
    /// Why this token cannot be redeemed at `now`, if it cannot.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<TokenRefusal> {
        match self.status {
            TokenStatus::Used => Some(TokenRefusal::Used),
            TokenStatus::Cancelled => Some(TokenRefusal::Cancelled),
            TokenStatus::Pending if now >= self.expires_at => Some(TokenRefusal::Expired),
            TokenStatus::Pending => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_follow_status_then_expiry() {
        let now = Utc::now();
        let mut t = ConnectionToken {
            kind: TokenKind::ConnectToken,
            digest: "d".into(),
            organization_id: OrganizationId::new(),
            created_by: UserId::new(),
            input: None,
            status: TokenStatus::Pending,
            expires_at: now + TOKEN_TTL,
            cloud_account_id: None,
            created_at: now,
        };
        assert_eq!(t.refusal(now), None);
        assert_eq!(
            t.refusal(now + Duration::minutes(10)),
            Some(TokenRefusal::Expired)
        );
        t.status = TokenStatus::Used;
        assert_eq!(t.refusal(now), Some(TokenRefusal::Used));
        t.status = TokenStatus::Cancelled;
        assert_eq!(t.refusal(now), Some(TokenRefusal::Cancelled));
    }
}
