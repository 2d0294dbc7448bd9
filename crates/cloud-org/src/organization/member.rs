//! Accounts and projects found by discovery: their state at the provider and what Canopy did
//! with them.

use chrono::{DateTime, Utc};

/// The provider's lifecycle state of a member account or project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// In use.
    Active,
    /// AWS: suspended.
    Suspended,
    /// AWS: closing (90 days).
    PendingClosure,
    /// AWS: closed.
    Closed,
    /// GCP: deletion requested (30 days).
    DeleteRequested,
    /// A state this version does not know; stored as given.
    Other,
}

impl MemberState {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::Suspended => "suspended",
            MemberState::PendingClosure => "pending_closure",
            MemberState::Closed => "closed",
            MemberState::DeleteRequested => "delete_requested",
            MemberState::Other => "other",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        [
            Self::Active,
            Self::Suspended,
            Self::PendingClosure,
            Self::Closed,
            Self::DeleteRequested,
            Self::Other,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// Reads the provider's spelling (AWS `State`/`Status`, GCP `state`).
    pub fn from_provider(raw: &str) -> Self {
        match raw.to_ascii_uppercase().as_str() {
            "ACTIVE" => Self::Active,
            "SUSPENDED" => Self::Suspended,
            "PENDING_CLOSURE" => Self::PendingClosure,
            "CLOSED" => Self::Closed,
            "DELETE_REQUESTED" => Self::DeleteRequested,
            _ => Self::Other,
        }
    }
}

/// What Canopy did with a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Found, not connected.
    Discovered,
    /// A connect job is creating its cloud account.
    Connecting,
    /// Linked to a cloud account.
    Connected,
    /// Connecting failed; the member says why.
    Failed,
    /// An admin excluded it: bulk connects skip it.
    Excluded,
}

impl MemberStatus {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Discovered => "discovered",
            MemberStatus::Connecting => "connecting",
            MemberStatus::Connected => "connected",
            MemberStatus::Failed => "failed",
            MemberStatus::Excluded => "excluded",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        [
            Self::Discovered,
            Self::Connecting,
            Self::Connected,
            Self::Failed,
            Self::Excluded,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// A member as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredMember {
    /// AWS account id or GCP project id.
    pub key: String,
    /// GCP project number.
    pub number: Option<String>,
    /// Account or project name.
    pub name: String,
    /// AWS: the account's e-mail.
    pub email: Option<String>,
    /// Lifecycle state.
    pub state: MemberState,
    /// AWS: `INVITED` or `CREATED`.
    pub joined_method: Option<String>,
    /// AWS: when it joined.
    pub joined_at: Option<DateTime<Utc>>,
    /// The OU, folder or root it sits in.
    pub parent_id: String,
    /// AWS: the management account.
    pub is_management: bool,
    /// Services this account is the delegated administrator of (`guardduty.amazonaws.com`).
    pub delegated_admin_services: Vec<String>,
}
