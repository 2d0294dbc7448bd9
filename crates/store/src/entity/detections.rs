use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "detections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub detection_scope: String,
    pub cloud_account_id: Option<Uuid>,
    pub cloud_organization_id: Option<Uuid>,
    pub applies_to_all_accounts: bool,
    pub applies_to_account_ids: Option<Json>,
    pub applies_to_node_ids: Option<Json>,
    pub applies_to_excluded_node_ids: Option<Json>,
    pub target_id: Uuid,
    pub source: String,
    pub resource_key: String,
    pub name: String,
    pub description: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub advice: Option<String>,
    pub evidence: Json,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: Option<DateTimeUtc>,
    pub last_scan_job_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
