//! sea-orm entities. Crate-private: domain types cross the adapter boundary, entities never do.

pub(crate) mod api_keys;
pub(crate) mod audit_events;
pub(crate) mod cloud_account_checks;
pub(crate) mod cloud_account_tags;
pub(crate) mod cloud_accounts;
pub(crate) mod cloud_org_changes;
pub(crate) mod cloud_org_closure;
pub(crate) mod cloud_org_nodes;
pub(crate) mod cloud_organization_members;
pub(crate) mod cloud_organizations;
pub(crate) mod connection_tokens;
pub(crate) mod coverage_marks;
pub(crate) mod coverage_revisions;
pub(crate) mod coverage_snapshots;
pub(crate) mod detection_techniques;
pub(crate) mod detections;
pub(crate) mod external_ids;
pub(crate) mod invitations;
pub(crate) mod jobs;
pub(crate) mod memberships;
pub(crate) mod organizations;
pub(crate) mod outbox_messages;
pub(crate) mod sessions;
pub(crate) mod subscriptions;
pub(crate) mod users;
