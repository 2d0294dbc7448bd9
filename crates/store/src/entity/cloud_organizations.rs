use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cloud_organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider: String,
    pub cloud_org_id: String,
    pub name: String,
    pub aws_org_arn: Option<String>,
    pub management_account_id: Option<String>,
    pub management_account_email: Option<String>,
    pub gcp_display_name: Option<String>,
    pub gcp_directory_customer_id: Option<String>,
    pub gcp_lifecycle_state: Option<String>,
    pub management_role_arn: Option<String>,
    pub member_role_name: String,
    pub connection_status: String,
    pub connection_error: Option<String>,
    pub unreadable: Json,
    pub last_connection_attempt: Option<DateTimeUtc>,
    pub last_discovered_at: Option<DateTimeUtc>,
    pub discovered_accounts_count: i32,
    pub connected_accounts_count: i32,
    pub settings: Json,
    pub tags: Json,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub gcp_credentials_sealed: Option<String>,
    pub gcp_credentials_key_id: Option<String>,
    pub gcp_service_account: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
