//! Canopy billing: the tiers (Free, Individual, Pro, Enterprise), their limits and feature
//! flags as one table of data, and the upgrade rule that says which tier a usage needs.
//!
//! Architecture invariant: limits and features are read from [`PLANS`]; no handler or service
//! compares tiers itself.

pub mod plan;

pub use plan::{Feature, PLANS, Plan, Tier, plan, required_tier};
