//! Coverage over time, as an account's or a cloud organization's pages draw it: a uPlot
//! chart of the snapshots taken after every scan and every custom-detection change, over as
//! much history as the plan keeps, and the latest snapshots as a table (the chart's text
//! alternative, and what a reader without JavaScript sees).

use canopy_coverage::history::{History, HistoryError};
use canopy_coverage::snapshot::{CoverageSnapshot, HistoryOf};
use canopy_tenancy::service::OrgAccess;
use serde_json::json;

use super::cloud_orgs::coverage_failure;
use crate::ConsoleState;
use crate::error::Failure;
use crate::format;

/// Snapshots listed in the table under the chart, newest first.
const ROWS: usize = 10;

/// One snapshot in the table.
pub(super) struct Point {
    pub(super) at: String,
    pub(super) at_iso: String,
    pub(super) percent: String,
    pub(super) covered: u32,
    pub(super) total: u32,
    pub(super) change: String,
    /// A cloud organization's least and best covered member.
    pub(super) spread: Option<String>,
}

/// The trend a page shows.
pub(super) struct Trend {
    /// The chart's data, for `data-chart`.
    pub(super) chart: String,
    /// Snapshots in the range.
    pub(super) count: usize,
    /// The range in words.
    pub(super) range: String,
    /// More snapshots were in the range than one chart holds.
    pub(super) truncated: bool,
    /// The latest snapshots, newest first.
    pub(super) latest: Vec<Point>,
    /// A cloud organization's trend: the table has the spread column.
    pub(super) spread: bool,
}

fn point(s: &CoverageSnapshot, before: Option<&CoverageSnapshot>) -> Point {
    Point {
        at: format::when(s.taken_at),
        at_iso: s.taken_at.to_rfc3339(),
        percent: format::percent(Some(s.percent)),
        covered: s.covered,
        total: s.total,
        change: match before {
            Some(b) => {
                let d = s.percent - b.percent;
                if d.abs() < 0.005 {
                    "±0 pts".into()
                } else if d > 0.0 {
                    format!("+{d:.2} pts")
                } else {
                    format!("−{:.2} pts", d.abs())
                }
            }
            None => "first".into(),
        },
        spread: s
            .spread
            .as_ref()
            .map(|x| format!("{:.1}% to {:.1}%", x.min, x.max)),
    }
}

/// `history` as a trend: an account's line per category beside its total, a cloud
/// organization's average with its least and best covered members.
pub(super) fn trend(history: &History) -> Trend {
    let snaps = &history.snapshots;
    let x: Vec<i64> = snaps.iter().map(|s| s.taken_at.timestamp()).collect();
    let line = |f: &dyn Fn(&CoverageSnapshot) -> f64| -> Vec<f64> {
        snaps
            .iter()
            .map(|s| (f(s) * 100.0).round() / 100.0)
            .collect()
    };
    let organization = snaps.iter().any(|s| s.spread.is_some());
    let series = if organization {
        vec![
            json!({"label": "Average", "swatch": 0, "values": line(&|s| s.percent)}),
            json!({"label": "Least covered account", "swatch": 1,
                "values": line(&|s| s.spread.as_ref().map_or(s.percent, |x| x.min))}),
            json!({"label": "Best covered account", "swatch": 2,
                "values": line(&|s| s.spread.as_ref().map_or(s.percent, |x| x.max))}),
        ]
    } else {
        vec![
            json!({"label": "Covered", "swatch": 0, "values": line(&|s| s.percent)}),
            json!({"label": "Detect", "swatch": 1, "values": line(&|s| s.by_category[0])}),
            json!({"label": "Protect", "swatch": 2, "values": line(&|s| s.by_category[1])}),
            json!({"label": "Respond", "swatch": 3, "values": line(&|s| s.by_category[2])}),
        ]
    };
    let latest = (0..snaps.len())
        .rev()
        .take(ROWS)
        .map(|i| point(&snaps[i], i.checked_sub(1).map(|b| &snaps[b])))
        .collect();
    // Snapshots taken minutes apart would otherwise be stretched over years by the axis.
    let range = match (x.first(), x.last()) {
        (Some(&first), Some(&last)) => {
            let pad = ((last - first) / 20).max(1_800);
            json!([first - pad, last + pad])
        }
        _ => serde_json::Value::Null,
    };
    Trend {
        chart: json!({"x": x, "series": series, "unit": "%", "range": range}).to_string(),
        count: snaps.len(),
        range: format!(
            "{} to {}",
            format::when(history.from),
            format::when(history.to)
        ),
        truncated: history.truncated,
        latest,
        spread: organization,
    }
}

/// The trend of `of` over everything the plan keeps.
pub(super) async fn read(
    state: &ConsoleState,
    access: &OrgAccess,
    of: HistoryOf,
) -> Result<Trend, Failure> {
    let history = state
        .history
        .history(access, of, None, None)
        .await
        .map_err(|e| match e {
            HistoryError::Detection(e) => coverage_failure(e),
            HistoryError::Store(s) => Failure::Store(s),
            other => {
                tracing::warn!(error = %other, "unexpected coverage history refusal");
                Failure::NotFound
            }
        })?;
    Ok(trend(&history))
}
