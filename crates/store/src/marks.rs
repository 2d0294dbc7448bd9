//! [`MarksStore`] on sea-orm: each account's own detections folded (`coverage_marks`), kept
//! in step with its detections by [`refold`], which every write to an account's detections
//! calls inside its own transaction.
//!
//! Why the row is locked before the detections are read: two transactions writing the same
//! account's detections at once (a scan and a custom edit) would each fold without the
//! other's rows, and the later commit would keep marks missing the earlier one's. Upserting
//! the marks rows first makes the second wait for the first to commit (PostgreSQL row lock;
//! SQLite runs one writer at a time), and its read then sees the first one's detections.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use canopy_coverage::summary::Marks;
use canopy_coverage::views::MarksStore;
use canopy_detection::catalog::Catalog;
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::detections::assemble;
use crate::entity::{cloud_accounts, coverage_marks as marks, coverage_revisions, detections};
use crate::error::db_err;

crate::repository!(
    /// Each account's own detections, folded for the organization-wide coverage view.
    CoverageMarkStore,
    coverage_marks
);

/// Accounts per IN list, well under both backends' parameter limits.
const CHUNK: usize = 500;

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Folds `accounts`' own detections again (they are `org`'s; others are skipped) and keeps
/// the marks, in the caller's transaction. Returns the marks kept.
pub(crate) async fn refold<C: ConnectionTrait>(
    db: &C,
    org: Uuid,
    accounts: &BTreeSet<Uuid>,
    catalog: &Catalog,
) -> Result<HashMap<Uuid, Marks>, StoreError> {
    let now = Utc::now();
    let mut folded = HashMap::new();
    let ids: Vec<Uuid> = accounts.iter().copied().collect();
    for chunk in ids.chunks(CHUNK) {
        let mine: Vec<Uuid> = cloud_accounts::Entity::find()
            .select_only()
            .column(cloud_accounts::Column::Id)
            .filter(cloud_accounts::Column::OrganizationId.eq(org))
            .filter(cloud_accounts::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await
            .map_err(db_err)?;
        if mine.is_empty() {
            continue;
        }
        // Sorted ids: concurrent refolds lock rows in the same order, so they cannot deadlock.
        let mut mine = mine;
        mine.sort();
        let empty = Marks::empty(catalog);
        marks::Entity::insert_many(mine.iter().map(|id| marks::ActiveModel {
            cloud_account_id: Set(*id),
            organization_id: Set(org),
            attack_version: Set(empty.attack_version.clone()),
            detections: Set(0),
            marks: Set(empty.marks.clone()),
            updated_at: Set(now),
        }))
        .on_conflict(
            OnConflict::column(marks::Column::CloudAccountId)
                .update_column(marks::Column::UpdatedAt)
                .to_owned(),
        )
        .exec(db)
        .await
        .map_err(db_err)?;
        let rows = detections::Entity::find()
            .filter(detections::Column::OrganizationId.eq(org))
            .filter(detections::Column::DetectionScope.eq("account"))
            .filter(detections::Column::CloudAccountId.is_in(mine.clone()))
            .all(db)
            .await
            .map_err(db_err)?;
        let mut by_account: HashMap<Uuid, Vec<_>> = HashMap::new();
        for d in assemble(db, rows).await? {
            if let canopy_detection::detection::Scope::Account(a) = d.scope {
                by_account.entry(a.as_uuid()).or_default().push(d);
            }
        }
        for id in mine {
            let own = by_account.remove(&id).unwrap_or_default();
            let m = Marks::of(catalog, &own);
            marks::Entity::update_many()
                .set(marks::ActiveModel {
                    attack_version: Set(m.attack_version.clone()),
                    detections: Set(count(m.detections)),
                    marks: Set(m.marks.clone()),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .filter(marks::Column::CloudAccountId.eq(id))
                .exec(db)
                .await
                .map_err(db_err)?;
            folded.insert(id, m);
        }
    }
    Ok(folded)
}

#[async_trait]
impl MarksStore for CoverageMarkStore {
    async fn own_marks(
        &self,
        org: OrganizationId,
        accounts: &[Uuid],
        catalog: &'static Catalog,
    ) -> Result<HashMap<Uuid, Marks>, StoreError> {
        let mut found = HashMap::with_capacity(accounts.len());
        for chunk in accounts.chunks(CHUNK) {
            let rows = marks::Entity::find()
                .filter(marks::Column::OrganizationId.eq(org.as_uuid()))
                .filter(marks::Column::CloudAccountId.is_in(chunk.to_vec()))
                .all(self.db())
                .await
                .map_err(db_err)?;
            for row in rows {
                let m = Marks {
                    attack_version: row.attack_version,
                    detections: u32::try_from(row.detections).unwrap_or(0),
                    marks: row.marks,
                };
                if m.fits(catalog) {
                    found.insert(row.cloud_account_id, m);
                }
            }
        }
        // Missing (written before marks existed) or folded against another catalog.
        let stale: BTreeSet<Uuid> = accounts
            .iter()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect();
        if !stale.is_empty() {
            let txn = self.db().begin().await.map_err(db_err)?;
            let folded = refold(&txn, org.as_uuid(), &stale, catalog).await?;
            txn.commit().await.map_err(db_err)?;
            found.extend(folded);
        }
        Ok(found)
    }

    async fn revision(&self, org: OrganizationId) -> Result<i64, StoreError> {
        let found: Option<i64> = coverage_revisions::Entity::find_by_id(org.as_uuid())
            .select_only()
            .column(coverage_revisions::Column::Revision)
            .into_tuple()
            .one(self.db())
            .await
            .map_err(db_err)?;
        Ok(found.unwrap_or(0))
    }
}
