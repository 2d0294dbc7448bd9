//! A local AWS for tests and benchmarks: STS `AssumeRole` (query protocol, XML), the Organizations
//! discovery calls (JSON 1.1, [`OrganizationsCalls`]), CloudWatch
//! `GetMetricData` (Smithy RPC v2 CBOR, which the current aws-sdk-cloudwatch speaks and moto
//! does not) and the detection scanners' calls (`scanning`: Security Hub, CloudWatch alarms,
//! CloudWatch Logs metric filters, and empty answers for the rest), on one ephemeral port, so
//! the real SDK runs against it with `endpoint_url`.
//!
//! It keeps metric datapoints per account, scopes every credential it issues to the account
//! whose role was assumed (as AWS does), checks the External ID when told to, pages with
//! `NextToken`, and can inject latency and per-account failures. It counts every call and the
//! most requests it held at once ([`FakeAws::max_in_flight`]).
//!
//! Test support only: no production crate depends on it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ciborium::tag::Required;
use poem::http::{Method, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Request, Response, Route, Server, handler};
use serde::{Deserialize, Serialize};

mod guardduty;
mod organizations;
mod scanning;
mod securityhub;
mod sts;
pub use guardduty::GuardDutySetup;
pub use organizations::OrganizationsCalls;
pub use scanning::{AlarmSpec, MetricFilterSpec, SecurityHubSetup};

/// The path of CloudWatch's `GetMetricData` under RPC v2 CBOR.
pub const GET_METRIC_DATA_PATH: &str =
    "/service/GraniteServiceVersion20100801/operation/GetMetricData";

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 403 `AccessDenied` (a role that does not trust Canopy, a wrong External ID).
    AccessDenied,
    /// 400 `Throttling`.
    Throttling,
    /// 500 `InternalFailure`.
    ServerError,
}

/// Calls answered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Calls {
    /// STS `AssumeRole` requests.
    pub assume_role: u64,
    /// CloudWatch `GetMetricData` requests (each page counts).
    pub get_metric_data: u64,
}

#[derive(Debug, Default)]
struct Account {
    /// Metric name -> timestamp (epoch seconds) -> summed value.
    metrics: HashMap<String, BTreeMap<i64, f64>>,
    assume_fault: Option<Fault>,
    metrics_fault: Option<Fault>,
    external_id: Option<String>,
    latency: Duration,
    calls: Calls,
}

#[derive(Debug, Clone)]
struct Issued {
    account: String,
    session_token: String,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
struct State {
    accounts: HashMap<String, Account>,
    credentials: HashMap<String, Issued>,
    latency: Duration,
    credential_ttl: Duration,
    page_size: usize,
    calls: Calls,
    organization: Option<organizations::Organization>,
    scanning: scanning::Scanning,
    /// Requests being answered, and the most at once.
    in_flight: u64,
    max_in_flight: u64,
    /// When each request arrived, in order (what a test of "no call after a cancel" reads).
    arrivals: Vec<std::time::Instant>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    serial: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running local AWS. Dropping it does not stop the server; it ends with the test runtime.
#[derive(Debug, Clone)]
pub struct FakeAws {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeAws {
    /// Starts on an ephemeral local port.
    pub async fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                accounts: HashMap::new(),
                credentials: HashMap::new(),
                latency: Duration::ZERO,
                credential_ttl: Duration::from_secs(3600),
                page_size: 100_800,
                calls: Calls::default(),
                organization: None,
                scanning: scanning::Scanning::default(),
                in_flight: 0,
                max_in_flight: 0,
                arrivals: Vec::new(),
            }),
            serial: AtomicU64::new(1),
        });
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| std::io::Error::other("listener has no socket address"))?;
        let tracked = shared.clone();
        // One entry point routing by path itself: a wildcard route would also take `/`.
        let app = Route::new()
            .at("/*path", dispatch)
            .data(shared.clone())
            .around(move |endpoint, req| {
                let shared = tracked.clone();
                async move {
                    {
                        let mut state = shared.lock();
                        state.in_flight += 1;
                        state.max_in_flight = state.max_in_flight.max(state.in_flight);
                        state.arrivals.push(std::time::Instant::now());
                    }
                    let answer = endpoint.call(req).await;
                    shared.lock().in_flight -= 1;
                    answer
                }
            });
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Ok(Self { addr, shared })
    }

    /// When each request so far arrived (every service), oldest first.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.shared.lock().arrivals.clone()
    }

    /// The endpoint URL to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with_account<T>(&self, account: &str, f: impl FnOnce(&mut Account) -> T) -> T {
        let mut state = self.shared.lock();
        f(state.accounts.entry(account.to_string()).or_default())
    }

    /// Adds `value` to `metric` of `account` at `at` (several puts at one instant add up).
    pub fn put_metric(&self, account: &str, metric: &str, at: DateTime<Utc>, value: f64) {
        self.with_account(account, |a| {
            *a.metrics
                .entry(metric.to_string())
                .or_default()
                .entry(at.timestamp())
                .or_default() += value;
        });
    }

    /// Delay before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Extra delay before every answer about `account`.
    pub fn set_account_latency(&self, account: &str, latency: Duration) {
        self.with_account(account, |a| a.latency = latency);
    }

    /// Makes `AssumeRole` into `account` fail (`None` heals it).
    pub fn fail_assume_role(&self, account: &str, fault: Option<Fault>) {
        self.with_account(account, |a| a.assume_fault = fault);
    }

    /// Makes `GetMetricData` in `account` fail (`None` heals it).
    pub fn fail_metrics(&self, account: &str, fault: Option<Fault>) {
        self.with_account(account, |a| a.metrics_fault = fault);
    }

    /// Refuses `AssumeRole` into `account` unless this External ID is presented.
    pub fn require_external_id(&self, account: &str, external_id: &str) {
        self.with_account(account, |a| a.external_id = Some(external_id.to_string()));
    }

    /// How long issued credentials last (default one hour).
    pub fn set_credential_ttl(&self, ttl: Duration) {
        self.shared.lock().credential_ttl = ttl;
    }

    /// Datapoints per `GetMetricData` page (default CloudWatch's 100,800).
    pub fn set_page_size(&self, datapoints: usize) {
        self.shared.lock().page_size = datapoints.max(1);
    }

    /// Every call so far.
    pub fn calls(&self) -> Calls {
        self.shared.lock().calls
    }

    /// Calls about one account so far.
    pub fn calls_for(&self, account: &str) -> Calls {
        self.shared
            .lock()
            .accounts
            .get(account)
            .map(|a| a.calls)
            .unwrap_or_default()
    }

    /// The most requests of any kind answered at once since the start or the last
    /// [`FakeAws::reset_max_in_flight`] (what a fan-out's bound let through).
    pub fn max_in_flight(&self) -> u64 {
        self.shared.lock().max_in_flight
    }

    /// Starts counting [`FakeAws::max_in_flight`] afresh.
    pub fn reset_max_in_flight(&self) {
        let mut state = self.shared.lock();
        state.max_in_flight = state.in_flight;
    }

    /// Zeroes the call counts.
    pub fn reset_calls(&self) {
        let mut state = self.shared.lock();
        state.calls = Calls::default();
        for a in state.accounts.values_mut() {
            a.calls = Calls::default();
        }
    }
}

fn fault_answer(fault: Fault) -> (StatusCode, &'static str, &'static str) {
    match fault {
        Fault::AccessDenied => (StatusCode::FORBIDDEN, "AccessDenied", "not authorized"),
        Fault::Throttling => (StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "internal failure",
        ),
    }
}

/// Every request: `/` (STS and the JSON 1.1 services), CloudWatch's `GetMetricData`, and the
/// REST and CBOR calls of the scanners.
#[handler]
async fn dispatch(req: &Request, shared: Data<&Arc<Shared>>, body: Vec<u8>) -> Response {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/") => {
            root(req, &shared, String::from_utf8_lossy(&body).into_owned()).await
        }
        (&Method::POST, GET_METRIC_DATA_PATH) => get_metric_data(req, &shared, body).await,
        _ => scanning::rest(req, &shared).await,
    }
}

/// STS (form-encoded), Organizations and the scanners' JSON 1.1 services (told apart by
/// `X-Amz-Target`) share `/`.
async fn root(req: &Request, shared: &Shared, body: String) -> Response {
    if let Some(response) = organizations::answer(req, shared, &body).await {
        return response;
    }
    match scanning::answer_json(req, shared, &body).await {
        Some(response) => response,
        None => sts::sts(shared, body).await,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMetricDataInput {
    metric_data_queries: Vec<MetricDataQuery>,
    start_time: f64,
    end_time: f64,
    next_token: Option<String>,
    max_datapoints: Option<i64>,
    scan_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDataQuery {
    id: String,
    metric_stat: Option<MetricStat>,
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricStat {
    metric: Metric,
    period: i64,
    stat: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    namespace: Option<String>,
    metric_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetMetricDataOutput {
    metric_data_results: Vec<MetricDataResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDataResult {
    id: String,
    label: String,
    timestamps: Vec<Required<i64, 1>>,
    values: Vec<f64>,
    status_code: &'static str,
}

#[derive(Debug, Serialize)]
struct CborError {
    #[serde(rename = "__type")]
    kind: String,
    message: String,
}

fn cbor_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut bytes = Vec::new();
    if ciborium::into_writer(body, &mut bytes).is_err() {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .finish();
    }
    Response::builder()
        .status(status)
        .header("content-type", "application/cbor")
        .header("smithy-protocol", "rpc-v2-cbor")
        .body(bytes)
}

fn cbor_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = cbor_response(
        status,
        &CborError {
            kind: format!("com.amazonaws.cloudwatch#{code}"),
            message: message.to_string(),
        },
    );
    // CloudWatch is awsQuery-compatible: the query error code travels in this header.
    if let Ok(v) = format!("{code};Sender").parse() {
        resp.headers_mut().insert("x-amzn-query-error", v);
    }
    resp
}

/// The access key of a SigV4 `Authorization` header.
fn access_key(req: &Request) -> Option<String> {
    let auth = req.header("authorization")?;
    let credential = auth.split("Credential=").nth(1)?;
    credential.split('/').next().map(str::to_string)
}

fn aggregate(stat: &str, values: &[f64]) -> f64 {
    match stat {
        "Average" => values.iter().sum::<f64>() / values.len().max(1) as f64,
        "Maximum" => values.iter().copied().fold(f64::MIN, f64::max),
        "Minimum" => values.iter().copied().fold(f64::MAX, f64::min),
        "SampleCount" => values.len() as f64,
        _ => values.iter().sum(),
    }
}

async fn get_metric_data(req: &Request, shared: &Shared, body: Vec<u8>) -> Response {
    let Some(key) = access_key(req) else {
        return cbor_error(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationToken",
            "no credentials",
        );
    };
    let issued = shared.lock().credentials.get(&key).cloned();
    let Some(issued) = issued else {
        return cbor_error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    };
    if req.header("x-amz-security-token") != Some(issued.session_token.as_str()) {
        return cbor_error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "session token does not match",
        );
    }
    if issued.expires_at <= Utc::now() {
        return cbor_error(
            StatusCode::FORBIDDEN,
            "ExpiredToken",
            "The security token included in the request is expired",
        );
    }
    let input: GetMetricDataInput = match ciborium::from_reader(body.as_slice()) {
        Ok(input) => input,
        Err(e) => {
            return cbor_error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &e.to_string(),
            );
        }
    };
    let (latency, fault, page_size) = {
        let mut state = shared.lock();
        state.calls.get_metric_data += 1;
        let (latency, page_size) = (state.latency, state.page_size);
        let a = state.accounts.entry(issued.account.clone()).or_default();
        a.calls.get_metric_data += 1;
        (latency + a.latency, a.metrics_fault, page_size)
    };
    tokio::time::sleep(latency).await;
    if let Some(fault) = fault {
        let (status, code, message) = fault_answer(fault);
        return cbor_error(status, code, message);
    }
    let page_size = input
        .max_datapoints
        .and_then(|m| usize::try_from(m).ok())
        .map_or(page_size, |m| m.min(page_size))
        .max(1);
    let (start, end) = (input.start_time as i64, input.end_time as i64);
    let ascending = input.scan_by.as_deref() == Some("TimestampAscending");
    // Every (query, timestamp, value) in answer order; a page is a slice of it.
    let mut answers: Vec<(usize, i64, f64)> = vec![];
    {
        let state = shared.lock();
        let account = state.accounts.get(&issued.account);
        for (qi, q) in input.metric_data_queries.iter().enumerate() {
            let Some(stat) = &q.metric_stat else { continue };
            if stat.metric.namespace.as_deref() != Some("AWS/SES") || stat.period <= 0 {
                continue;
            }
            let name = stat.metric.metric_name.clone().unwrap_or_default();
            let Some(points) = account.and_then(|a| a.metrics.get(&name)) else {
                continue;
            };
            // Points are in time order, so each bucket's points are adjacent.
            let mut series: Vec<(usize, i64, f64)> = vec![];
            let mut values: Vec<f64> = vec![];
            let mut current: Option<i64> = None;
            for (t, v) in points.range(start..end) {
                let bucket = start + (t - start).div_euclid(stat.period) * stat.period;
                if current.is_some_and(|c| c != bucket)
                    && let Some(c) = current
                {
                    series.push((qi, c, aggregate(&stat.stat, &values)));
                    values.clear();
                }
                current = Some(bucket);
                values.push(*v);
            }
            if let Some(c) = current {
                series.push((qi, c, aggregate(&stat.stat, &values)));
            }
            if !ascending {
                series.reverse();
            }
            answers.extend(series);
        }
    }
    let offset: usize = input
        .next_token
        .as_deref()
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page_end = (offset + page_size).min(answers.len());
    let more = page_end < answers.len();
    let mut results: Vec<MetricDataResult> = input
        .metric_data_queries
        .iter()
        .map(|q| MetricDataResult {
            id: q.id.clone(),
            label: q.label.clone().unwrap_or_else(|| {
                q.metric_stat
                    .as_ref()
                    .and_then(|s| s.metric.metric_name.clone())
                    .unwrap_or_default()
            }),
            timestamps: vec![],
            values: vec![],
            status_code: "Complete",
        })
        .collect();
    for &(qi, t, v) in answers.get(offset..page_end).unwrap_or_default() {
        if let Some(r) = results.get_mut(qi) {
            r.timestamps.push(Required(t));
            r.values.push(v);
        }
    }
    if more {
        for r in &mut results {
            r.status_code = "PartialData";
        }
    }
    cbor_response(
        StatusCode::OK,
        &GetMetricDataOutput {
            metric_data_results: results,
            next_token: more.then(|| format!("page-{page_end}")),
        },
    )
}
