//! RFC 7807 problem responses. Every error a client sees, from a handler or from the
//! framework (malformed JSON, missing credentials, unknown route), is one of these.

use canopy_billing::{Exceeded, Tier};
use canopy_kernel::{
    FeatureNotInPlan, LimitedResource, PlanLimitExceeded, StoreError, ValidationErrors,
};
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

/// Media type of every error body (`application/json` instead when a client accepts only that).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client waits before retrying while the database is unreachable.
const DATABASE_RETRY_SECS: u64 = 2;

/// One field that broke one rule.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProblemFieldError {
    /// Request field name.
    pub field: String,
    /// Rule name (`length`, `format`, `reserved`, `range`, `required`, `enum`).
    pub rule: String,
    /// Human sentence.
    pub message: String,
}

/// One plan limit that a usage goes beyond.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProblemLimit {
    /// `cloudAccounts` or `teamMembers`.
    pub limit: String,
    /// In use.
    pub used: u64,
    /// Allowed by the plan.
    pub allowed: u64,
}

impl From<Exceeded> for ProblemLimit {
    fn from(e: Exceeded) -> Self {
        Self {
            limit: e.resource.key().to_string(),
            used: e.used,
            allowed: e.allowed,
        }
    }
}

/// An RFC 7807 problem document. Plan refusals (`plan_limit`, `feature_not_in_plan`,
/// `downgrade_exceeds_limits`) carry the extension members that say what to upgrade to.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Problem {
    /// URI reference naming the problem type.
    #[oai(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// Per-field validation failures (422); absent otherwise.
    #[oai(default, skip_serializing_if_is_empty)]
    pub errors: Vec<ProblemFieldError>,
    /// `plan_limit`: the limit that stopped the action (`cloudAccounts`, `teamMembers`).
    #[oai(skip_serializing_if_is_none)]
    pub limit: Option<String>,
    /// `plan_limit`: how many are in use.
    #[oai(skip_serializing_if_is_none)]
    pub used: Option<u64>,
    /// `plan_limit`: how many the plan allows.
    #[oai(skip_serializing_if_is_none)]
    pub allowed: Option<u64>,
    /// `feature_not_in_plan`: the feature key.
    #[oai(skip_serializing_if_is_none)]
    pub feature: Option<String>,
    /// Plan refusals: the plan whose limits apply (a legacy plan during a grace period).
    #[oai(skip_serializing_if_is_none)]
    pub current_tier: Option<String>,
    /// Plan refusals: the least tier that allows the action.
    #[oai(skip_serializing_if_is_none)]
    pub required_tier: Option<String>,
    /// `downgrade_exceeds_limits`: every limit the current usage goes beyond; absent otherwise.
    #[oai(default, skip_serializing_if_is_empty)]
    pub exceeded: Vec<ProblemLimit>,
    /// `scan_in_progress`, `sync_in_progress`, `connect_in_progress`: the job already queued
    /// or running, to follow at `GET .../jobs/{jobId}` instead of starting another.
    #[oai(skip_serializing_if_is_none)]
    pub job_id: Option<uuid::Uuid>,
    /// `last_owner`: the organizations whose only owner the caller is while others are
    /// members; absent otherwise.
    #[oai(default, skip_serializing_if_is_empty)]
    pub organizations: Vec<ProblemOrganization>,
    /// `slow_down`: seconds to wait between device-token polls from now on.
    #[oai(skip_serializing_if_is_none)]
    pub interval: Option<u32>,
}

/// An organization a refusal names.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ProblemOrganization {
    /// Id.
    pub id: uuid::Uuid,
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Members besides the caller.
    pub other_members: u64,
}

/// An error answer: a status and a problem body (plus `Retry-After` when rate limited).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The problem (boxed: errors travel through every `Result` and should stay small).
    pub problem: Box<Problem>,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A problem with a status, a stable code and a detail sentence.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            problem: Box::new(Problem {
                kind: format!("https://canopy.dev/problems/{code}"),
                title: status.canonical_reason().unwrap_or("Error").to_string(),
                status: status.as_u16(),
                detail: detail.into(),
                code: code.to_string(),
                errors: vec![],
                limit: None,
                used: None,
                allowed: None,
                feature: None,
                current_tier: None,
                required_tier: None,
                exceeded: vec![],
                job_id: None,
                organizations: vec![],
                interval: None,
            }),
            retry_after: None,
        }
    }

    /// 409: a job of this kind on this subject is already queued or running; names it.
    pub fn job_in_progress(code: &str, what: &str, job: canopy_jobs::JobId) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            code,
            format!("{what}: follow job {job} at GET .../jobs/{job}."),
        );
        e.problem.job_id = Some(job.as_uuid());
        e
    }

    /// 422 with every field error.
    pub fn validation(errors: ValidationErrors) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "The request has invalid fields.",
        );
        e.problem.errors = errors
            .errors
            .into_iter()
            .map(|f| ProblemFieldError {
                field: f.field,
                rule: f.rule,
                message: f.message,
            })
            .collect();
        e
    }

    /// 401.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "A valid bearer token (session or API key) is required.",
        )
    }

    /// 404 for an object that does not exist or is not visible to the caller.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("The {what} does not exist."),
        )
    }

    /// 500 without internals; the cause is logged in the request's span.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. It has been logged.",
        )
    }

    /// 402 `plan_limit`: the plan has no room for one more; names the limit, the usage, the
    /// plan and the least tier with room (billing decided which).
    pub fn plan_limit(limit: PlanLimitExceeded) -> Self {
        let plan = display_tier(&limit.plan);
        let required = display_tier(&limit.required_tier);
        let detail = match limit.resource {
            LimitedResource::CloudAccounts => format!(
                "Your {plan} plan allows {} cloud accounts and {} are connected. Upgrade to {required} for more.",
                limit.allowed, limit.used
            ),
            LimitedResource::TeamMembers => format!(
                "Your {plan} plan allows {} team members (members plus pending invitations) and {} are in use. Upgrade to {required} for more.",
                limit.allowed, limit.used
            ),
            LimitedResource::HistoryDays => format!(
                "Your {plan} plan keeps {} days of history and this range reaches back {} days. Upgrade to {required} or choose a shorter range.",
                limit.allowed, limit.used
            ),
        };
        let mut e = Self::new(StatusCode::PAYMENT_REQUIRED, "plan_limit", detail);
        e.problem.limit = Some(limit.resource.key().to_string());
        e.problem.used = Some(limit.used);
        e.problem.allowed = Some(limit.allowed);
        e.problem.current_tier = Some(limit.plan);
        e.problem.required_tier = Some(limit.required_tier);
        e
    }

    /// 403 `feature_not_in_plan`.
    pub fn feature_not_in_plan(refusal: FeatureNotInPlan) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "feature_not_in_plan",
            format!(
                "{} is not included in your {} plan. Upgrade to {}.",
                refusal.feature_name,
                display_tier(&refusal.plan),
                display_tier(&refusal.required_tier)
            ),
        );
        e.problem.feature = Some(refusal.feature);
        e.problem.current_tier = Some(refusal.plan);
        e.problem.required_tier = Some(refusal.required_tier);
        e
    }

    /// 403: the caller's role does not allow the action.
    pub fn forbidden(action: canopy_tenancy::Action) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("Your role in this organization does not allow {action:?}."),
        )
    }

    /// A storage failure, logged with its cause and answered without it: the database being
    /// unreachable is 503 with `Retry-After` (the client retries), anything else 500.
    pub fn store(cause: StoreError) -> Self {
        if cause.is_unavailable() {
            tracing::warn!(error = %cause, "database unavailable");
            return Self::unavailable(
                "database_unavailable",
                "The database is not reachable right now. Retry shortly.",
                DATABASE_RETRY_SECS,
            );
        }
        tracing::error!(error = %cause, "storage failure");
        Self::internal()
    }

    /// 503 with `Retry-After`: a dependency is down or the server is saturated, for now.
    pub fn unavailable(code: &str, detail: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 429 with the seconds after which a retry may succeed.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Too many attempts from your address. Retry in {retry_after} s."),
        );
        e.retry_after = Some(retry_after);
        e
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.problem.status, self.problem.code, self.problem.detail
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.problem.to_json_string();
        let mut resp = Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, PROBLEM_JSON)
            .body(body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

/// The statuses any endpoint may answer with a problem, documented once for all of them.
const DOCUMENTED: &[(u16, &str)] = &[
    (400, "Malformed request (bad JSON, bad parameter)"),
    (401, "Missing, unknown, expired or revoked credentials"),
    (
        402,
        "A plan limit stops the action (`plan_limit`): upgrade to `requiredTier`",
    ),
    (
        403,
        "Your role does not allow this, or your plan lacks the feature (`feature_not_in_plan`)",
    ),
    (404, "Not found, or not visible to you"),
    (409, "Conflicts with the current state"),
    (410, "Gone (an expired invitation)"),
    (413, "Request body too large"),
    (415, "The body is missing or not `application/json`"),
    (422, "Validation failed; `errors` names each field and rule"),
    (429, "Rate limited; see Retry-After"),
    (500, "Unexpected server error"),
    (
        503,
        "Temporarily unavailable (the database is unreachable, or the server is saturated); see Retry-After",
    ),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![
                        MetaMediaType {
                            content_type: PROBLEM_JSON,
                            schema: Problem::schema_ref(),
                        },
                        // What a client that accepts only application/json receives.
                        MetaMediaType {
                            content_type: "application/json",
                            schema: Problem::schema_ref(),
                        },
                    ],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::validation(e)
    }
}

/// A tier's name for a sentence; legacy spellings read as words.
fn display_tier(stored: &str) -> String {
    Tier::from_stored(stored).map_or_else(
        || stored.replace('_', " "),
        |t| t.display_name().to_string(),
    )
}

/// Turns any framework error into a problem: the ones handlers raised pass through, the
/// rest (bad JSON, missing auth header, unknown route, body too large) get a matching code.
pub fn problem_from_poem(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.clone().into_response();
    }
    // The OpenAPI check runs first, so these are rare: a query value poem reads differently.
    if let Some(param) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        return ApiError::validation(ValidationErrors::single(canopy_kernel::FieldError::new(
            param.name,
            "type",
            "does not have the type the API documents",
        )))
        .into_response();
    }
    if err
        .downcast_ref::<poem_openapi::error::ParseRequestPayloadError>()
        .is_some()
    {
        return ApiError::validation(ValidationErrors::single(canopy_kernel::FieldError::new(
            "body",
            "type",
            "does not have the types the API documents",
        )))
        .into_response();
    }
    let status = err.status();
    let (code, detail) = match status {
        StatusCode::BAD_REQUEST => ("malformed_request", err.to_string()),
        StatusCode::UNAUTHORIZED => (
            "unauthenticated",
            "A valid bearer token is required.".to_string(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "No such resource.".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "Method not allowed on this resource.".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "The request body is too large.".to_string(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "Send the body as application/json.".to_string(),
        ),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "unhandled error");
            (
                "internal",
                "Something went wrong on our side. It has been logged.".to_string(),
            )
        }
        _ => ("error", err.to_string()),
    };
    ApiError::new(status, code, detail).into_response()
}
