//! Canopy coverage: how well each cloud account is covered against the ATT&CK IaaS catalog,
//! counting its own detections and the organization-level controls inherited down the OU /
//! folder tree, with the split between what the account brings and what the organization
//! brings, and the organization-wide view.
//!
//! # What it offers
//!
//! [`account::account_coverage`]: one account's coverage from its effective detections (build
//! them with [`canopy_detection::service::inherit`] for the inherited part): every catalog
//! entry with its status, quality and contributing detections (own, or inherited and from
//! which node), percentages overall, per category and per tactic, and the breakdown (own +
//! inherited - overlap = covered, always). [`organization::organization_coverage`]: the
//! members side by side, spread, techniques covered everywhere / somewhere / nowhere, gaps
//! ranked by how many accounts lack them, and what the organization's own controls add.
//!
//! [`history::CoverageHistory`]: snapshots (the spec's `coverage_snapshots`) taken after every
//! scan ([`history::SnapshotAfter`] wraps the scan jobs) and every custom-detection change, and
//! the history read back within the plan's retention; [`snapshot::SnapshotStore`] is its port.
//!
//! Architecture invariant: the computation (`account`, `organization`, `navigator`, building a
//! [`snapshot::CoverageSnapshot`]) is pure: no IO, no clock, no async; the same inputs give the
//! same answer, which is what the property tests in this crate rely on. Only `history` reads
//! and writes, through ports.

pub mod account;
pub mod history;
pub mod navigator;
pub mod organization;
pub mod snapshot;

#[cfg(test)]
mod properties;
