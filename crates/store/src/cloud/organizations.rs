//! [`CloudOrganizationRepository`] on sea-orm: cloud organizations, their nodes and closure
//! (docs/adr/0002-hierarchy-closure-table.md), members and change log. A discovery's write is
//! one transaction; a discovery that changed nothing calls nothing here but the status.

use async_trait::async_trait;
use canopy_cloud_org::organization::hierarchy::Hierarchy;
use canopy_cloud_org::organization::member::{DiscoveredMember, MemberStatus};
use canopy_cloud_org::organization::ports::{
    CloudOrganizationRepository, ConnectClaim, ConnectedPlacement, DiscoveryWrite, MemberFilter,
    NodeCount, RecordError, RecordedChange, Selection, StoredMember,
};
use canopy_cloud_org::organization::{CloudOrganization, CloudOrganizationId, ConnectionStatus};
use canopy_cloud_org::sealing::SealedSecret;
use canopy_jobs::{Job, NewJob};
use canopy_kernel::id::OrganizationId;
use canopy_kernel::{Page, PageRequest, StoreError};
use canopy_tenancy::NewAuditEvent;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::organization_rows::{
    change_row, cloud_org_from, found_from, node_from, placement, replace_tree, stored_member_from,
};
use super::{organization_lifecycle, organization_members};
use crate::entity::{
    cloud_org_changes as changes, cloud_org_closure as closure, cloud_org_nodes as nodes,
    cloud_organization_members as members, cloud_organizations as orgs,
};
use crate::error::db_err;

/// Rows per multi-row INSERT: well under both backends' bound-parameter limits (SQLite
/// 32,766; PostgreSQL 65,535) at about twenty columns a row.
const INSERT_BATCH: usize = 500;

crate::repository!(
    /// Cloud organizations.
    CloudOrganizationStore,
    cloud_organizations
);

impl CloudOrganizationStore {
    async fn tree(&self, id: CloudOrganizationId) -> Result<Hierarchy, StoreError> {
        let rows = nodes::Entity::find()
            .filter(nodes::Column::CloudOrganizationId.eq(id.as_uuid()))
            .all(self.db())
            .await
            .map_err(db_err)?;
        let links = closure::Entity::find()
            .filter(closure::Column::CloudOrganizationId.eq(id.as_uuid()))
            .order_by_desc(closure::Column::Distance)
            .all(self.db())
            .await
            .map_err(db_err)?;
        let mut ids: std::collections::HashMap<String, Vec<String>> = Default::default();
        for link in links {
            ids.entry(link.descendant).or_default().push(link.ancestor);
        }
        Ok(Hierarchy::from_placed(
            rows.into_iter().map(|m| node_from(m, &ids)),
        ))
    }

    async fn owned(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<bool, StoreError> {
        Ok(orgs::Entity::find_by_id(id.as_uuid())
            .filter(orgs::Column::OrganizationId.eq(org.as_uuid()))
            .count(self.db())
            .await
            .map_err(db_err)?
            == 1)
    }
}

#[async_trait]
impl CloudOrganizationRepository for CloudOrganizationStore {
    async fn create(
        &self,
        cloud_org: CloudOrganization,
        audit: NewAuditEvent,
        job: Option<NewJob>,
    ) -> Result<Option<Job>, RecordError> {
        organization_lifecycle::create(self.store(), cloud_org, audit, job).await
    }

    async fn get(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Option<CloudOrganization>, StoreError> {
        orgs::Entity::find_by_id(id.as_uuid())
            .filter(orgs::Column::OrganizationId.eq(org.as_uuid()))
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(cloud_org_from)
            .transpose()
    }

    async fn list(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<CloudOrganization>, StoreError> {
        let mut query = orgs::Entity::find()
            .filter(orgs::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_asc(orgs::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(orgs::Column::Id.gt(after.0));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(cloud_org_from)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }

    async fn hierarchy(&self, id: CloudOrganizationId) -> Result<Hierarchy, StoreError> {
        self.tree(id).await
    }

    async fn connected_placements(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
    ) -> Result<Vec<ConnectedPlacement>, StoreError> {
        if !self.owned(org, id).await? {
            return Ok(vec![]);
        }
        organization_members::connected_placements(self.db(), id).await
    }

    async fn snapshot(
        &self,
        id: CloudOrganizationId,
    ) -> Result<(Hierarchy, Vec<DiscoveredMember>), StoreError> {
        let tree = self.tree(id).await?;
        let rows = members::Entity::find()
            .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
            .filter(members::Column::LeftAt.is_null())
            .order_by_asc(members::Column::AccountKey)
            .all(self.db())
            .await
            .map_err(db_err)?;
        let found = rows.iter().map(found_from).collect::<Result<_, _>>()?;
        Ok((tree, found))
    }

    async fn apply(
        &self,
        id: CloudOrganizationId,
        write: DiscoveryWrite,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let result: Result<(), sea_orm::DbErr> = async {
            let tree = match &write.hierarchy {
                Some(tree) => {
                    replace_tree(&txn, id, tree).await?;
                    tree.clone()
                }
                None => {
                    // The stored tree places the members (read inside the transaction).
                    let rows = nodes::Entity::find()
                        .filter(nodes::Column::CloudOrganizationId.eq(id.as_uuid()))
                        .all(&txn)
                        .await?;
                    Hierarchy::from_placed(
                        rows.into_iter().map(|m| node_from(m, &Default::default())),
                    )
                }
            };
            // One query for the members already stored, then the new ones inserted in
            // batches: a first discovery of thousands of accounts is a few statements, not
            // two per account.
            let known: std::collections::HashMap<String, Uuid> = members::Entity::find()
                .select_only()
                .column(members::Column::AccountKey)
                .column(members::Column::Id)
                .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                .into_tuple::<(String, Uuid)>()
                .all(&txn)
                .await?
                .into_iter()
                .collect();
            let mut inserts = Vec::new();
            for m in &write.upsert {
                let (path, level) = placement(&tree, &m.parent_id);
                let existing = known.get(&m.key).copied();
                let mut row = match existing {
                    Some(member) => members::ActiveModel {
                        id: sea_orm::ActiveValue::Unchanged(member),
                        ..Default::default()
                    },
                    None => members::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        cloud_organization_id: Set(id.as_uuid()),
                        provider: Set(if m.number.is_some() { "gcp" } else { "aws" }.into()),
                        account_key: Set(m.key.clone()),
                        status: Set(MemberStatus::Discovered.as_str().into()),
                        discovered_at: Set(now),
                        ..Default::default()
                    },
                };
                row.project_number = Set(m.number.clone());
                row.name = Set(m.name.clone());
                row.email = Set(m.email.clone());
                row.state = Set(m.state.as_str().into());
                row.joined_method = Set(m.joined_method.clone());
                row.joined_at = Set(m.joined_at);
                row.parent_id = Set(m.parent_id.clone());
                row.hierarchy_path = Set(path);
                row.hierarchy_level = Set(level);
                row.is_management_account = Set(m.is_management);
                row.delegated_admin_services = Set(json!(m.delegated_admin_services));
                row.left_at = Set(None);
                row.updated_at = Set(now);
                row.last_sync_at = Set(Some(now));
                if existing.is_some() {
                    let stored = row.update(&txn).await?;
                    if let Some(account) = stored.linked_cloud_account_id {
                        organization_members::place_account(&txn, account, &stored).await?;
                    }
                } else {
                    inserts.push(row);
                }
            }
            for chunk in inserts.chunks(INSERT_BATCH) {
                members::Entity::insert_many(chunk.to_vec())
                    .exec(&txn)
                    .await?;
            }
            if !write.left.is_empty() {
                organization_members::flag_departed(&txn, id, &write.left, now).await?;
                members::Entity::update_many()
                    .col_expr(members::Column::LeftAt, Expr::value(now))
                    .col_expr(members::Column::UpdatedAt, Expr::value(now))
                    .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .filter(
                        members::Column::AccountKey.is_in(write.left.iter().map(String::as_str)),
                    )
                    .exec(&txn)
                    .await?;
            }
            let rows: Vec<_> = write
                .changes
                .iter()
                .map(|change| change_row(id, write.job_id, change, now))
                .collect();
            for chunk in rows.chunks(INSERT_BATCH) {
                changes::Entity::insert_many(chunk.to_vec())
                    .exec(&txn)
                    .await?;
            }
            let discovered = members::Entity::find()
                .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                .filter(members::Column::LeftAt.is_null())
                .count(&txn)
                .await?;
            let connected = members::Entity::find()
                .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                .filter(members::Column::LeftAt.is_null())
                .filter(members::Column::Status.eq(MemberStatus::Connected.as_str()))
                .count(&txn)
                .await?;
            let identity = &write.identity;
            orgs::Entity::update_many()
                .col_expr(orgs::Column::AwsOrgArn, Expr::value(identity.arn.clone()))
                .col_expr(
                    orgs::Column::ManagementAccountId,
                    Expr::value(identity.management_account_id.clone()),
                )
                .col_expr(
                    orgs::Column::ManagementAccountEmail,
                    Expr::value(identity.management_account_email.clone()),
                )
                .col_expr(
                    orgs::Column::DiscoveredAccountsCount,
                    Expr::value(i32::try_from(discovered).unwrap_or(i32::MAX)),
                )
                .col_expr(
                    orgs::Column::ConnectedAccountsCount,
                    Expr::value(i32::try_from(connected).unwrap_or(i32::MAX)),
                )
                .col_expr(orgs::Column::UpdatedAt, Expr::value(now))
                .filter(orgs::Column::Id.eq(id.as_uuid()))
                .exec(&txn)
                .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => txn.commit().await.map_err(db_err),
            Err(e) => {
                let _ = txn.rollback().await;
                Err(db_err(e))
            }
        }
    }

    async fn set_status(
        &self,
        id: CloudOrganizationId,
        status: ConnectionStatus,
        error: Option<String>,
        unreadable: Vec<String>,
        discovered: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut update = orgs::Entity::update_many()
            .col_expr(orgs::Column::ConnectionStatus, Expr::value(status.as_str()))
            .col_expr(orgs::Column::ConnectionError, Expr::value(error))
            .col_expr(orgs::Column::Unreadable, Expr::value(json!(unreadable)))
            .col_expr(orgs::Column::LastConnectionAttempt, Expr::value(now))
            .col_expr(orgs::Column::UpdatedAt, Expr::value(now));
        if discovered {
            update = update.col_expr(orgs::Column::LastDiscoveredAt, Expr::value(now));
        }
        update
            .filter(orgs::Column::Id.eq(id.as_uuid()))
            .exec(self.db())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn members(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<StoredMember>, StoreError> {
        if !self.owned(org, id).await? {
            return Ok(Page {
                items: vec![],
                next: None,
            });
        }
        let mut query = members::Entity::find()
            .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
            .order_by_asc(members::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(members::Column::Id.gt(after.0));
        }
        if !filter.include_left {
            query = query.filter(members::Column::LeftAt.is_null());
        }
        if let Some(status) = filter.status {
            query = query.filter(members::Column::Status.eq(status.as_str()));
        }
        if let Some(node) = &filter.under {
            // The subtree of `node`, from the closure table: one indexed lookup.
            let mut under = Query::select();
            under
                .column(closure::Column::Descendant)
                .from(closure::Entity)
                .and_where(Expr::col(closure::Column::CloudOrganizationId).eq(id.as_uuid()))
                .and_where(Expr::col(closure::Column::Ancestor).eq(node.as_str()));
            query = query.filter(members::Column::ParentId.in_subquery(under.to_owned()));
        }
        if let Some(node) = &filter.parent {
            query = query.filter(members::Column::ParentId.eq(node.as_str()));
        }
        if let Some(text) = &filter.text {
            let pattern = format!("%{}%", text.to_lowercase());
            query = query.filter(
                sea_orm::Condition::any()
                    .add(Func::lower(Expr::col(members::Column::Name)).like(pattern.clone()))
                    .add(Expr::col(members::Column::AccountKey).like(pattern.clone()))
                    .add(Func::lower(Expr::col(members::Column::Email)).like(pattern)),
            );
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(stored_member_from)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }

    async fn node_counts(&self, id: CloudOrganizationId) -> Result<Vec<NodeCount>, StoreError> {
        let direct: Vec<(String, i64)> = members::Entity::find()
            .select_only()
            .column(members::Column::ParentId)
            .column_as(members::Column::Id.count(), "n")
            .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
            .filter(members::Column::LeftAt.is_null())
            .group_by(members::Column::ParentId)
            .into_tuple()
            .all(self.db())
            .await
            .map_err(db_err)?;
        let direct: std::collections::HashMap<String, i64> = direct.into_iter().collect();
        let links = closure::Entity::find()
            .filter(closure::Column::CloudOrganizationId.eq(id.as_uuid()))
            .all(self.db())
            .await
            .map_err(db_err)?;
        let mut totals: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
        for link in links {
            let n = u32::try_from(*direct.get(&link.descendant).unwrap_or(&0)).unwrap_or(0);
            let entry = totals.entry(link.ancestor.clone()).or_default();
            entry.1 += n;
            if link.distance == 0 {
                entry.0 = n;
            }
        }
        Ok(totals
            .into_iter()
            .map(|(node_id, (direct, total))| NodeCount {
                node_id,
                direct,
                total,
            })
            .collect())
    }

    async fn due_for_sync(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(OrganizationId, CloudOrganizationId)>, StoreError> {
        let rows: Vec<(Uuid, Uuid)> = orgs::Entity::find()
            .select_only()
            .column(orgs::Column::OrganizationId)
            .column(orgs::Column::Id)
            .filter(orgs::Column::ConnectionStatus.is_in([
                ConnectionStatus::Connected.as_str(),
                ConnectionStatus::Partial.as_str(),
                ConnectionStatus::Error.as_str(),
            ]))
            .filter(
                sea_orm::Condition::any()
                    .add(orgs::Column::LastConnectionAttempt.is_null())
                    .add(orgs::Column::LastConnectionAttempt.lt(before)),
            )
            .order_by_asc(orgs::Column::Id)
            .into_tuple()
            .all(self.db())
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(org, id)| (OrganizationId(org), CloudOrganizationId(id)))
            .collect())
    }

    async fn connectable(
        &self,
        id: CloudOrganizationId,
        selection: &Selection,
    ) -> Result<Vec<StoredMember>, StoreError> {
        organization_members::connectable(self.db(), id, selection).await
    }

    async fn claim_for_connect(
        &self,
        id: CloudOrganizationId,
        keys: &[String],
        now: DateTime<Utc>,
        job: NewJob,
    ) -> Result<ConnectClaim, StoreError> {
        organization_members::claim_and_queue(self.store(), id, keys, now, job).await
    }

    async fn settle(
        &self,
        id: CloudOrganizationId,
        key: &str,
        account: Option<Uuid>,
        failure: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        organization_members::settle(self.db(), id, key, account, failure, now).await
    }

    async fn set_excluded(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        key: &str,
        excluded: bool,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredMember>, StoreError> {
        organization_lifecycle::set_excluded(
            self.store(),
            org,
            id,
            key.to_string(),
            excluded,
            audit,
            now,
        )
        .await
    }

    async fn sealed_with_other_keys(
        &self,
        current_key_id: &str,
    ) -> Result<Vec<(CloudOrganizationId, SealedSecret)>, StoreError> {
        organization_lifecycle::sealed_with_other_keys(self.store(), current_key_id).await
    }

    async fn replace_sealed(
        &self,
        id: CloudOrganizationId,
        expected: &SealedSecret,
        sealed: SealedSecret,
    ) -> Result<bool, StoreError> {
        organization_lifecycle::replace_sealed(self.store(), id, expected, sealed).await
    }

    async fn delete(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        organization_lifecycle::delete(self.store(), org, id, audit, now).await
    }

    async fn changes(
        &self,
        org: OrganizationId,
        id: CloudOrganizationId,
        page: PageRequest,
    ) -> Result<Page<RecordedChange>, StoreError> {
        if !self.owned(org, id).await? {
            return Ok(Page {
                items: vec![],
                next: None,
            });
        }
        let mut query = changes::Entity::find()
            .filter(changes::Column::CloudOrganizationId.eq(id.as_uuid()))
            .order_by_desc(changes::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(changes::Column::Id.lt(after.0));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|m| RecordedChange {
                    id: m.id,
                    kind: m.kind,
                    subject: m.subject,
                    details: m.details,
                    job_id: m.job_id,
                    occurred_at: m.occurred_at,
                })
                .collect(),
            next: page.next,
        })
    }
}
