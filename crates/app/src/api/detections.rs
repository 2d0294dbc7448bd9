//! Detections: a cloud organization's, an account's (its own and the organization's that
//! reach it, each saying why), and custom detections (admin or owner). Every answer names the
//! ATT&CK version its technique ids belong to.

use std::collections::BTreeSet;

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{
    AppliesBecause, AppliesTo, Detection, DetectionId, Scope, TechniqueScore,
};
use canopy_detection::ports::Target;
use canopy_detection::service::{AccountDetection, CustomInput, DetectionQuery, Origin};
use canopy_kernel::PageRequest;
use canopy_kernel::validation::{FieldError, ValidationErrors};
use canopy_tenancy::service::OrgAccess;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::detection_wire::{
    AppliesBecauseDto, AppliesBecauseKind, CategoryDto, DetectionScopeDto, DetectionStatusDto,
    SourceDto, ValueDto,
};
use super::problem::ApiError;
use super::wire::{IdText, MemberKeyText, NodeText, OrgText, TacticText, TechniqueText};
use super::{ApiTags, BearerAuth, NoContent};
use crate::state::AppState;

/// Detection endpoints.
pub struct DetectionsApi;

/// A technique a detection addresses.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TechniqueScoreDto {
    /// `T1562.008`.
    pub technique: TechniqueText,
    /// Detect, protect or respond.
    pub category: CategoryDto,
    /// How well.
    pub value: ValueDto,
}

/// Which accounts of its cloud organization a detection reaches: `all`, or the listed
/// `accounts`, or everything under the listed `nodes` (OUs, folders, the root).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AppliesToDto {
    /// Every account.
    pub all: Option<bool>,
    /// These AWS account ids or GCP project ids (at most 1,000).
    #[oai(validator(max_items = 1000))]
    pub accounts: Option<Vec<MemberKeyText>>,
    /// Everything under these OUs / folders (at most 1,000).
    #[oai(validator(max_items = 1000))]
    pub nodes: Option<Vec<NodeText>>,
    /// With `nodes`: subtrees carved out of them, reached by none of it (an organization
    /// policy turned off at a folder beneath where it is enforced; at most 1,000).
    #[oai(validator(max_items = 1000))]
    pub except: Option<Vec<NodeText>>,
}

/// A detection.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DetectionDto {
    /// Id.
    pub id: Uuid,
    /// Account or organization.
    pub scope: DetectionScopeDto,
    /// Account scope: the cloud account.
    pub cloud_account_id: Option<Uuid>,
    /// Organization scope: the cloud organization.
    pub cloud_organization_id: Option<Uuid>,
    /// Organization scope: which of its accounts it reaches.
    pub applies_to: Option<AppliesToDto>,
    /// The scanner that found it, or `custom`.
    pub source: SourceDto,
    /// What it is within its source (a trail ARN, a region, a policy id).
    pub resource_key: String,
    /// Name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// Techniques it addresses, of ATT&CK `attackVersion`.
    pub techniques: Vec<TechniqueScoreDto>,
    /// Whether it works.
    pub status: DetectionStatusDto,
    /// Why it is degraded, absent or unknown.
    pub reason: Option<String>,
    /// What to do about it.
    pub advice: Option<String>,
    /// What the scanner read: ARNs, ids, regions, settings.
    pub evidence: serde_json::Value,
    /// First found (or declared).
    pub first_seen_at: DateTime<Utc>,
    /// Last found present.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The scan job that last wrote it.
    pub last_scan_job_id: Option<Uuid>,
    /// Who declared it (custom).
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// The ATT&CK version of the technique ids.
    pub attack_version: String,
}

fn applies_dto(a: &AppliesTo) -> AppliesToDto {
    fn list<T: From<String>>(set: &BTreeSet<String>) -> Vec<T> {
        set.iter().map(|s| s.clone().into()).collect()
    }
    let none = AppliesToDto {
        all: None,
        accounts: None,
        nodes: None,
        except: None,
    };
    match a {
        AppliesTo::AllAccounts => AppliesToDto {
            all: Some(true),
            ..none
        },
        AppliesTo::Accounts(keys) => AppliesToDto {
            accounts: Some(list(keys)),
            ..none
        },
        AppliesTo::Nodes(nodes) => AppliesToDto {
            nodes: Some(list(nodes)),
            ..none
        },
        AppliesTo::NodesExcept { nodes, except } => AppliesToDto {
            nodes: Some(list(nodes)),
            except: Some(list(except)),
            ..none
        },
    }
}

impl From<Detection> for DetectionDto {
    fn from(d: Detection) -> Self {
        let (account, cloud_org, applies_to) = match &d.scope {
            Scope::Account(id) => (Some(id.as_uuid()), None, None),
            Scope::Organization {
                cloud_organization_id,
                applies_to,
            } => (
                None,
                Some(cloud_organization_id.as_uuid()),
                Some(applies_dto(applies_to)),
            ),
        };
        Self {
            id: d.id.as_uuid(),
            scope: d.scope.kind().into(),
            cloud_account_id: account,
            cloud_organization_id: cloud_org,
            applies_to,
            source: d.source.into(),
            resource_key: d.resource_key,
            name: d.name,
            description: d.description,
            techniques: d
                .techniques
                .into_iter()
                .map(|t| TechniqueScoreDto {
                    technique: t.technique.into(),
                    category: t.category.into(),
                    value: t.value.into(),
                })
                .collect(),
            status: d.status.into(),
            reason: d.reason,
            advice: d.advice,
            evidence: d.evidence,
            first_seen_at: d.first_seen_at,
            last_seen_at: d.last_seen_at,
            last_scan_job_id: d.last_scan_job_id,
            created_by: d.created_by.map(|u| u.as_uuid()),
            created_at: d.created_at,
            updated_at: d.updated_at,
            attack_version: Catalog::embedded().version().to_string(),
        }
    }
}

/// A detection as one account sees it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AccountDetectionDto {
    /// The detection.
    pub detection: DetectionDto,
    /// True when it comes from the account's cloud organization.
    pub inherited: bool,
    /// Inherited: the cloud organization it comes from.
    pub from_cloud_organization_id: Option<Uuid>,
    /// Inherited: why it reaches this account.
    pub applies_because: Option<AppliesBecauseDto>,
    /// Inherited under a node: the OU or folder.
    pub node: Option<String>,
}

impl From<AccountDetection> for AccountDetectionDto {
    fn from(a: AccountDetection) -> Self {
        let (from, because, node) = match a.origin {
            Origin::Own => (None, None, None),
            Origin::Inherited {
                cloud_organization_id,
                because,
            } => {
                let (kind, node) = match because {
                    AppliesBecause::AllAccounts => (AppliesBecauseKind::AllAccounts, None),
                    AppliesBecause::ListedAccount => (AppliesBecauseKind::ListedAccount, None),
                    AppliesBecause::UnderNode(n) => (AppliesBecauseKind::UnderNode, Some(n)),
                };
                (
                    Some(cloud_organization_id.as_uuid()),
                    Some(kind.into()),
                    node,
                )
            }
        };
        Self {
            detection: a.detection.into(),
            inherited: from.is_some(),
            from_cloud_organization_id: from,
            applies_because: because,
            node,
        }
    }
}

/// A page of detections.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DetectionPage {
    /// By id.
    pub items: Vec<DetectionDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A page of an account's detections.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AccountDetectionPage {
    /// Own and inherited, by id.
    pub items: Vec<AccountDetectionDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A custom detection: where it applies, what it addresses.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CustomDetectionRequest {
    /// Name (a SIEM rule, a third-party tool).
    #[oai(validator(max_length = 255))]
    pub name: String,
    /// What it is.
    #[oai(validator(max_length = 4000))]
    pub description: Option<String>,
    /// `account` (give `cloudAccountId`) or `organization` (give `cloudOrganizationId`, and
    /// `appliesTo`, all accounts by default).
    pub scope: DetectionScopeDto,
    /// Account scope: the cloud account.
    pub cloud_account_id: Option<Uuid>,
    /// Organization scope: the cloud organization.
    pub cloud_organization_id: Option<Uuid>,
    /// Organization scope: which accounts (default all).
    pub applies_to: Option<AppliesToDto>,
    /// What it addresses (1 to 100), technique ids of the ATT&CK IaaS catalog.
    #[oai(validator(max_items = 100))]
    pub techniques: Vec<TechniqueScoreDto>,
    /// `active` (default) or `degraded`.
    pub status: Option<DetectionStatusDto>,
    /// Anything worth keeping with it (a rule id, a link).
    pub evidence: Option<serde_json::Value>,
}

fn rule(field: &str, rule: &str, message: &str) -> ApiError {
    ValidationErrors::single(FieldError::new(field, rule, message)).into()
}

impl CustomDetectionRequest {
    fn into_input(self) -> Result<CustomInput, ApiError> {
        let scope = match (
            self.scope,
            self.cloud_account_id,
            self.cloud_organization_id,
        ) {
            (DetectionScopeDto::Account, Some(id), None) if self.applies_to.is_none() => {
                Scope::Account(CloudAccountId(id))
            }
            (DetectionScopeDto::Account, _, _) => {
                return Err(rule(
                    "cloudAccountId",
                    "scope",
                    "an account detection names cloudAccountId only (no cloudOrganizationId or appliesTo)",
                ));
            }
            (DetectionScopeDto::Organization, None, Some(id)) => Scope::Organization {
                cloud_organization_id: CloudOrganizationId(id),
                applies_to: match self.applies_to {
                    None => AppliesTo::AllAccounts,
                    Some(a) => match (a.all, a.accounts, a.nodes, a.except) {
                        (Some(true), None, None, None) => AppliesTo::AllAccounts,
                        (None | Some(false), Some(keys), None, None) => {
                            AppliesTo::Accounts(keys.into_iter().map(|k| k.into_string()).collect())
                        }
                        (None | Some(false), None, Some(nodes), None) => {
                            AppliesTo::Nodes(nodes.into_iter().map(|n| n.into_string()).collect())
                        }
                        (None | Some(false), None, Some(nodes), Some(except)) => {
                            AppliesTo::NodesExcept {
                                nodes: nodes.into_iter().map(|n| n.into_string()).collect(),
                                except: except.into_iter().map(|n| n.into_string()).collect(),
                            }
                        }
                        _ => {
                            return Err(rule(
                                "appliesTo",
                                "one_of",
                                "give exactly one of all: true, accounts or nodes (nodes may \
                                 carve out subtrees with except)",
                            ));
                        }
                    },
                },
            },
            (DetectionScopeDto::Organization, _, _) => {
                return Err(rule(
                    "cloudOrganizationId",
                    "scope",
                    "an organization detection names cloudOrganizationId only (no cloudAccountId)",
                ));
            }
        };
        if self.evidence.as_ref().is_some_and(|e| !e.is_object()) {
            return Err(rule("evidence", "type", "must be a JSON object"));
        }
        Ok(CustomInput {
            name: self.name,
            description: self.description,
            scope,
            techniques: self
                .techniques
                .into_iter()
                .map(|t| TechniqueScore::new(&t.technique, t.category.into(), t.value.into()))
                .collect(),
            status: self.status.map(Into::into),
            evidence: self.evidence,
        })
    }
}

#[derive(ApiResponse)]
enum Created {
    /// Created.
    #[oai(status = 201)]
    Created(Json<DetectionDto>),
}

/// The filters every detection listing takes.
fn query(
    scope: Option<DetectionScopeDto>,
    source: Option<SourceDto>,
    status: Option<DetectionStatusDto>,
    technique: Option<TechniqueText>,
    tactic: Option<TacticText>,
) -> DetectionQuery {
    DetectionQuery {
        scope: scope.map(Into::into),
        source: source.map(Into::into),
        status: status.map(Into::into),
        technique: technique.map(|t| t.into_string()),
        tactic: tactic.map(|t| t.into_string()),
    }
}

#[OpenApi(tag = "ApiTags::Detections")]
impl DetectionsApi {
    /// A cloud organization's detections, filtered by scope, source, status, technique (a
    /// parent matches its sub-techniques) or tactic; paginated (any member).
    #[oai(
        path = "/organizations/:org/cloud-organizations/:id/detections",
        method = "get",
        operation_id = "listCloudOrganizationDetections"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_for_cloud_org(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        scope: Query<Option<DetectionScopeDto>>,
        source: Query<Option<SourceDto>>,
        status: Query<Option<DetectionStatusDto>>,
        technique: Query<Option<TechniqueText>>,
        tactic: Query<Option<TacticText>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<DetectionPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let request = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let q = query(scope.0, source.0, status.0, technique.0, tactic.0);
        let page = state
            .detections
            .list_for_cloud_org(&access, CloudOrganizationId(id.0), &q, request)
            .await?;
        Ok(Json(DetectionPage {
            next_cursor: page.next.map(|c| c.encode()),
            items: page.items.into_iter().map(Into::into).collect(),
        }))
    }

    /// An account's detections: its own and its cloud organization's that reach it (all
    /// accounts, listed, or under an OU / folder above it), each marked with where it comes
    /// from and why it applies; filtered and paginated (any member).
    #[oai(
        path = "/organizations/:org/cloud-accounts/:id/detections",
        method = "get",
        operation_id = "listCloudAccountDetections"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_for_account(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        scope: Query<Option<DetectionScopeDto>>,
        source: Query<Option<SourceDto>>,
        status: Query<Option<DetectionStatusDto>>,
        technique: Query<Option<TechniqueText>>,
        tactic: Query<Option<TacticText>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        cursor: Query<Option<IdText>>,
    ) -> Result<Json<AccountDetectionPage>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let request = PageRequest::parse(limit.0, cursor.0.as_deref())?;
        let q = query(scope.0, source.0, status.0, technique.0, tactic.0);
        let page = state
            .detections
            .list_for_account(&access, CloudAccountId(id.0), &q, request)
            .await?;
        Ok(Json(AccountDetectionPage {
            next_cursor: page.next.map(|c| c.encode()),
            items: page.items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Declares a custom detection (admin or owner): techniques must be in the ATT&CK
    /// catalog, the account or cloud organization this organization's, listed accounts and
    /// nodes the cloud organization's.
    #[oai(
        path = "/organizations/:org/detections",
        method = "post",
        operation_id = "createDetection"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        body: Json<CustomDetectionRequest>,
    ) -> Result<Created, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let input = body.0.into_input()?;
        let created = state.detections.create_custom(&access, input).await?;
        snapshot_after(&state, &access, &[created.scope.as_target()]).await;
        Ok(Created::Created(Json(created.into())))
    }

    /// One detection (any member).
    #[oai(
        path = "/organizations/:org/detections/:id",
        method = "get",
        operation_id = "getDetection"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<Json<DetectionDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        Ok(Json(
            state
                .detections
                .get(&access, DetectionId(id.0))
                .await?
                .into(),
        ))
    }

    /// Replaces a custom detection (admin or owner); scanners' detections are theirs (409).
    #[oai(
        path = "/organizations/:org/detections/:id",
        method = "put",
        operation_id = "updateDetection"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
        body: Json<CustomDetectionRequest>,
    ) -> Result<Json<DetectionDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let input = body.0.into_input()?;
        let before = state.detections.get(&access, DetectionId(id.0)).await?;
        let updated = state
            .detections
            .update_custom(&access, DetectionId(id.0), input)
            .await?;
        let mut changed = vec![before.scope.as_target(), updated.scope.as_target()];
        changed.dedup();
        snapshot_after(&state, &access, &changed).await;
        Ok(Json(updated.into()))
    }

    /// Deletes a custom detection (admin or owner).
    #[oai(
        path = "/organizations/:org/detections/:id",
        method = "delete",
        operation_id = "deleteDetection"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let deleted = state
            .detections
            .delete_custom(&access, DetectionId(id.0))
            .await?;
        snapshot_after(&state, &access, &[deleted.scope.as_target()]).await;
        Ok(NoContent::Done)
    }
}

/// Leaves a coverage snapshot of what a stored change touched. The change is kept whatever
/// happens here: a failed snapshot costs one point on a trend line, logged, not the request.
async fn snapshot_after(state: &AppState, access: &OrgAccess, changed: &[Target]) {
    for target in changed {
        if let Err(e) = state
            .coverage
            .record_after_change(access.org_id(), *target)
            .await
        {
            tracing::warn!(error = %e, "coverage snapshot after a detection change failed");
        }
    }
}
