//! Roles and members of an organization.

use canopy_kernel::id::{OrganizationId, UserId};
use chrono::{DateTime, Utc};

use canopy_kernel::{FieldError, ValidationErrors};

use crate::user::Email;

/// A member's role in one organization.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only access to dashboards.
    Member,
    /// Manages members, cloud accounts and settings.
    Admin,
    /// Full access, including deletion and role changes.
    Owner,
}

impl Role {
    /// Position in the hierarchy: a higher rank may do everything a lower one may.
    pub fn rank(self) -> u8 {
        match self {
            Role::Member => 0,
            Role::Admin => 1,
            Role::Owner => 2,
        }
    }

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses the wire spelling; `field` names the input in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationErrors> {
        match raw {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(ValidationErrors::single(FieldError::new(
                field,
                "enum",
                "must be one of owner, admin, member",
            ))),
        }
    }
}

/// A person's membership as shown in a member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The member.
    pub user_id: UserId,
    /// Display name.
    pub name: String,
    /// Login email.
    pub email: Email,
    /// Role in this organization.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}
