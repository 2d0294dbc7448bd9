//! SES metrics across an organization's AWS accounts, and the dashboard that shows them.

use canopy_cloud_org::CloudAccount;
use canopy_kernel::ValidationErrors;
use canopy_metrics::{
    AccountFailure, Change, Dashboard, MetricsQuery, MetricsView, Rates, SesMetric, Totals, Window,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::cloud_accounts::CloudAccountDto;
use super::organizations::OrganizationDto;
use super::problem::ApiError;
use super::wire::{EnvironmentDto, IdText, OrgText, RangeDto};
use super::{ApiTags, BearerAuth};
use crate::state::AppState;

/// Metrics endpoints.
pub struct MetricsApi;

/// Line colours, one per account in the order of the breakdown.
const PALETTE: [&str; 10] = [
    "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
    "#4b5563", "#65a30d",
];

/// One value per SES metric.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MetricValuesDto {
    /// Sent.
    pub send: f64,
    /// Delivered.
    pub delivery: f64,
    /// Bounced.
    pub bounce: f64,
    /// Complaints.
    pub complaint: f64,
    /// Rejected.
    pub reject: f64,
}

impl From<&Totals> for MetricValuesDto {
    fn from(t: &Totals) -> Self {
        Self {
            send: t.get(SesMetric::Send),
            delivery: t.get(SesMetric::Delivery),
            bounce: t.get(SesMetric::Bounce),
            complaint: t.get(SesMetric::Complaint),
            reject: t.get(SesMetric::Reject),
        }
    }
}

/// An optional value per SES metric (a share, a change): absent when there is nothing to
/// compare with.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OptionalValuesDto {
    /// Sent.
    pub send: Option<f64>,
    /// Delivered.
    pub delivery: Option<f64>,
    /// Bounced.
    pub bounce: Option<f64>,
    /// Complaints.
    pub complaint: Option<f64>,
    /// Rejected.
    pub reject: Option<f64>,
}

impl From<[Option<f64>; 5]> for OptionalValuesDto {
    fn from(v: [Option<f64>; 5]) -> Self {
        let [send, delivery, bounce, complaint, reject] = v;
        Self {
            send,
            delivery,
            bounce,
            complaint,
            reject,
        }
    }
}

/// Rates in percent of sends (or, in a change, percentage points); absent when nothing was
/// sent.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct RatesDto {
    /// Delivered / sent.
    pub delivery_rate: Option<f64>,
    /// Bounced / sent.
    pub bounce_rate: Option<f64>,
    /// Complaints / sent.
    pub complaint_rate: Option<f64>,
    /// Rejected / sent.
    pub reject_rate: Option<f64>,
}

impl From<&Rates> for RatesDto {
    fn from(r: &Rates) -> Self {
        Self {
            delivery_rate: r.delivery,
            bounce_rate: r.bounce,
            complaint_rate: r.complaint,
            reject_rate: r.reject,
        }
    }
}

/// Change against the previous period of the same length.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChangeDto {
    /// Percent change of each total.
    pub totals: OptionalValuesDto,
    /// Percentage-point change of each rate.
    pub rates: RatesDto,
}

impl From<&Change> for ChangeDto {
    fn from(c: &Change) -> Self {
        Self {
            totals: c.totals.into(),
            rates: (&c.rates).into(),
        }
    }
}

/// One series per SES metric, one value per bucket.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SeriesDto {
    /// Sent.
    pub send: Vec<f64>,
    /// Delivered.
    pub delivery: Vec<f64>,
    /// Bounced.
    pub bounce: Vec<f64>,
    /// Complaints.
    pub complaint: Vec<f64>,
    /// Rejected.
    pub reject: Vec<f64>,
}

impl SeriesDto {
    fn of<'a>(series: impl Fn(SesMetric) -> &'a [f64]) -> Self {
        Self {
            send: series(SesMetric::Send).to_vec(),
            delivery: series(SesMetric::Delivery).to_vec(),
            bounce: series(SesMetric::Bounce).to_vec(),
            complaint: series(SesMetric::Complaint).to_vec(),
            reject: series(SesMetric::Reject).to_vec(),
        }
    }
}

/// A time window cut into buckets.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WindowDto {
    /// First bucket's start.
    pub start: DateTime<Utc>,
    /// Last bucket's end.
    pub end: DateTime<Utc>,
    /// Bucket length, seconds.
    pub period_seconds: i64,
    /// Number of buckets.
    pub buckets: u32,
}

impl From<&Window> for WindowDto {
    fn from(w: &Window) -> Self {
        Self {
            start: w.start,
            end: w.end(),
            period_seconds: w.period,
            buckets: w.buckets,
        }
    }
}

/// One account's part of the aggregate.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AccountMetricsDto {
    /// Canopy's id of the account.
    pub id: Uuid,
    /// The 12-digit AWS account id.
    pub account_id: String,
    /// Alias, or the account id.
    pub display_name: String,
    /// production, staging or development.
    pub environment: Option<String>,
    /// Line colour for this account's series.
    pub color: String,
    /// Its totals.
    pub totals: MetricValuesDto,
    /// Its share of each organization total, percent ("Production: 45,000 (90%)").
    pub shares: OptionalValuesDto,
    /// Its rates.
    pub rates: RatesDto,
    /// Its change against the previous period.
    pub change: Option<ChangeDto>,
    /// Its series.
    pub series: SeriesDto,
}

/// An account that did not answer.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AccountErrorDto {
    /// Canopy's id of the account.
    pub id: Uuid,
    /// The 12-digit AWS account id.
    pub account_id: String,
    /// Alias, or the account id.
    pub display_name: String,
    /// access_denied, role_not_found, throttled, network, timeout, canopy_credentials (Canopy itself has no AWS credentials) or other.
    pub error: String,
    /// What AWS said.
    pub message: String,
    /// What to do about it.
    pub advice: String,
}

/// SES metrics across the selected accounts.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct MetricsDto {
    /// The window.
    pub window: WindowDto,
    /// The previous window compared with (absent when the plan's history does not reach it).
    pub previous_window: Option<WindowDto>,
    /// Totals across the accounts that answered.
    pub totals: MetricValuesDto,
    /// Rates across them.
    pub rates: RatesDto,
    /// Totals of the previous window.
    pub previous_totals: Option<MetricValuesDto>,
    /// Change against the previous window.
    pub change: Option<ChangeDto>,
    /// Start of every bucket.
    pub timestamps: Vec<DateTime<Utc>>,
    /// Combined series.
    pub series: SeriesDto,
    /// Per-account breakdown with shares, rates and series.
    pub accounts: Vec<AccountMetricsDto>,
    /// Accounts that did not answer, with a classified error.
    pub errors: Vec<AccountErrorDto>,
    /// Accounts selected.
    pub accounts_queried: usize,
    /// Accounts that answered.
    pub accounts_answered: usize,
    /// When this was computed.
    pub generated_at: DateTime<Utc>,
}

fn display_name(a: &CloudAccount) -> String {
    a.settings
        .alias
        .clone()
        .unwrap_or_else(|| a.identity.account_key().to_string())
}

fn error_dto(f: &AccountFailure) -> AccountErrorDto {
    AccountErrorDto {
        id: f.account.id.as_uuid(),
        account_id: f.account.identity.account_key().to_string(),
        display_name: display_name(&f.account),
        error: f.failure.kind.as_str().to_string(),
        message: f.failure.message.clone(),
        advice: f
            .failure
            .kind
            .advice_for(f.account.identity.provider())
            .to_string(),
    }
}

impl From<&MetricsView> for MetricsDto {
    fn from(v: &MetricsView) -> Self {
        let r = &v.report;
        let accounts = r
            .accounts
            .iter()
            .filter_map(|part| {
                let position = v.accounts.iter().position(|a| a.id == part.account)?;
                let account = &v.accounts[position];
                Some(AccountMetricsDto {
                    id: account.id.as_uuid(),
                    account_id: account.identity.account_key().to_string(),
                    display_name: display_name(account),
                    environment: account.settings.environment.map(|e| e.as_str().to_string()),
                    color: PALETTE[position % PALETTE.len()].to_string(),
                    totals: (&part.totals).into(),
                    shares: part.shares.into(),
                    rates: (&part.rates).into(),
                    change: part.change.as_ref().map(Into::into),
                    series: SeriesDto::of(|m| part.series(m)),
                })
            })
            .collect::<Vec<_>>();
        Self {
            window: (&r.window).into(),
            previous_window: r.previous_window.as_ref().map(Into::into),
            totals: (&r.totals).into(),
            rates: (&r.rates).into(),
            previous_totals: r.previous_totals.as_ref().map(Into::into),
            change: r.change.as_ref().map(Into::into),
            timestamps: r.window.timestamps(),
            series: SeriesDto::of(|m| &r.series[m.index()]),
            accounts_answered: accounts.len(),
            accounts,
            errors: v.failures.iter().map(error_dto).collect(),
            accounts_queried: v.accounts.len(),
            generated_at: v.generated_at,
        }
    }
}

/// The whole dashboard in one call.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DashboardDto {
    /// The organization.
    pub organization: OrganizationDto,
    /// Every cloud account, with status and environment, for the account filter.
    pub accounts: Vec<CloudAccountDto>,
    /// Overview numbers, breakdown, chart series and per-account errors of the selection.
    pub metrics: MetricsDto,
}

/// Reads the filters both operations share: a preset `range` (default 24h) or an explicit
/// `start` and `end` (RFC 3339), accounts by id (repeated or comma-separated) and an
/// environment.
fn filters(
    range: Query<Option<RangeDto>>,
    start: Query<Option<DateTime<Utc>>>,
    end: Query<Option<DateTime<Utc>>>,
    account: Query<Option<Vec<IdText>>>,
    environment: Query<Option<EnvironmentDto>>,
) -> Result<MetricsQuery, ValidationErrors> {
    let accounts: Vec<String> = account
        .0
        .unwrap_or_default()
        .into_iter()
        .map(IdText::into_string)
        .collect();
    MetricsQuery::parse(
        range.0.map(RangeDto::as_str),
        start.0.map(|t| t.to_rfc3339()).as_deref(),
        end.0.map(|t| t.to_rfc3339()).as_deref(),
        &accounts,
        environment.0.map(EnvironmentDto::as_str),
    )
}

#[OpenApi(tag = "ApiTags::Metrics")]
impl MetricsApi {
    /// SES metrics across the organization's AWS accounts (any member): totals, per-account
    /// breakdown with shares, rates, change against the previous period, and series
    /// aligned to period buckets. Accounts that do not answer are listed in `errors`; the
    /// others' data still comes back. A range beyond the plan's history is refused with
    /// 402 `plan_limit`.
    #[oai(
        path = "/organizations/:org/metrics",
        method = "get",
        operation_id = "getMetrics"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn metrics(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        /// `1h`, `24h` (default), `7d` or `30d`.
        range: Query<Option<RangeDto>>,
        /// Explicit start (RFC 3339), with `end`.
        start: Query<Option<DateTime<Utc>>>,
        /// Explicit end (RFC 3339), with `start`.
        end: Query<Option<DateTime<Utc>>>,
        /// Only these accounts (repeat the parameter, one id each).
        #[oai(validator(max_items = 500))]
        account: Query<Option<Vec<IdText>>>,
        /// Only accounts of this environment.
        environment: Query<Option<EnvironmentDto>>,
    ) -> Result<Json<MetricsDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let query = filters(range, start, end, account, environment)?;
        let view = state.metrics.metrics(&access, &query).await?;
        Ok(Json((&view).into()))
    }

    /// The dashboard in one call (any member): the organization, every account with status
    /// and environment badges, and the metrics of the selection (same filters as
    /// `getMetrics`).
    #[oai(
        path = "/organizations/:org/dashboard",
        method = "get",
        operation_id = "getDashboard"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn dashboard(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        org: Path<OrgText>,
        /// `1h`, `24h` (default), `7d` or `30d`.
        range: Query<Option<RangeDto>>,
        /// Explicit start (RFC 3339), with `end`.
        start: Query<Option<DateTime<Utc>>>,
        /// Explicit end (RFC 3339), with `start`.
        end: Query<Option<DateTime<Utc>>>,
        /// Only these accounts (repeat the parameter, one id each).
        #[oai(validator(max_items = 500))]
        account: Query<Option<Vec<IdText>>>,
        /// Only accounts of this environment.
        environment: Query<Option<EnvironmentDto>>,
    ) -> Result<Json<DashboardDto>, ApiError> {
        let access = auth.access(&state, &org.0).await?;
        let query = filters(range, start, end, account, environment)?;
        let Dashboard {
            organization,
            accounts,
            metrics,
        } = state.metrics.dashboard(&access, &query).await?;
        Ok(Json(DashboardDto {
            organization: organization.into(),
            accounts: accounts.into_iter().map(Into::into).collect(),
            metrics: (&metrics).into(),
        }))
    }
}
