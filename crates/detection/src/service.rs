//! Detection use cases: read a cloud organization's detections and an account's (its own plus
//! the organization's that reach it, each saying why), and manage custom detections (admin or
//! owner). Scans are in [`crate::scan`].

use std::collections::BTreeSet;
use std::sync::Arc;

use canopy_billing::BillingService;
use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_cloud_org::organization::ports::CloudOrganizationRepository;
use canopy_cloud_org::organization::service::CloudOrganizationService;
use canopy_cloud_org::organization::{CloudOrganization, CloudOrganizationId};
use canopy_cloud_org::ports::CloudAccountRepository;
use canopy_cloud_org::{CloudAccount, CloudAccountId};
use canopy_jobs::JobService;
use canopy_kernel::id::OrganizationId;
use canopy_kernel::validation::{FieldError, ValidationErrors};
use canopy_kernel::{Clock, FeatureNotInPlan, Page, PageRequest, StoreError};
use canopy_tenancy::audit::{AuditAction, AuditTarget, NewAuditEvent, TargetKind};
use canopy_tenancy::policy::{Action, Forbidden};
use canopy_tenancy::service::OrgAccess;
use serde_json::json;

use crate::catalog::Catalog;
use crate::detection::{
    AppliesBecause, AppliesTo, Detection, DetectionId, Scope, ScopeKind, Source, Status,
    TechniqueScore, normalize,
};
use crate::ports::{
    AccountScanner, DetectionFilter, DetectionRepository, OrganizationScanner, Target,
};

/// Most techniques one custom detection may list.
pub const MAX_TECHNIQUES: usize = 100;

/// Most accounts or nodes an organization detection may list.
pub const MAX_TARGETS: usize = 1_000;

/// Outcomes of detection operations other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectionError {
    /// Input broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's role does not allow it.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The plan lacks the feature.
    #[error(transparent)]
    NotInPlan(#[from] FeatureNotInPlan),
    /// No such detection, account or cloud organization in this tenant.
    #[error("not found")]
    NotFound,
    /// Only custom detections can be edited or deleted; scanners own theirs.
    #[error("only custom detections can be changed; scanners keep theirs up to date")]
    NotCustom,
    /// A scan of it is already queued or running: this one.
    #[error("a scan is already queued or running")]
    ScanInProgress(canopy_jobs::JobId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<canopy_billing::EntitlementError> for DetectionError {
    fn from(e: canopy_billing::EntitlementError) -> Self {
        match e {
            canopy_billing::EntitlementError::NotInPlan(f) => Self::NotInPlan(f),
            canopy_billing::EntitlementError::Store(s) => Self::Store(s),
        }
    }
}

/// The adapters the service runs on.
#[derive(Clone)]
pub struct DetectionPorts {
    /// Detections.
    pub repository: Arc<dyn DetectionRepository>,
    /// Cloud organizations (their trees and members).
    pub cloud_organizations: Arc<dyn CloudOrganizationRepository>,
    /// Cloud accounts.
    pub accounts: Arc<dyn CloudAccountRepository>,
    /// Cloud-organization use cases: how a job reaches an organization, the External ID.
    pub organizations: CloudOrganizationService,
    /// AWS organization scanners.
    pub aws_organization: Arc<dyn OrganizationScanner>,
    /// GCP organization scanners.
    pub gcp_organization: Arc<dyn OrganizationScanner>,
    /// AWS account scanners.
    pub aws_account: Arc<dyn AccountScanner>,
    /// GCP project scanners.
    pub gcp_account: Arc<dyn AccountScanner>,
    /// The plan gate.
    pub billing: BillingService,
    /// Where scans run.
    pub jobs: JobService,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The detection use cases.
#[derive(Clone)]
pub struct DetectionService {
    pub(crate) ports: DetectionPorts,
}

/// What a listing asks for, as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectionQuery {
    /// `account` or `organization`.
    pub scope: Option<ScopeKind>,
    /// A source id.
    pub source: Option<Source>,
    /// A status.
    pub status: Option<Status>,
    /// A technique id; a parent matches its sub-techniques too.
    pub technique: Option<String>,
    /// A tactic, by shortname (`defense-evasion`) or id (`TA0005`).
    pub tactic: Option<String>,
}

/// Where a detection in an account's view comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Scoped to the account itself.
    Own,
    /// Inherited from its cloud organization, and why it reaches the account.
    Inherited {
        /// The cloud organization.
        cloud_organization_id: CloudOrganizationId,
        /// Why it applies.
        because: AppliesBecause,
    },
}

/// A detection in an account's view.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountDetection {
    /// The detection.
    pub detection: Detection,
    /// Own or inherited.
    pub origin: Origin,
}

/// A custom detection as a person declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomInput {
    /// Name shown.
    pub name: String,
    /// What it is (the SIEM rule, the tool).
    pub description: Option<String>,
    /// Where it applies; scope targets must be the tenant's.
    pub scope: Scope,
    /// What it addresses.
    pub techniques: Vec<TechniqueScore>,
    /// Whether it works (default active).
    pub status: Option<Status>,
    /// Anything worth keeping (a rule id, a link).
    pub evidence: Option<serde_json::Value>,
}

fn invalid(field: &str, rule: &str, message: &str) -> DetectionError {
    DetectionError::Invalid(ValidationErrors::single(FieldError::new(
        field, rule, message,
    )))
}

impl DetectionQuery {
    /// The store filter this query means, with techniques and tactics checked against the
    /// catalog and expanded (a parent technique to its sub-techniques, a tactic to its
    /// techniques).
    pub fn filter(&self, catalog: &Catalog) -> Result<DetectionFilter, DetectionError> {
        let mut wanted: Option<BTreeSet<String>> = None;
        if let Some(id) = &self.technique {
            let technique = catalog.technique(id).ok_or_else(|| {
                invalid(
                    "technique",
                    "catalog",
                    "not a technique of the ATT&CK catalog",
                )
            })?;
            let mut set = BTreeSet::from([technique.id.clone()]);
            set.extend(catalog.sub_techniques(&technique.id).map(|t| t.id.clone()));
            wanted = Some(set);
        }
        if let Some(raw) = &self.tactic {
            let tactic = catalog
                .tactics()
                .iter()
                .find(|t| t.shortname == *raw || t.id == *raw)
                .ok_or_else(|| {
                    invalid("tactic", "catalog", "not a tactic of the ATT&CK catalog")
                })?;
            // Sub-techniques carry their tactics too: both count.
            let set: BTreeSet<String> = catalog
                .techniques()
                .iter()
                .filter(|t| t.tactics.contains(&tactic.shortname))
                .map(|t| t.id.clone())
                .collect();
            wanted = Some(match wanted {
                Some(mine) => mine.intersection(&set).cloned().collect(),
                None => set,
            });
        }
        Ok(DetectionFilter {
            scope: self.scope,
            source: self.source,
            status: self.status,
            techniques: wanted,
        })
    }
}

impl DetectionService {
    /// Builds the service.
    pub fn new(ports: DetectionPorts) -> Self {
        Self { ports }
    }

    /// A cloud organization of the caller's tenant, or `NotFound`.
    pub(crate) async fn cloud_org(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<CloudOrganization, DetectionError> {
        self.ports
            .cloud_organizations
            .get(access.org_id(), id)
            .await?
            .ok_or(DetectionError::NotFound)
    }

    /// A cloud account of the caller's tenant, or `NotFound`.
    pub(crate) async fn account(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
    ) -> Result<CloudAccount, DetectionError> {
        self.ports
            .accounts
            .get(access.org_id(), id)
            .await?
            .ok_or(DetectionError::NotFound)
    }

    /// A cloud organization's detections (any member).
    pub async fn list_for_cloud_org(
        &self,
        access: &OrgAccess,
        id: CloudOrganizationId,
        query: &DetectionQuery,
        page: PageRequest,
    ) -> Result<Page<Detection>, DetectionError> {
        access.require(Action::View)?;
        let filter = query.filter(Catalog::embedded())?;
        self.cloud_org(access, id).await?;
        Ok(self
            .ports
            .repository
            .list(
                access.org_id(),
                Target::CloudOrganization(id.as_uuid()),
                &filter,
                page,
            )
            .await?)
    }

    /// An account's detections (any member): its own and its cloud organization's that reach
    /// it, by id. An account that left its organization inherits nothing.
    pub async fn list_for_account(
        &self,
        access: &OrgAccess,
        id: CloudAccountId,
        query: &DetectionQuery,
        page: PageRequest,
    ) -> Result<Page<AccountDetection>, DetectionError> {
        access.require(Action::View)?;
        let filter = query.filter(Catalog::embedded())?;
        let account = self.account(access, id).await?;
        let mut rows = self.effective(access.org_id(), &account, &filter).await?;
        if let Some(after) = page.after {
            rows.retain(|r| r.detection.id.as_uuid() > after.0);
        }
        Ok(Page::from_overfetch(
            rows.into_iter().take(page.limit as usize + 1).collect(),
            page.limit,
            |r| r.detection.id.as_uuid(),
        ))
    }

    /// Every detection that applies to `account`, own and inherited, by id.
    pub async fn effective(
        &self,
        org: OrganizationId,
        account: &CloudAccount,
        filter: &DetectionFilter,
    ) -> Result<Vec<AccountDetection>, DetectionError> {
        let mut rows: Vec<AccountDetection> = Vec::new();
        if filter.scope != Some(ScopeKind::Organization) {
            rows.extend(
                self.ports
                    .repository
                    .all(org, Target::Account(account.id.as_uuid()), filter)
                    .await?
                    .into_iter()
                    .map(|detection| AccountDetection {
                        detection,
                        origin: Origin::Own,
                    }),
            );
        }
        let placement = account.placement.as_ref().filter(|p| p.left_at.is_none());
        if let (Some(placement), true) = (placement, filter.scope != Some(ScopeKind::Account)) {
            let cloud_org = CloudOrganizationId(placement.cloud_organization_id);
            let (hierarchy, _) = self.ports.cloud_organizations.snapshot(cloud_org).await?;
            let inherited = self
                .ports
                .repository
                .all(org, Target::CloudOrganization(cloud_org.as_uuid()), filter)
                .await?;
            rows.extend(inherit(
                account.identity.account_key(),
                placement.parent_id.as_deref(),
                cloud_org,
                &hierarchy,
                &inherited,
            ));
        }
        rows.sort_by_key(|r| r.detection.id);
        Ok(rows)
    }

    /// One detection (any member).
    pub async fn get(
        &self,
        access: &OrgAccess,
        id: DetectionId,
    ) -> Result<Detection, DetectionError> {
        access.require(Action::View)?;
        self.ports
            .repository
            .get(access.org_id(), id)
            .await?
            .ok_or(DetectionError::NotFound)
    }

    /// Declares a custom detection (admin or owner).
    pub async fn create_custom(
        &self,
        access: &OrgAccess,
        input: CustomInput,
    ) -> Result<Detection, DetectionError> {
        access.require(Action::ManageDetections)?;
        let input = self.validated(access, input).await?;
        let now = self.ports.clock.now();
        let id = DetectionId::new();
        let detection = Detection {
            id,
            organization_id: access.org_id(),
            resource_key: id.to_string(),
            source: Source::Custom,
            name: input.name,
            description: input.description,
            scope: input.scope,
            techniques: input.techniques,
            status: input.status.unwrap_or(Status::Active),
            reason: None,
            advice: None,
            evidence: input.evidence.unwrap_or_else(|| json!({})),
            first_seen_at: now,
            last_seen_at: Some(now),
            last_scan_job_id: None,
            created_by: Some(access.user_id()),
            created_at: now,
            updated_at: now,
        };
        let audit = self.audit(access, AuditAction::DetectionCreated, &detection);
        self.ports
            .repository
            .create(detection.clone(), audit)
            .await?;
        Ok(detection)
    }

    /// Replaces a custom detection's fields (admin or owner).
    pub async fn update_custom(
        &self,
        access: &OrgAccess,
        id: DetectionId,
        input: CustomInput,
    ) -> Result<Detection, DetectionError> {
        access.require(Action::ManageDetections)?;
        let current = self.get(access, id).await?;
        if current.source != Source::Custom {
            return Err(DetectionError::NotCustom);
        }
        let input = self.validated(access, input).await?;
        let now = self.ports.clock.now();
        let detection = Detection {
            name: input.name,
            description: input.description,
            scope: input.scope,
            techniques: input.techniques,
            status: input.status.unwrap_or(current.status),
            evidence: input.evidence.unwrap_or_else(|| current.evidence.clone()),
            last_seen_at: Some(now),
            updated_at: now,
            ..current
        };
        let audit = self.audit(access, AuditAction::DetectionUpdated, &detection);
        if self
            .ports
            .repository
            .update(detection.clone(), audit)
            .await?
        {
            Ok(detection)
        } else {
            Err(DetectionError::NotFound)
        }
    }

    /// Deletes a custom detection (admin or owner); returns what it was.
    pub async fn delete_custom(
        &self,
        access: &OrgAccess,
        id: DetectionId,
    ) -> Result<Detection, DetectionError> {
        access.require(Action::ManageDetections)?;
        let current = self.get(access, id).await?;
        if current.source != Source::Custom {
            return Err(DetectionError::NotCustom);
        }
        let audit = self.audit(access, AuditAction::DetectionDeleted, &current);
        if self
            .ports
            .repository
            .delete(access.org_id(), id, audit)
            .await?
        {
            Ok(current)
        } else {
            Err(DetectionError::NotFound)
        }
    }

    fn audit(&self, access: &OrgAccess, action: AuditAction, d: &Detection) -> NewAuditEvent {
        NewAuditEvent::new(
            access.org_id(),
            Some(access.user_id()),
            action,
            AuditTarget::new(TargetKind::Detection, d.id.to_string()),
            json!({
                "name": d.name,
                "scope": d.scope.kind().as_str(),
                "techniques": d.techniques.iter().map(|t| t.technique.as_str()).collect::<Vec<_>>(),
            }),
            self.ports.clock.now(),
        )
    }

    /// Checks a custom detection: name, techniques in the catalog, and scope targets of
    /// this tenant (another tenant's account or cloud organization is "not found", as
    /// everywhere).
    async fn validated(
        &self,
        access: &OrgAccess,
        mut input: CustomInput,
    ) -> Result<CustomInput, DetectionError> {
        let mut errors = ValidationErrors::default();
        input.name = input.name.trim().to_string();
        if input.name.is_empty() || input.name.chars().count() > 255 {
            errors.push(FieldError::new(
                "name",
                "length",
                "must be 1 to 255 characters",
            ));
        }
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 4_000)
        {
            errors.push(FieldError::new(
                "description",
                "length",
                "must be at most 4000 characters",
            ));
        }
        if input.techniques.is_empty() || input.techniques.len() > MAX_TECHNIQUES {
            errors.push(FieldError::new(
                "techniques",
                "length",
                format!("must list 1 to {MAX_TECHNIQUES} techniques"),
            ));
        }
        let catalog = Catalog::embedded();
        for (i, t) in input.techniques.iter().enumerate() {
            if catalog.technique(&t.technique).is_none() {
                errors.push(FieldError::new(
                    format!("techniques.{i}.technique"),
                    "catalog",
                    format!(
                        "{} is not a technique of the ATT&CK {} IaaS catalog",
                        t.technique,
                        catalog.version()
                    ),
                ));
            }
        }
        if input
            .status
            .is_some_and(|s| s == Status::Absent || s == Status::Unknown)
        {
            errors.push(FieldError::new(
                "status",
                "enum",
                "a custom detection is active or degraded",
            ));
        }
        errors.into_result()?;
        input.techniques = normalize(input.techniques);
        match &input.scope {
            Scope::Account(id) => {
                self.account(access, *id)
                    .await
                    .map_err(|e| target_missing(e, "cloudAccountId"))?;
            }
            Scope::Organization {
                cloud_organization_id,
                applies_to,
            } => {
                self.cloud_org(access, *cloud_organization_id)
                    .await
                    .map_err(|e| target_missing(e, "cloudOrganizationId"))?;
                self.check_reach(*cloud_organization_id, applies_to).await?;
            }
        }
        Ok(input)
    }

    /// Listed accounts must be members of the cloud organization, listed nodes its OUs or
    /// folders.
    async fn check_reach(
        &self,
        id: CloudOrganizationId,
        applies_to: &AppliesTo,
    ) -> Result<(), DetectionError> {
        let (field, listed, except) = match applies_to {
            AppliesTo::AllAccounts => return Ok(()),
            AppliesTo::Accounts(keys) => ("appliesTo.accounts", keys, None),
            AppliesTo::Nodes(nodes) => ("appliesTo.nodes", nodes, None),
            AppliesTo::NodesExcept { nodes, except } => ("appliesTo.nodes", nodes, Some(except)),
        };
        for (field, listed) in
            std::iter::once((field, listed)).chain(except.map(|e| ("appliesTo.except", e)))
        {
            if listed.is_empty() || listed.len() > MAX_TARGETS {
                return Err(invalid(
                    field,
                    "length",
                    &format!("must list 1 to {MAX_TARGETS} entries"),
                ));
            }
        }
        let (hierarchy, members) = self.ports.cloud_organizations.snapshot(id).await?;
        let unknown: Vec<(&str, &String)> = match applies_to {
            AppliesTo::Accounts(_) => listed
                .iter()
                .filter(|k| !members.iter().any(|m| &m.key == *k))
                .map(|k| (field, k))
                .collect(),
            _ => std::iter::once((field, listed))
                .chain(except.map(|e| ("appliesTo.except", e)))
                .flat_map(|(field, nodes)| nodes.iter().map(move |n| (field, n)))
                .filter(|(_, n)| hierarchy.get(n).is_none())
                .collect(),
        };
        if let Some((field, first)) = unknown.first() {
            return Err(invalid(
                field,
                "exists",
                &format!("{first} is not in this cloud organization"),
            ));
        }
        Ok(())
    }
}

fn target_missing(e: DetectionError, field: &str) -> DetectionError {
    match e {
        DetectionError::NotFound => invalid(
            &format!("scope.{field}"),
            "exists",
            "no such cloud account or cloud organization in this organization",
        ),
        other => other,
    }
}

/// The organization detections of `cloud_org` that reach the account with provider id `key`
/// under node `parent`, each with why; the rest are dropped. Pure: coverage uses it too.
pub fn inherit<'a>(
    key: &str,
    parent: Option<&str>,
    cloud_org: CloudOrganizationId,
    hierarchy: &Hierarchy,
    detections: impl IntoIterator<Item = &'a Detection>,
) -> Vec<AccountDetection> {
    // Borrowed, and cloned only when it reaches: an organization's detections are checked
    // against each of its accounts, and most reach few of them.
    detections
        .into_iter()
        .filter_map(|detection| {
            let Scope::Organization { applies_to, .. } = &detection.scope else {
                return None;
            };
            let because = applies_to.reaches(key, parent, hierarchy)?;
            Some(AccountDetection {
                detection: detection.clone(),
                origin: Origin::Inherited {
                    cloud_organization_id: cloud_org,
                    because,
                },
            })
        })
        .collect()
}
