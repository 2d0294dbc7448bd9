//! Organizations: create, list, read, rename, delete, and the slug availability check.

use canopy_tenancy::OrganizationChanges;
use canopy_tenancy::organization::{Organization, OrganizationSummary};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::members::RoleDto;
use super::problem::ApiError;
use super::wire::{LogoUrl, Name, OrgText, SlugText};
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Organization endpoints.
pub struct OrganizationsApi;

#[derive(ApiResponse)]
enum Created {
    /// Created; the caller is its owner.
    #[oai(status = 201)]
    Created(Json<OrganizationDto>),
}

#[OpenApi(tag = "ApiTags::Organizations")]
impl OrganizationsApi {
    /// Organizations the caller belongs to, with role and member count.
    #[oai(
        path = "/organizations",
        method = "get",
        operation_id = "listOrganizations"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<MyOrganizationDto>>, ApiError> {
        let principal = auth.principal(&state).await?;
        let orgs = state.tenancy.list_organizations(&principal).await?;
        Ok(Json(orgs.into_iter().map(Into::into).collect()))
    }

    /// Creates an organization; the caller becomes its owner.
    #[oai(
        path = "/organizations",
        method = "post",
        operation_id = "createOrganization"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<CreateOrganizationRequest>,
    ) -> Result<Created, ApiError> {
        let principal = auth.principal(&state).await?;
        let org = state
            .tenancy
            .create_organization(
                &principal,
                body.0.name.as_str(),
                body.0.slug.as_ref().map(SlugText::as_str),
            )
            .await?;
        Ok(Created::Created(Json(org.into())))
    }

    /// Whether a slug is valid and free. An invalid slug is a 422 naming the rule.
    #[oai(
        path = "/organizations/slug-availability",
        method = "get",
        operation_id = "checkSlugAvailability"
    )]
    async fn slug_availability(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        slug: Query<SlugText>,
    ) -> Result<Json<SlugAvailabilityDto>, ApiError> {
        auth.principal(&state).await?;
        let available = state.tenancy.slug_available(slug.0.as_str()).await?;
        Ok(Json(SlugAvailabilityDto {
            slug: slug.0.into_string(),
            available,
        }))
    }

    /// One organization by id or slug, with the caller's role.
    #[oai(
        path = "/organizations/:org",
        method = "get",
        operation_id = "getOrganization"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<Json<MyOrganizationDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(MyOrganizationDto {
            organization: access.organization().clone().into(),
            role: access.role().into(),
            member_count: None,
        }))
    }

    /// Changes name, slug, logo or metadata (admin or owner).
    #[oai(
        path = "/organizations/:org",
        method = "patch",
        operation_id = "updateOrganization"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<UpdateOrganizationRequest>,
    ) -> Result<Json<OrganizationDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let body = body.0;
        let changes = OrganizationChanges {
            name: body.name.map(Name::into_string),
            slug: body.slug.map(SlugText::into_string),
            logo: match body.logo {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v.into_string())),
            },
            metadata: body
                .metadata
                .map(|m| serde_json::Value::Object(m.into_iter().collect())),
        };
        let updated = state.tenancy.update_organization(&access, changes).await?;
        Ok(Json(updated.into()))
    }

    /// Deletes the organization and everything it owns (owner only).
    #[oai(
        path = "/organizations/:org",
        method = "delete",
        operation_id = "deleteOrganization"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        state.tenancy.delete_organization(&access).await?;
        Ok(NoContent::Done)
    }
}

/// An organization.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
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
            slug: o.slug.to_string(),
            logo: o.logo,
            metadata: o.metadata,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// An organization with the caller's role in it.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
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

/// Create-organization request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreateOrganizationRequest {
    /// Display name.
    pub name: Name,
    /// URL slug (not a reserved word such as `admin`); derived from the name when absent.
    pub slug: Option<SlugText>,
}

/// Organization changes; absent fields stay as they are, `logo: null` clears the logo.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UpdateOrganizationRequest {
    /// New name.
    pub name: Option<Name>,
    /// New slug.
    pub slug: Option<SlugText>,
    /// New logo URL (http or https), or null to clear it.
    #[oai(nullable)]
    pub logo: MaybeUndefined<LogoUrl>,
    /// Replacement metadata object (at most 16 KiB; no control characters in keys or strings).
    pub metadata: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// Answer of the slug availability check.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SlugAvailabilityDto {
    /// The slug asked about.
    pub slug: String,
    /// True when valid and unused.
    pub available: bool,
}
