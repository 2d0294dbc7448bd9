use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "detection_techniques")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub detection_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub technique_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    pub value: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
