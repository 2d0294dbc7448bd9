//! Organizations: create, list, rename, change slug, logo and metadata, delete.

use canopy_kernel::id::OrganizationId;
use canopy_kernel::{StoreError, ValidationErrors};
use serde_json::json;

use super::{OrgAccess, TenancyService};
use crate::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use crate::credential::Principal;
use crate::organization::{
    Organization, OrganizationPatch, OrganizationSummary, Slug, check_metadata, parse_logo,
};
use crate::policy::{Action, Forbidden};
use crate::ports::SlugConflict;
use crate::user::parse_name;

/// Outcomes of organization operations.
#[derive(Debug, thiserror::Error)]
pub enum OrganizationError {
    /// Input broke a rule; every field and rule is listed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow the change.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The slug belongs to another organization.
    #[error("slug already taken")]
    SlugTaken,
    /// The organization is gone.
    #[error("organization not found")]
    NotFound,
    /// The adapter failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SlugConflict> for OrganizationError {
    fn from(e: SlugConflict) -> Self {
        match e {
            SlugConflict::SlugTaken => Self::SlugTaken,
            SlugConflict::NotFound => Self::NotFound,
            SlugConflict::Store(e) => Self::Store(e),
        }
    }
}

/// Raw organization changes from a client, validated by [`TenancyService::update_organization`].
#[derive(Debug, Clone, Default)]
pub struct OrganizationChanges {
    /// New name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<String>,
    /// New logo; `Some(None)` clears it.
    pub logo: Option<Option<String>>,
    /// Replacement metadata.
    pub metadata: Option<serde_json::Value>,
}

impl TenancyService {
    /// Creates an organization; the caller becomes its owner. Without a slug one is derived.
    pub async fn create_organization(
        &self,
        principal: &Principal,
        name: &str,
        slug: Option<&str>,
    ) -> Result<Organization, OrganizationError> {
        let mut errors = ValidationErrors::default();
        let name = errors.collect(parse_name(name, "name"));
        let chosen = slug.and_then(|s| errors.collect(Slug::parse(s, "slug")));
        let Some(name) = name else {
            return Err(errors.into());
        };
        errors.into_result()?;
        let attempts = if chosen.is_some() { 1 } else { 4 };
        for _ in 0..attempts {
            let slug = chosen
                .clone()
                .unwrap_or_else(|| Slug::derive(&name, &self.ports.crypto.slug_suffix()));
            let now = self.now();
            let organization = Organization {
                id: OrganizationId::new(),
                name: name.clone(),
                slug,
                logo: None,
                metadata: json!({}),
                created_at: now,
                updated_at: now,
            };
            let audit = NewAuditEvent::new(
                organization.id,
                Some(principal.user_id),
                AuditAction::OrganizationCreated,
                AuditTarget::new(TargetKind::Organization, organization.id),
                json!({"name": organization.name, "slug": organization.slug.as_str()}),
                now,
            );
            match self
                .ports
                .organizations
                .create(organization.clone(), principal.user_id, audit)
                .await
            {
                Ok(()) => return Ok(organization),
                Err(SlugConflict::SlugTaken) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(OrganizationError::SlugTaken)
    }

    /// The caller's organizations with role and member count.
    pub async fn list_organizations(
        &self,
        principal: &Principal,
    ) -> Result<Vec<OrganizationSummary>, StoreError> {
        self.ports
            .organizations
            .list_for_user(principal.user_id)
            .await
    }

    /// Changes name, slug, logo or metadata (admin or owner).
    pub async fn update_organization(
        &self,
        access: &OrgAccess,
        changes: OrganizationChanges,
    ) -> Result<Organization, OrganizationError> {
        access.require(Action::UpdateOrganization)?;
        let mut errors = ValidationErrors::default();
        let mut patch = OrganizationPatch::default();
        if let Some(name) = changes.name.as_deref() {
            patch.name = errors.collect(parse_name(name, "name"));
        }
        if let Some(slug) = changes.slug.as_deref() {
            patch.slug = errors.collect(Slug::parse(slug, "slug"));
        }
        if let Some(logo) = changes.logo {
            patch.logo = match logo {
                None => Some(None),
                Some(raw) => errors.collect(parse_logo(&raw, "logo")).map(Some),
            };
        }
        if let Some(metadata) = changes.metadata
            && errors
                .collect(check_metadata(&metadata, "metadata"))
                .is_some()
        {
            patch.metadata = Some(metadata);
        }
        errors.into_result()?;
        if patch == OrganizationPatch::default() {
            return Ok(access.organization.clone());
        }
        let changed: Vec<&str> = [
            ("name", patch.name.is_some()),
            ("slug", patch.slug.is_some()),
            ("logo", patch.logo.is_some()),
            ("metadata", patch.metadata.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect();
        let audit = self.audit_by(
            access,
            AuditAction::OrganizationUpdated,
            AuditTarget::new(TargetKind::Organization, access.org_id()),
            json!({"changed": changed, "name": patch.name, "slug": patch.slug.as_ref().map(Slug::as_str)}),
        );
        Ok(self
            .ports
            .organizations
            .update(access.org_id(), patch, self.now(), audit)
            .await?)
    }

    /// Deletes the organization and everything it owns (owner only).
    pub async fn delete_organization(&self, access: &OrgAccess) -> Result<(), OrganizationError> {
        access.require(Action::DeleteOrganization)?;
        if !self.ports.organizations.delete(access.org_id()).await? {
            return Err(OrganizationError::NotFound);
        }
        tracing::info!(organization = %access.org_id(), actor = %access.user_id(), "organization deleted");
        Ok(())
    }

    /// Whether a slug is valid and free. Invalid slugs are a validation error, not "taken".
    pub async fn slug_available(&self, slug: &str) -> Result<bool, OrganizationError> {
        let slug = Slug::parse(slug, "slug").map_err(ValidationErrors::single)?;
        Ok(!self.ports.organizations.slug_exists(&slug).await?)
    }
}
