//! The SES dashboard of an organization (`/org/{slug}/dashboard?range=24h&account=...`):
//! the shell renders at once; the figures (totals with shares, rates and change, the chart of
//! one series per account, the accounts that did not answer) come from the metrics service's
//! cached, coalesced fan-out as an htmx fragment. With JavaScript off, the page links to
//! itself with the figures drawn in (`figures=inline`).

use std::sync::Arc;

use askama::Template;
use canopy_cloud_org::CloudAccount;
use canopy_cloud_org::account::{CloudIdentity, Environment};
use canopy_metrics::service::{Dashboard, MetricsError};
use canopy_metrics::{MetricsQuery, RangePreset, SesMetric};
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::json;

use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page};
use crate::format;

/// The dashboard's query.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Filter {
    range: Option<String>,
    account: Option<String>,
    metric: Option<String>,
    figures: Option<String>,
}

/// One option of the account filter.
struct AccountOption {
    id: String,
    label: String,
    selected: bool,
}

/// A range choice.
struct RangeOption {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

/// A metric choice for the chart.
struct MetricOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// One total.
struct Total {
    label: &'static str,
    value: String,
    rate: Option<String>,
    change: String,
    trend: &'static str,
}

/// One account's line.
struct AccountLine {
    swatch: usize,
    name: String,
    key: String,
    region: String,
    environment: Option<&'static str>,
    sends: String,
    share: String,
    /// The share of sends, 0–100, for the bar beside it.
    share_value: u32,
    /// SVG polyline points of the charted metric over the window (a sparkline).
    spark: String,
    delivery: String,
    bounce: String,
    complaint: String,
}

/// An account that did not answer.
struct Unanswered {
    name: String,
    key: String,
    error: &'static str,
    message: String,
    advice: &'static str,
}

/// The figures of a selection.
struct Figures {
    totals: Vec<Total>,
    lines: Vec<AccountLine>,
    unanswered: Vec<Unanswered>,
    chart: String,
    metric_label: &'static str,
    period: String,
    compared: bool,
}

/// What the figures fragment renders.
#[derive(Template)]
#[template(path = "dashboard/figures.html")]
struct FiguresFragment {
    slug: String,
    outcome: Outcome,
}

/// The figures, or why there are none.
enum Outcome {
    /// No AWS account is connected.
    Empty { can_connect: bool },
    /// The plan's history does not reach back that far.
    PlanLimit { message: String },
    /// The figures.
    Figures(Box<Figures>),
}

#[derive(Template)]
#[template(path = "dashboard/page.html")]
struct DashboardPage {
    chrome: Chrome,
    slug: String,
    accounts: Vec<AccountOption>,
    ranges: Vec<RangeOption>,
    metrics: Vec<MetricOption>,
    query: String,
    inline: Option<FiguresFragment>,
}

const RANGES: [(&str, &str); 4] = [
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
];

const METRICS: [(&str, &str, SesMetric); 5] = [
    ("send", "Sends", SesMetric::Send),
    ("delivery", "Deliveries", SesMetric::Delivery),
    ("bounce", "Bounces", SesMetric::Bounce),
    ("complaint", "Complaints", SesMetric::Complaint),
    ("reject", "Rejects", SesMetric::Reject),
];

fn display_name(a: &CloudAccount) -> String {
    a.settings
        .alias
        .clone()
        .unwrap_or_else(|| a.identity.account_key().to_string())
}

fn region(a: &CloudAccount) -> String {
    match &a.identity {
        CloudIdentity::Aws { region, .. } => region.as_str().to_string(),
        CloudIdentity::Gcp { .. } => String::new(),
    }
}

/// The environment's badge class and word (colour is never the only signal).
pub fn environment(e: Option<Environment>) -> Option<&'static str> {
    e.map(Environment::as_str)
}

impl Filter {
    fn range(&self) -> &str {
        self.range
            .as_deref()
            .filter(|r| RangePreset::parse(r, "range").is_ok())
            .unwrap_or("24h")
    }

    fn metric(&self) -> (&'static str, &'static str, SesMetric) {
        METRICS
            .iter()
            .copied()
            .find(|(v, ..)| Some(*v) == self.metric.as_deref())
            .unwrap_or(METRICS[0])
    }

    /// The query string of this selection (what the fragment is fetched with).
    fn query(&self) -> String {
        let mut q = format!("range={}&metric={}", self.range(), self.metric().0);
        if let Some(account) = self.account.as_deref().filter(|a| !a.is_empty()) {
            q.push_str("&account=");
            q.push_str(
                &percent_encoding::utf8_percent_encode(account, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        }
        q
    }
}

async fn figures_of(
    state: &ConsoleState,
    access: &OrgAccess,
    filter: &Filter,
    slug: &str,
) -> Result<FiguresFragment, Failure> {
    let accounts: Vec<String> = filter
        .account
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    let query = MetricsQuery::parse(Some(filter.range()), None, None, &accounts, None)
        .map_err(|_| Failure::NotFound)?;
    let outcome = match state.metrics.dashboard(access, &query).await {
        Ok(dashboard) => build(&dashboard, filter, access),
        Err(MetricsError::PlanLimit(limit)) => Outcome::PlanLimit {
            message: super::plan_limit_message(&limit),
        },
        Err(MetricsError::AccountNotFound | MetricsError::Invalid(_)) => {
            return Err(Failure::NotFound);
        }
        Err(MetricsError::Forbidden(_)) => return Err(Failure::Forbidden),
        Err(MetricsError::Store(e)) => return Err(Failure::Store(e)),
    };
    Ok(FiguresFragment {
        slug: slug.to_string(),
        outcome,
    })
}

/// Width and height of a sparkline's viewBox, in tenths of a pixel of its 120 x 24 box, so
/// every coordinate is a whole number (integers format several times faster than decimals,
/// and a page draws a sparkline per account).
const SPARK: (i64, i64) = (1200, 240);

/// Points a sparkline draws at most: one per two pixels of its width. Longer series are cut
/// into that many runs, each drawn at its highest value so no spike disappears.
const SPARK_POINTS: usize = 60;

/// The points of an SVG polyline drawing `values` in the sparkline's box, scaled to their own
/// maximum (a flat line at the bottom when all are zero); an attribute, not a style, so the
/// CSP needs no exception.
fn sparkline(values: &[f64]) -> String {
    use std::fmt::Write;
    if values.is_empty() {
        return String::new();
    }
    let run = values.len().div_ceil(SPARK_POINTS);
    let peaks: Vec<f64> = values
        .chunks(run)
        .map(|c| c.iter().copied().fold(0.0_f64, f64::max))
        .collect();
    let max = peaks.iter().copied().fold(0.0_f64, f64::max);
    let last = peaks.len().saturating_sub(1).max(1) as i64;
    let mut points = String::with_capacity(peaks.len() * 9);
    for (i, v) in peaks.iter().enumerate() {
        let x = i as i64 * SPARK.0 / last;
        let y = if max > 0.0 {
            SPARK.1 - 10 - ((v / max) * (SPARK.1 - 20) as f64).round() as i64
        } else {
            SPARK.1 - 10
        };
        if i > 0 {
            points.push(' ');
        }
        let _ = write!(points, "{x},{y}");
    }
    points
}

fn build(dashboard: &Dashboard, filter: &Filter, access: &OrgAccess) -> Outcome {
    let aws: Vec<&CloudAccount> = dashboard
        .accounts
        .iter()
        .filter(|a| matches!(a.identity, CloudIdentity::Aws { .. }))
        .collect();
    if aws.is_empty() {
        return Outcome::Empty {
            can_connect: access
                .require(canopy_tenancy::Action::ConnectCloudAccount)
                .is_ok(),
        };
    }
    let report = &dashboard.metrics.report;
    let (_, metric_label, metric) = filter.metric();
    let change = report.change.as_ref();
    let rates = report.rates;
    let totals = [
        ("Sent", SesMetric::Send, None),
        ("Delivered", SesMetric::Delivery, Some(rates.delivery)),
        ("Bounced", SesMetric::Bounce, Some(rates.bounce)),
        ("Complaints", SesMetric::Complaint, Some(rates.complaint)),
        ("Rejected", SesMetric::Reject, Some(rates.reject)),
    ]
    .into_iter()
    .map(|(label, m, rate)| {
        let delta = change.and_then(|c| c.totals[m.index()]);
        Total {
            label,
            value: format::count(report.totals.get(m)),
            rate: rate.map(format::percent),
            change: format::change(delta),
            // More sends and deliveries is good news; more bounces, complaints or rejects is not.
            trend: match (delta, matches!(m, SesMetric::Send | SesMetric::Delivery)) {
                (Some(d), more_is_good) if d != 0.0 && (d > 0.0) == more_is_good => "good",
                (Some(d), _) if d != 0.0 => "bad",
                _ => "flat",
            },
        }
    })
    .collect();
    let name_of = |id| {
        dashboard
            .accounts
            .iter()
            .find(|a| a.id == id)
            .map(|a| (display_name(a), a))
    };
    let mut lines = Vec::new();
    let mut series = Vec::new();
    for r in &report.accounts {
        let Some((name, account)) = name_of(r.account) else {
            continue;
        };
        let swatch = lines.len() % 10;
        lines.push(AccountLine {
            swatch,
            name: name.clone(),
            key: account.identity.account_key().to_string(),
            region: region(account),
            environment: environment(account.settings.environment),
            sends: format::count(r.totals.get(SesMetric::Send)),
            share: format::percent(r.shares[SesMetric::Send.index()]),
            share_value: r.shares[SesMetric::Send.index()]
                .map_or(0, |s| s.round().clamp(0.0, 100.0) as u32),
            spark: sparkline(r.series(metric)),
            delivery: format::percent(r.rates.delivery),
            bounce: format::percent(r.rates.bounce),
            complaint: format::percent(r.rates.complaint),
        });
        series.push(json!({"label": name, "swatch": swatch, "values": r.series(metric)}));
    }
    let window = report.window;
    let x: Vec<i64> = (0..window.buckets)
        .map(|b| window.start.timestamp() + i64::from(b) * window.period)
        .collect();
    let unanswered = dashboard
        .metrics
        .failures
        .iter()
        .map(|f| Unanswered {
            name: display_name(&f.account),
            key: f.account.identity.account_key().to_string(),
            error: f.failure.kind.as_str(),
            message: f.failure.message.clone(),
            advice: f.failure.kind.advice_for(f.account.identity.provider()),
        })
        .collect();
    Outcome::Figures(Box::new(Figures {
        totals,
        lines,
        unanswered,
        chart: json!({"x": x, "series": series, "metric": metric_label}).to_string(),
        metric_label,
        period: format!(
            "{} to {}",
            format::when(window.start),
            format::when(
                window.start + chrono::Duration::seconds(window.period * i64::from(window.buckets))
            )
        ),
        compared: report.previous_window.is_some(),
    }))
}

/// `GET /org/{slug}/dashboard`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(filter): Query<Filter>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "dashboard").await?;
    let slug = access.organization().slug.as_str().to_string();
    let all = state
        .cloud
        .all(&access, &canopy_cloud_org::AccountFilter::default())
        .await
        .map_err(|e| match e {
            canopy_cloud_org::CloudAccountError::Store(s) => Failure::Store(s),
            _ => Failure::NotFound,
        })?;
    let chosen = filter.account.clone().unwrap_or_default();
    let accounts = all
        .iter()
        .filter(|a| matches!(a.identity, CloudIdentity::Aws { .. }))
        .map(|a| {
            let mut label = display_name(a);
            let region = region(a);
            if !region.is_empty() {
                label.push_str(&format!(" · {region}"));
            }
            if let Some(e) = a.settings.environment {
                label.push_str(&format!(" · {}", e.as_str()));
            }
            AccountOption {
                id: a.id.to_string(),
                label,
                selected: a.id.to_string() == chosen,
            }
        })
        .collect();
    let range = filter.range().to_string();
    let ranges = RANGES
        .iter()
        .map(|(value, label)| RangeOption {
            value,
            label,
            checked: *value == range,
        })
        .collect();
    let metric = filter.metric().0;
    let metrics = METRICS
        .iter()
        .map(|(value, label, _)| MetricOption {
            value,
            label,
            selected: *value == metric,
        })
        .collect();
    let inline = if filter.figures.as_deref() == Some("inline") {
        Some(figures_of(&state, &access, &filter, &slug).await?)
    } else {
        None
    };
    Ok(page_of(DashboardPage {
        chrome,
        slug,
        accounts,
        ranges,
        metrics,
        query: filter.query(),
        inline,
    }))
}

fn page_of(p: DashboardPage) -> Response {
    page(StatusCode::OK, &p)
}

/// `GET /org/{slug}/dashboard/figures`: the fragment (a page of its own without htmx).
#[handler]
pub async fn figures(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(filter): Query<Filter>,
) -> Result<Response, Failure> {
    let (_, access, _) = chrome::organization(&state, req, &slug, "dashboard").await?;
    let slug = access.organization().slug.as_str().to_string();
    if !super::htmx(req) {
        // Without htmx, the figures belong in their page.
        return Ok(crate::error::redirect(&format!(
            "/org/{slug}/dashboard?{}&figures=inline",
            filter.query()
        )));
    }
    // Kept per selection and per what the viewer may do (the empty state offers a connect
    // button to those who may), dropped when the organization's accounts or plan change.
    let can_connect = access
        .require(canopy_tenancy::Action::ConnectCloudAccount)
        .is_ok();
    let key = format!("figures?{}&connect={can_connect}", filter.query());
    let org = access.org_id();
    if let Some(html) = state.fragments.get(org, &key) {
        return Ok(fragment_response(&html));
    }
    let mark = state.fragments.mark();
    let fragment = figures_of(&state, &access, &filter, &slug).await?;
    let Ok(html) = fragment.render() else {
        return Ok(page(StatusCode::OK, &fragment));
    };
    let html: Arc<str> = html.into();
    state.fragments.put(org, key, html.clone(), mark);
    Ok(fragment_response(&html))
}

fn fragment_response(html: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        .body(html.to_string())
}

#[cfg(test)]
mod tests {
    use super::sparkline;

    #[test]
    fn a_sparkline_spans_the_box_and_peaks_at_the_top() {
        assert_eq!(sparkline(&[0.0, 5.0, 10.0]), "0,230 600,120 1200,10");
        assert_eq!(sparkline(&[0.0, 0.0]), "0,230 1200,230");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn a_long_series_is_drawn_in_runs_that_keep_every_spike() {
        let mut day = vec![1.0; 288];
        day[137] = 50.0;
        let points: Vec<(i64, i64)> = sparkline(&day)
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 58, "288 values in runs of 5");
        assert_eq!(points.first().unwrap().0, 0);
        assert_eq!(points.last().unwrap().0, 1200);
        assert_eq!(
            points.iter().filter(|(_, y)| *y == 10).count(),
            1,
            "the spike peaks"
        );
    }
}
