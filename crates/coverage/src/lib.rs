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
//! Architecture invariant: pure. No IO, no clock, no async; the same inputs give the same
//! answer, which is what the property tests in this crate rely on.

pub mod account;
pub mod navigator;
pub mod organization;

#[cfg(test)]
mod properties;
