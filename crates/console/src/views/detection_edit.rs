//! Custom detections of a cloud organization: create, edit and delete, with the technique
//! picker over the ATT&CK IaaS catalog (search by id or name, filter by tactic, each chosen
//! technique with what the control does about it and how well) and the scope (the whole
//! organization, OU / folder subtrees, listed accounts, one account). The picker works as
//! plain form posts ("add", "search") and is filtered live when script runs; the domain's
//! refusals are shown beside their fields.

use askama::Template;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{Detection, DetectionId, Scope, Source};
use canopy_detection::service::DetectionError;
use canopy_tenancy::Action;
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use uuid::Uuid;

use super::cloud_orgs::{Head, coverage_failure, failure, head, tactic_name};
use super::detection_draft::{Draft, field_errors};
use super::{FieldErrors, check_form, id_of};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};

const CATEGORIES: [&str; 3] = ["detect", "protect", "respond"];
const VALUES: [&str; 3] = ["minimal", "partial", "significant"];

/// A choice in a select.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn choices(all: &[&str], picked: &str, default: &str) -> Vec<Choice> {
    let picked = if all.contains(&picked) {
        picked
    } else {
        default
    };
    all.iter()
        .map(|v| Choice {
            value: (*v).to_string(),
            label: (*v).to_string(),
            selected: *v == picked,
        })
        .collect()
}

/// A chosen technique on the form.
struct ChosenRow {
    id: String,
    name: String,
    categories: Vec<Choice>,
    values: Vec<Choice>,
}

/// A catalog entry the picker offers.
struct PickRow {
    id: String,
    name: String,
    /// Tactic names, for people.
    tactics: String,
    /// Tactic shortnames, for the live filter.
    tactic_keys: String,
    sub: bool,
}

/// An OU / folder the scope can name.
struct NodeRow {
    id: String,
    path: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "cloud_orgs/detection_form.html")]
struct FormPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    /// `None` for a new detection.
    editing: Option<String>,
    draft: Draft,
    errors: FieldErrors,
    others: Vec<String>,
    statuses: Vec<Choice>,
    chosen: Vec<ChosenRow>,
    picks: Vec<PickRow>,
    tactics: Vec<Choice>,
    add_categories: Vec<Choice>,
    add_values: Vec<Choice>,
    nodes: Vec<NodeRow>,
    except_paths: String,
    accounts_total: usize,
}

/// Whether `t` matches the picker's search text and tactic.
fn matches(t: &canopy_detection::catalog::Technique, q: &str, tactic: &str) -> bool {
    let q = q.trim().to_lowercase();
    (q.is_empty() || t.id.to_lowercase().starts_with(&q) || t.name.to_lowercase().contains(&q))
        && (tactic.is_empty() || t.tactics.iter().any(|x| x == tactic))
}

struct Context {
    chrome: Chrome,
    access: OrgAccess,
    head: Head,
    id: CloudOrganizationId,
    placement: std::sync::Arc<canopy_coverage::views::Placement>,
    view: std::sync::Arc<canopy_coverage::organization::OrganizationCoverage>,
}

async fn context(
    state: &ConsoleState,
    req: &Request,
    slug: &str,
    id: Uuid,
) -> Result<(Context, crate::session::Viewer), Failure> {
    let (viewer, access, chrome) = chrome::organization(state, req, slug, "cloud-orgs").await?;
    access
        .require(Action::ManageDetections)
        .map_err(|_| Failure::Forbidden)?;
    let id = CloudOrganizationId(id);
    let cloud_org = state.cloud_orgs.get(&access, id).await.map_err(failure)?;
    let view = state
        .views
        .organization(&access, id)
        .await
        .map_err(coverage_failure)?;
    let placement = state
        .views
        .placement(&access, id)
        .await
        .map_err(coverage_failure)?;
    let now = state.tenancy.clock().now();
    Ok((
        Context {
            chrome,
            head: head(&cloud_org, now),
            access,
            id,
            placement,
            view,
        },
        viewer,
    ))
}

fn form_page(
    cx: Context,
    editing: Option<String>,
    mut draft: Draft,
    errors: FieldErrors,
    status: StatusCode,
) -> Response {
    let catalog = Catalog::embedded();
    if draft.scope.is_empty() {
        draft.scope = "organization".into();
    }
    let chosen = draft
        .chosen
        .iter()
        .map(|(t, c, v)| ChosenRow {
            id: t.clone(),
            name: catalog
                .technique(t)
                .map_or_else(|| "not in the catalog".into(), |x| x.name.clone()),
            categories: choices(&CATEGORIES, c, "detect"),
            values: choices(&VALUES, v, "partial"),
        })
        .collect();
    let picks = catalog
        .iaas()
        .filter(|t| !draft.chosen.iter().any(|(c, _, _)| *c == t.id))
        .filter(|t| matches(t, &draft.q, &draft.tactic))
        .map(|t| PickRow {
            id: t.id.clone(),
            name: t.name.clone(),
            tactics: t
                .tactics
                .iter()
                .map(|x| tactic_name(catalog, x))
                .collect::<Vec<_>>()
                .join(", "),
            tactic_keys: t.tactics.join(" "),
            sub: t.is_sub_technique(),
        })
        .collect();
    let mut nodes: Vec<NodeRow> = cx
        .placement
        .hierarchy
        .nodes()
        .map(|n| NodeRow {
            id: n.id.clone(),
            path: n.path.clone(),
            checked: draft.nodes.contains(&n.id),
        })
        .collect();
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    let except_paths = draft
        .except
        .iter()
        .map(|e| {
            cx.placement
                .hierarchy
                .get(e)
                .map_or_else(|| e.clone(), |n| n.path.clone())
        })
        .collect::<Vec<_>>()
        .join(", ");
    let fields = [
        "name",
        "description",
        "status",
        "scope",
        "nodes",
        "accounts",
        "account",
        "techniques",
    ];
    page(
        status,
        &FormPage {
            slug: cx.access.organization().slug.as_str().to_string(),
            chrome: cx.chrome,
            head: cx.head,
            editing,
            others: errors.others(&fields),
            errors,
            statuses: choices(&["active", "degraded"], &draft.status, "active"),
            chosen,
            picks,
            tactics: catalog
                .tactics()
                .iter()
                .map(|t| Choice {
                    value: t.shortname.clone(),
                    label: t.name.clone(),
                    selected: t.shortname == draft.tactic,
                })
                .collect(),
            add_categories: choices(&CATEGORIES, &draft.add_category, "detect"),
            add_values: choices(&VALUES, &draft.add_value, "partial"),
            nodes,
            except_paths,
            accounts_total: cx.view.accounts.len(),
            draft,
        },
    )
}

/// The custom detection `det` of this tenant (another tenant's, a scanner's: 404).
async fn custom(state: &ConsoleState, access: &OrgAccess, det: Uuid) -> Result<Detection, Failure> {
    let d = state
        .detections
        .get(access, DetectionId(det))
        .await
        .map_err(coverage_failure)?;
    if d.source != Source::Custom {
        return Err(Failure::NotFound);
    }
    Ok(d)
}

/// `GET /org/{slug}/cloud-organizations/{id}/detections/new` (admin or owner).
#[handler]
pub async fn new_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let id = id_of(&id)?;
    let (cx, _) = context(&state, req, &slug, id).await?;
    let draft = Draft::parse(req.uri().query().unwrap_or_default());
    Ok(form_page(
        cx,
        None,
        draft,
        FieldErrors::default(),
        StatusCode::OK,
    ))
}

/// `GET /org/{slug}/cloud-organizations/{id}/detections/{det}/edit` (admin or owner).
#[handler]
pub async fn edit_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id, det)): Path<(String, String, String)>,
) -> Result<Response, Failure> {
    let (id, det) = (id_of(&id)?, id_of(&det)?);
    let (cx, _) = context(&state, req, &slug, id).await?;
    let d = custom(&state, &cx.access, det).await?;
    let mut draft = Draft::of(&d);
    if let Scope::Account(account) = d.scope {
        draft.account = cx
            .view
            .accounts
            .iter()
            .find(|r| r.cloud_account_id == account.as_uuid())
            .map_or_else(|| account.as_uuid().to_string(), |r| r.account.clone());
    }
    Ok(form_page(
        cx,
        Some(det.to_string()),
        draft,
        FieldErrors::default(),
        StatusCode::OK,
    ))
}

async fn save(
    state: &ConsoleState,
    req: &Request,
    (slug, id): (String, Uuid),
    det: Option<Uuid>,
    body: String,
) -> Result<Response, Failure> {
    let (cx, viewer) = context(state, req, &slug, id).await?;
    let draft = Draft::parse(&body);
    check_form(&viewer, req, &draft.csrf)?;
    if let Some(det) = det {
        custom(state, &cx.access, det).await?;
    }
    let editing = det.map(|d| d.to_string());
    // "Add" and "search" come back to the form with the picker moved on; nothing is stored.
    if draft.action != "save" {
        return Ok(form_page(
            cx,
            editing,
            draft,
            FieldErrors::default(),
            StatusCode::OK,
        ));
    }
    let input = match draft.input(cx.id, |key| {
        cx.view
            .accounts
            .iter()
            .find(|r| r.account == key)
            .map(|r| r.cloud_account_id)
    }) {
        Ok(input) => input,
        Err(errors) => {
            return Ok(form_page(
                cx,
                editing,
                draft,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let saved = match det {
        Some(det) => {
            state
                .detections
                .update_custom(&cx.access, DetectionId(det), input)
                .await
        }
        None => state.detections.create_custom(&cx.access, input).await,
    };
    match saved {
        Ok(_) => Ok(redirect(&format!(
            "/org/{}/cloud-organizations/{id}/detections?done={}",
            cx.access.organization().slug.as_str(),
            if det.is_some() {
                "saved"
            } else {
                "detection-created"
            }
        ))),
        Err(DetectionError::Invalid(e)) => {
            let errors = field_errors(&e);
            Ok(form_page(
                cx,
                editing,
                draft,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(e) => Err(coverage_failure(e)),
    }
}

/// `POST /org/{slug}/cloud-organizations/{id}/detections/new`.
#[handler]
pub async fn create(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    body: String,
) -> Result<Response, Failure> {
    save(&state, req, (slug, id_of(&id)?), None, body).await
}

/// `POST /org/{slug}/cloud-organizations/{id}/detections/{det}/edit`.
#[handler]
pub async fn update(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id, det)): Path<(String, String, String)>,
    body: String,
) -> Result<Response, Failure> {
    let (id, det) = (id_of(&id)?, id_of(&det)?);
    save(&state, req, (slug, id), Some(det), body).await
}

/// `POST /org/{slug}/cloud-organizations/{id}/detections/{det}/delete`.
#[handler]
pub async fn delete(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id, det)): Path<(String, String, String)>,
    body: String,
) -> Result<Response, Failure> {
    let (id, det) = (id_of(&id)?, id_of(&det)?);
    let (cx, viewer) = context(&state, req, &slug, id).await?;
    check_form(&viewer, req, &Draft::parse(&body).csrf)?;
    custom(&state, &cx.access, det).await?;
    state
        .detections
        .delete_custom(&cx.access, DetectionId(det))
        .await
        .map_err(coverage_failure)?;
    Ok(redirect(&format!(
        "/org/{}/cloud-organizations/{id}/detections?done=detection-deleted",
        cx.access.organization().slug.as_str()
    )))
}
