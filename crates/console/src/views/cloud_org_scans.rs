//! A cloud organization's scans and its coverage over time: every job run on it (discovery,
//! syncs, connects, scans) with outcome and duration, "scan now" (the organization's own
//! controls, then every connected member) followed live, one scan's per-scanner and
//! per-account results, and the coverage trend over as much history as the plan keeps.

use askama::Template;
use canopy_billing::plan::{Feature, least_tier_with};
use canopy_cloud_org::organization::service::{CONNECT_KIND, DISCOVER_KIND};
use canopy_cloud_org::organization::{CloudOrganization, CloudOrganizationId};
use canopy_coverage::snapshot::HistoryOf;
use canopy_detection::scan::{SCAN_MEMBERS_KIND, SCAN_ORGANIZATION_KIND};
use canopy_detection::service::DetectionError;
use canopy_jobs::{Job, JobFilter, JobId, JobStatus};
use canopy_kernel::PageRequest;
use canopy_tenancy::Action;
use canopy_tenancy::service::OrgAccess;
use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::cloud_org_members::TokenForm;
use super::cloud_orgs::{Head, coverage_failure, failure, head};
use super::trend::{self, Trend};
use super::{check_form, id_of};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;

/// Jobs per page of the history.
const PER_PAGE: u32 = 25;

/// One job in the history, or the head of a scan's page.
struct JobRow {
    id: String,
    what: &'static str,
    href: String,
    status: &'static str,
    status_class: &'static str,
    finished: bool,
    queued: String,
    queued_iso: String,
    duration: String,
    /// Where it stands while running (`accounts 3 of 13`), or what it found once done.
    summary: String,
    /// Percent done, when the total is known.
    value: Option<u32>,
}

/// How one scanner did in an organization scan.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScannerResult {
    source: String,
    #[serde(default)]
    found: u32,
    #[serde(default)]
    degraded: u32,
    #[serde(default)]
    gone: u32,
    error: Option<String>,
    advice: Option<String>,
    #[serde(default)]
    calls: u32,
}

/// How one account did in a members scan.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountResult {
    cloud_account_id: Uuid,
    account: String,
    #[serde(default)]
    found: u32,
    #[serde(default)]
    errors: u32,
    #[serde(default)]
    sources: Vec<ScannerResult>,
}

impl AccountResult {
    /// The scanners that could not read, in words.
    fn failed(&self) -> String {
        self.sources
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.source)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn what(kind: &str) -> &'static str {
    match kind {
        SCAN_ORGANIZATION_KIND => "Organization controls scan",
        SCAN_MEMBERS_KIND => "Member accounts scan",
        DISCOVER_KIND => "Discovery / sync",
        CONNECT_KIND => "Connect accounts",
        _ => "Job",
    }
}

fn status_class(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Succeeded => "active",
        JobStatus::Queued | JobStatus::Running => "pending",
        JobStatus::Failed => "error",
        JobStatus::Cancelled => "inactive",
    }
}

fn duration(job: &Job, now: DateTime<Utc>) -> String {
    let Some(start) = job.started_at else {
        return "not started".into();
    };
    let secs = (job.finished_at.unwrap_or(now) - start).num_milliseconds() as f64 / 1000.0;
    let words = if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{} min {} s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    };
    if job.finished_at.is_some() {
        words
    } else {
        format!("{words} so far")
    }
}

fn number(job: &Job, field: &str) -> Option<u64> {
    job.result.as_ref()?.get(field)?.as_u64()
}

fn scanners(job: &Job) -> Vec<ScannerResult> {
    job.result
        .as_ref()
        .and_then(|r| r.get("sources"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

fn accounts(job: &Job) -> Vec<AccountResult> {
    job.result
        .as_ref()
        .and_then(|r| r.get("perAccount"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

/// What a finished job produced, or where a running one stands, in one line.
fn summary(job: &Job) -> String {
    match job.status {
        JobStatus::Queued => "waiting for a worker".into(),
        JobStatus::Running => {
            let p = &job.progress;
            match p.total {
                Some(t) => format!("{} {} of {t}", p.phase, p.done),
                None => format!("{} {}", p.phase, p.done),
            }
        }
        JobStatus::Failed => job.error.clone().unwrap_or_else(|| "failed".into()),
        JobStatus::Cancelled => "cancelled".into(),
        JobStatus::Succeeded => match job.kind.as_str() {
            SCAN_ORGANIZATION_KIND => {
                let s = scanners(job);
                let found: u32 = s.iter().map(|x| x.found).sum();
                let failed = s.iter().filter(|x| x.error.is_some()).count();
                let mut out = format!("{found} controls found by {} scanners", s.len());
                if failed > 0 {
                    out.push_str(&format!("; {failed} could not read"));
                }
                out
            }
            SCAN_MEMBERS_KIND => {
                let mut out = format!(
                    "{} accounts scanned, {} controls found",
                    number(job, "accounts").unwrap_or(0),
                    number(job, "found").unwrap_or(0)
                );
                let failed = number(job, "accountsWithErrors").unwrap_or(0);
                if failed > 0 {
                    out.push_str(&format!("; {failed} with a scanner that could not read"));
                }
                out
            }
            DISCOVER_KIND => format!(
                "{} OUs / folders and {} accounts read; {} changes",
                number(job, "nodes").unwrap_or(0),
                number(job, "members").unwrap_or(0),
                number(job, "changes").unwrap_or(0)
            ),
            CONNECT_KIND => {
                let connected = number(job, "connected").unwrap_or(0);
                let failed = job
                    .result
                    .as_ref()
                    .and_then(|r| r.get("failed"))
                    .and_then(serde_json::Value::as_array)
                    .map_or(0, Vec::len);
                let mut out = format!("{connected} accounts connected");
                if failed > 0 {
                    out.push_str(&format!("; {failed} could not be"));
                }
                out
            }
            _ => job
                .progress
                .message
                .clone()
                .unwrap_or_else(|| "done".into()),
        },
    }
}

fn row(job: &Job, base: &str, now: DateTime<Utc>) -> JobRow {
    let kind = job.kind.as_str();
    let scan = kind == SCAN_ORGANIZATION_KIND || kind == SCAN_MEMBERS_KIND;
    let p = &job.progress;
    JobRow {
        id: job.id.0.to_string(),
        what: what(kind),
        href: if scan {
            format!("{base}/scans/{}", job.id.0)
        } else {
            format!("{base}/jobs/{}", job.id.0)
        },
        status: job.status.as_str(),
        status_class: status_class(job.status),
        finished: job.status.is_terminal(),
        queued: format::ago(job.created_at, now),
        queued_iso: job.created_at.to_rfc3339(),
        duration: duration(job, now),
        summary: summary(job),
        value: match (job.status, p.total) {
            (JobStatus::Running, Some(t)) if t > 0 => Some((p.done * 100 / t).min(100) as u32),
            _ => None,
        },
    }
}

#[derive(Template)]
#[template(path = "cloud_orgs/scans.html")]
struct ScansPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    can_scan: bool,
    gate: Option<String>,
    jobs: Vec<JobRow>,
    active: bool,
    next: Option<String>,
    trend: Trend,
}

/// The page's cursor.
#[derive(Debug, Deserialize, Default)]
pub struct ScansQuery {
    cursor: Option<String>,
}

async fn open(
    state: &ConsoleState,
    req: &Request,
    slug: &str,
    id: Uuid,
) -> Result<(Chrome, OrgAccess, CloudOrganization), Failure> {
    let (_, access, chrome) = chrome::organization(state, req, slug, "cloud-orgs").await?;
    let cloud_org = state
        .cloud_orgs
        .get(&access, CloudOrganizationId(id))
        .await
        .map_err(failure)?;
    Ok((chrome, access, cloud_org))
}

/// `GET /org/{slug}/cloud-organizations/{id}/scans`: the jobs and the trend; htmx polls the
/// job list while one runs.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Query(q): Query<ScansQuery>,
) -> Result<Response, Failure> {
    let id = id_of(&id)?;
    let (chrome, access, cloud_org) = open(&state, req, &slug, id).await?;
    let request =
        PageRequest::parse(Some(PER_PAGE), q.cursor.as_deref()).map_err(|_| Failure::NotFound)?;
    let filter = JobFilter {
        kind: None,
        statuses: vec![],
        subject: Some(id),
    };
    let found = state
        .jobs
        .list(&access, &filter, request)
        .await
        .map_err(|_| Failure::NotFound)?;
    let terms = state.billing.terms(access.org_id()).await?;
    let gate = (!terms.has(Feature::OrgFeatures)).then(|| {
        least_tier_with(Feature::OrgFeatures)
            .display_name()
            .to_string()
    });
    let slug = access.organization().slug.as_str().to_string();
    let base = format!("/org/{slug}/cloud-organizations/{id}");
    let now = state.tenancy.clock().now();
    let jobs: Vec<JobRow> = found.items.iter().map(|j| row(j, &base, now)).collect();
    let trend = trend::read(&state, &access, HistoryOf::CloudOrganization(id)).await?;
    Ok(page(
        StatusCode::OK,
        &ScansPage {
            chrome,
            head: head(&cloud_org, now),
            can_scan: access.require(Action::RunJobs).is_ok() && gate.is_none(),
            gate,
            active: jobs.iter().any(|j| !j.finished),
            jobs,
            next: found.next.map(|c| c.encode()),
            trend,
            slug,
        },
    ))
}

/// `POST /org/{slug}/cloud-organizations/{id}/scans`: scan the organization's own controls,
/// then every connected member; a scan already under way is followed, not doubled.
#[handler]
pub async fn scan_now(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> Result<Response, Failure> {
    let id = id_of(&id)?;
    let (viewer, access, _) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    check_form(&viewer, req, &form.csrf)?;
    let id = CloudOrganizationId(id);
    let queued = |r: Result<Job, DetectionError>| match r {
        Ok(_) | Err(DetectionError::ScanInProgress(_)) => Ok(()),
        Err(DetectionError::NotInPlan(_)) => Err(Failure::Forbidden),
        Err(e) => Err(coverage_failure(e)),
    };
    queued(state.detections.scan_cloud_org(&access, id).await)?;
    queued(state.detections.scan_members(&access, id).await)?;
    Ok(redirect(&format!(
        "/org/{}/cloud-organizations/{}/scans",
        access.organization().slug.as_str(),
        id.as_uuid()
    )))
}

/// A scanner's row on a scan's page.
struct ScannerRow {
    source: String,
    found: u32,
    degraded: u32,
    gone: u32,
    calls: u32,
    error: Option<String>,
    advice: Option<String>,
}

/// An account's row on a members scan's page.
struct AccountRow {
    href: String,
    account: String,
    found: u32,
    errors: u32,
    failed: String,
}

#[derive(Template)]
#[template(path = "cloud_orgs/scan.html")]
struct ScanPage {
    chrome: Chrome,
    slug: String,
    head: Head,
    job: JobRow,
    retries: u64,
    waited: String,
    scanners: Vec<ScannerRow>,
    accounts: Vec<AccountRow>,
}

/// `GET /org/{slug}/cloud-organizations/{id}/scans/{job}`: one scan, live while it runs
/// (htmx polls the page), then per scanner or per account.
#[handler]
pub async fn scan_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id, job_id)): Path<(String, String, String)>,
) -> Result<Response, Failure> {
    let (id, job_id) = (id_of(&id)?, id_of(&job_id)?);
    let (chrome, access, cloud_org) = open(&state, req, &slug, id).await?;
    let job = state
        .jobs
        .get(&access, JobId(job_id))
        .await
        .map_err(|_| Failure::NotFound)?;
    let kind = job.kind.as_str();
    if job.subject != Some(id) || (kind != SCAN_ORGANIZATION_KIND && kind != SCAN_MEMBERS_KIND) {
        return Err(Failure::NotFound);
    }
    let slug = access.organization().slug.as_str().to_string();
    let now = state.tenancy.clock().now();
    let base = format!("/org/{slug}/cloud-organizations/{id}");
    let mut accounts: Vec<AccountRow> = accounts(&job)
        .into_iter()
        .map(|a| AccountRow {
            href: format!(
                "/org/{slug}/settings/accounts/{}/coverage",
                a.cloud_account_id
            ),
            failed: a.failed(),
            account: a.account,
            found: a.found,
            errors: a.errors,
        })
        .collect();
    // The accounts that could not be read first: they are what needs doing.
    accounts.sort_by(|a, b| b.errors.cmp(&a.errors).then(a.account.cmp(&b.account)));
    Ok(page(
        StatusCode::OK,
        &ScanPage {
            chrome,
            head: head(&cloud_org, now),
            job: row(&job, &base, now),
            retries: job.progress.throttling.retries,
            waited: format!("{:.1} s", job.progress.throttling.waited_ms as f64 / 1000.0),
            scanners: scanners(&job)
                .into_iter()
                .map(|s| ScannerRow {
                    source: s.source,
                    found: s.found,
                    degraded: s.degraded,
                    gone: s.gone,
                    calls: s.calls,
                    error: s.error,
                    advice: s.advice,
                })
                .collect(),
            accounts,
            slug,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_jobs::{JobKind, Progress};
    use canopy_kernel::id::OrganizationId;
    use serde_json::json;

    fn job(kind: &'static str, status: JobStatus, result: Option<serde_json::Value>) -> Job {
        let now = Utc::now();
        Job {
            id: JobId(Uuid::nil()),
            organization_id: OrganizationId(Uuid::nil()),
            kind: JobKind::from_static(kind),
            subject: None,
            payload: json!({}),
            status,
            progress: Progress::phase("accounts", 3, Some(12)),
            result,
            error: None,
            attempts: 1,
            max_attempts: 3,
            cancel_requested: false,
            lease_owner: None,
            lease_expires_at: None,
            heartbeat_at: None,
            run_after: now,
            created_by: None,
            created_at: now,
            started_at: Some(now - chrono::Duration::seconds(75)),
            finished_at: None,
        }
    }

    #[test]
    fn a_running_scan_says_how_far_it_came_and_a_finished_one_what_it_found() {
        let running = job(SCAN_MEMBERS_KIND, JobStatus::Running, None);
        let r = row(&running, "/base", Utc::now());
        assert_eq!(r.summary, "accounts 3 of 12");
        assert_eq!(r.value, Some(25));
        assert!(r.duration.starts_with("1 min 15 s"), "{}", r.duration);
        assert!(r.duration.ends_with("so far"));
        assert_eq!(r.href, format!("/base/scans/{}", Uuid::nil()));

        let members = job(
            SCAN_MEMBERS_KIND,
            JobStatus::Succeeded,
            Some(
                json!({"accounts": 13, "found": 40, "accountsWithErrors": 2, "perAccount": [
                    {"cloudAccountId": Uuid::nil(), "account": "111122223333", "found": 3, "errors": 1,
                     "sources": [{"source": "aws.guardduty", "found": 0, "degraded": 0, "gone": 0,
                                  "error": "access_denied: GetDetector", "advice": null, "calls": 1}]}
                ]}),
            ),
        );
        assert_eq!(
            summary(&members),
            "13 accounts scanned, 40 controls found; 2 with a scanner that could not read"
        );
        let per = accounts(&members);
        assert_eq!(per.len(), 1);
        assert_eq!(per[0].failed(), "aws.guardduty: access_denied: GetDetector");

        let org = job(
            SCAN_ORGANIZATION_KIND,
            JobStatus::Succeeded,
            Some(json!({"sources": [
                {"source": "aws.cloudtrail", "found": 2, "degraded": 0, "gone": 0, "error": null, "calls": 3},
                {"source": "aws.scp", "found": 0, "degraded": 0, "gone": 0, "error": "denied", "calls": 1}
            ]})),
        );
        assert_eq!(
            summary(&org),
            "2 controls found by 2 scanners; 1 could not read"
        );
        let connect = job(CONNECT_KIND, JobStatus::Queued, None);
        assert_eq!(
            row(&connect, "/b", Utc::now()).href,
            format!("/b/jobs/{}", Uuid::nil())
        );
        let discovery = job(
            DISCOVER_KIND,
            JobStatus::Succeeded,
            Some(json!({"nodes": 4, "members": 13, "changes": 2})),
        );
        assert_eq!(
            summary(&discovery),
            "4 OUs / folders and 13 accounts read; 2 changes"
        );
    }
}
