//! One module per resource; each handler resolves its caller through [`crate::chrome`],
//! checks a form's CSRF token and origin before anything changes, calls the domain service
//! the API calls, and answers with a page, a fragment, or a redirect after a success.

pub mod account;
pub mod account_coverage;
pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod cloud_org_detections;
pub mod cloud_org_members;
pub mod cloud_org_scans;
pub mod cloud_orgs;
pub mod connect;
pub mod dashboard;
mod detection_draft;
pub mod detection_edit;
pub mod device;
pub mod invitations;
pub mod layers;
pub mod links;
pub mod matrix;
pub mod members;
pub mod organization;
pub mod orgs;
mod trend;
pub mod wizard;
pub mod wizard_tree;

use canopy_kernel::ValidationErrors;
pub(crate) use cloud_orgs::status_class;
use poem::web::Data;
use poem::{Request, Response, handler};

use crate::ConsoleState;
use crate::error::{Failure, redirect};
use crate::session::{self, Viewer};

/// Field errors of a form, by the form's field names.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// The domain's refusal, each field renamed to the form's field where they differ.
    pub fn from_validation(errors: &ValidationErrors, rename: &[(&str, &str)]) -> Self {
        Self(
            errors
                .errors
                .iter()
                .map(|e| {
                    let field = rename
                        .iter()
                        .find(|(from, _)| *from == e.field)
                        .map_or(e.field.as_str(), |(_, to)| *to);
                    (field.to_string(), e.message.clone())
                })
                .collect(),
        )
    }

    /// One error on `field`.
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        Self(vec![(field.to_string(), message.into())])
    }

    /// Moves every error whose field starts with `prefix` (`techniques.3.technique`) to
    /// the form's field `to`.
    pub fn rename_prefix(&mut self, prefix: &str, to: &str) {
        for (field, _) in &mut self.0 {
            if field.starts_with(prefix) {
                *field = to.to_string();
            }
        }
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }

    /// The first error of `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Every error not shown beside a field of the form (`fields`).
    pub fn others(&self, fields: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(f, _)| !fields.contains(&f.as_str()))
            .map(|(f, m)| format!("{f}: {m}"))
            .collect()
    }
}

/// The sentence of a plan refusal: the limit, the usage, the plan and the tier that allows
/// more (billing decided which).
pub fn plan_limit_message(limit: &canopy_kernel::PlanLimitExceeded) -> String {
    use canopy_kernel::LimitedResource;
    let (plan, up) = (tier_name(&limit.plan), tier_name(&limit.required_tier));
    let verb = if limit.used == 1 { "is" } else { "are" };
    match limit.resource {
        LimitedResource::CloudAccounts => format!(
            "Your {plan} plan allows {}, and {} {verb} connected. Upgrade to {up} to connect more.",
            counted(limit.allowed, "cloud account", "cloud accounts"),
            limit.used
        ),
        LimitedResource::TeamMembers => format!(
            "Your {plan} plan allows {} (members plus pending invitations), and {} {verb} taken. \
             Upgrade to {up} to invite more.",
            counted(limit.allowed, "team member", "team members"),
            limit.used
        ),
        LimitedResource::HistoryDays => format!(
            "Your {plan} plan keeps {} of history; this asks for {}. Upgrade to {up} to see further back.",
            counted(limit.allowed, "day", "days"),
            limit.used
        ),
    }
}

/// `1 cloud account`, `6 cloud accounts`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A tier's name for a sentence (`individual` → `Individual`, `free_scan` → `free scan`).
pub fn tier_name(stored: &str) -> String {
    canopy_billing::Tier::from_stored(stored).map_or_else(
        || stored.replace('_', " "),
        |t| t.display_name().to_string(),
    )
}

/// Refuses a state-changing request that did not come from our own page: a token that is not
/// this session's, or an origin that is not ours.
pub fn check_form(viewer: &Viewer, req: &Request, token: &str) -> Result<(), Failure> {
    if session::same_origin(req) && session::same_token(token, &viewer.csrf) {
        Ok(())
    } else {
        Err(Failure::CrossSite)
    }
}

/// An id from a path: one that does not parse names nothing, so it is a 404 like an id of
/// another tenant's, never a 400 that tells the two apart.
pub fn id_of(raw: &str) -> Result<uuid::Uuid, Failure> {
    uuid::Uuid::parse_str(raw).map_err(|_| Failure::NotFound)
}

/// Whether the request came from htmx (it then wants a fragment).
pub fn htmx(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
}

/// A path of ours to come back to: a single leading slash, no scheme, no backslash.
pub fn safe_next(next: &str) -> Option<&str> {
    (next.starts_with('/') && !next.starts_with("//") && !next.contains('\\')).then_some(next)
}

/// `GET /`: the active organization's dashboard, or the log-in page.
#[handler]
pub async fn home(state: Data<&ConsoleState>, req: &Request) -> Response {
    let viewer = match session::viewer(&state.tenancy, req).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/login"),
        Err(e) => return poem::IntoResponse::into_response(Failure::Store(e)),
    };
    match state.tenancy.me(&viewer.principal).await {
        Ok(me) => {
            let active = me
                .active_organization_id
                .and_then(|id| me.organizations.iter().find(|o| o.organization.id == id));
            match active {
                Some(org) => redirect(&format!(
                    "/org/{}/dashboard",
                    org.organization.slug.as_str()
                )),
                None => redirect("/orgs/new"),
            }
        }
        Err(canopy_tenancy::SessionError::Store(e)) => {
            poem::IntoResponse::into_response(Failure::Store(e))
        }
        Err(_) => redirect("/login"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_paths_are_followed_after_log_in() {
        assert_eq!(
            safe_next("/org/acme/dashboard"),
            Some("/org/acme/dashboard")
        );
        assert_eq!(safe_next("//evil.example"), None);
        assert_eq!(safe_next("https://evil.example"), None);
        assert_eq!(safe_next("/\\evil.example"), None);
    }
}
