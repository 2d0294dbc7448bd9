//! Canopy's schema, as sea-orm migrations that run unchanged on SQLite and PostgreSQL.
//!
//! Architecture invariant: a migration is never edited after it lands; changes come as new
//! migrations appended to [`Migrator::migrations`].

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_tenancy;
mod m20261122_000002_cloud_accounts;
mod m20261122_000003_connection_tokens;
mod m20261123_000004_subscriptions;
mod m20261130_000005_jobs;
mod m20261130_000006_cloud_organizations;
mod m20261130_000007_cloud_org_links;
mod m20261130_000008_detections;
mod m20261130_000009_coverage_snapshots;
mod m20261130_000010_coverage_marks;
mod m20261130_000011_coverage_revisions;
mod m20261207_000012_one_active_job;
mod m20261207_000013_detection_exceptions;
mod m20261207_000014_mail_relay;
mod m20261207_000015_account_self_service;
mod m20261207_000016_grant_notifications;
mod m20261207_000017_organization_data_notifications;
mod m20261208_000018_device_authorizations;

/// Applies every Canopy migration in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_tenancy::Migration),
            Box::new(m20261122_000002_cloud_accounts::Migration),
            Box::new(m20261122_000003_connection_tokens::Migration),
            Box::new(m20261123_000004_subscriptions::Migration),
            Box::new(m20261130_000005_jobs::Migration),
            Box::new(m20261130_000006_cloud_organizations::Migration),
            Box::new(m20261130_000007_cloud_org_links::Migration),
            Box::new(m20261130_000008_detections::Migration),
            Box::new(m20261130_000009_coverage_snapshots::Migration),
            Box::new(m20261130_000010_coverage_marks::Migration),
            Box::new(m20261130_000011_coverage_revisions::Migration),
            Box::new(m20261207_000012_one_active_job::Migration),
            Box::new(m20261207_000013_detection_exceptions::Migration),
            Box::new(m20261207_000014_mail_relay::Migration),
            Box::new(m20261207_000015_account_self_service::Migration),
            Box::new(m20261207_000016_grant_notifications::Migration),
            Box::new(m20261207_000017_organization_data_notifications::Migration),
            Box::new(m20261208_000018_device_authorizations::Migration),
        ]
    }
}
