use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cloud_org_nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cloud_organization_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub depth: i16,
    pub path: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
