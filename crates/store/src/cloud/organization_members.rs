//! Member writes of a connect: which members a connect may take, marking them, settling each
//! (linking its cloud account and copying where it sits), and exclusion.

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{Selection, StoredMember};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::organization_rows::stored_member_from;
use crate::entity::{
    cloud_account_placement as accounts, cloud_org_closure as closure,
    cloud_organization_members as members, cloud_organizations as orgs,
};
use crate::error::db_err;

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

pub(super) async fn claim_for_connect(
    db: &DatabaseConnection,
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
            let services: Vec<String> =
                serde_json::from_value(member.delegated_admin_services.clone()).unwrap_or_default();
            // Where the account sits, for coverage to ask "which accounts are under this OU".
            accounts::Entity::update_many()
                .col_expr(
                    accounts::Column::CloudOrganizationId,
                    Expr::value(Some(id.as_uuid())),
                )
                .col_expr(
                    accounts::Column::HierarchyPath,
                    Expr::value(Some(member.hierarchy_path.clone())),
                )
                .col_expr(
                    accounts::Column::OuId,
                    Expr::value(Some(member.parent_id.clone())),
                )
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
                .filter(accounts::Column::Id.eq(account))
                .exec(&txn)
                .await?;
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

pub(super) async fn set_excluded(
    db: &DatabaseConnection,
    org: OrganizationId,
    id: CloudOrganizationId,
    key: &str,
    excluded: bool,
    now: DateTime<Utc>,
) -> Result<Option<StoredMember>, StoreError> {
    let owned = orgs::Entity::find_by_id(id.as_uuid())
        .filter(orgs::Column::OrganizationId.eq(org.as_uuid()))
        .one(db)
        .await
        .map_err(db_err)?
        .is_some();
    if !owned {
        return Ok(None);
    }
    let (from, to) = if excluded {
        (
            vec![
                MemberStatus::Discovered.as_str(),
                MemberStatus::Failed.as_str(),
            ],
            MemberStatus::Excluded,
        )
    } else {
        (
            vec![MemberStatus::Excluded.as_str()],
            MemberStatus::Discovered,
        )
    };
    members::Entity::update_many()
        .col_expr(members::Column::Status, Expr::value(to.as_str()))
        .col_expr(members::Column::UpdatedAt, Expr::value(now))
        .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
        .filter(members::Column::AccountKey.eq(key))
        .filter(members::Column::Status.is_in(from))
        .exec(db)
        .await
        .map_err(db_err)?;
    members::Entity::find()
        .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
        .filter(members::Column::AccountKey.eq(key))
        .one(db)
        .await
        .map_err(db_err)?
        .map(stored_member_from)
        .transpose()
}
