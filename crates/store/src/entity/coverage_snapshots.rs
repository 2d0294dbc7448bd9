use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "coverage_snapshots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub snapshot_scope: String,
    pub cloud_account_id: Option<Uuid>,
    pub cloud_organization_id: Option<Uuid>,
    pub taken_at: DateTimeUtc,
    pub attack_version: String,
    pub coverage_percent: f64,
    pub covered_techniques: i32,
    pub total_techniques: i32,
    pub degraded_techniques: i32,
    pub unknown_techniques: i32,
    pub detect_percent: f64,
    pub protect_percent: f64,
    pub respond_percent: f64,
    pub includes_org_detections: bool,
    pub org_detection_count: i32,
    pub org_covered_techniques: i32,
    pub coverage_breakdown: Json,
    pub accounts: Option<i32>,
    pub min_percent: Option<f64>,
    pub max_percent: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
