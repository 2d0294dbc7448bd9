//! One account's metrics over a window: what a source answers (sparse datapoints) and what is
//! cached and aggregated (dense, zero-filled buckets aligned to the window).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::window::{SesMetric, Window};

/// Datapoints as a source returns them: only the buckets that had data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Datapoints {
    /// (metric, bucket start, summed value).
    pub points: Vec<(SesMetric, DateTime<Utc>, f64)>,
}

/// One account's sums per bucket, every metric, zero where the source had nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSeries {
    /// The window the buckets cover.
    pub window: Window,
    /// Per metric (in [`SesMetric::ALL`] order), one value per bucket.
    pub values: [Vec<f64>; 5],
}

impl AccountSeries {
    /// All zeros over `window`.
    pub fn zeros(window: Window) -> Self {
        let n = window.buckets as usize;
        Self {
            window,
            values: std::array::from_fn(|_| vec![0.0; n]),
        }
    }

    /// Places each datapoint in its bucket (adding up several in one bucket); points outside
    /// the window are dropped.
    pub fn from_datapoints(window: Window, data: &Datapoints) -> Self {
        let mut series = Self::zeros(window);
        for (metric, t, v) in &data.points {
            if let Some(i) = window.bucket_of(*t) {
                series.values[metric.index()][i] += v;
            }
        }
        series
    }

    /// The values of `metric` in buckets `from..from + len`.
    pub fn slice(&self, metric: SesMetric, from: usize, len: usize) -> &[f64] {
        self.values[metric.index()]
            .get(from..from + len)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::window::{RangePreset, RangeSpec};

    #[test]
    fn datapoints_land_in_their_buckets_and_the_rest_is_zero() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let w = Window::resolve(RangeSpec::Preset(RangePreset::Hour), now).unwrap_or(Window {
            start: now,
            period: 300,
            buckets: 12,
        });
        let data = Datapoints {
            points: vec![
                (SesMetric::Send, w.start, 10.0),
                (SesMetric::Send, w.start + Duration::seconds(299), 5.0),
                (SesMetric::Bounce, w.start + Duration::seconds(600), 1.0),
                (SesMetric::Send, w.end(), 99.0),
            ],
        };
        let s = AccountSeries::from_datapoints(w, &data);
        assert_eq!(s.values[SesMetric::Send.index()][0], 15.0);
        assert_eq!(s.values[SesMetric::Bounce.index()][2], 1.0);
        assert_eq!(s.values[SesMetric::Send.index()].iter().sum::<f64>(), 15.0);
        assert!(
            s.values[SesMetric::Reject.index()]
                .iter()
                .all(|v| *v == 0.0)
        );
    }
}
