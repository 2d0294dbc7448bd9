//! Where a cloud account sits in its cloud organization: the columns migration 6 added to
//! `cloud_accounts`, as their own view so the account's own mappings stay as they were.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cloud_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub cloud_organization_id: Option<Uuid>,
    pub hierarchy_path: Option<String>,
    pub ou_id: Option<String>,
    pub folder_id: Option<String>,
    pub is_management_account: bool,
    pub is_delegated_admin: bool,
    pub delegated_admin_services: Option<Json>,
    pub organization_left_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
