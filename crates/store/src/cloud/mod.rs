//! The cloud-account ports on sea-orm (accounts with their tags and health checks, External
//! IDs, connection tokens), and the row mappings they share.

mod accounts;
mod connection_tokens;
mod external_ids;
mod organization_lifecycle;
mod organization_members;
mod organization_rows;
mod organizations;

use std::collections::BTreeMap;

use canopy_cloud_org::account::{
    AccountInput, AccountSettings, AccountStatus, CloudAccount, CloudAccountId, CloudIdentity,
    Environment, Features, OrganizationPlacement, Provider,
};
use canopy_cloud_org::connection::{ConnectionToken, TokenKind, TokenStatus};
use canopy_cloud_org::external_id::ExternalId;
use canopy_cloud_org::health::{AccessFailure, FailureKind, HealthCheck};
use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, GcpProjectId, RoleArn};
use canopy_cloud_org::ports::ConnectError;
use canopy_kernel::StoreError;
use canopy_kernel::id::{OrganizationId, UserId};
use canopy_tenancy::NewAuditEvent;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

pub use accounts::CloudAccountStore;
pub use connection_tokens::ConnectionTokenStore;
pub use external_ids::ExternalIdStore;
pub use organizations::CloudOrganizationStore;

use crate::Store;
use crate::entity;
use crate::error::{corrupt, db_err, unique_violation};
use crate::tenancy::insert_audit;
use crate::txn::{Abort, Locked};

/// How a status is stored. `pending` predates no CHECK constraint change: the column allows
/// `active | inactive | error` and SQLite cannot alter a CHECK in place, so a pending account
/// is stored `active` with no successful check and no error, and read back as pending.
pub(crate) fn stored_status(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::Pending => AccountStatus::Active.as_str(),
        other => other.as_str(),
    }
}

fn status_from(m: &entity::cloud_accounts::Model) -> Result<AccountStatus, StoreError> {
    let stored =
        AccountStatus::from_stored(&m.status).ok_or_else(|| corrupt("status", &m.status))?;
    Ok(match stored {
        AccountStatus::Active if m.last_synced_at.is_none() && m.last_error.is_none() => {
            AccountStatus::Pending
        }
        other => other,
    })
}

pub(crate) fn account_from(m: entity::cloud_accounts::Model) -> Result<CloudAccount, StoreError> {
    let status = status_from(&m)?;
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
        serde_json::from_value(m.tags.clone()).map_err(|e| StoreError::internal(e.to_string()))?;
    let ses_domains: Vec<String> = serde_json::from_value(m.ses_domains.clone())
        .map_err(|e| StoreError::internal(e.to_string()))?;
    let placement = m
        .cloud_organization_id
        .map(|cloud_org| OrganizationPlacement {
            cloud_organization_id: cloud_org,
            hierarchy_path: m.hierarchy_path.clone(),
            parent_id: m.ou_id.clone().or_else(|| m.folder_id.clone()),
            is_management_account: m.is_management_account,
            is_delegated_admin: m.is_delegated_admin,
            delegated_admin_services: m
                .delegated_admin_services
                .clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            left_at: m.organization_left_at,
        });
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
        status,
        last_synced_at: m.last_synced_at,
        last_error: m.last_error,
        placement,
        created_by: UserId(m.created_by),
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub(crate) fn account_row(a: &CloudAccount) -> entity::cloud_accounts::ActiveModel {
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
    entity::cloud_accounts::ActiveModel {
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
        status: Set(stored_status(a.status).to_string()),
        last_synced_at: Set(a.last_synced_at),
        last_error: Set(a.last_error.clone()),
        created_by: Set(a.created_by.as_uuid()),
        created_at: Set(a.created_at),
        updated_at: Set(a.updated_at),
        // Placement is written by discovery and connect jobs only, never by an edit.
        ..Default::default()
    }
}

pub(crate) async fn write_tags(
    txn: &DatabaseTransaction,
    id: Uuid,
    tags: &BTreeMap<String, String>,
) -> Result<(), DbErr> {
    entity::cloud_account_tags::Entity::delete_many()
        .filter(entity::cloud_account_tags::Column::CloudAccountId.eq(id))
        .exec(txn)
        .await?;
    if !tags.is_empty() {
        entity::cloud_account_tags::Entity::insert_many(tags.iter().map(|(k, v)| {
            entity::cloud_account_tags::ActiveModel {
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

/// Stores a new account with its tags and audit event, under the organization's lock; a
/// unique violation (the account is connected already) becomes `conflict`.
pub(crate) async fn insert_account<E>(
    locked: Locked<'_>,
    account: &CloudAccount,
    audit: NewAuditEvent,
    conflict: E,
) -> Result<(), Abort<E>> {
    if let Err(e) = account_row(account).insert(locked.txn()).await {
        return Err(match unique_violation(&e) {
            Some(_) => Abort::Refuse(conflict),
            None => Abort::Db(e),
        });
    }
    write_tags(locked.txn(), account.id.as_uuid(), &account.settings.tags).await?;
    insert_audit(locked, audit).await?;
    Ok(())
}

pub(crate) fn input_to_json(i: &AccountInput) -> serde_json::Value {
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

pub(crate) fn token_from(
    m: entity::connection_tokens::Model,
) -> Result<ConnectionToken, StoreError> {
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

pub(crate) fn check_from(m: entity::cloud_account_checks::Model) -> HealthCheck {
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

pub(crate) fn external_id_from(m: entity::external_ids::Model) -> ExternalId {
    ExternalId {
        organization_id: OrganizationId(m.organization_id),
        value: m.value,
        created_at: m.created_at,
        retired_at: m.retired_at,
    }
}

/// After a unique violation on connecting `account`: says whose it is without revealing
/// more. The constraint decided; this only words the refusal.
pub(crate) async fn connect_conflict(store: &Store, account: &CloudAccount) -> ConnectError {
    let holder = entity::cloud_accounts::Entity::find()
        .filter(entity::cloud_accounts::Column::Provider.eq(account.identity.provider().as_str()))
        .filter(entity::cloud_accounts::Column::AccountKey.eq(account.identity.account_key()))
        .one(store.db())
        .await;
    match holder {
        Ok(Some(row)) if row.organization_id == account.organization_id.as_uuid() => {
            ConnectError::AlreadyConnected
        }
        Ok(_) => ConnectError::ConnectedElsewhere,
        Err(e) => ConnectError::Store(db_err(e)),
    }
}
