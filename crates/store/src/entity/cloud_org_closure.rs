use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cloud_org_closure")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cloud_organization_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub ancestor: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub descendant: String,
    pub distance: i16,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
