//! A person's own account: the single-use links sent to their address, the sessions they can
//! see and end, and their security log.

use canopy_kernel::id::{SessionId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::user::Email;

/// What a single-use link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Proves the account's address (sent at sign-up, or again on request).
    VerifyEmail,
    /// Sets a new password without the old one.
    ResetPassword,
    /// Proves a new address before it replaces the old one.
    ChangeEmail,
}

impl TokenPurpose {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::ChangeEmail => "change_email",
        }
    }

    /// Reads the stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        [
            TokenPurpose::VerifyEmail,
            TokenPurpose::ResetPassword,
            TokenPurpose::ChangeEmail,
        ]
        .into_iter()
        .find(|p| p.as_str() == raw)
    }

    /// The visible prefix of its tokens, so a leaked one is recognisable.
    pub fn token_kind(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "cnp_verify",
            TokenPurpose::ResetPassword => "cnp_reset",
            TokenPurpose::ChangeEmail => "cnp_email",
        }
    }
}

/// A single-use link's token as stored: only its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserToken {
    /// Id.
    pub id: Uuid,
    /// Whose.
    pub user_id: UserId,
    /// What for.
    pub purpose: TokenPurpose,
    /// Digest of the token in the link.
    pub token_digest: String,
    /// The address the link was sent to (the new one, for a change).
    pub email: Email,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// What redeeming a token does, besides using it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// Marks the address verified (if it is still the account's address).
    VerifyEmail,
    /// Makes the token's address the account's, verified.
    ChangeEmail,
    /// Sets the password hash, marks the address verified (the link proved it) and ends every
    /// session.
    ResetPassword {
        /// The new PHC hash.
        password_hash: String,
    },
}

impl Redemption {
    /// The purpose a token must have to be redeemed this way.
    pub fn purpose(&self) -> TokenPurpose {
        match self {
            Redemption::VerifyEmail => TokenPurpose::VerifyEmail,
            Redemption::ChangeEmail => TokenPurpose::ChangeEmail,
            Redemption::ResetPassword { .. } => TokenPurpose::ResetPassword,
        }
    }
}

/// Where a request came from, as the edge saw it (through the configured proxy trust).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `User-Agent` header, cut to a readable length.
    pub user_agent: Option<String>,
    /// The client address.
    pub ip: Option<String>,
}

impl ClientInfo {
    /// Longest user agent kept, in characters.
    pub const MAX_USER_AGENT: usize = 256;

    /// Client facts from raw header and address values, bounded and cleaned of control
    /// characters so they are safe to store and show.
    pub fn new(user_agent: Option<&str>, ip: Option<String>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(Self::MAX_USER_AGENT)
                    .collect::<String>()
            })
            .filter(|ua| !ua.trim().is_empty());
        Self { user_agent, ip }
    }
}

/// One of a person's sessions, as they see it in their list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Id.
    pub id: SessionId,
    /// Opened at.
    pub created_at: DateTime<Utc>,
    /// Last request made with it (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it ends by itself.
    pub expires_at: DateTime<Utc>,
    /// The browser or tool that opened it.
    pub user_agent: Option<String>,
    /// The address it was opened from.
    pub ip: Option<String>,
}

/// What happened to an account, for its owner's security log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityAction {
    /// The address was verified.
    EmailVerified,
    /// A new address was asked for (not yet confirmed).
    EmailChangeRequested,
    /// The new address was confirmed and replaced the old one.
    EmailChanged,
    /// The password was changed with the old one.
    PasswordChanged,
    /// A reset link was asked for.
    PasswordResetRequested,
    /// The password was set through a reset link.
    PasswordReset,
    /// One session was ended from the list.
    SessionRevoked,
    /// Every other session was ended.
    OtherSessionsRevoked,
}

impl SecurityAction {
    /// Every action.
    pub const ALL: [SecurityAction; 8] = [
        SecurityAction::EmailVerified,
        SecurityAction::EmailChangeRequested,
        SecurityAction::EmailChanged,
        SecurityAction::PasswordChanged,
        SecurityAction::PasswordResetRequested,
        SecurityAction::PasswordReset,
        SecurityAction::SessionRevoked,
        SecurityAction::OtherSessionsRevoked,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityAction::EmailVerified => "email.verified",
            SecurityAction::EmailChangeRequested => "email.change_requested",
            SecurityAction::EmailChanged => "email.changed",
            SecurityAction::PasswordChanged => "password.changed",
            SecurityAction::PasswordResetRequested => "password.reset_requested",
            SecurityAction::PasswordReset => "password.reset",
            SecurityAction::SessionRevoked => "session.revoked",
            SecurityAction::OtherSessionsRevoked => "session.others_revoked",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

/// An entry of a person's security log.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEvent {
    /// Id.
    pub id: Uuid,
    /// Whose account.
    pub user_id: UserId,
    /// What happened.
    pub action: SecurityAction,
    /// From where.
    pub client: ClientInfo,
    /// Facts (the new address, how many sessions ended).
    pub details: serde_json::Value,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// What stands in for a deleted person's address in the records that outlive the account
/// (audit details): the record stays, the address does not.
pub const TOMBSTONE: &str = "(deleted account)";

/// An organization an account deletion is about: one it removes, one it leaves, or one that
/// stops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOrganization {
    /// Id.
    pub id: canopy_kernel::id::OrganizationId,
    /// Slug.
    pub slug: crate::Slug,
    /// Display name.
    pub name: String,
    /// Members besides the person leaving.
    pub other_members: u64,
}

/// What deleting an account removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeletedAccount {
    /// Organizations the person was alone in, gone with everything they owned.
    pub organizations_deleted: Vec<HeldOrganization>,
    /// Organizations that stay, without the person.
    pub memberships_ended: Vec<HeldOrganization>,
}

/// Replaces every string equal to `email` (ignoring case) inside `value` with [`TOMBSTONE`];
/// whether anything changed.
pub fn scrub_email(value: &mut serde_json::Value, email: &str) -> bool {
    match value {
        serde_json::Value::String(s) if s.eq_ignore_ascii_case(email) => {
            *s = TOMBSTONE.to_string();
            true
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| scrub_email(v, email) | changed),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, v| scrub_email(v, email) | changed),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for a in SecurityAction::ALL {
            assert_eq!(SecurityAction::from_stored(a.as_str()), Some(a));
        }
        for p in [
            TokenPurpose::VerifyEmail,
            TokenPurpose::ResetPassword,
            TokenPurpose::ChangeEmail,
        ] {
            assert_eq!(TokenPurpose::from_stored(p.as_str()), Some(p));
        }
    }

    #[test]
    fn user_agents_are_bounded_and_cleaned() {
        let c = ClientInfo::new(Some(&format!("Mozilla\u{0}\n{}", "x".repeat(400))), None);
        let ua = c.user_agent.unwrap();
        assert!(ua.starts_with("Mozilla") && !ua.contains('\n') && !ua.contains('\u{0}'));
        assert_eq!(ua.chars().count(), ClientInfo::MAX_USER_AGENT);
        assert_eq!(ClientInfo::new(Some("  "), None).user_agent, None);
    }

    #[test]
    fn scrubbing_replaces_the_address_wherever_it_sits_and_nothing_else() {
        let mut details = serde_json::json!({
            "email": "Ada@Example.com",
            "role": "member",
            "nested": [{"to": "ada@example.com"}, "bob@example.com"],
        });
        assert!(scrub_email(&mut details, "ada@example.com"));
        assert_eq!(details["email"], TOMBSTONE);
        assert_eq!(details["nested"][0]["to"], TOMBSTONE);
        assert_eq!(details["nested"][1], "bob@example.com");
        assert_eq!(details["role"], "member");
        assert!(!scrub_email(&mut details, "ada@example.com"));
    }
}
