//! Member writes of a connect: which members a connect may take, marking them, settling each
//! (linking its cloud account and copying where it sits), and exclusion.

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{
    ConnectClaim, ConnectedPlacement, Selection, StoredMember,
};
use canopy_jobs::{Enqueued, Job, JobId, NewJob};
use canopy_kernel::StoreError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::organization_rows::stored_member_from;
use crate::Store;
use crate::entity::jobs;
use crate::entity::{
    cloud_accounts as accounts, cloud_org_closure as closure,
    cloud_organization_members as members, cloud_organizations as orgs,
};
use crate::error::db_err;
use crate::jobs::insert_job;
use crate::tenancy::insert_audit;
use crate::txn::Abort;

pub(super) async fn connectable(
    db: &DatabaseConnection,
    id: CloudOrganizationId,
    selection: &Selection,
) -> Result<Vec<StoredMember>, StoreError> {
    let mut query = members::Entity::find()
        .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
        .filter(members::Column::LeftAt.is_null())
        .filter(members::Column::Status.is_in([
            MemberStatus::Discovered.as_str(),
            MemberStatus::Failed.as_str(),
        ]))
        .filter(members::Column::LinkedCloudAccountId.is_null())
        .order_by_asc(members::Column::AccountKey);
    match selection {
        Selection::All => {}
        Selection::Keys(keys) => {
            query =
                query.filter(members::Column::AccountKey.is_in(keys.iter().map(String::as_str)));
        }
        Selection::Under(nodes) => {
            let mut under = Query::select();
            under
                .column(closure::Column::Descendant)
                .from(closure::Entity)
                .and_where(Expr::col(closure::Column::CloudOrganizationId).eq(id.as_uuid()))
                .and_where(
                    Expr::col(closure::Column::Ancestor).is_in(nodes.iter().map(String::as_str)),
                );
            query = query.filter(members::Column::ParentId.in_subquery(under.to_owned()));
        }
    }
    query
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(stored_member_from)
        .collect()
}

/// Why a connect's claim wrote nothing: an answer for the caller, or a failed store.
enum Unclaimed {
    Running(JobId),
    NoneTaken,
    Store(StoreError),
}

impl From<StoreError> for Unclaimed {
    fn from(e: StoreError) -> Self {
        Unclaimed::Store(e)
    }
}

/// [`CloudOrganizationRepository::claim_for_connect`]: the job, the members and the audit
/// event in one transaction under the organization's lock.
///
/// [`CloudOrganizationRepository::claim_for_connect`]: canopy_cloud_org::organization::ports::CloudOrganizationRepository::claim_for_connect
pub(super) async fn claim_and_queue(
    store: &Store,
    id: CloudOrganizationId,
    keys: &[String],
    now: DateTime<Utc>,
    mut job: NewJob,
) -> Result<ConnectClaim, StoreError> {
    let org = job.organization_id;
    let keys = keys.to_vec();
    store
        .write_locked(&[org], move |locked| {
            Box::pin(async move {
                let audit = job.audit.take();
                // The job first: when a connect already runs, nothing else is touched.
                let queued = match insert_job(locked.txn(), job.into_job(now)).await? {
                    Enqueued::AlreadyActive(running) => {
                        return Err(Abort::Refuse(Unclaimed::Running(running.id)));
                    }
                    Enqueued::Queued(queued) => queued,
                };
                let taken = claim_for_connect(locked.txn(), id, &keys, now)
                    .await
                    .map_err(|e| Abort::Refuse(Unclaimed::Store(e)))?;
                if taken.is_empty() {
                    return Err(Abort::Refuse(Unclaimed::NoneTaken));
                }
                let mut payload = queued.payload.clone();
                payload["accounts"] = json!(taken);
                jobs::Entity::update_many()
                    .col_expr(jobs::Column::Payload, Expr::value(payload.clone()))
                    .filter(jobs::Column::Id.eq(queued.id.as_uuid()))
                    .exec(locked.txn())
                    .await?;
                if let Some(audit) = audit {
                    insert_audit(locked, audit).await?;
                }
                Ok(ConnectClaim::Queued {
                    keys: taken,
                    job: Box::new(Job { payload, ..queued }),
                })
            })
        })
        .await
        // A refusal rolled everything back and carries its answer.
        .or_else(|refused| match refused {
            Unclaimed::Running(job) => Ok(Some(ConnectClaim::AlreadyRunning(job))),
            Unclaimed::NoneTaken => Ok(Some(ConnectClaim::NoneTaken)),
            Unclaimed::Store(e) => Err(e),
        })?
        .ok_or_else(|| StoreError::internal("organization vanished"))
}

pub(super) async fn claim_for_connect<C: ConnectionTrait>(
    db: &C,
    id: CloudOrganizationId,
    keys: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut claimed = Vec::new();
    for key in keys {
        // One guarded UPDATE per member: the database decides which of two concurrent
        // connects takes it.
        let taken = members::Entity::update_many()
            .col_expr(
                members::Column::Status,
                Expr::value(MemberStatus::Connecting.as_str()),
            )
            .col_expr(
                members::Column::AutoConnectFailedReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(members::Column::UpdatedAt, Expr::value(now))
            .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
            .filter(members::Column::AccountKey.eq(key.as_str()))
            .filter(members::Column::LeftAt.is_null())
            .filter(members::Column::LinkedCloudAccountId.is_null())
            .filter(members::Column::Status.is_in([
                MemberStatus::Discovered.as_str(),
                MemberStatus::Failed.as_str(),
            ]))
            .exec(db)
            .await
            .map_err(db_err)?;
        if taken.rows_affected == 1 {
            claimed.push(key.clone());
        }
    }
    Ok(claimed)
}

pub(super) async fn settle(
    db: &DatabaseConnection,
    id: CloudOrganizationId,
    key: &str,
    account: Option<Uuid>,
    failure: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let txn = db.begin().await.map_err(db_err)?;
    let result: Result<(), sea_orm::DbErr> = async {
        let status = if failure.is_some() {
            MemberStatus::Failed
        } else {
            MemberStatus::Connected
        };
        members::Entity::update_many()
            .col_expr(members::Column::Status, Expr::value(status.as_str()))
            .col_expr(members::Column::LinkedCloudAccountId, Expr::value(account))
            .col_expr(
                members::Column::AutoConnectFailedReason,
                Expr::value(failure),
            )
            .col_expr(members::Column::UpdatedAt, Expr::value(now))
            .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
            .filter(members::Column::AccountKey.eq(key))
            .filter(members::Column::Status.eq(MemberStatus::Connecting.as_str()))
            .exec(&txn)
            .await?;
        if let Some(account) = account {
            let Some(member) = members::Entity::find()
                .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                .filter(members::Column::AccountKey.eq(key))
                .one(&txn)
                .await?
            else {
                return Ok(());
            };
            place_account(&txn, account, &member).await?;
        }
        let connected = members::Entity::find()
            .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
            .filter(members::Column::LeftAt.is_null())
            .filter(members::Column::Status.eq(MemberStatus::Connected.as_str()))
            .count(&txn)
            .await?;
        orgs::Entity::update_many()
            .col_expr(
                orgs::Column::ConnectedAccountsCount,
                Expr::value(i32::try_from(connected).unwrap_or(i32::MAX)),
            )
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

/// Copies where a member sits onto its linked cloud account (and clears a departure, for an
/// account that came back), so "which accounts are under this node" needs no join through
/// the members.
pub(super) async fn place_account(
    db: &impl ConnectionTrait,
    account: Uuid,
    member: &members::Model,
) -> Result<(), sea_orm::DbErr> {
    let services: Vec<String> =
        serde_json::from_value(member.delegated_admin_services.clone()).unwrap_or_default();
    let (ou, folder) = if member.provider == "gcp" {
        (None, Some(member.parent_id.clone()))
    } else {
        (Some(member.parent_id.clone()), None)
    };
    accounts::Entity::update_many()
        .col_expr(
            accounts::Column::CloudOrganizationId,
            Expr::value(Some(member.cloud_organization_id)),
        )
        .col_expr(
            accounts::Column::HierarchyPath,
            Expr::value(Some(member.hierarchy_path.clone())),
        )
        .col_expr(accounts::Column::OuId, Expr::value(ou))
        .col_expr(accounts::Column::FolderId, Expr::value(folder))
        .col_expr(
            accounts::Column::IsManagementAccount,
            Expr::value(member.is_management_account),
        )
        .col_expr(
            accounts::Column::IsDelegatedAdmin,
            Expr::value(!services.is_empty()),
        )
        .col_expr(
            accounts::Column::DelegatedAdminServices,
            Expr::value(Some(json!(services))),
        )
        .col_expr(
            accounts::Column::OrganizationLeftAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(accounts::Column::Id.eq(account))
        .exec(db)
        .await?;
    Ok(())
}

/// Flags the linked cloud accounts of members that left: they stay connected, their
/// departure is visible, and they stop inheriting the organization's controls.
pub(super) async fn flag_departed(
    db: &impl ConnectionTrait,
    id: CloudOrganizationId,
    keys: &[String],
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let linked: Vec<Uuid> = members::Entity::find()
        .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
        .filter(members::Column::AccountKey.is_in(keys.iter().map(String::as_str)))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|m| m.linked_cloud_account_id)
        .collect();
    if linked.is_empty() {
        return Ok(());
    }
    accounts::Entity::update_many()
        .col_expr(accounts::Column::OrganizationLeftAt, Expr::value(Some(now)))
        .filter(accounts::Column::Id.is_in(linked))
        .filter(accounts::Column::OrganizationLeftAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Where each connected member still in cloud organization `id` sits, by account id: three
/// narrow columns, not the member rows (the coverage view reads thousands).
pub(super) async fn connected_placements(
    db: &impl ConnectionTrait,
    id: CloudOrganizationId,
) -> Result<Vec<ConnectedPlacement>, StoreError> {
    let rows: Vec<(Option<Uuid>, String, String)> = members::Entity::find()
        .select_only()
        .column(members::Column::LinkedCloudAccountId)
        .column(members::Column::AccountKey)
        .column(members::Column::ParentId)
        .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
        .filter(members::Column::Status.eq(MemberStatus::Connected.as_str()))
        .filter(members::Column::LeftAt.is_null())
        .order_by_asc(members::Column::AccountKey)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .filter_map(|(account, key, parent_id)| {
            Some(ConnectedPlacement {
                cloud_account_id: account?,
                key,
                parent_id,
            })
        })
        .collect())
}
