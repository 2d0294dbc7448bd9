use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "coverage_marks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cloud_account_id: Uuid,
    pub organization_id: Uuid,
    pub attack_version: String,
    pub detections: i32,
    pub marks: Vec<u8>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
