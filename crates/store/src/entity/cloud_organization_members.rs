use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cloud_organization_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub cloud_organization_id: Uuid,
    pub provider: String,
    pub account_key: String,
    pub project_number: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub state: String,
    pub joined_method: Option<String>,
    pub joined_at: Option<DateTimeUtc>,
    pub parent_id: String,
    pub hierarchy_path: String,
    pub hierarchy_level: i16,
    pub is_management_account: bool,
    pub delegated_admin_services: Json,
    pub status: String,
    pub linked_cloud_account_id: Option<Uuid>,
    pub auto_connect_failed_reason: Option<String>,
    pub left_at: Option<DateTimeUtc>,
    pub discovered_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub last_sync_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
