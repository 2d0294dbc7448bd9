//! Canopy metrics: SES email metrics across an organization's AWS accounts, as one dashboard.
//! Windows aligned to period buckets, a bounded parallel fan-out where one failing account
//! never fails the request, a cache in front of the source, and the aggregation (totals,
//! per-account breakdown and shares, rates, change against the previous period, series).
//!
//! # What it offers
//!
//! [`MetricsService`]: the metrics and the dashboard of an organization's selection
//! ([`MetricsError`]), from a [`MetricsQuery`] parsed here.
//!
//! # What an embedder provides
//!
//! [`ports::MetricSource`] (one account's SES sums per bucket; MUST classify failures and give
//! up after its own per-account timeout) and [`ports::SeriesCache`] (MUST share one fetch
//! between concurrent callers of a key and MUST NOT keep failures), plus the cloud-account and
//! billing services. The `mocks` feature has a mock of each:
//!
//! ```text
//! let mut source = canopy_metrics::ports::MockMetricSource::new();
//! source.expect_fetch().returning(|_, _| Ok(Datapoints::default()));
//! ```
//!
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
