//! Row mappings of the cloud-organization tables and the tree replacement a changed
//! discovery writes (docs/adr/0002-hierarchy-closure-table.md).

use std::collections::HashMap;

use canopy_cloud_org::account::Provider;
use canopy_cloud_org::organization::hierarchy::{Hierarchy, HierarchyNode, NodeKind};
use canopy_cloud_org::organization::member::{DiscoveredMember, MemberState, MemberStatus};
use canopy_cloud_org::organization::ports::StoredMember;
use canopy_cloud_org::organization::sync::Change;
use canopy_cloud_org::organization::{
    CloudOrganization, CloudOrganizationId, ConnectionStatus, OrganizationIdentity,
};
use canopy_cloud_org::sealing::SealedSecret;
use canopy_kernel::StoreError;
use canopy_kernel::id::{OrganizationId, UserId};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use crate::entity::{
    cloud_org_changes as changes, cloud_org_closure as closure, cloud_org_nodes as nodes,
    cloud_organization_members as members, cloud_organizations as orgs,
};
use crate::error::corrupt;

pub(super) fn identity_of(m: &orgs::Model) -> OrganizationIdentity {
    OrganizationIdentity {
        cloud_org_id: m.cloud_org_id.clone(),
        arn: m.aws_org_arn.clone(),
        management_account_id: m.management_account_id.clone(),
        management_account_email: m.management_account_email.clone(),
        display_name: m.gcp_display_name.clone(),
        directory_customer_id: m.gcp_directory_customer_id.clone(),
        lifecycle_state: m.gcp_lifecycle_state.clone(),
    }
}

pub(super) fn cloud_org_from(m: orgs::Model) -> Result<CloudOrganization, StoreError> {
    Ok(CloudOrganization {
        id: CloudOrganizationId(m.id),
        organization_id: OrganizationId(m.organization_id),
        provider: Provider::from_stored(&m.provider)
            .ok_or_else(|| corrupt("provider", &m.provider))?,
        identity: identity_of(&m),
        name: m.name,
        management_role_arn: m.management_role_arn,
        member_role_name: m.member_role_name,
        gcp_service_account: m.gcp_service_account,
        gcp_credentials: match (m.gcp_credentials_key_id, m.gcp_credentials_sealed) {
            (Some(key_id), Some(sealed)) => Some(SealedSecret { key_id, sealed }),
            _ => None,
        },
        status: ConnectionStatus::from_stored(&m.connection_status)
            .ok_or_else(|| corrupt("connection status", &m.connection_status))?,
        error: m.connection_error,
        unreadable: serde_json::from_value(m.unreadable).unwrap_or_default(),
        last_attempt_at: m.last_connection_attempt,
        last_discovered_at: m.last_discovered_at,
        discovered_count: u32::try_from(m.discovered_accounts_count).unwrap_or(0),
        connected_count: u32::try_from(m.connected_accounts_count).unwrap_or(0),
        created_by: UserId(m.created_by),
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub(super) fn found_from(m: &members::Model) -> Result<DiscoveredMember, StoreError> {
    Ok(DiscoveredMember {
        key: m.account_key.clone(),
        number: m.project_number.clone(),
        name: m.name.clone(),
        email: m.email.clone(),
        state: MemberState::from_stored(&m.state).ok_or_else(|| corrupt("state", &m.state))?,
        joined_method: m.joined_method.clone(),
        joined_at: m.joined_at,
        parent_id: m.parent_id.clone(),
        is_management: m.is_management_account,
        delegated_admin_services: serde_json::from_value(m.delegated_admin_services.clone())
            .unwrap_or_default(),
    })
}

pub(super) fn stored_member_from(m: members::Model) -> Result<StoredMember, StoreError> {
    Ok(StoredMember {
        found: found_from(&m)?,
        hierarchy_path: m.hierarchy_path,
        hierarchy_level: u8::try_from(m.hierarchy_level).unwrap_or(0),
        status: MemberStatus::from_stored(&m.status).ok_or_else(|| corrupt("status", &m.status))?,
        linked_cloud_account_id: m.linked_cloud_account_id,
        failure: m.auto_connect_failed_reason,
        left_at: m.left_at,
        discovered_at: m.discovered_at,
        updated_at: m.updated_at,
    })
}

pub(super) fn node_from(m: nodes::Model, ids: &HashMap<String, Vec<String>>) -> HierarchyNode {
    HierarchyNode {
        id_path: ids
            .get(&m.node_id)
            .cloned()
            .unwrap_or_else(|| vec![m.node_id.clone()]),
        id: m.node_id,
        parent_id: m.parent_id,
        name: m.name,
        kind: NodeKind::from_stored(&m.kind).unwrap_or(NodeKind::OrganizationalUnit),
        depth: u8::try_from(m.depth).unwrap_or(0),
        path: m.path,
    }
}

pub(super) fn change_row(
    id: CloudOrganizationId,
    job: Option<Uuid>,
    change: &Change,
    at: DateTime<Utc>,
) -> changes::ActiveModel {
    let (subject, details) = match change {
        Change::Joined { key } | Change::Left { key } | Change::Updated { key } => {
            (Some(key.clone()), json!({}))
        }
        Change::Moved { key, from, to } => (Some(key.clone()), json!({"from": from, "to": to})),
        Change::StateChanged { key, from, to } => (
            Some(key.clone()),
            json!({"from": from.as_str(), "to": to.as_str()}),
        ),
        Change::Renamed { key, from, to } => (Some(key.clone()), json!({"from": from, "to": to})),
        Change::HierarchyChanged {
            added,
            removed,
            changed,
        } => (
            None,
            json!({"added": added, "removed": removed, "changed": changed}),
        ),
    };
    changes::ActiveModel {
        id: Set(Uuid::now_v7()),
        cloud_organization_id: Set(id.as_uuid()),
        job_id: Set(job),
        kind: Set(change.kind().to_string()),
        subject: Set(subject),
        details: Set(details),
        occurred_at: Set(at),
    }
}

pub(super) async fn replace_tree(
    txn: &DatabaseTransaction,
    id: CloudOrganizationId,
    tree: &Hierarchy,
) -> Result<(), sea_orm::DbErr> {
    nodes::Entity::delete_many()
        .filter(nodes::Column::CloudOrganizationId.eq(id.as_uuid()))
        .exec(txn)
        .await?;
    closure::Entity::delete_many()
        .filter(closure::Column::CloudOrganizationId.eq(id.as_uuid()))
        .exec(txn)
        .await?;
    let rows: Vec<_> = tree
        .nodes()
        .map(|n| nodes::ActiveModel {
            cloud_organization_id: Set(id.as_uuid()),
            node_id: Set(n.id.clone()),
            parent_id: Set(n.parent_id.clone()),
            name: Set(n.name.clone()),
            kind: Set(n.kind.as_str().to_string()),
            depth: Set(i16::from(n.depth)),
            path: Set(n.path.clone()),
        })
        .collect();
    for chunk in rows.chunks(500) {
        nodes::Entity::insert_many(chunk.to_vec()).exec(txn).await?;
    }
    let rows: Vec<_> = tree
        .closure()
        .into_iter()
        .map(|(ancestor, descendant, distance)| closure::ActiveModel {
            cloud_organization_id: Set(id.as_uuid()),
            ancestor: Set(ancestor),
            descendant: Set(descendant),
            distance: Set(i16::from(distance)),
        })
        .collect();
    for chunk in rows.chunks(500) {
        closure::Entity::insert_many(chunk.to_vec())
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Where a member sits, from the tree (the parent's path and depth).
pub(super) fn placement(tree: &Hierarchy, parent: &str) -> (String, i16) {
    tree.get(parent)
        .map(|n| (n.path.clone(), i16::from(n.depth)))
        .unwrap_or_else(|| (parent.to_string(), 0))
}
