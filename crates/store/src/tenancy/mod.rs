//! The tenancy ports on sea-orm, one module per port, and the row mappings they share.

mod audit;
mod credentials;
mod deletion;
mod devices;
mod invitations;
mod memberships;
mod organizations;
mod security_log;
mod users;

use canopy_kernel::StoreError;
use canopy_kernel::id::{InvitationId, OrganizationId, UserId};
use canopy_tenancy::invitation::{Invitation, InvitationStatus};
use canopy_tenancy::membership::{Member, Role};
use canopy_tenancy::organization::{Organization, Slug};
use canopy_tenancy::user::{Email, User};
use chrono::{DateTime, Utc};
use sea_orm::Set;
use uuid::Uuid;

pub use audit::AuditStore;
pub(crate) use audit::insert_audit;
pub use credentials::CredentialStore;
pub use devices::DeviceAuthorizationStore;
pub use invitations::InvitationStore;
pub use memberships::MembershipStore;
pub use organizations::OrganizationStore;
pub use security_log::SecurityLogStore;
pub use users::UserStore;

use crate::entity;
use crate::error::corrupt;

pub(crate) fn role_from(raw: &str) -> Result<Role, StoreError> {
    match raw {
        "owner" => Ok(Role::Owner),
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        other => Err(corrupt("role", other)),
    }
}

pub(crate) fn user_from(m: entity::users::Model) -> User {
    User {
        id: UserId(m.id),
        email: Email::from_trusted(m.email),
        name: m.name,
        active_organization_id: m.active_organization_id.map(OrganizationId),
        email_verified_at: m.email_verified_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

pub(crate) fn organization_from(m: entity::organizations::Model) -> Organization {
    Organization {
        id: OrganizationId(m.id),
        name: m.name,
        slug: Slug::from_trusted(m.slug),
        logo: m.logo,
        metadata: m.metadata,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

pub(crate) fn organization_row(o: &Organization) -> entity::organizations::ActiveModel {
    entity::organizations::ActiveModel {
        id: Set(o.id.as_uuid()),
        name: Set(o.name.clone()),
        slug: Set(o.slug.as_str().to_string()),
        logo: Set(o.logo.clone()),
        metadata: Set(o.metadata.clone()),
        created_at: Set(o.created_at),
        updated_at: Set(o.updated_at),
    }
}

pub(crate) fn member_from(
    m: entity::memberships::Model,
    u: entity::users::Model,
) -> Result<Member, StoreError> {
    Ok(Member {
        organization_id: OrganizationId(m.organization_id),
        user_id: UserId(m.user_id),
        name: u.name,
        email: Email::from_trusted(u.email),
        role: role_from(&m.role)?,
        joined_at: m.created_at,
    })
}

pub(crate) fn membership_row(
    org: OrganizationId,
    user: UserId,
    role: Role,
    at: DateTime<Utc>,
) -> entity::memberships::ActiveModel {
    entity::memberships::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org.as_uuid()),
        user_id: Set(user.as_uuid()),
        role: Set(role.as_str().to_string()),
        created_at: Set(at),
    }
}

pub(crate) fn invitation_from(m: entity::invitations::Model) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: InvitationId(m.id),
        organization_id: OrganizationId(m.organization_id),
        email: Email::from_trusted(m.email),
        role: role_from(&m.role)?,
        status: InvitationStatus::from_stored(&m.status)
            .ok_or_else(|| corrupt("invitation status", &m.status))?,
        invited_by: UserId(m.invited_by),
        expires_at: m.expires_at,
        created_at: m.created_at,
    })
}
