//! Canopy metrics: SES email metrics across an organization's AWS accounts, as one dashboard.
//! Windows aligned to period buckets, a bounded parallel fan-out where one failing account
//! never fails the request, a cache in front of the source, and the aggregation (totals,
//! per-account breakdown and shares, rates, change against the previous period, series).
//!
//! API boundary: [`MetricsService`] and the traits in [`ports`].
//! Architecture invariant: no IO and no runtime here; the source (CloudWatch, the demo) and
//! the cache (in process, Redis) are adapters, and the fan-out only combines futures.

pub mod aggregate;
pub mod ports;
pub mod query;
pub mod series;
pub mod service;
pub mod window;

pub use aggregate::{AccountReport, Change, Rates, Report, Totals};
pub use query::MetricsQuery;
pub use series::{AccountSeries, Datapoints};
pub use service::{
    AccountFailure, Dashboard, MetricsConfig, MetricsError, MetricsPorts, MetricsService,
    MetricsView, Outcome,
};
pub use window::{RangePreset, RangeSpec, SesMetric, Window};
