use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cloud_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider: String,
    pub account_key: String,
    pub role_arn: Option<String>,
    pub region: Option<String>,
    pub project_number: Option<String>,
    pub alias: Option<String>,
    pub stack_name: Option<String>,
    pub ses_configuration_set: Option<String>,
    pub ses_domains: Json,
    pub features: Json,
    pub environment: Option<String>,
    pub tags: Json,
    pub status: String,
    pub last_synced_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
