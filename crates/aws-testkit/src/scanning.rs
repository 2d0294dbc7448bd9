//! The calls the detection scanners make, for what moto cannot answer or cannot be made to
//! fail: Security Hub's organization calls (REST-JSON, [`SecurityHubSetup`]), GuardDuty's
//! administrator calls ([`crate::GuardDutySetup`]), CloudWatch
//! `DescribeAlarms` (RPC v2 CBOR, [`AlarmSpec`]) and CloudWatch Logs `DescribeMetricFilters`
//! ([`MetricFilterSpec`]). Every other read of an account or organization scan (CloudTrail,
//! Config) answers "nothing configured", so a scan of many accounts runs end to end
//! for the benchmark. Any call can be made to fail for one account ([`FakeAws::fail_call`],
//! by IAM action name, `cloudwatch:DescribeAlarms`), every call counts by action, and the
//! region of a call is read from its signature's credential scope, as AWS routes it.

use std::collections::HashMap;

use ciborium::Value as Cbor;
use poem::http::StatusCode;
use poem::{Request, Response};
use serde_json::{Value, json};

use super::{FakeAws, Fault, Shared, access_key, cbor_error, fault_answer};
use crate::{guardduty, securityhub};

/// The prefix of CloudWatch's RPC v2 CBOR operation paths.
const CLOUDWATCH_PATH: &str = "/service/GraniteServiceVersion20100801/operation/";

/// A CloudWatch metric alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSpec {
    /// Its name.
    pub name: String,
    /// The metric's namespace (`CISBenchmark`, `CloudTrailMetrics`).
    pub namespace: String,
    /// The metric's name.
    pub metric: String,
    /// SNS topics it notifies (empty: nobody).
    pub actions: Vec<String>,
}

/// A CloudWatch Logs metric filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricFilterSpec {
    /// Its name.
    pub name: String,
    /// The log group it reads (CloudTrail's).
    pub log_group: String,
    /// The filter pattern.
    pub pattern: String,
    /// The metric's namespace.
    pub namespace: String,
    /// The metric it publishes.
    pub metric: String,
}

/// Security Hub as one account's administrator sees it in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityHubSetup {
    /// Standards ARNs, all `READY`.
    pub standards: Vec<String>,
    /// `CENTRAL` or `LOCAL` (organization configuration; `None` when not an administrator).
    pub configuration_type: Option<String>,
    /// Auto-enable for new accounts.
    pub auto_enable: bool,
    /// Finding aggregator ARNs.
    pub aggregators: Vec<String>,
    /// Member accounts, all `Enabled`.
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
struct FaultRule {
    fault: Fault,
    /// Answers still to fail; `None`: every one.
    remaining: Option<u32>,
}

/// What the scanner-facing services hold.
#[derive(Debug, Default)]
pub(crate) struct Scanning {
    /// (account, region) -> alarms.
    alarms: HashMap<(String, String), Vec<AlarmSpec>>,
    /// (account, region) -> metric filters.
    filters: HashMap<(String, String), Vec<MetricFilterSpec>>,
    /// (account, region) -> Security Hub, when enabled.
    pub(crate) hubs: HashMap<(String, String), SecurityHubSetup>,
    /// (management account, region) -> Security Hub administrator.
    pub(crate) hub_admins: HashMap<(String, String), String>,
    /// (account, region) -> GuardDuty detector.
    pub(crate) detectors: HashMap<(String, String), crate::GuardDutySetup>,
    /// (management account, region) -> GuardDuty administrator.
    pub(crate) detector_admins: HashMap<(String, String), String>,
    /// (account, action) -> fault.
    faults: HashMap<(String, String), FaultRule>,
    /// Action -> calls answered (failed ones included).
    calls: HashMap<String, u64>,
}

impl FakeAws {
    fn with_scanning<T>(&self, f: impl FnOnce(&mut Scanning) -> T) -> T {
        f(&mut self.shared.lock().scanning)
    }

    /// Adds a metric alarm to `account` in `region`.
    pub fn put_alarm(&self, account: &str, region: &str, alarm: AlarmSpec) {
        self.with_scanning(|s| {
            s.alarms
                .entry((account.into(), region.into()))
                .or_default()
                .push(alarm)
        });
    }

    /// Adds a metric filter to `account` in `region`.
    pub fn put_metric_filter(&self, account: &str, region: &str, filter: MetricFilterSpec) {
        self.with_scanning(|s| {
            s.filters
                .entry((account.into(), region.into()))
                .or_default()
                .push(filter)
        });
    }

    /// Enables Security Hub in `account` and `region` as described.
    pub fn enable_security_hub(&self, account: &str, region: &str, setup: SecurityHubSetup) {
        self.with_scanning(|s| {
            s.hubs.insert((account.into(), region.into()), setup);
        });
    }

    /// Makes `admin` the Security Hub administrator of `management`'s organization in `region`.
    pub fn set_security_hub_admin(&self, management: &str, region: &str, admin: &str) {
        self.with_scanning(|s| {
            s.hub_admins
                .insert((management.into(), region.into()), admin.into());
        });
    }

    /// Makes every call of `action` (`securityhub:ListOrganizationAdminAccounts`) by
    /// `account` fail with `fault`; `None` heals it.
    pub fn fail_call(&self, account: &str, action: &str, fault: Option<Fault>) {
        self.with_scanning(|s| {
            let key = (account.to_string(), action.to_string());
            match fault {
                Some(fault) => {
                    s.faults.insert(
                        key,
                        FaultRule {
                            fault,
                            remaining: None,
                        },
                    );
                }
                None => {
                    s.faults.remove(&key);
                }
            }
        });
    }

    /// Makes the next `times` calls of `action` by `account` fail with `fault`.
    pub fn fail_call_times(&self, account: &str, action: &str, fault: Fault, times: u32) {
        self.with_scanning(|s| {
            s.faults.insert(
                (account.to_string(), action.to_string()),
                FaultRule {
                    fault,
                    remaining: Some(times),
                },
            );
        });
    }

    /// Calls of `action` answered so far, failed ones included.
    pub fn scan_calls(&self, action: &str) -> u64 {
        self.with_scanning(|s| s.calls.get(action).copied().unwrap_or(0))
    }

    /// Calls of every scanner action answered so far.
    pub fn scan_calls_total(&self) -> u64 {
        self.with_scanning(|s| s.calls.values().sum())
    }
}

/// One scanner call as it arrived.
pub(crate) struct Call {
    pub action: String,
    pub account: String,
    pub region: String,
}

/// The region and service of a SigV4 `Authorization` header's credential scope.
fn scope(req: &Request) -> Option<(String, String)> {
    let auth = req.header("authorization")?;
    let credential = auth.split("Credential=").nth(1)?.split(',').next()?;
    let mut parts = credential.split('/').skip(2);
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header("x-amzn-ErrorType", code)
        .body(json!({ "__type": code, "message": message, "Message": message }).to_string())
}

fn json_ok(content_type: &str, mut body: Value) -> Response {
    // AWS leaves out what it does not send rather than writing null.
    if let Some(map) = body.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    Response::builder()
        .content_type(content_type)
        .body(body.to_string())
}

/// The caller's account, or the answer to a request whose credentials were not issued here.
fn caller(req: &Request, shared: &Shared) -> Result<String, (StatusCode, &'static str)> {
    let key = access_key(req).ok_or((StatusCode::BAD_REQUEST, "MissingAuthenticationToken"))?;
    let state = shared.lock();
    let issued = state
        .credentials
        .get(&key)
        .ok_or((StatusCode::FORBIDDEN, "UnrecognizedClientException"))?;
    if req.header("x-amz-security-token") != Some(issued.session_token.as_str()) {
        return Err((StatusCode::FORBIDDEN, "UnrecognizedClientException"));
    }
    Ok(issued.account.clone())
}

/// Counts the call, waits the injected latency and answers an injected fault, if any.
async fn admit(shared: &Shared, call: &Call) -> Option<Fault> {
    let (latency, fault) = {
        let mut state = shared.lock();
        let account_latency = state
            .accounts
            .get(&call.account)
            .map(|a| a.latency)
            .unwrap_or_default();
        let latency = state.latency + account_latency;
        let s = &mut state.scanning;
        *s.calls.entry(call.action.clone()).or_default() += 1;
        let key = (call.account.clone(), call.action.clone());
        let fault = match s.faults.get_mut(&key) {
            Some(rule) if rule.remaining == Some(0) => None,
            Some(rule) => {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                Some(rule.fault)
            }
            None => None,
        };
        (latency, fault)
    };
    tokio::time::sleep(latency).await;
    fault
}

fn fault_code(fault: Fault, service: &str) -> (StatusCode, &'static str, &'static str) {
    let (status, code, message) = fault_answer(fault);
    let code = match (fault, service) {
        (Fault::AccessDenied, _) => "AccessDeniedException",
        (Fault::Throttling, "securityhub" | "guardduty") => "TooManyRequestsException",
        (Fault::Throttling, _) => "ThrottlingException",
        _ => code,
    };
    let status = match (fault, service) {
        (Fault::Throttling, "securityhub" | "guardduty") => StatusCode::TOO_MANY_REQUESTS,
        _ => status,
    };
    (status, code, message)
}

/// Answers one JSON 1.1 request of CloudTrail, Config or CloudWatch Logs; `None` when the
/// target is none of theirs.
pub(crate) async fn answer_json(req: &Request, shared: &Shared, body: &str) -> Option<Response> {
    let target = req.header("x-amz-target")?;
    let (service, operation) = target.split_once('.')?;
    let service = match service {
        "CloudTrail_20131101" => "cloudtrail",
        "StarlingDoveService" => "config",
        "Logs_20140328" => "logs",
        _ => return None,
    };
    let content_type = "application/x-amz-json-1.1";
    let account = match caller(req, shared) {
        Ok(a) => a,
        Err((status, code)) => return Some(json_error(status, code, "invalid token")),
    };
    let region = scope(req).map(|s| s.0).unwrap_or_default();
    let call = Call {
        action: format!("{service}:{operation}"),
        account,
        region,
    };
    if let Some(fault) = admit(shared, &call).await {
        let (status, code, message) = fault_code(fault, service);
        return Some(json_error(status, code, message));
    }
    let input: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let key = (call.account.clone(), call.region.clone());
    let answer = match call.action.as_str() {
        "cloudtrail:DescribeTrails" => json!({ "trailList": [] }),
        "config:DescribeConfigurationRecorders" => json!({ "ConfigurationRecorders": [] }),
        "config:DescribeConfigurationRecorderStatus" => {
            json!({ "ConfigurationRecordersStatus": [] })
        }
        "config:DescribeConfigRules" => json!({ "ConfigRules": [] }),
        "config:DescribeConfigurationAggregators" => json!({ "ConfigurationAggregators": [] }),
        "logs:DescribeMetricFilters" => {
            let filters = shared
                .lock()
                .scanning
                .filters
                .get(&key)
                .cloned()
                .unwrap_or_default();
            let (items, next) = super::organizations::page(
                &filters,
                input.get("nextToken").and_then(Value::as_str),
                50,
            );
            json!({
                "metricFilters": items.iter().map(|f| json!({
                    "filterName": f.name,
                    "filterPattern": f.pattern,
                    "logGroupName": f.log_group,
                    "creationTime": 1_700_000_000_000_i64,
                    "metricTransformations": [{
                        "metricName": f.metric,
                        "metricNamespace": f.namespace,
                        "metricValue": "1",
                    }],
                })).collect::<Vec<_>>(),
                "nextToken": next,
            })
        }
        other => {
            return Some(json_error(
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                &format!("{other} is not served here"),
            ));
        }
    };
    Some(json_ok(content_type, answer))
}

/// REST-JSON (GuardDuty, Security Hub) and RPC v2 CBOR (CloudWatch) requests, told apart by
/// the service their signature names.
pub(crate) async fn rest(req: &Request, shared: &Shared) -> Response {
    let path = req.uri().path().to_string();
    let (region, service) = scope(req).unwrap_or_default();
    let account = match caller(req, shared) {
        Ok(a) => a,
        Err((status, code)) if path.starts_with(CLOUDWATCH_PATH) => {
            return cbor_error(status, code, "invalid token");
        }
        Err((status, code)) => return json_error(status, code, "invalid token"),
    };
    if let Some(operation) = path.strip_prefix(CLOUDWATCH_PATH) {
        let call = Call {
            action: format!("cloudwatch:{operation}"),
            account,
            region,
        };
        if let Some(fault) = admit(shared, &call).await {
            let (status, code, message) = fault_code(fault, "cloudwatch");
            return cbor_error(status, code, message);
        }
        return describe_alarms(shared, &call);
    }
    let operation = match service.as_str() {
        "guardduty" => guardduty::operation(req.method(), &path),
        "securityhub" => securityhub::operation(req.method(), &path),
        _ => None,
    };
    let Some(operation) = operation else {
        return json_error(StatusCode::NOT_FOUND, "UnknownOperation", &path);
    };
    let call = Call {
        action: format!("{service}:{operation}"),
        account,
        region,
    };
    if let Some(fault) = admit(shared, &call).await {
        let (status, code, message) = fault_code(fault, &service);
        return json_error(status, code, message);
    }
    let answer = if service == "guardduty" {
        guardduty::answer(shared, &call, &path)
    } else {
        securityhub::answer(shared, &call)
    };
    match answer {
        Ok(body) => json_ok("application/json", body),
        Err((status, code, message)) => json_error(status, code, &message),
    }
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_string())
}

/// `DescribeAlarms` in CBOR: every metric alarm of the caller in the call's region.
fn describe_alarms(shared: &Shared, call: &Call) -> Response {
    if call.action != "cloudwatch:DescribeAlarms" {
        return cbor_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "only DescribeAlarms and GetMetricData are served here",
        );
    }
    let alarms = shared
        .lock()
        .scanning
        .alarms
        .get(&(call.account.clone(), call.region.clone()))
        .cloned()
        .unwrap_or_default();
    let listed: Vec<Cbor> = alarms
        .iter()
        .map(|a| {
            Cbor::Map(vec![
                (text("AlarmName"), text(&a.name)),
                (
                    text("AlarmArn"),
                    text(&format!(
                        "arn:aws:cloudwatch:{}:{}:alarm:{}",
                        call.region, call.account, a.name
                    )),
                ),
                (text("ActionsEnabled"), Cbor::Bool(true)),
                (
                    text("AlarmActions"),
                    Cbor::Array(a.actions.iter().map(|x| text(x)).collect()),
                ),
                (text("MetricName"), text(&a.metric)),
                (text("Namespace"), text(&a.namespace)),
                (text("StateValue"), text("OK")),
            ])
        })
        .collect();
    let body = Cbor::Map(vec![
        (text("MetricAlarms"), Cbor::Array(listed)),
        (text("CompositeAlarms"), Cbor::Array(Vec::new())),
    ]);
    super::cbor_response(StatusCode::OK, &body)
}
