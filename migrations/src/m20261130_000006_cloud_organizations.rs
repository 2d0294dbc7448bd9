//! Cloud organizations (the spec's `cloud_organizations` and `cloud_organization_members`):
//! one AWS or GCP organization per tenant organization, its OU / folder nodes with a closure
//! table (docs/adr/0002-hierarchy-closure-table.md), its members, and what each sync changed.
//! One cloud organization belongs to one tenant: `(provider, cloud_org_id)` is unique across
//! tenants, as an account's `(provider, account_key)` is.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum CloudOrganizations {
    Table,
    Id,
    OrganizationId,
    Provider,
    CloudOrgId,
    Name,
    AwsOrgArn,
    ManagementAccountId,
    ManagementAccountEmail,
    GcpDisplayName,
    GcpDirectoryCustomerId,
    GcpLifecycleState,
    ManagementRoleArn,
    MemberRoleName,
    ConnectionStatus,
    ConnectionError,
    Unreadable,
    LastConnectionAttempt,
    LastDiscoveredAt,
    DiscoveredAccountsCount,
    ConnectedAccountsCount,
    Settings,
    Tags,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CloudOrgNodes {
    Table,
    CloudOrganizationId,
    NodeId,
    ParentId,
    Name,
    Kind,
    Depth,
    Path,
}

#[derive(DeriveIden)]
enum CloudOrgClosure {
    Table,
    CloudOrganizationId,
    Ancestor,
    Descendant,
    Distance,
}

#[derive(DeriveIden)]
enum CloudOrganizationMembers {
    Table,
    Id,
    CloudOrganizationId,
    Provider,
    AccountKey,
    ProjectNumber,
    Name,
    Email,
    State,
    JoinedMethod,
    JoinedAt,
    ParentId,
    HierarchyPath,
    HierarchyLevel,
    IsManagementAccount,
    DelegatedAdminServices,
    Status,
    LinkedCloudAccountId,
    AutoConnectFailedReason,
    LeftAt,
    DiscoveredAt,
    UpdatedAt,
    LastSyncAt,
}

#[derive(DeriveIden)]
enum CloudOrgChanges {
    Table,
    Id,
    CloudOrganizationId,
    JobId,
    Kind,
    Subject,
    Details,
    OccurredAt,
}

#[derive(DeriveIden)]
enum CloudAccounts {
    Table,
    Id,
    CloudOrganizationId,
    HierarchyPath,
    OuId,
    FolderId,
    IsManagementAccount,
    IsDelegatedAdmin,
    DelegatedAdminServices,
}

const PROVIDERS: [&str; 2] = ["aws", "gcp"];
const CONNECTION: [&str; 6] = [
    "pending",
    "discovering",
    "connected",
    "partial",
    "error",
    "disconnected",
];
const MEMBER_STATUS: [&str; 5] = [
    "discovered",
    "connecting",
    "connected",
    "failed",
    "excluded",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use CloudOrganizations as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(ColumnDef::new(C::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(C::OrganizationId).uuid().not_null())
                    .col(ColumnDef::new(C::Provider).string_len(10).not_null())
                    .col(ColumnDef::new(C::CloudOrgId).string_len(64).not_null())
                    .col(ColumnDef::new(C::Name).string_len(255).not_null())
                    .col(ColumnDef::new(C::AwsOrgArn).string_len(255).null())
                    .col(ColumnDef::new(C::ManagementAccountId).string_len(20).null())
                    .col(
                        ColumnDef::new(C::ManagementAccountEmail)
                            .string_len(255)
                            .null(),
                    )
                    .col(ColumnDef::new(C::GcpDisplayName).string_len(255).null())
                    .col(
                        ColumnDef::new(C::GcpDirectoryCustomerId)
                            .string_len(64)
                            .null(),
                    )
                    .col(ColumnDef::new(C::GcpLifecycleState).string_len(50).null())
                    .col(ColumnDef::new(C::ManagementRoleArn).string_len(2048).null())
                    .col(ColumnDef::new(C::MemberRoleName).string_len(64).not_null())
                    .col(
                        ColumnDef::new(C::ConnectionStatus)
                            .string_len(20)
                            .not_null(),
                    )
                    .col(ColumnDef::new(C::ConnectionError).text().null())
                    .col(ColumnDef::new(C::Unreadable).json_binary().not_null())
                    .col(
                        ColumnDef::new(C::LastConnectionAttempt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(C::LastDiscoveredAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(C::DiscoveredAccountsCount)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(C::ConnectedAccountsCount)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(C::Settings).json_binary().not_null())
                    .col(ColumnDef::new(C::Tags).json_binary().not_null())
                    .col(ColumnDef::new(C::CreatedBy).uuid().not_null())
                    .col(
                        ColumnDef::new(C::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(C::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(C::Table, C::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(C::Provider).is_in(PROVIDERS))
                    .check(Expr::col(C::ConnectionStatus).is_in(CONNECTION))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_organizations_identity_key")
                    .table(C::Table)
                    .col(C::Provider)
                    .col(C::CloudOrgId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_organizations_org_idx")
                    .table(C::Table)
                    .col(C::OrganizationId)
                    .col(C::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CloudOrgNodes::Table)
                    .col(
                        ColumnDef::new(CloudOrgNodes::CloudOrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgNodes::NodeId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgNodes::ParentId)
                            .string_len(128)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgNodes::Name)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgNodes::Kind)
                            .string_len(10)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgNodes::Depth)
                            .small_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgNodes::Path)
                            .string_len(2048)
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(CloudOrgNodes::CloudOrganizationId)
                            .col(CloudOrgNodes::NodeId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CloudOrgNodes::Table, CloudOrgNodes::CloudOrganizationId)
                            .to(C::Table, C::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .check(Expr::col(CloudOrgNodes::Kind).is_in(["root", "ou", "folder"]))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CloudOrgClosure::Table)
                    .col(
                        ColumnDef::new(CloudOrgClosure::CloudOrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgClosure::Ancestor)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgClosure::Descendant)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgClosure::Distance)
                            .small_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(CloudOrgClosure::CloudOrganizationId)
                            .col(CloudOrgClosure::Ancestor)
                            .col(CloudOrgClosure::Descendant),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CloudOrgClosure::Table, CloudOrgClosure::CloudOrganizationId)
                            .to(C::Table, C::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        use CloudOrganizationMembers as M;
        manager
            .create_table(
                Table::create()
                    .table(M::Table)
                    .col(ColumnDef::new(M::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(M::CloudOrganizationId).uuid().not_null())
                    .col(ColumnDef::new(M::Provider).string_len(10).not_null())
                    .col(ColumnDef::new(M::AccountKey).string_len(64).not_null())
                    .col(ColumnDef::new(M::ProjectNumber).string_len(20).null())
                    .col(ColumnDef::new(M::Name).string_len(255).not_null())
                    .col(ColumnDef::new(M::Email).string_len(255).null())
                    .col(ColumnDef::new(M::State).string_len(20).not_null())
                    .col(ColumnDef::new(M::JoinedMethod).string_len(20).null())
                    .col(
                        ColumnDef::new(M::JoinedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(M::ParentId).string_len(128).not_null())
                    .col(ColumnDef::new(M::HierarchyPath).string_len(2048).not_null())
                    .col(ColumnDef::new(M::HierarchyLevel).small_integer().not_null())
                    .col(ColumnDef::new(M::IsManagementAccount).boolean().not_null())
                    .col(
                        ColumnDef::new(M::DelegatedAdminServices)
                            .json_binary()
                            .not_null(),
                    )
                    .col(ColumnDef::new(M::Status).string_len(20).not_null())
                    .col(ColumnDef::new(M::LinkedCloudAccountId).uuid().null())
                    .col(ColumnDef::new(M::AutoConnectFailedReason).text().null())
                    .col(ColumnDef::new(M::LeftAt).timestamp_with_time_zone().null())
                    .col(
                        ColumnDef::new(M::DiscoveredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(M::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(M::LastSyncAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(M::Table, M::CloudOrganizationId)
                            .to(C::Table, C::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(M::Table, M::LinkedCloudAccountId)
                            .to(CloudAccounts::Table, CloudAccounts::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .check(Expr::col(M::Provider).is_in(PROVIDERS))
                    .check(Expr::col(M::Status).is_in(MEMBER_STATUS))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_org_members_key")
                    .table(M::Table)
                    .col(M::CloudOrganizationId)
                    .col(M::AccountKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_org_members_parent_idx")
                    .table(M::Table)
                    .col(M::CloudOrganizationId)
                    .col(M::ParentId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_org_members_linked_idx")
                    .table(M::Table)
                    .col(M::LinkedCloudAccountId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CloudOrgChanges::Table)
                    .col(
                        ColumnDef::new(CloudOrgChanges::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgChanges::CloudOrganizationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CloudOrgChanges::JobId).uuid().null())
                    .col(
                        ColumnDef::new(CloudOrgChanges::Kind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgChanges::Subject)
                            .string_len(128)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgChanges::Details)
                            .json_binary()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CloudOrgChanges::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CloudOrgChanges::Table, CloudOrgChanges::CloudOrganizationId)
                            .to(C::Table, C::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cloud_org_changes_org_idx")
                    .table(CloudOrgChanges::Table)
                    .col(CloudOrgChanges::CloudOrganizationId)
                    .col(CloudOrgChanges::Id)
                    .to_owned(),
            )
            .await?;

        // Cloud accounts learn where they sit. Added one column per statement: SQLite's
        // ALTER TABLE takes one at a time. The foreign key is kept in the domain (a deleted
        // cloud organization clears these in the same transaction), since SQLite cannot add
        // a constraint to an existing table.
        let columns = [
            ColumnDef::new(CloudAccounts::CloudOrganizationId)
                .uuid()
                .null()
                .to_owned(),
            ColumnDef::new(CloudAccounts::HierarchyPath)
                .string_len(2048)
                .null()
                .to_owned(),
            ColumnDef::new(CloudAccounts::OuId)
                .string_len(128)
                .null()
                .to_owned(),
            ColumnDef::new(CloudAccounts::FolderId)
                .string_len(128)
                .null()
                .to_owned(),
            ColumnDef::new(CloudAccounts::IsManagementAccount)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(CloudAccounts::IsDelegatedAdmin)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(CloudAccounts::DelegatedAdminServices)
                .json_binary()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(CloudAccounts::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("cloud_accounts_cloud_org_idx")
                    .table(CloudAccounts::Table)
                    .col(CloudAccounts::CloudOrganizationId)
                    .to_owned(),
            )
            .await
    }
}
