//! Cloud-account repository ports on sea-orm.

use std::collections::BTreeMap;

use async_trait::async_trait;
use canopy_cloud_org::account::AccountInput;
use canopy_cloud_org::account::{
    AccountSettings, AccountStatus, CloudAccount, CloudAccountId, CloudIdentity, Environment,
    Features, Provider,
};
use canopy_cloud_org::connection::{ConnectionToken, TokenKind, TokenRefusal, TokenStatus};
use canopy_cloud_org::external_id::ExternalId;
use canopy_cloud_org::health::{AccessFailure, FailureKind, HealthCheck};
use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, GcpProjectId, RoleArn};
use canopy_cloud_org::ports::{
    AccountFilter, CloudAccountRepository, ConnectError, ExternalIdRepository,
};
use canopy_cloud_org::ports::{ConnectionTokenRepository, RedeemError};
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::page::Page;
use canopy_kernel::{LimitedResource, PageRequest};
use canopy_tenancy::{NewAuditEvent, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::billing::{RoomError, ensure_room};
use crate::entity::{
    cloud_account_checks, cloud_account_tags, cloud_accounts, connection_tokens, external_ids,
};
use crate::tenancy::{insert_audit, unique_violation};
use crate::{Store, db_err};

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError(format!("unreadable {what} in storage: {value}"))
}

fn account_from(m: cloud_accounts::Model) -> Result<CloudAccount, StoreError> {
    let provider =
        Provider::from_stored(&m.provider).ok_or_else(|| corrupt("provider", &m.provider))?;
    let identity = match provider {
        Provider::Aws => CloudIdentity::Aws {
            account_id: AwsAccountId::parse(&m.account_key, "accountId")
                .map_err(|_| corrupt("account id", &m.account_key))?,
            role_arn: RoleArn::parse(m.role_arn.as_deref().unwrap_or_default(), "roleArn")
                .map_err(|_| corrupt("role arn", m.role_arn.as_deref().unwrap_or_default()))?,
            region: AwsRegion::parse(m.region.as_deref().unwrap_or_default(), "region")
                .map_err(|_| corrupt("region", m.region.as_deref().unwrap_or_default()))?,
        },
        Provider::Gcp => CloudIdentity::Gcp {
            project_id: GcpProjectId::parse(&m.account_key, "projectId")
                .map_err(|_| corrupt("project id", &m.account_key))?,
            project_number: m.project_number.clone(),
        },
    };
    let features = Features {
        sending_enabled: m.features["sendingEnabled"].as_bool().unwrap_or(false),
        event_tracking: m.features["eventTracking"].as_bool().unwrap_or(false),
        history_storage: m.features["historyStorage"].as_bool().unwrap_or(false),
    };
    let tags: BTreeMap<String, String> =
        serde_json::from_value(m.tags.clone()).map_err(|e| StoreError(e.to_string()))?;
    let ses_domains: Vec<String> =
        serde_json::from_value(m.ses_domains.clone()).map_err(|e| StoreError(e.to_string()))?;
    Ok(CloudAccount {
        id: CloudAccountId(m.id),
        organization_id: OrganizationId(m.organization_id),
        identity,
        settings: AccountSettings {
            alias: m.alias,
            stack_name: m.stack_name,
            ses_configuration_set: m.ses_configuration_set,
            ses_domains,
            features,
            environment: m
                .environment
                .as_deref()
                .map(|e| Environment::from_stored(e).ok_or_else(|| corrupt("environment", e)))
                .transpose()?,
            tags,
        },
        status: AccountStatus::from_stored(&m.status)
            .ok_or_else(|| corrupt("status", &m.status))?,
        last_synced_at: m.last_synced_at,
        last_error: m.last_error,
        created_by: UserId(m.created_by),
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn account_row(a: &CloudAccount) -> cloud_accounts::ActiveModel {
    let (role_arn, region, project_number) = match &a.identity {
        CloudIdentity::Aws {
            role_arn, region, ..
        } => (
            Some(role_arn.as_str().to_string()),
            Some(region.as_str().to_string()),
            None,
        ),
        CloudIdentity::Gcp { project_number, .. } => (None, None, project_number.clone()),
    };
    let s = &a.settings;
    cloud_accounts::ActiveModel {
        id: Set(a.id.as_uuid()),
        organization_id: Set(a.organization_id.as_uuid()),
        provider: Set(a.identity.provider().as_str().to_string()),
        account_key: Set(a.identity.account_key().to_string()),
        role_arn: Set(role_arn),
        region: Set(region),
        project_number: Set(project_number),
        alias: Set(s.alias.clone()),
        stack_name: Set(s.stack_name.clone()),
        ses_configuration_set: Set(s.ses_configuration_set.clone()),
        ses_domains: Set(json!(s.ses_domains)),
        features: Set(json!({
            "sendingEnabled": s.features.sending_enabled,
            "eventTracking": s.features.event_tracking,
            "historyStorage": s.features.history_storage,
        })),
        environment: Set(s.environment.map(|e| e.as_str().to_string())),
        tags: Set(json!(s.tags)),
        status: Set(a.status.as_str().to_string()),
        last_synced_at: Set(a.last_synced_at),
        last_error: Set(a.last_error.clone()),
        created_by: Set(a.created_by.as_uuid()),
        created_at: Set(a.created_at),
        updated_at: Set(a.updated_at),
    }
}

async fn write_tags(
    txn: &DatabaseTransaction,
    id: Uuid,
    tags: &BTreeMap<String, String>,
) -> Result<(), DbErr> {
    cloud_account_tags::Entity::delete_many()
        .filter(cloud_account_tags::Column::CloudAccountId.eq(id))
        .exec(txn)
        .await?;
    if !tags.is_empty() {
        cloud_account_tags::Entity::insert_many(tags.iter().map(|(k, v)| {
            cloud_account_tags::ActiveModel {
                cloud_account_id: Set(id),
                key: Set(k.clone()),
                value: Set(v.clone()),
            }
        }))
        .exec(txn)
        .await?;
    }
    Ok(())
}

async fn insert_account(
    txn: &DatabaseTransaction,
    account: &CloudAccount,
    audit: NewAuditEvent,
) -> Result<(), DbErr> {
    account_row(account).insert(txn).await?;
    write_tags(txn, account.id.as_uuid(), &account.settings.tags).await?;
    insert_audit(txn, audit).await
}

impl Store {
    /// Explains a failed account insert: the unique constraint decided, now say whose account
    /// it is without revealing more.
    async fn connect_conflict(&self, e: DbErr, account: &CloudAccount) -> ConnectError {
        if unique_violation(&e).is_none() {
            return ConnectError::Store(db_err(e));
        }
        let holder = cloud_accounts::Entity::find()
            .filter(cloud_accounts::Column::Provider.eq(account.identity.provider().as_str()))
            .filter(cloud_accounts::Column::AccountKey.eq(account.identity.account_key()))
            .one(self.db())
            .await;
        match holder {
            Ok(Some(row)) if row.organization_id == account.organization_id.as_uuid() => {
                ConnectError::AlreadyConnected
            }
            Ok(_) => ConnectError::ConnectedElsewhere,
            Err(e) => ConnectError::Store(db_err(e)),
        }
    }
}

fn input_to_json(i: &AccountInput) -> serde_json::Value {
    json!({
        "provider": i.provider,
        "accountId": i.account_id,
        "roleArn": i.role_arn,
        "region": i.region,
        "projectId": i.project_id,
        "projectNumber": i.project_number,
        "alias": i.alias,
        "stackName": i.stack_name,
        "sesConfigurationSet": i.ses_configuration_set,
        "sesDomains": i.ses_domains,
        "features": {
            "sendingEnabled": i.features.sending_enabled,
            "eventTracking": i.features.event_tracking,
            "historyStorage": i.features.history_storage,
        },
        "environment": i.environment,
        "tags": i.tags,
    })
}

fn input_from_json(v: &serde_json::Value) -> AccountInput {
    let text = |k: &str| v[k].as_str().map(str::to_string);
    AccountInput {
        provider: text("provider").unwrap_or_default(),
        account_id: text("accountId"),
        role_arn: text("roleArn"),
        region: text("region"),
        project_id: text("projectId"),
        project_number: text("projectNumber"),
        alias: text("alias"),
        stack_name: text("stackName"),
        ses_configuration_set: text("sesConfigurationSet"),
        ses_domains: serde_json::from_value(v["sesDomains"].clone()).unwrap_or_default(),
        features: Features {
            sending_enabled: v["features"]["sendingEnabled"].as_bool().unwrap_or(false),
            event_tracking: v["features"]["eventTracking"].as_bool().unwrap_or(false),
            history_storage: v["features"]["historyStorage"].as_bool().unwrap_or(false),
        },
        environment: text("environment"),
        tags: serde_json::from_value(v["tags"].clone()).unwrap_or_default(),
    }
}

fn token_from(m: connection_tokens::Model) -> Result<ConnectionToken, StoreError> {
    Ok(ConnectionToken {
        kind: TokenKind::from_stored(&m.kind).ok_or_else(|| corrupt("token kind", &m.kind))?,
        status: TokenStatus::from_stored(&m.status)
            .ok_or_else(|| corrupt("token status", &m.status))?,
        input: m.input.as_ref().map(input_from_json),
        digest: m.digest,
        organization_id: OrganizationId(m.organization_id),
        created_by: UserId(m.created_by),
        expires_at: m.expires_at,
        cloud_account_id: m.cloud_account_id.map(CloudAccountId),
        created_at: m.created_at,
    })
}

#[async_trait]
impl ConnectionTokenRepository for Store {
    async fn insert(&self, token: ConnectionToken, audit: NewAuditEvent) -> Result<(), StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        connection_tokens::ActiveModel {
            digest: Set(token.digest.clone()),
            kind: Set(token.kind.as_str().to_string()),
            organization_id: Set(token.organization_id.as_uuid()),
            created_by: Set(token.created_by.as_uuid()),
            input: Set(token.input.as_ref().map(input_to_json)),
            status: Set(token.status.as_str().to_string()),
            expires_at: Set(token.expires_at),
            cloud_account_id: Set(None),
            created_at: Set(token.created_at),
            used_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err)?;
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    async fn find(&self, digest: &str) -> Result<Option<ConnectionToken>, StoreError> {
        connection_tokens::Entity::find_by_id(digest.to_string())
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(token_from)
            .transpose()
    }

    async fn redeem(
        &self,
        digest: &str,
        now: chrono::DateTime<chrono::Utc>,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<(), RedeemError> {
        let txn = self
            .db()
            .begin()
            .await
            .map_err(|e| ConnectError::Store(db_err(e)))?;
        self.lock_organization(&txn, account.organization_id)
            .await
            .map_err(|e| ConnectError::Store(db_err(e)))?;
        // The guarded UPDATE is the single-use check: a concurrent redemption waits on the row
        // lock and then matches nothing.
        let claimed = connection_tokens::Entity::update_many()
            .col_expr(
                connection_tokens::Column::Status,
                Expr::value(TokenStatus::Used.as_str()),
            )
            .col_expr(connection_tokens::Column::UsedAt, Expr::value(Some(now)))
            .col_expr(
                connection_tokens::Column::CloudAccountId,
                Expr::value(Some(account.id.as_uuid())),
            )
            .filter(connection_tokens::Column::Digest.eq(digest))
            .filter(connection_tokens::Column::Status.eq(TokenStatus::Pending.as_str()))
            .filter(connection_tokens::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await
            .map_err(|e| ConnectError::Store(db_err(e)))?;
        if claimed.rows_affected != 1 {
            txn.rollback()
                .await
                .map_err(|e| ConnectError::Store(db_err(e)))?;
            let current = self.find(digest).await.map_err(ConnectError::Store)?;
            return Err(RedeemError::Refused(
                current
                    .and_then(|t| t.refusal(now))
                    .unwrap_or(TokenRefusal::Unknown),
            ));
        }
        let inserted = match ensure_room(
            &txn,
            account.organization_id,
            LimitedResource::CloudAccounts,
            now,
        )
        .await
        {
            Ok(()) => insert_account(&txn, &account, audit).await,
            Err(RoomError::Full(limit)) => {
                txn.rollback()
                    .await
                    .map_err(|e| ConnectError::Store(db_err(e)))?;
                return Err(RedeemError::Connect(ConnectError::PlanLimit(limit)));
            }
            Err(RoomError::Db(e)) => Err(e),
        };
        if let Err(e) = inserted {
            txn.rollback()
                .await
                .map_err(|e| ConnectError::Store(db_err(e)))?;
            return Err(RedeemError::Connect(
                self.connect_conflict(e, &account).await,
            ));
        }
        txn.commit()
            .await
            .map_err(|e| ConnectError::Store(db_err(e)))?;
        Ok(())
    }

    async fn cancel(&self, digest: &str, audit: NewAuditEvent) -> Result<bool, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        // Organization first, in the same order as redemption.
        self.lock_organization(&txn, audit.organization_id)
            .await
            .map_err(db_err)?;
        let updated = connection_tokens::Entity::update_many()
            .col_expr(
                connection_tokens::Column::Status,
                Expr::value(TokenStatus::Cancelled.as_str()),
            )
            .filter(connection_tokens::Column::Digest.eq(digest))
            .filter(connection_tokens::Column::Status.eq(TokenStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        if updated.rows_affected != 1 {
            return Ok(false);
        }
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(true)
    }
}

fn check_from(m: cloud_account_checks::Model) -> HealthCheck {
    HealthCheck {
        account_id: CloudAccountId(m.cloud_account_id),
        checked_at: m.checked_at,
        failure: m.failure_kind.as_deref().map(|k| AccessFailure {
            kind: FailureKind::from_stored(k).unwrap_or(FailureKind::Other),
            message: m.message.clone().unwrap_or_default(),
        }),
        duration_ms: u64::try_from(m.duration_ms).unwrap_or(0),
    }
}

fn external_id_from(m: external_ids::Model) -> ExternalId {
    ExternalId {
        organization_id: OrganizationId(m.organization_id),
        value: m.value,
        created_at: m.created_at,
        retired_at: m.retired_at,
    }
}

#[async_trait]
impl CloudAccountRepository for Store {
    async fn create(
        &self,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<(), ConnectError> {
        let org = account.organization_id;
        let result: Result<(), RoomError> = async {
            let txn = self.db().begin().await?;
            self.lock_organization(&txn, org).await?;
            ensure_room(
                &txn,
                org,
                LimitedResource::CloudAccounts,
                account.created_at,
            )
            .await?;
            insert_account(&txn, &account, audit).await?;
            Ok(txn.commit().await?)
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(RoomError::Full(limit)) => Err(ConnectError::PlanLimit(limit)),
            Err(RoomError::Db(e)) => Err(self.connect_conflict(e, &account).await),
        }
    }

    async fn list(
        &self,
        org: OrganizationId,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> Result<Page<CloudAccount>, StoreError> {
        let mut query = cloud_accounts::Entity::find()
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_asc(cloud_accounts::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(cloud_accounts::Column::Id.gt(after.0));
        }
        if let Some(p) = filter.provider {
            query = query.filter(cloud_accounts::Column::Provider.eq(p.as_str()));
        }
        if let Some(e) = filter.environment {
            query = query.filter(cloud_accounts::Column::Environment.eq(e.as_str()));
        }
        if let Some(s) = filter.status {
            query = query.filter(cloud_accounts::Column::Status.eq(s.as_str()));
        }
        if let Some((key, value)) = &filter.tag {
            let mut tagged = Query::select();
            tagged
                .column(cloud_account_tags::Column::CloudAccountId)
                .from(cloud_account_tags::Entity)
                .and_where(Expr::col(cloud_account_tags::Column::Key).eq(key.as_str()));
            if let Some(v) = value {
                tagged.and_where(Expr::col(cloud_account_tags::Column::Value).eq(v.as_str()));
            }
            query = query.filter(cloud_accounts::Column::Id.in_subquery(tagged.to_owned()));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        let items = page
            .items
            .into_iter()
            .map(account_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }

    async fn get(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
    ) -> Result<Option<CloudAccount>, StoreError> {
        cloud_accounts::Entity::find_by_id(id.as_uuid())
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .one(self.db())
            .await
            .map_err(db_err)?
            .map(account_from)
            .transpose()
    }

    async fn update(
        &self,
        account: CloudAccount,
        audit: NewAuditEvent,
    ) -> Result<Option<CloudAccount>, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let exists = cloud_accounts::Entity::find_by_id(account.id.as_uuid())
            .filter(cloud_accounts::Column::OrganizationId.eq(account.organization_id.as_uuid()))
            .one(&txn)
            .await
            .map_err(db_err)?;
        let Some(current) = exists else {
            return Ok(None);
        };
        let mut row = account_row(&account);
        // Identity, health and authorship are not edited through settings.
        row.provider = Set(current.provider);
        row.account_key = Set(current.account_key);
        row.status = Set(current.status);
        row.last_synced_at = Set(current.last_synced_at);
        row.last_error = Set(current.last_error);
        row.created_by = Set(current.created_by);
        row.created_at = Set(current.created_at);
        let updated = row.update(&txn).await.map_err(db_err)?;
        write_tags(&txn, account.id.as_uuid(), &account.settings.tags)
            .await
            .map_err(db_err)?;
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        account_from(updated).map(Some)
    }

    async fn delete(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        audit: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let deleted = cloud_accounts::Entity::delete_many()
            .filter(cloud_accounts::Column::Id.eq(id.as_uuid()))
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        if deleted.rows_affected != 1 {
            return Ok(false);
        }
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn record_check(
        &self,
        org: OrganizationId,
        check: HealthCheck,
    ) -> Result<Option<CloudAccount>, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        let Some(row) = cloud_accounts::Entity::find_by_id(check.account_id.as_uuid())
            .filter(cloud_accounts::Column::OrganizationId.eq(org.as_uuid()))
            .one(&txn)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        cloud_account_checks::ActiveModel {
            id: Set(Uuid::now_v7()),
            cloud_account_id: Set(row.id),
            checked_at: Set(check.checked_at),
            failure_kind: Set(check.failure.as_ref().map(|f| f.kind.as_str().to_string())),
            message: Set(check.failure.as_ref().map(|f| f.message.clone())),
            duration_ms: Set(i64::try_from(check.duration_ms).unwrap_or(i64::MAX)),
        }
        .insert(&txn)
        .await
        .map_err(db_err)?;
        let mut active: cloud_accounts::ActiveModel = row.into();
        match &check.failure {
            None => {
                active.status = Set(AccountStatus::Active.as_str().to_string());
                active.last_synced_at = Set(Some(check.checked_at));
                active.last_error = Set(None);
            }
            Some(f) => {
                active.status = Set(AccountStatus::Error.as_str().to_string());
                active.last_error = Set(Some(format!("{}: {}", f.kind.as_str(), f.kind.advice())));
            }
        }
        let updated = active.update(&txn).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        account_from(updated).map(Some)
    }

    async fn health(
        &self,
        org: OrganizationId,
        id: CloudAccountId,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: u32,
    ) -> Result<Vec<HealthCheck>, StoreError> {
        if CloudAccountRepository::get(self, org, id).await?.is_none() {
            return Ok(vec![]);
        }
        let mut query = cloud_account_checks::Entity::find()
            .filter(cloud_account_checks::Column::CloudAccountId.eq(id.as_uuid()));
        if let Some(since) = since {
            query = query.filter(cloud_account_checks::Column::CheckedAt.gte(since));
        }
        Ok(query
            .order_by_desc(cloud_account_checks::Column::Id)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(check_from)
            .collect())
    }
}

#[async_trait]
impl ExternalIdRepository for Store {
    async fn current_or_create(&self, candidate: ExternalId) -> Result<ExternalId, StoreError> {
        let current = || async {
            external_ids::Entity::find()
                .filter(
                    external_ids::Column::OrganizationId.eq(candidate.organization_id.as_uuid()),
                )
                .filter(external_ids::Column::RetiredAt.is_null())
                .one(self.db())
                .await
                .map_err(db_err)
        };
        if let Some(found) = current().await? {
            return Ok(external_id_from(found));
        }
        let inserted = external_ids::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(candidate.organization_id.as_uuid()),
            value: Set(candidate.value.clone()),
            created_at: Set(candidate.created_at),
            retired_at: Set(None),
        }
        .insert(self.db())
        .await;
        match inserted {
            Ok(row) => Ok(external_id_from(row)),
            // A concurrent first request won the partial unique index: use its value.
            Err(e) if unique_violation(&e).is_some() => current()
                .await?
                .map(external_id_from)
                .ok_or_else(|| StoreError("external id vanished after a conflict".into())),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn rotate(
        &self,
        next: ExternalId,
        audit: NewAuditEvent,
    ) -> Result<ExternalId, StoreError> {
        let txn = self.db().begin().await.map_err(db_err)?;
        external_ids::Entity::update_many()
            .col_expr(
                external_ids::Column::RetiredAt,
                Expr::value(Some(next.created_at)),
            )
            .filter(external_ids::Column::OrganizationId.eq(next.organization_id.as_uuid()))
            .filter(external_ids::Column::RetiredAt.is_null())
            .exec(&txn)
            .await
            .map_err(db_err)?;
        let row = external_ids::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(next.organization_id.as_uuid()),
            value: Set(next.value.clone()),
            created_at: Set(next.created_at),
            retired_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err)?;
        insert_audit(&txn, audit).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(external_id_from(row))
    }

    async fn history(&self, org: OrganizationId) -> Result<Vec<ExternalId>, StoreError> {
        Ok(external_ids::Entity::find()
            .filter(external_ids::Column::OrganizationId.eq(org.as_uuid()))
            .order_by_desc(external_ids::Column::Id)
            .all(self.db())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(external_id_from)
            .collect())
    }
}
