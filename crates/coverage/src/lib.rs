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
//! ranked by how many accounts lack them, and what the organization's own controls add, over
//! per-account [`summary::AccountSummary`] values.
//!
//! [`views::CoverageViews`]: the organization-wide view served on the compact path: each
//! member's own detections come folded ([`summary::Marks`], one byte per catalog entry, kept by
//! the store with every detection write) through the [`views::MarksStore`] port, so a view over
//! 1,000 accounts does not read 100,000 detections.
//!
//! [`history::CoverageHistory`]: snapshots (the spec's `coverage_snapshots`) taken after every
//! scan ([`history::SnapshotAfter`] wraps the scan jobs) and every custom-detection change, and
//! the history read back within the plan's retention; [`snapshot::SnapshotStore`] is its port.
//!
//! Architecture invariant: the computation (`account`, `organization`, `summary`, `navigator`,
//! building a [`snapshot::CoverageSnapshot`]) is pure: no IO, no clock, no async; the same
//! inputs give the same answer, which is what the property tests in this crate rely on. Only
//! `history` and `views` read and write, through ports.

pub mod account;
pub mod history;
mod layout;
pub mod navigator;
pub mod organization;
pub mod snapshot;
pub mod summary;
pub mod views;

#[cfg(test)]
mod properties;
