//! Organizations and their audit log.

use canopy_kernel::PageRequest;
use canopy_tenancy::service::OrganizationChanges;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, OpenApi};

use super::models::{
    AuditEventPage, CreateOrganizationRequest, MyOrganizationDto, OrganizationDto,
    SlugAvailabilityDto, UpdateOrganizationRequest,
};
use super::problem::ApiError;
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
            .create_organization(&principal, &body.0.name, body.0.slug.as_deref())
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
        slug: Query<String>,
    ) -> Result<Json<SlugAvailabilityDto>, ApiError> {
        auth.principal(&state).await?;
        let available = state.tenancy.slug_available(&slug.0).await?;
        Ok(Json(SlugAvailabilityDto {
            slug: slug.0,
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
        org: Path<String>,
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
        org: Path<String>,
        body: Json<UpdateOrganizationRequest>,
    ) -> Result<Json<OrganizationDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let body = body.0;
        let changes = OrganizationChanges {
            name: body.name,
            slug: body.slug,
            logo: match body.logo {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
            metadata: body.metadata,
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
        org: Path<String>,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        state.tenancy.delete_organization(&access).await?;
        Ok(NoContent::Done)
    }

    /// The audit log, newest first (admin or owner).
    #[oai(
        path = "/organizations/:org/audit-events",
        method = "get",
        operation_id = "listAuditEvents",
        tag = "ApiTags::Audit"
    )]
    async fn audit_events(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<String>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<AuditEventPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let page = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let events = state.tenancy.audit_events(&access, page).await?;
        Ok(Json(events.into()))
    }
}
