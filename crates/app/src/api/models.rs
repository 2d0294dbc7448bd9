//! Wire types: what clients send and receive. Domain types are converted here and never
//! serialized directly, so the domain can change without breaking clients.

use canopy_kernel::page::Page;
use canopy_tenancy::audit::AuditEvent;
use canopy_tenancy::credential::ApiKey;
use canopy_tenancy::invitation::{Invitation, InvitationView};
use canopy_tenancy::membership::{Member, Role};
use canopy_tenancy::organization::{Organization, OrganizationSummary};
use canopy_tenancy::user::User;
use chrono::{DateTime, Utc};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};
use uuid::Uuid;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RoleDto {
    /// Full access, including deletion and role changes.
    Owner,
    /// Manages members, cloud accounts and settings.
    Admin,
    /// Read-only.
    Member,
}

impl From<Role> for RoleDto {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => RoleDto::Owner,
            Role::Admin => RoleDto::Admin,
            Role::Member => RoleDto::Member,
        }
    }
}

impl From<RoleDto> for Role {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Owner => Role::Owner,
            RoleDto::Admin => Role::Admin,
            RoleDto::Member => Role::Member,
        }
    }
}

/// A user.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct UserDto {
    /// Id.
    pub id: Uuid,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email,
            name: u.name,
            created_at: u.created_at,
        }
    }
}

/// Sign-up request.
#[derive(Debug, Object)]
pub struct SignUpRequest {
    /// Login email; trimmed and lower-cased.
    pub email: String,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// 10 characters to 256 bytes.
    pub password: String,
}

/// Log-in request.
#[derive(Debug, Object)]
pub struct LogInRequest {
    /// Login email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SessionDto {
    /// Bearer token; shown only now.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: UserDto,
}

/// An organization.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationDto {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// URL slug.
    pub slug: String,
    /// Logo URL.
    pub logo: Option<String>,
    /// Free-form settings object.
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Organization> for OrganizationDto {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id.as_uuid(),
            name: o.name,
            slug: o.slug,
            logo: o.logo,
            metadata: o.metadata,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// An organization with the caller's role in it.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct MyOrganizationDto {
    /// The organization.
    pub organization: OrganizationDto,
    /// The caller's role.
    pub role: RoleDto,
    /// Number of members (present in listings).
    pub member_count: Option<u64>,
}

impl From<OrganizationSummary> for MyOrganizationDto {
    fn from(s: OrganizationSummary) -> Self {
        Self {
            organization: s.organization.into(),
            role: s.role.into(),
            member_count: Some(s.member_count),
        }
    }
}

/// The signed-in user with their organizations.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct MeDto {
    /// The user.
    pub user: UserDto,
    /// Every organization they belong to, with their role.
    pub organizations: Vec<MyOrganizationDto>,
    /// The organization the console opens.
    pub active_organization_id: Option<Uuid>,
}

/// Sets the active organization.
#[derive(Debug, Object)]
pub struct ActiveOrganizationRequest {
    /// Organization id or slug.
    pub organization: String,
}

/// Create-organization request.
#[derive(Debug, Object)]
pub struct CreateOrganizationRequest {
    /// Display name.
    pub name: String,
    /// URL slug; derived from the name when absent.
    pub slug: Option<String>,
}

/// Organization changes; absent fields stay as they are, `logo: null` clears the logo.
#[derive(Debug, Object)]
pub struct UpdateOrganizationRequest {
    /// New name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<String>,
    /// New logo URL, or null to clear it.
    pub logo: MaybeUndefined<String>,
    /// Replacement metadata object.
    pub metadata: Option<serde_json::Value>,
}

/// Answer of the slug availability check.
#[derive(Debug, Object)]
pub struct SlugAvailabilityDto {
    /// The slug asked about.
    pub slug: String,
    /// True when valid and unused.
    pub available: bool,
}

/// A member of an organization.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct MemberDto {
    /// User id.
    pub user_id: Uuid,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: RoleDto,
    /// Join time.
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberDto {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id.as_uuid(),
            name: m.name,
            email: m.email,
            role: m.role.into(),
            joined_at: m.joined_at,
        }
    }
}

/// A page of members.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct MemberPage {
    /// Members, by join time.
    pub items: Vec<MemberDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<Member>> for MemberPage {
    fn from(p: Page<Member>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// Role change request.
#[derive(Debug, Object)]
pub struct ChangeRoleRequest {
    /// The new role.
    pub role: RoleDto,
}

/// Ownership transfer request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TransferOwnershipRequest {
    /// The member who becomes owner; the caller becomes admin.
    pub user_id: Uuid,
}

/// Invitation request.
#[derive(Debug, Object)]
pub struct InviteRequest {
    /// Invitee's email.
    pub email: String,
    /// Role granted on acceptance.
    pub role: RoleDto,
}

/// An invitation.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct InvitationDto {
    /// Id.
    pub id: Uuid,
    /// Organization.
    pub organization_id: Uuid,
    /// Invitee email.
    pub email: String,
    /// Role on acceptance.
    pub role: RoleDto,
    /// pending, accepted, rejected, cancelled or replaced.
    pub status: String,
    /// Inviter.
    pub invited_by: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Creation.
    pub created_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationDto {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id.as_uuid(),
            organization_id: i.organization_id.as_uuid(),
            email: i.email,
            role: i.role.into(),
            status: i.status.as_str().to_string(),
            invited_by: i.invited_by.as_uuid(),
            expires_at: i.expires_at,
            created_at: i.created_at,
        }
    }
}

/// A page of invitations.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct InvitationPage {
    /// Newest first.
    pub items: Vec<InvitationDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

impl From<Page<Invitation>> for InvitationPage {
    fn from(p: Page<Invitation>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// An invitation addressed to the caller.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ReceivedInvitationDto {
    /// The invitation.
    pub invitation: InvitationDto,
    /// Organization name.
    pub organization_name: String,
    /// Organization slug.
    pub organization_slug: String,
    /// Who invited.
    pub invited_by_name: String,
}

impl From<InvitationView> for ReceivedInvitationDto {
    fn from(v: InvitationView) -> Self {
        Self {
            invitation: v.invitation.into(),
            organization_name: v.organization_name,
            organization_slug: v.organization_slug,
            invited_by_name: v.invited_by_name,
        }
    }
}

/// API key creation request.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreateApiKeyRequest {
    /// A name to recognise the key by.
    pub name: String,
    /// Days until it expires (1 to 3650); never when absent.
    pub expires_in_days: Option<u32>,
}

/// An API key, without its secret.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ApiKeyDto {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// First characters of the token.
    pub prefix: String,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Creation.
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            name: k.name,
            prefix: k.prefix,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            created_at: k.created_at,
        }
    }
}

/// A new API key with its token, shown only once.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreatedApiKeyDto {
    /// The key.
    pub api_key: ApiKeyDto,
    /// The bearer token; store it now.
    pub token: String,
}

/// An audit event.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AuditEventDto {
    /// Id.
    pub id: Uuid,
    /// Who (absent for system actions).
    pub actor_id: Option<Uuid>,
    /// `noun.verb` action name.
    pub action: String,
    /// Kind of target.
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Extra facts.
    pub details: serde_json::Value,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventDto {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.as_uuid(),
            actor_id: e.actor_id.map(|a| a.as_uuid()),
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            details: e.details,
            occurred_at: e.occurred_at,
        }
    }
}

/// A page of audit events.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AuditEventPage {
    /// Newest first.
    pub items: Vec<AuditEventDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

impl From<Page<AuditEvent>> for AuditEventPage {
    fn from(p: Page<AuditEvent>) -> Self {
        Self {
            next_cursor: p.next.map(|c| c.encode()),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}
