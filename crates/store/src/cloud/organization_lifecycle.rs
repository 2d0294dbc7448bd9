//! Audited changes to a cloud organization as a whole: recording it with its first discovery
//! job, excluding and including members, and deleting it (its accounts stay connected,
//! detached; its jobs are cancelled).

use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{RecordError, StoredMember};
use canopy_cloud_org::organization::{CloudOrganization, CloudOrganizationId};
use canopy_cloud_org::sealing::SealedSecret;
use canopy_jobs::{Enqueued, Job, JobStatus, NewJob};
use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use canopy_tenancy::NewAuditEvent;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::organization_rows::stored_member_from;
use crate::Store;
use crate::entity::{
    cloud_accounts as accounts, cloud_org_changes as changes, cloud_org_closure as closure,
    cloud_org_nodes as nodes, cloud_organization_members as members, cloud_organizations as orgs,
    jobs,
};
use crate::error::{db_err, unique_violation};
use crate::jobs::insert_job;
use crate::tenancy::insert_audit;
use crate::txn::Abort;

/// [`CloudOrganizationRepository::create`]: the record, its audit event and its first job in
/// one transaction.
///
/// [`CloudOrganizationRepository::create`]: canopy_cloud_org::organization::ports::CloudOrganizationRepository::create
pub(super) async fn create(
    store: &Store,
    cloud_org: CloudOrganization,
    audit: NewAuditEvent,
    job: Option<NewJob>,
) -> Result<Option<Job>, RecordError> {
    let org = cloud_org.organization_id;
    let created = cloud_org.created_at;
    let c = cloud_org.clone();
    let row = orgs::ActiveModel {
        id: Set(c.id.as_uuid()),
        organization_id: Set(org.as_uuid()),
        provider: Set(c.provider.as_str().to_string()),
        cloud_org_id: Set(c.identity.cloud_org_id.clone()),
        name: Set(c.name.clone()),
        aws_org_arn: Set(c.identity.arn.clone()),
        management_account_id: Set(c.identity.management_account_id.clone()),
        management_account_email: Set(c.identity.management_account_email.clone()),
        gcp_display_name: Set(c.identity.display_name.clone()),
        gcp_directory_customer_id: Set(c.identity.directory_customer_id.clone()),
        gcp_lifecycle_state: Set(c.identity.lifecycle_state.clone()),
        management_role_arn: Set(c.management_role_arn.clone()),
        member_role_name: Set(c.member_role_name.clone()),
        gcp_service_account: Set(c.gcp_service_account.clone()),
        gcp_credentials_key_id: Set(c.gcp_credentials.as_ref().map(|s| s.key_id.clone())),
        gcp_credentials_sealed: Set(c.gcp_credentials.as_ref().map(|s| s.sealed.clone())),
        connection_status: Set(c.status.as_str().to_string()),
        connection_error: Set(c.error.clone()),
        unreadable: Set(json!(c.unreadable)),
        last_connection_attempt: Set(c.last_attempt_at),
        last_discovered_at: Set(c.last_discovered_at),
        discovered_accounts_count: Set(0),
        connected_accounts_count: Set(0),
        settings: Set(json!({})),
        tags: Set(json!({})),
        created_by: Set(c.created_by.as_uuid()),
        created_at: Set(c.created_at),
        updated_at: Set(c.updated_at),
    };
    let result = store
        .write_locked(&[org], move |locked| {
            Box::pin(async move {
                if let Err(e) = row.insert(locked.txn()).await {
                    return Err(match unique_violation(&e) {
                        Some(_) => Abort::Refuse(RecordError::AlreadyConnected),
                        None => Abort::Db(e),
                    });
                }
                insert_audit(locked, audit).await?;
                let Some(mut job) = job else {
                    return Ok(None);
                };
                let job_audit = job.audit.take();
                let queued = match insert_job(locked.txn(), job.into_job(created)).await? {
                    Enqueued::Queued(queued) => queued,
                    // A new record's id cannot have a job yet.
                    Enqueued::AlreadyActive(other) => {
                        return Err(Abort::Db(sea_orm::DbErr::Custom(format!(
                            "a new cloud organization already has job {}",
                            other.id
                        ))));
                    }
                };
                if let Some(job_audit) = job_audit {
                    insert_audit(locked, job_audit).await?;
                }
                Ok(Some(queued))
            })
        })
        .await;
    match result {
        Ok(Some(job)) => Ok(job),
        Ok(None) => Err(StoreError::internal("organization vanished").into()),
        Err(RecordError::AlreadyConnected) => {
            // Whose is it? Say only whether it is this tenant's.
            let mine = orgs::Entity::find()
                .filter(orgs::Column::Provider.eq(cloud_org.provider.as_str()))
                .filter(orgs::Column::CloudOrgId.eq(cloud_org.identity.cloud_org_id.as_str()))
                .filter(orgs::Column::OrganizationId.eq(org.as_uuid()))
                .count(store.db())
                .await
                .map_err(db_err)?;
            Err(if mine > 0 {
                RecordError::AlreadyConnected
            } else {
                RecordError::ConnectedElsewhere
            })
        }
        Err(other) => Err(other),
    }
}

pub(super) async fn set_excluded(
    store: &Store,
    org: OrganizationId,
    id: CloudOrganizationId,
    key: String,
    excluded: bool,
    audit: NewAuditEvent,
    now: DateTime<Utc>,
) -> Result<Option<StoredMember>, StoreError> {
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
    let row = store
        .write_locked(&[org], move |locked| {
            Box::pin(async move {
                let owned = orgs::Entity::find_by_id(id.as_uuid())
                    .filter(orgs::Column::OrganizationId.eq(org.as_uuid()))
                    .one(locked.txn())
                    .await?
                    .is_some();
                if !owned {
                    return Ok(None);
                }
                let changed = members::Entity::update_many()
                    .col_expr(members::Column::Status, Expr::value(to.as_str()))
                    .col_expr(members::Column::UpdatedAt, Expr::value(now))
                    .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .filter(members::Column::AccountKey.eq(key.as_str()))
                    .filter(members::Column::Status.is_in(from))
                    .exec(locked.txn())
                    .await?
                    .rows_affected;
                // Only a change is audited: excluding an excluded member did nothing.
                if changed > 0 {
                    insert_audit(locked, audit).await?;
                }
                Ok::<_, Abort<StoreError>>(
                    members::Entity::find()
                        .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                        .filter(members::Column::AccountKey.eq(key.as_str()))
                        .one(locked.txn())
                        .await?,
                )
            })
        })
        .await?
        .flatten();
    row.map(stored_member_from).transpose()
}

pub(super) async fn delete(
    store: &Store,
    org: OrganizationId,
    id: CloudOrganizationId,
    audit: NewAuditEvent,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Uuid>>, StoreError> {
    let kept = store
        .write_locked(&[org], move |locked| {
            Box::pin(async move {
                let txn = locked.txn();
                let owned = orgs::Entity::find_by_id(id.as_uuid())
                    .filter(orgs::Column::OrganizationId.eq(org.as_uuid()))
                    .one(txn)
                    .await?
                    .is_some();
                if !owned {
                    return Ok(None);
                }
                let kept: Vec<Uuid> = accounts::Entity::find()
                    .select_only()
                    .column(accounts::Column::Id)
                    .filter(accounts::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .into_tuple()
                    .all(txn)
                    .await?;
                // The accounts keep their own roles and stay connected, as standalone ones.
                accounts::Entity::update_many()
                    .col_expr(
                        accounts::Column::CloudOrganizationId,
                        Expr::value(None::<Uuid>),
                    )
                    .col_expr(accounts::Column::HierarchyPath, Expr::value(None::<String>))
                    .col_expr(accounts::Column::OuId, Expr::value(None::<String>))
                    .col_expr(accounts::Column::FolderId, Expr::value(None::<String>))
                    .col_expr(accounts::Column::IsManagementAccount, Expr::value(false))
                    .col_expr(accounts::Column::IsDelegatedAdmin, Expr::value(false))
                    .col_expr(
                        accounts::Column::DelegatedAdminServices,
                        Expr::value(None::<serde_json::Value>),
                    )
                    .col_expr(
                        accounts::Column::OrganizationLeftAt,
                        Expr::value(None::<DateTime<Utc>>),
                    )
                    .filter(accounts::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .exec(txn)
                    .await?;
                // Its jobs stop: queued ones now, running ones at their next progress report.
                jobs::Entity::update_many()
                    .col_expr(
                        jobs::Column::Status,
                        Expr::value(JobStatus::Cancelled.as_str()),
                    )
                    .col_expr(jobs::Column::FinishedAt, Expr::value(Some(now)))
                    // Like every cancel; its wrap-up finds the organization gone and is done.
                    .col_expr(jobs::Column::WrapUpPending, Expr::value(true))
                    .filter(jobs::Column::OrganizationId.eq(org.as_uuid()))
                    .filter(jobs::Column::Subject.eq(id.as_uuid()))
                    .filter(jobs::Column::Status.eq(JobStatus::Queued.as_str()))
                    .exec(txn)
                    .await?;
                jobs::Entity::update_many()
                    .col_expr(jobs::Column::CancelRequested, Expr::value(true))
                    .filter(jobs::Column::OrganizationId.eq(org.as_uuid()))
                    .filter(jobs::Column::Subject.eq(id.as_uuid()))
                    .filter(jobs::Column::Status.eq(JobStatus::Running.as_str()))
                    .exec(txn)
                    .await?;
                changes::Entity::delete_many()
                    .filter(changes::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .exec(txn)
                    .await?;
                members::Entity::delete_many()
                    .filter(members::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .exec(txn)
                    .await?;
                closure::Entity::delete_many()
                    .filter(closure::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .exec(txn)
                    .await?;
                nodes::Entity::delete_many()
                    .filter(nodes::Column::CloudOrganizationId.eq(id.as_uuid()))
                    .exec(txn)
                    .await?;
                orgs::Entity::delete_by_id(id.as_uuid()).exec(txn).await?;
                insert_audit(locked, audit).await?;
                Ok::<_, Abort<StoreError>>(Some(kept))
            })
        })
        .await?
        .flatten();
    Ok(kept)
}

pub(super) async fn sealed_with_other_keys(
    store: &Store,
    current_key_id: &str,
) -> Result<Vec<(CloudOrganizationId, SealedSecret)>, StoreError> {
    let rows: Vec<(Uuid, Option<String>, Option<String>)> = orgs::Entity::find()
        .select_only()
        .column(orgs::Column::Id)
        .column(orgs::Column::GcpCredentialsKeyId)
        .column(orgs::Column::GcpCredentialsSealed)
        .filter(orgs::Column::GcpCredentialsKeyId.is_not_null())
        .filter(orgs::Column::GcpCredentialsKeyId.ne(current_key_id))
        .into_tuple()
        .all(store.db())
        .await
        .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, key_id, sealed)| {
            Some((
                CloudOrganizationId(id),
                SealedSecret {
                    key_id: key_id?,
                    sealed: sealed?,
                },
            ))
        })
        .collect())
}

pub(super) async fn replace_sealed(
    store: &Store,
    id: CloudOrganizationId,
    expected: &SealedSecret,
    sealed: SealedSecret,
) -> Result<bool, StoreError> {
    let changed = orgs::Entity::update_many()
        .col_expr(
            orgs::Column::GcpCredentialsKeyId,
            Expr::value(sealed.key_id),
        )
        .col_expr(
            orgs::Column::GcpCredentialsSealed,
            Expr::value(sealed.sealed),
        )
        .filter(orgs::Column::Id.eq(id.as_uuid()))
        .filter(orgs::Column::GcpCredentialsKeyId.eq(expected.key_id.as_str()))
        .filter(orgs::Column::GcpCredentialsSealed.eq(expected.sealed.as_str()))
        .exec(store.db())
        .await
        .map_err(db_err)?;
    Ok(changed.rows_affected == 1)
}
