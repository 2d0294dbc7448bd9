//! A per-tenant revision that moves with every write a coverage view is computed from
//! (detections and their techniques, the cloud organizations' trees and members, cloud
//! accounts going away), so a served view can be checked against one small row read
//! instead of being computed again from thousands.
//!
//! Why triggers rather than the store's code: a trigger cannot be forgotten by a write path
//! added later, and a cascade (an account deleted takes its detections with it) is seen too.
//!
//! Why PostgreSQL's are deferred constraint triggers that bump once per transaction: the
//! revision row is then locked last, at commit, after every other row the transaction
//! locks, so two writers cannot deadlock on it; and a scan writing hundreds of rows updates
//! it once, not once per row. SQLite runs one writer at a time, so plain triggers serve.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum CoverageRevisions {
    Table,
    OrganizationId,
    Revision,
}

/// How a watched table's rows name their tenant.
enum Tenant {
    /// An `organization_id` column.
    Column,
    /// Through the cloud organization in `cloud_organization_id`.
    CloudOrganization,
    /// Through the detection in `detection_id`.
    Detection,
}

/// The tables watched, the writes that matter, and how each row names its tenant. A cloud
/// organization or account only matters when it goes away: its other columns (sync times,
/// counts) are not part of any view.
const WATCHED: [(&str, &str, Tenant); 7] = [
    ("detections", "INSERT OR UPDATE OR DELETE", Tenant::Column),
    (
        "detection_techniques",
        "INSERT OR UPDATE OR DELETE",
        Tenant::Detection,
    ),
    (
        "cloud_org_nodes",
        "INSERT OR UPDATE OR DELETE",
        Tenant::CloudOrganization,
    ),
    (
        "cloud_org_closure",
        "INSERT OR UPDATE OR DELETE",
        Tenant::CloudOrganization,
    ),
    (
        "cloud_organization_members",
        "INSERT OR UPDATE OR DELETE",
        Tenant::CloudOrganization,
    ),
    ("cloud_organizations", "DELETE", Tenant::Column),
    ("cloud_accounts", "DELETE", Tenant::Column),
];

const PG_BUMP: &str = r#"
CREATE FUNCTION coverage_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid;
    bumped text;
BEGIN
    IF TG_ARGV[0] = 'column' THEN
        IF TG_OP = 'DELETE' THEN tenant := OLD.organization_id; ELSE tenant := NEW.organization_id; END IF;
    ELSIF TG_ARGV[0] = 'cloud_organization' THEN
        IF TG_OP = 'DELETE' THEN
            SELECT organization_id INTO tenant FROM cloud_organizations WHERE id = OLD.cloud_organization_id;
        ELSE
            SELECT organization_id INTO tenant FROM cloud_organizations WHERE id = NEW.cloud_organization_id;
        END IF;
    ELSE
        IF TG_OP = 'DELETE' THEN
            SELECT organization_id INTO tenant FROM detections WHERE id = OLD.detection_id;
        ELSE
            SELECT organization_id INTO tenant FROM detections WHERE id = NEW.detection_id;
        END IF;
    END IF;
    -- A row whose parent went in the same transaction: the parent's own trigger bumped.
    IF tenant IS NULL THEN RETURN NULL; END IF;
    bumped := coalesce(current_setting('canopy.coverage_bumped', true), '');
    IF position(tenant::text IN bumped) > 0 THEN RETURN NULL; END IF;
    PERFORM set_config('canopy.coverage_bumped', bumped || tenant::text || ',', true);
    INSERT INTO coverage_revisions (organization_id, revision)
        SELECT tenant, 1 WHERE EXISTS (SELECT 1 FROM organizations WHERE id = tenant)
        ON CONFLICT (organization_id) DO UPDATE SET revision = coverage_revisions.revision + 1;
    RETURN NULL;
END $$
"#;

fn pg_trigger(table: &str, events: &str, tenant: &Tenant) -> String {
    let how = match tenant {
        Tenant::Column => "column",
        Tenant::CloudOrganization => "cloud_organization",
        Tenant::Detection => "detection",
    };
    format!(
        "CREATE CONSTRAINT TRIGGER {table}_coverage_revision AFTER {events} ON {table} \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION coverage_revision_bump('{how}')"
    )
}

/// SQLite: one trigger per event, naming the tenant from `NEW` or `OLD`.
fn sqlite_triggers(table: &str, events: &str, tenant: &Tenant) -> Vec<String> {
    events
        .split(" OR ")
        .map(|event| {
            let row = if event == "DELETE" { "OLD" } else { "NEW" };
            let tenant = match tenant {
                Tenant::Column => format!("SELECT {row}.organization_id AS t"),
                Tenant::CloudOrganization => format!(
                    "SELECT organization_id AS t FROM cloud_organizations \
                     WHERE id = {row}.cloud_organization_id"
                ),
                Tenant::Detection => format!(
                    "SELECT organization_id AS t FROM detections WHERE id = {row}.detection_id"
                ),
            };
            format!(
                "CREATE TRIGGER {table}_coverage_revision_{event} AFTER {event} ON {table} \
                 BEGIN \
                 INSERT INTO coverage_revisions (organization_id, revision) \
                 SELECT t, 1 FROM ({tenant}) WHERE t IN (SELECT id FROM organizations) \
                 ON CONFLICT (organization_id) DO UPDATE SET revision = revision + 1; \
                 END",
                event = event.to_lowercase(),
            )
        })
        .collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use CoverageRevisions as R;
        manager
            .create_table(
                Table::create()
                    .table(R::Table)
                    .col(
                        ColumnDef::new(R::OrganizationId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(R::Revision).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(R::Table, R::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let statements: Vec<String> = match manager.get_database_backend() {
            DatabaseBackend::Postgres => std::iter::once(PG_BUMP.to_string())
                .chain(WATCHED.iter().map(|(t, e, how)| pg_trigger(t, e, how)))
                .collect(),
            _ => WATCHED
                .iter()
                .flat_map(|(t, e, how)| sqlite_triggers(t, e, how))
                .collect(),
        };
        for statement in statements {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, events, _) in WATCHED {
            match manager.get_database_backend() {
                DatabaseBackend::Postgres => {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS {table}_coverage_revision ON {table}"
                    ))
                    .await?;
                }
                _ => {
                    for event in events.split(" OR ") {
                        db.execute_unprepared(&format!(
                            "DROP TRIGGER IF EXISTS {table}_coverage_revision_{}",
                            event.to_lowercase()
                        ))
                        .await?;
                    }
                }
            }
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS coverage_revision_bump()")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(CoverageRevisions::Table).to_owned())
            .await
    }
}
