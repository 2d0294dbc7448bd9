//! [`DetectionRepository`] on sea-orm: detections with their techniques in
//! `detection_techniques`, so a listing filters by technique (or a tactic's techniques) in SQL
//! on both backends. A scan's write is one transaction; custom detections are written with
//! their audit event under the organization lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{
    AppliesTo, Detection, DetectionId, Scope, ScopeKind, Source, Status, TechniqueScore,
};
use canopy_detection::mapping::{Category, Value};
use canopy_detection::ports::{DetectionFilter, DetectionRepository, ScanWrite, Target};
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::{Page, PageRequest, StoreError};
use canopy_tenancy::NewAuditEvent;
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::entity::{detection_techniques as techniques, detections};
use crate::error::{corrupt, db_err};
use crate::marks::refold;
use crate::tenancy::insert_audit;
use crate::txn::Abort;

crate::repository!(
    /// Detections.
    DetectionStore,
    detections
);

/// Rows per multi-row INSERT, well under both backends' parameter limits.
const INSERT_BATCH: usize = 500;

fn row(d: &Detection) -> detections::ActiveModel {
    let (scope, account, cloud_org, applies) = match &d.scope {
        Scope::Account(id) => ("account", Some(id.as_uuid()), None, None),
        Scope::Organization {
            cloud_organization_id,
            applies_to,
        } => (
            "organization",
            None,
            Some(cloud_organization_id.as_uuid()),
            Some(applies_to),
        ),
    };
    let list = |set: &BTreeSet<String>| Some(json!(set));
    detections::ActiveModel {
        id: Set(d.id.as_uuid()),
        organization_id: Set(d.organization_id.as_uuid()),
        detection_scope: Set(scope.to_string()),
        cloud_account_id: Set(account),
        cloud_organization_id: Set(cloud_org),
        applies_to_all_accounts: Set(matches!(applies, Some(AppliesTo::AllAccounts))),
        applies_to_account_ids: Set(match applies {
            Some(AppliesTo::Accounts(keys)) => list(keys),
            _ => None,
        }),
        applies_to_node_ids: Set(match applies {
            Some(AppliesTo::Nodes(nodes) | AppliesTo::NodesExcept { nodes, .. }) => list(nodes),
            _ => None,
        }),
        applies_to_excluded_node_ids: Set(match applies {
            Some(AppliesTo::NodesExcept { except, .. }) => list(except),
            _ => None,
        }),
        target_id: Set(d.scope.target()),
        source: Set(d.source.as_str().to_string()),
        resource_key: Set(d.resource_key.clone()),
        name: Set(d.name.clone()),
        description: Set(d.description.clone()),
        status: Set(d.status.as_str().to_string()),
        reason: Set(d.reason.clone()),
        advice: Set(d.advice.clone()),
        evidence: Set(d.evidence.clone()),
        first_seen_at: Set(d.first_seen_at),
        last_seen_at: Set(d.last_seen_at),
        last_scan_job_id: Set(d.last_scan_job_id),
        created_by: Set(d.created_by.map(|u| u.as_uuid())),
        created_at: Set(d.created_at),
        updated_at: Set(d.updated_at),
    }
}

fn technique_rows(d: &Detection) -> Vec<techniques::ActiveModel> {
    d.techniques
        .iter()
        .map(|t| techniques::ActiveModel {
            detection_id: Set(d.id.as_uuid()),
            technique_id: Set(t.technique.clone()),
            category: Set(t.category.as_str().to_string()),
            value: Set(t.value.as_str().to_string()),
        })
        .collect()
}

fn strings(value: Option<serde_json::Value>, what: &str) -> Result<BTreeSet<String>, StoreError> {
    let value = value.unwrap_or_else(|| json!([]));
    serde_json::from_value(value.clone()).map_err(|_| corrupt(what, &value.to_string()))
}

fn category(raw: &str) -> Option<Category> {
    [Category::Detect, Category::Protect, Category::Respond]
        .into_iter()
        .find(|c| c.as_str() == raw)
}

fn value(raw: &str) -> Option<Value> {
    [Value::Minimal, Value::Partial, Value::Significant]
        .into_iter()
        .find(|v| v.as_str() == raw)
}

fn detection_from(
    m: detections::Model,
    scores: Vec<techniques::Model>,
) -> Result<Detection, StoreError> {
    let scope = match ScopeKind::from_stored(&m.detection_scope) {
        Some(ScopeKind::Account) => Scope::Account(CloudAccountId(
            m.cloud_account_id
                .ok_or_else(|| corrupt("account detection", &m.id.to_string()))?,
        )),
        Some(ScopeKind::Organization) => Scope::Organization {
            cloud_organization_id: CloudOrganizationId(
                m.cloud_organization_id
                    .ok_or_else(|| corrupt("organization detection", &m.id.to_string()))?,
            ),
            applies_to: if m.applies_to_all_accounts {
                AppliesTo::AllAccounts
            } else if m.applies_to_account_ids.is_some() {
                AppliesTo::Accounts(strings(m.applies_to_account_ids, "applies_to_account_ids")?)
            } else if m.applies_to_excluded_node_ids.is_some() {
                AppliesTo::NodesExcept {
                    nodes: strings(m.applies_to_node_ids, "applies_to_node_ids")?,
                    except: strings(
                        m.applies_to_excluded_node_ids,
                        "applies_to_excluded_node_ids",
                    )?,
                }
            } else {
                AppliesTo::Nodes(strings(m.applies_to_node_ids, "applies_to_node_ids")?)
            },
        },
        None => return Err(corrupt("detection scope", &m.detection_scope)),
    };
    let mut techniques = scores
        .into_iter()
        .map(|t| {
            Ok(TechniqueScore {
                category: category(&t.category)
                    .ok_or_else(|| corrupt("technique category", &t.category))?,
                value: value(&t.value).ok_or_else(|| corrupt("technique value", &t.value))?,
                technique: t.technique_id,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    techniques.sort();
    Ok(Detection {
        id: DetectionId(m.id),
        organization_id: OrganizationId(m.organization_id),
        scope,
        source: Source::from_stored(&m.source).ok_or_else(|| corrupt("source", &m.source))?,
        resource_key: m.resource_key,
        name: m.name,
        description: m.description,
        techniques,
        status: Status::from_stored(&m.status).ok_or_else(|| corrupt("status", &m.status))?,
        reason: m.reason,
        advice: m.advice,
        evidence: m.evidence,
        first_seen_at: m.first_seen_at,
        last_seen_at: m.last_seen_at,
        last_scan_job_id: m.last_scan_job_id,
        created_by: m.created_by.map(UserId),
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// Inserts detections and their techniques, in batches.
async fn insert_all<C: ConnectionTrait>(db: &C, rows: &[Detection]) -> Result<(), DbErr> {
    for chunk in rows.chunks(INSERT_BATCH) {
        detections::Entity::insert_many(chunk.iter().map(row))
            .exec(db)
            .await?;
    }
    let scores: Vec<_> = rows.iter().flat_map(technique_rows).collect();
    for chunk in scores.chunks(INSERT_BATCH) {
        techniques::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Replaces one detection's row and techniques.
async fn replace<C: ConnectionTrait>(db: &C, d: &Detection) -> Result<u64, DbErr> {
    let mut active = row(d);
    // The identity columns never change in place.
    active.id = sea_orm::ActiveValue::Unchanged(d.id.as_uuid());
    active.organization_id = sea_orm::ActiveValue::NotSet;
    active.created_at = sea_orm::ActiveValue::NotSet;
    active.created_by = sea_orm::ActiveValue::NotSet;
    let changed = detections::Entity::update_many()
        .set(active)
        .filter(detections::Column::Id.eq(d.id.as_uuid()))
        .filter(detections::Column::OrganizationId.eq(d.organization_id.as_uuid()))
        .exec(db)
        .await?
        .rows_affected;
    if changed > 0 {
        techniques::Entity::delete_many()
            .filter(techniques::Column::DetectionId.eq(d.id.as_uuid()))
            .exec(db)
            .await?;
        let scores = technique_rows(d);
        if !scores.is_empty() {
            techniques::Entity::insert_many(scores).exec(db).await?;
        }
    }
    Ok(changed)
}

impl DetectionStore {
    fn filtered(
        &self,
        org: OrganizationId,
        target: Target,
        filter: &DetectionFilter,
    ) -> Select<detections::Entity> {
        let mut query =
            detections::Entity::find().filter(detections::Column::OrganizationId.eq(org.as_uuid()));
        query = match target {
            Target::Account(id) => query.filter(detections::Column::CloudAccountId.eq(id)),
            Target::CloudOrganization(id) => query
                .filter(detections::Column::DetectionScope.eq("organization"))
                .filter(detections::Column::CloudOrganizationId.eq(id)),
        };
        if let Some(scope) = filter.scope {
            query = query.filter(detections::Column::DetectionScope.eq(scope.as_str()));
        }
        if let Some(source) = filter.source {
            query = query.filter(detections::Column::Source.eq(source.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(detections::Column::Status.eq(status.as_str()));
        }
        if let Some(wanted) = &filter.techniques {
            query = query.filter(
                detections::Column::Id.in_subquery(
                    Query::select()
                        .column(techniques::Column::DetectionId)
                        .from(techniques::Entity)
                        .and_where(techniques::Column::TechniqueId.is_in(wanted.iter().cloned()))
                        .to_owned(),
                ),
            );
        }
        query
    }
}

/// Reads the techniques of `rows` in one query per chunk and assembles the detections.
pub(crate) async fn assemble<C: ConnectionTrait>(
    db: &C,
    rows: Vec<detections::Model>,
) -> Result<Vec<Detection>, StoreError> {
    let mut scores: HashMap<Uuid, Vec<techniques::Model>> = HashMap::new();
    let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
    // Chunked: an organization can have thousands of detections, and IN lists have limits.
    for chunk in ids.chunks(INSERT_BATCH) {
        for t in techniques::Entity::find()
            .filter(techniques::Column::DetectionId.is_in(chunk.to_vec()))
            .all(db)
            .await
            .map_err(db_err)?
        {
            scores.entry(t.detection_id).or_default().push(t);
        }
    }
    rows.into_iter()
        .map(|m| {
            let mine = scores.remove(&m.id).unwrap_or_default();
            detection_from(m, mine)
        })
        .collect()
}

/// The accounts whose own detections these are (organization ones have none), by org.
async fn accounts_of<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
    let mut found = Vec::new();
    for chunk in ids.chunks(INSERT_BATCH) {
        let rows: Vec<(Uuid, Option<Uuid>)> = detections::Entity::find()
            .select_only()
            .column(detections::Column::OrganizationId)
            .column(detections::Column::CloudAccountId)
            .filter(detections::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows.into_iter().filter_map(|(org, a)| a.map(|a| (org, a))));
    }
    Ok(found)
}

/// The account a detection is scoped to, with its organization.
fn account_of(d: &Detection) -> Option<(Uuid, Uuid)> {
    match d.scope {
        Scope::Account(a) => Some((d.organization_id.as_uuid(), a.as_uuid())),
        Scope::Organization { .. } => None,
    }
}

/// Folds again the marks of every account these writes touched, in the same transaction.
async fn refold_touched<C: ConnectionTrait>(
    db: &C,
    touched: impl IntoIterator<Item = (Uuid, Uuid)>,
) -> Result<(), StoreError> {
    let mut by_org: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
    for (org, account) in touched {
        by_org.entry(org).or_default().insert(account);
    }
    for (org, accounts) in by_org {
        refold(db, org, &accounts, Catalog::embedded()).await?;
    }
    Ok(())
}

#[async_trait]
impl DetectionRepository for DetectionStore {
    async fn create(&self, detection: Detection, audit: NewAuditEvent) -> Result<(), StoreError> {
        let org = detection.organization_id;
        self.store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    insert_all(locked.txn(), std::slice::from_ref(&detection)).await?;
                    refold_touched(locked.txn(), account_of(&detection))
                        .await
                        .map_err(Abort::Refuse)?;
                    insert_audit(locked, audit).await?;
                    Ok::<_, Abort<StoreError>>(())
                })
            })
            .await?
            .ok_or_else(|| StoreError::internal("the organization is gone"))
    }

    async fn get(
        &self,
        org: OrganizationId,
        id: DetectionId,
    ) -> Result<Option<Detection>, StoreError> {
        let Some(row) = detections::Entity::find_by_id(id.as_uuid())
            .filter(detections::Column::OrganizationId.eq(org.as_uuid()))
            .one(self.db())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        Ok(assemble(self.db(), vec![row]).await?.pop())
    }

    async fn update(&self, detection: Detection, audit: NewAuditEvent) -> Result<bool, StoreError> {
        let org = detection.organization_id;
        Ok(self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let before = accounts_of(locked.txn(), &[detection.id.as_uuid()]).await?;
                    let changed = replace(locked.txn(), &detection).await?;
                    if changed > 0 {
                        refold_touched(
                            locked.txn(),
                            before.into_iter().chain(account_of(&detection)),
                        )
                        .await
                        .map_err(Abort::Refuse)?;
                        insert_audit(locked, audit).await?;
                    }
                    Ok::<_, Abort<StoreError>>(changed > 0)
                })
            })
            .await?
            .unwrap_or(false))
    }

    async fn delete(
        &self,
        org: OrganizationId,
        id: DetectionId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        Ok(self
            .store()
            .write_locked(&[org], move |locked| {
                Box::pin(async move {
                    let before = accounts_of(locked.txn(), &[id.as_uuid()]).await?;
                    // SQLite enforces the cascade only with foreign keys on; delete both
                    // explicitly so neither backend's settings matter.
                    techniques::Entity::delete_many()
                        .filter(techniques::Column::DetectionId.eq(id.as_uuid()))
                        .exec(locked.txn())
                        .await?;
                    let gone = detections::Entity::delete_many()
                        .filter(detections::Column::Id.eq(id.as_uuid()))
                        .filter(detections::Column::OrganizationId.eq(org.as_uuid()))
                        .exec(locked.txn())
                        .await?
                        .rows_affected;
                    if gone > 0 {
                        refold_touched(locked.txn(), before)
                            .await
                            .map_err(Abort::Refuse)?;
                        insert_audit(locked, audit).await?;
                    }
                    Ok::<_, Abort<StoreError>>(gone > 0)
                })
            })
            .await?
            .unwrap_or(false))
    }

    async fn list(
        &self,
        org: OrganizationId,
        target: Target,
        filter: &DetectionFilter,
        page: PageRequest,
    ) -> Result<Page<Detection>, StoreError> {
        let mut query = self.filtered(org, target, filter);
        if let Some(after) = page.after {
            query = query.filter(detections::Column::Id.gt(after.0));
        }
        let rows = query
            .order_by_asc(detections::Column::Id)
            .limit(u64::from(page.limit) + 1)
            .all(self.db())
            .await
            .map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        let next = page.next;
        Ok(Page {
            items: assemble(self.db(), page.items).await?,
            next,
        })
    }

    async fn all(
        &self,
        org: OrganizationId,
        target: Target,
        filter: &DetectionFilter,
    ) -> Result<Vec<Detection>, StoreError> {
        let rows = self
            .filtered(org, target, filter)
            .order_by_asc(detections::Column::Id)
            .all(self.db())
            .await
            .map_err(db_err)?;
        assemble(self.db(), rows).await
    }

    async fn all_of_accounts(
        &self,
        org: OrganizationId,
        accounts: &[Uuid],
    ) -> Result<Vec<Detection>, StoreError> {
        let mut rows = Vec::new();
        for chunk in accounts.chunks(INSERT_BATCH) {
            rows.extend(
                detections::Entity::find()
                    .filter(detections::Column::OrganizationId.eq(org.as_uuid()))
                    .filter(detections::Column::DetectionScope.eq("account"))
                    .filter(detections::Column::CloudAccountId.is_in(chunk.to_vec()))
                    .all(self.db())
                    .await
                    .map_err(db_err)?,
            );
        }
        rows.sort_by_key(|m| m.id);
        assemble(self.db(), rows).await
    }

    async fn apply_scan(&self, write: ScanWrite) -> Result<(), StoreError> {
        if write == ScanWrite::default() {
            return Ok(());
        }
        let txn = self.db().begin().await.map_err(db_err)?;
        let outcome: Result<(), StoreError> = async {
            let mut touched = Vec::new();
            if !write.delete.is_empty() {
                let ids: Vec<Uuid> = write.delete.iter().map(|d| d.as_uuid()).collect();
                touched.extend(accounts_of(&txn, &ids).await.map_err(db_err)?);
                techniques::Entity::delete_many()
                    .filter(techniques::Column::DetectionId.is_in(ids.clone()))
                    .exec(&txn)
                    .await
                    .map_err(db_err)?;
                detections::Entity::delete_many()
                    .filter(detections::Column::Id.is_in(ids))
                    .exec(&txn)
                    .await
                    .map_err(db_err)?;
            }
            for d in &write.update {
                replace(&txn, d).await.map_err(db_err)?;
            }
            insert_all(&txn, &write.insert).await.map_err(db_err)?;
            touched.extend(
                write
                    .update
                    .iter()
                    .chain(&write.insert)
                    .filter_map(account_of),
            );
            refold_touched(&txn, touched).await
        }
        .await;
        match outcome {
            Ok(()) => txn.commit().await.map_err(db_err),
            Err(e) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::debug!(error = %rollback, "rollback after a failed scan write");
                }
                Err(e)
            }
        }
    }
}
