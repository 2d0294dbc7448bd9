//! One cloud account's coverage: the breakdown identity (own + inherited - overlap =
//! covered), coverage by category and by tactic, and its own detections beside the ones it
//! inherits from its cloud organization, each inherited one with why it reaches the account
//! (every account, listed, or the OU / folder it sits under); and its coverage over time.

use askama::Template;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::service::CloudOrganizationError;
use canopy_cloud_org::{CloudAccount, CloudAccountId};
use canopy_coverage::account::{AccountCoverage, Ratio, account_coverage};
use canopy_coverage::snapshot::HistoryOf;
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{AppliesBecause, Status};
use canopy_detection::service::{AccountDetection, Origin};
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use uuid::Uuid;

use super::accounts::name_of;
use super::cloud_orgs::{coverage_failure, tactic_name};
use super::trend::{self, Trend};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page};
use crate::format;

/// A ratio as the page shows it.
struct Share {
    label: String,
    covered: u32,
    total: u32,
    percent: String,
    value: u32,
}

fn share(label: String, r: &Ratio) -> Share {
    Share {
        label,
        covered: r.covered,
        total: r.total,
        percent: format::percent(Some(r.percent)),
        value: r.percent.round().clamp(0.0, 100.0) as u32,
    }
}

/// A detection in one of the two lists.
struct Line {
    name: String,
    source: &'static str,
    status: &'static str,
    techniques: usize,
    reason: Option<String>,
    why: Option<String>,
}

#[derive(Template)]
#[template(path = "accounts/coverage.html")]
struct CoveragePage {
    chrome: Chrome,
    slug: String,
    id: String,
    name: String,
    key: String,
    own: usize,
    inherited: usize,
    overlap: usize,
    covered: usize,
    overall: Share,
    unknown: u32,
    degraded: u32,
    categories: Vec<Share>,
    tactics: Vec<Share>,
    own_lines: Vec<Line>,
    inherited_lines: Vec<Line>,
    in_organization: bool,
    trend: Trend,
    membership: Option<Membership>,
}

fn why(because: &AppliesBecause) -> String {
    match because {
        AppliesBecause::AllAccounts => "set for every account of the organization".into(),
        AppliesBecause::ListedAccount => "this account is listed on it".into(),
        AppliesBecause::UnderNode(node) => format!("this account sits under {node}"),
    }
}

fn line(d: &AccountDetection) -> Line {
    let detection = &d.detection;
    Line {
        name: detection.name.clone(),
        source: detection.source.as_str(),
        status: detection.status.as_str(),
        techniques: detection.techniques.len(),
        reason: match detection.status {
            Status::Active => None,
            _ => detection.reason.clone(),
        },
        why: match &d.origin {
            Origin::Own => None,
            Origin::Inherited { because, .. } => Some(why(because)),
        },
    }
}

fn shares(coverage: &AccountCoverage, catalog: &Catalog) -> (Vec<Share>, Vec<Share>) {
    let categories = coverage
        .by_category
        .iter()
        .map(|(c, r)| share(c.as_str().to_string(), r))
        .collect();
    let tactics = coverage
        .by_tactic
        .iter()
        .filter(|(_, r)| r.total > 0)
        .map(|(t, r)| share(tactic_name(catalog, t), r))
        .collect();
    (categories, tactics)
}

/// The cloud organization an account is a member of, as its pages name it.
pub(super) struct Membership {
    pub(super) name: String,
    pub(super) href: String,
    pub(super) path: Option<String>,
}

/// Where `account` sits, when it is a member of one of the tenant's cloud organizations.
pub(super) async fn membership(
    state: &ConsoleState,
    access: &OrgAccess,
    account: &CloudAccount,
) -> Result<Option<Membership>, Failure> {
    let Some(p) = account.placement.as_ref().filter(|p| p.left_at.is_none()) else {
        return Ok(None);
    };
    let id = CloudOrganizationId(p.cloud_organization_id);
    match state.cloud_orgs.get(access, id).await {
        Ok(o) => Ok(Some(Membership {
            name: o.name,
            href: format!(
                "/org/{}/cloud-organizations/{}",
                access.organization().slug.as_str(),
                id.as_uuid()
            ),
            path: p.hierarchy_path.clone(),
        })),
        Err(CloudOrganizationError::Store(s)) => Err(Failure::Store(s)),
        Err(_) => Ok(None),
    }
}

/// What an account's coverage page and its layer start from: the frame, the viewer's
/// access, the account (another tenant's, or no such id: 404) and every detection reaching it.
pub(super) async fn estate(
    state: &ConsoleState,
    req: &Request,
    slug: &str,
    id: &str,
) -> Result<(Chrome, OrgAccess, CloudAccount, Vec<AccountDetection>), Failure> {
    let (_, access, chrome) = chrome::organization(state, req, slug, "accounts").await?;
    let id = Uuid::parse_str(id)
        .map(CloudAccountId)
        .map_err(|_| Failure::NotFound)?;
    let (account, effective) = state
        .detections
        .account_estate(&access, id)
        .await
        .map_err(coverage_failure)?;
    Ok((chrome, access, account, effective))
}

/// `GET /org/{slug}/settings/accounts/{id}/coverage`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let (chrome, access, account, effective) = estate(&state, req, &slug, &id).await?;
    let catalog = Catalog::embedded();
    let coverage = account_coverage(catalog, &effective);
    let b = &coverage.breakdown;
    let (categories, tactics) = shares(&coverage, catalog);
    let trend = trend::read(&state, &access, HistoryOf::Account(account.id.as_uuid())).await?;
    let membership = membership(&state, &access, &account).await?;
    let (own_lines, inherited_lines): (Vec<_>, Vec<_>) = effective
        .iter()
        .partition(|d| matches!(d.origin, Origin::Own));
    Ok(page(
        StatusCode::OK,
        &CoveragePage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            id: account.id.to_string(),
            name: name_of(&account),
            key: account.identity.account_key().to_string(),
            own: b.account_techniques.len(),
            inherited: b.org_techniques.len(),
            overlap: b.overlap_techniques.len(),
            covered: b.total_techniques(),
            overall: share("Overall".into(), &coverage.overall),
            unknown: coverage.unknown,
            degraded: coverage.degraded,
            categories,
            tactics,
            own_lines: own_lines.into_iter().map(line).collect(),
            inherited_lines: inherited_lines.into_iter().map(line).collect(),
            in_organization: account
                .placement
                .as_ref()
                .is_some_and(|p| p.left_at.is_none()),
            trend,
            membership,
        },
    ))
}
