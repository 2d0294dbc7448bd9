//! Coverage: an account's ATT&CK coverage with what it inherits from its cloud organization,
//! the organization-wide view and the own / inherited breakdown (any member). Computed on
//! read by the pure `canopy-coverage` from the detections the store holds.

use std::collections::BTreeSet;

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_coverage::account::{
    AccountCoverage, Breakdown, Ratio, TechniqueCoverage, TechniqueStatus, account_coverage,
};
use canopy_coverage::navigator::{account_layer, organization_layer};
use canopy_detection::catalog::Catalog;
use canopy_detection::mapping::Category;
use canopy_kernel::validation::{FieldError, ValidationErrors};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::detection_wire::{CategoryDto, DetectionStatusDto, ValueDto};
use super::problem::ApiError;
use super::wire::OrgText;
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Coverage endpoints.
pub struct CoverageApi;

/// Covered out of total.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RatioDto {
    /// Covered.
    pub covered: u32,
    /// Out of.
    pub total: u32,
    /// Percent, one decimal.
    pub percent: f64,
}

impl From<Ratio> for RatioDto {
    fn from(r: Ratio) -> Self {
        Self {
            covered: r.covered,
            total: r.total,
            percent: r.percent,
        }
    }
}

/// Coverage in each category.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CategoriesDto {
    /// Techniques an active detection notices.
    pub detect: RatioDto,
    /// Techniques an active control prevents (SCPs, org policies).
    pub protect: RatioDto,
    /// Techniques an active control acts on.
    pub respond: RatioDto,
}

/// One tactic's column.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TacticCoverageDto {
    /// `defense-evasion`.
    pub tactic: String,
    /// Covered out of the techniques under it.
    #[oai(flatten)]
    pub ratio: RatioDto,
}

/// The spec's `coverage_breakdown`, with the technique lists.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BreakdownDto {
    /// The account's own detections (not absent).
    pub account_detections: u32,
    /// Inherited detections that reach it (not absent).
    pub org_detections: u32,
    /// Techniques its own detections cover.
    pub account_techniques: Vec<String>,
    /// Techniques inherited detections cover.
    pub org_techniques: Vec<String>,
    /// Covered by both.
    pub overlap_techniques: Vec<String>,
    /// Covered at all: account + org - overlap.
    pub total_techniques: u32,
}

fn list(set: &BTreeSet<String>) -> Vec<String> {
    set.iter().cloned().collect()
}

impl From<&Breakdown> for BreakdownDto {
    fn from(b: &Breakdown) -> Self {
        Self {
            account_detections: b.account_detections,
            org_detections: b.org_detections,
            account_techniques: list(&b.account_techniques),
            org_techniques: list(&b.org_techniques),
            overlap_techniques: list(&b.overlap_techniques),
            total_techniques: b.total_techniques() as u32,
        }
    }
}

/// Where a technique stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum TechniqueStatusDto {
    /// An active detection maps to it.
    Covered,
    /// Only degraded detections do.
    Degraded,
    /// Only detections that could not be checked do.
    Unknown,
    /// Nothing does.
    Uncovered,
}

/// A detection behind a technique's coverage.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ContributorDto {
    /// The detection.
    pub detection_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: DetectionStatusDto,
    /// What it does about the technique.
    pub category: CategoryDto,
    /// How well.
    pub value: ValueDto,
    /// Inherited from the cloud organization.
    pub inherited: bool,
    /// Inherited under this OU / folder.
    pub node: Option<String>,
}

/// One technique's coverage.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TechniqueCoverageDto {
    /// `T1562.008`.
    pub technique: String,
    /// Its parent, for a sub-technique.
    pub parent: Option<String>,
    /// Covered, degraded, unknown or uncovered.
    pub status: TechniqueStatusDto,
    /// Best value among active detections.
    pub quality: Option<ValueDto>,
    /// Categories active detections cover it in.
    pub categories: Vec<CategoryDto>,
    /// The detections behind it.
    pub contributors: Vec<ContributorDto>,
}

impl From<&TechniqueCoverage> for TechniqueCoverageDto {
    fn from(t: &TechniqueCoverage) -> Self {
        Self {
            technique: t.technique.clone(),
            parent: t.parent.clone(),
            status: match t.status {
                TechniqueStatus::Covered => TechniqueStatusDto::Covered,
                TechniqueStatus::Degraded => TechniqueStatusDto::Degraded,
                TechniqueStatus::Unknown => TechniqueStatusDto::Unknown,
                TechniqueStatus::Uncovered => TechniqueStatusDto::Uncovered,
            },
            quality: t.quality.map(Into::into),
            categories: t.categories.iter().map(|c| (*c).into()).collect(),
            contributors: t
                .contributors
                .iter()
                .map(|c| ContributorDto {
                    detection_id: c.detection_id.as_uuid(),
                    name: c.name.clone(),
                    status: c.status.into(),
                    category: c.category.into(),
                    value: c.value.into(),
                    inherited: c.inherited,
                    node: c.node.clone(),
                })
                .collect(),
        }
    }
}

/// An account's coverage.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AccountCoverageDto {
    /// The cloud account.
    pub cloud_account_id: Uuid,
    /// The ATT&CK version measured against.
    pub attack_version: String,
    /// Covered catalog entries out of all.
    pub overall: RatioDto,
    /// Entries only degraded detections map to.
    pub degraded: u32,
    /// Entries only unchecked detections map to.
    pub unknown: u32,
    /// Per category.
    pub by_category: CategoriesDto,
    /// Per tactic, in kill-chain order.
    pub by_tactic: Vec<TacticCoverageDto>,
    /// The tactic covered worst.
    pub weakest_tactic: Option<String>,
    /// Whether organization detections are included (the account is in a cloud organization).
    pub includes_org_detections: bool,
    /// Own versus inherited.
    pub breakdown: BreakdownDto,
    /// Every IaaS catalog entry.
    pub techniques: Vec<TechniqueCoverageDto>,
}

fn ratio(c: &AccountCoverage, category: Category) -> RatioDto {
    c.by_category
        .get(&category)
        .copied()
        .unwrap_or_else(|| Ratio::new(0, c.overall.total))
        .into()
}

fn account_dto(id: Uuid, in_org: bool, c: &AccountCoverage) -> AccountCoverageDto {
    AccountCoverageDto {
        cloud_account_id: id,
        attack_version: c.attack_version.clone(),
        overall: c.overall.into(),
        degraded: c.degraded,
        unknown: c.unknown,
        by_category: CategoriesDto {
            detect: ratio(c, Category::Detect),
            protect: ratio(c, Category::Protect),
            respond: ratio(c, Category::Respond),
        },
        by_tactic: c
            .by_tactic
            .iter()
            .map(|(tactic, r)| TacticCoverageDto {
                tactic: tactic.clone(),
                ratio: (*r).into(),
            })
            .collect(),
        weakest_tactic: c.weakest_tactic().map(|(t, _)| t.clone()),
        includes_org_detections: in_org,
        breakdown: (&c.breakdown).into(),
        techniques: c.techniques.iter().map(Into::into).collect(),
    }
}

/// One account's line in the organization view.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AccountRowDto {
    /// The cloud account.
    pub cloud_account_id: Uuid,
    /// AWS account id or GCP project id.
    pub account: String,
    /// Techniques its own detections cover.
    pub own_techniques: u32,
    /// Techniques inherited detections cover.
    pub inherited_techniques: u32,
    /// Techniques covered at all.
    pub total_techniques: u32,
    /// Coverage percent.
    pub percent: f64,
    /// Techniques whose coverage is unknown here (a source that could not be read); counted
    /// neither as covered nor as lacking.
    pub unknown_techniques: u32,
    /// The tactic it covers worst.
    pub weakest_tactic: Option<String>,
}

/// A technique whose coverage is unknown in some accounts.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UnknownTechniqueDto {
    /// `T1530`.
    pub technique: String,
    /// Accounts where it is unknown.
    pub accounts: u32,
}

/// A technique not covered everywhere.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct GapDto {
    /// `T1530`.
    pub technique: String,
    /// Accounts known to lack it (uncovered or only degraded); unknown ones are not counted.
    pub accounts_lacking: u32,
}

/// What the organization's own controls add across its members.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationContributionDto {
    /// Techniques inherited detections cover in at least one account.
    pub techniques: Vec<String>,
    /// Accounts that inherit coverage.
    pub accounts_reached: u32,
    /// Per account on average: techniques covered only thanks to the organization.
    pub average_only_inherited: f64,
}

/// The organization-wide view.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationCoverageDto {
    /// The cloud organization.
    pub cloud_organization_id: Uuid,
    /// The ATT&CK version measured against.
    pub attack_version: String,
    /// Per connected member account.
    pub accounts: Vec<AccountRowDto>,
    /// Mean coverage percent.
    pub average: f64,
    /// Lowest.
    pub min: f64,
    /// Highest.
    pub max: f64,
    /// Techniques covered in every account.
    pub in_every: Vec<String>,
    /// Covered in some.
    pub in_some: Vec<String>,
    /// Covered in none, and known so in every account.
    pub in_none: Vec<String>,
    /// Known to be lacking somewhere, most lacking first; an account where a technique is
    /// unknown is not counted as lacking it.
    pub gaps: Vec<GapDto>,
    /// Unknown in some accounts (a source that could not be read), most accounts first:
    /// neither covered nor a gap until it can be read.
    pub unknown: Vec<UnknownTechniqueDto>,
    /// What the organization's own controls contribute.
    pub organization: OrganizationContributionDto,
}

/// One account's breakdown.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AccountBreakdownDto {
    /// The cloud account.
    pub cloud_account_id: Uuid,
    /// AWS account id or GCP project id.
    pub account: String,
    /// Own versus inherited.
    pub breakdown: BreakdownDto,
}

/// Every member's breakdown.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationBreakdownDto {
    /// The cloud organization.
    pub cloud_organization_id: Uuid,
    /// Per connected member account.
    pub accounts: Vec<AccountBreakdownDto>,
}

#[OpenApi(tag = "ApiTags::Coverage")]
impl CoverageApi {
    /// An account's coverage: overall, by category and tactic, every technique with its
    /// status, quality and contributing detections (own, or inherited and from which node),
    /// and the own / inherited breakdown (any member).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id/coverage",
        method = "get",
        operation_id = "getCloudAccountCoverage"
    )]
    async fn account(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<AccountCoverageDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let (account, effective) = state
            .detections
            .account_estate(&access, CloudAccountId(id.0))
            .await?;
        let in_org = account
            .placement
            .as_ref()
            .is_some_and(|p| p.left_at.is_none());
        let coverage = account_coverage(Catalog::embedded(), &effective);
        Ok(Json(account_dto(id.0, in_org, &coverage)))
    }

    /// The organization-wide view: every connected member's coverage, spread, techniques
    /// covered everywhere / somewhere / nowhere, gaps, and what the organization's own
    /// controls contribute (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/coverage",
        method = "get",
        operation_id = "getCloudOrganizationCoverage"
    )]
    async fn organization(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<OrganizationCoverageDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let view = state
            .views
            .organization(&access, CloudOrganizationId(id.0))
            .await?;
        let catalog = Catalog::embedded();
        Ok(Json(OrganizationCoverageDto {
            cloud_organization_id: id.0,
            attack_version: catalog.version().to_string(),
            accounts: view
                .accounts
                .iter()
                .map(|r| AccountRowDto {
                    cloud_account_id: r.cloud_account_id,
                    account: r.account.clone(),
                    own_techniques: r.own_techniques,
                    inherited_techniques: r.inherited_techniques,
                    total_techniques: r.total_techniques,
                    percent: r.percent,
                    unknown_techniques: r.unknown_techniques,
                    weakest_tactic: r.weakest_tactic.clone(),
                })
                .collect(),
            average: view.average,
            min: view.min,
            max: view.max,
            in_every: list(&view.in_every),
            in_some: list(&view.in_some),
            in_none: list(&view.in_none),
            gaps: view
                .gaps
                .iter()
                .map(|g| GapDto {
                    technique: g.technique.clone(),
                    accounts_lacking: g.accounts_lacking,
                })
                .collect(),
            unknown: view
                .unknown
                .iter()
                .map(|u| UnknownTechniqueDto {
                    technique: u.technique.clone(),
                    accounts: u.accounts,
                })
                .collect(),
            organization: OrganizationContributionDto {
                techniques: list(&view.organization.techniques),
                accounts_reached: view.organization.accounts_reached,
                average_only_inherited: view.organization.average_only_inherited,
            },
        }))
    }

    /// An ATT&CK Navigator layer (format 4.5) of one account's coverage (`account`: score =
    /// best quality, 0-3) or a cloud organization's (`cloudOrganization`: score = percent of
    /// member accounts covered), with the contributing detections in each cell; open it in the
    /// Navigator (any member). Give exactly one of the two.
    #[oai(
        path = "/organizations/:org/coverage/navigator-layer",
        method = "get",
        operation_id = "getCoverageNavigatorLayer"
    )]
    async fn navigator_layer(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        account: Query<Option<Uuid>>,
        #[oai(name = "cloudOrganization")] cloud_organization: Query<Option<Uuid>>,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let catalog = Catalog::embedded();
        let layer = match (account.0, cloud_organization.0) {
            (Some(id), None) => {
                let (account, effective) = state
                    .detections
                    .account_estate(&access, CloudAccountId(id))
                    .await?;
                let name = account
                    .settings
                    .alias
                    .clone()
                    .unwrap_or_else(|| account.identity.account_key().to_string());
                account_layer(&name, &account_coverage(catalog, &effective))
            }
            (None, Some(id)) => {
                let estate = state
                    .detections
                    .organization_estate(&access, CloudOrganizationId(id))
                    .await?;
                let coverage: Vec<AccountCoverage> = estate
                    .accounts
                    .iter()
                    .map(|(_, effective)| account_coverage(catalog, effective))
                    .collect();
                organization_layer(&id.to_string(), &coverage)
            }
            _ => {
                return Err(ValidationErrors::single(FieldError::new(
                    "account",
                    "one_of",
                    "give exactly one of account or cloudOrganization",
                ))
                .into());
            }
        };
        serde_json::to_value(layer).map(Json).map_err(|e| {
            tracing::error!(error = %e, "a navigator layer did not serialize");
            ApiError::internal()
        })
    }

    /// Every connected member's own / inherited / overlap breakdown (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/coverage/breakdown",
        method = "get",
        operation_id = "getCloudOrganizationCoverageBreakdown"
    )]
    async fn breakdown(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<OrganizationBreakdownDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let rows = state
            .views
            .summaries(&access, CloudOrganizationId(id.0))
            .await?;
        let catalog = Catalog::embedded();
        Ok(Json(OrganizationBreakdownDto {
            cloud_organization_id: id.0,
            accounts: rows
                .iter()
                .map(|(cloud_account_id, account, summary)| AccountBreakdownDto {
                    cloud_account_id: *cloud_account_id,
                    account: account.clone(),
                    breakdown: (&summary.breakdown(catalog)).into(),
                })
                .collect(),
        }))
    }
}
