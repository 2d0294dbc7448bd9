//! Connecting a cloud account: a connect token for the CLI, the trust policy and a
//! CloudFormation template with this organization's External ID, the manual form, and
//! confirming a connection request the CLI filed, by its code. Plan refusals say the limit,
//! the usage and the tier that allows more.

use askama::Template;
use canopy_cloud_org::connection::TokenRefusal;
use canopy_cloud_org::service::{ConnectionError, ExternalIdError};
use canopy_cloud_org::{AccountInput, CloudAccountError};
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::accounts::{Plain, account_failure, lines, optional, regions, tags};
use super::{FieldErrors, check_form, plan_limit_message};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;

/// The values of the manual form, as typed.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ConnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    account_id: String,
    #[serde(default)]
    role_arn: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    project_number: String,
    #[serde(default)]
    alias: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    ses_domains: String,
    #[serde(default)]
    tags: String,
}

/// The connect page's state.
#[derive(Template)]
#[template(path = "accounts/connect.html")]
struct ConnectPage {
    chrome: Chrome,
    slug: String,
    external_id: String,
    trust_policy: String,
    principal: String,
    cloudformation: String,
    form: ConnectForm,
    errors: FieldErrors,
    other_errors: Vec<String>,
    refusal: Option<String>,
    token: Option<IssuedView>,
    regions: Vec<&'static str>,
}

/// A connect token, shown once.
struct IssuedView {
    command: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "accounts/request.html")]
struct RequestPage {
    chrome: Chrome,
    slug: String,
    token: String,
    preview: Option<Preview>,
    error: Option<String>,
}

/// A connection request as an admin reviews it.
struct Preview {
    provider: String,
    key: String,
    role_arn: String,
    region: String,
    alias: String,
    organization: String,
    expires: String,
    expired: bool,
}

async fn connect_page_of(
    state: &ConsoleState,
    access: &OrgAccess,
    chrome: Chrome,
    form: ConnectForm,
    errors: FieldErrors,
    refusal: Option<String>,
    token: Option<IssuedView>,
) -> Result<ConnectPage, Failure> {
    let instructions = state
        .cloud
        .connection_instructions(access)
        .await
        .map_err(|e| match e {
            ExternalIdError::Forbidden(_) => Failure::Forbidden,
            ExternalIdError::Store(s) => Failure::Store(s),
        })?;
    let other_errors = errors.others(&[
        "provider",
        "accountId",
        "roleArn",
        "region",
        "projectId",
        "projectNumber",
        "alias",
        "environment",
        "sesDomains",
        "tags",
    ]);
    let cloudformation = cloudformation(&instructions.trusted_principal, &instructions.external_id);
    Ok(ConnectPage {
        chrome,
        slug: access.organization().slug.as_str().to_string(),
        external_id: instructions.external_id,
        trust_policy: serde_json::to_string_pretty(&instructions.trust_policy).unwrap_or_default(),
        cloudformation,
        principal: instructions.trusted_principal,
        form,
        errors,
        other_errors,
        refusal,
        token,
        regions: regions(),
    })
}

/// `GET /org/{slug}/settings/accounts/connect` (admin or owner).
#[handler]
pub async fn connect_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    access.require(canopy_tenancy::Action::ConnectCloudAccount)?;
    let form = ConnectForm {
        provider: "aws".into(),
        region: "us-east-1".into(),
        ..ConnectForm::default()
    };
    let p = connect_page_of(
        &state,
        &access,
        chrome,
        form,
        FieldErrors::default(),
        None,
        None,
    )
    .await?;
    Ok(page(StatusCode::OK, &p))
}

/// `POST /org/{slug}/settings/accounts`: the manual form.
#[handler]
pub async fn connect(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<ConnectForm>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    check_form(&viewer, req, &form.csrf)?;
    let parsed_tags = match tags(&form.tags) {
        Ok(t) => t,
        Err(message) => {
            let p = connect_page_of(
                &state,
                &access,
                chrome,
                form,
                FieldErrors::one("tags", message),
                None,
                None,
            )
            .await?;
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p));
        }
    };
    let aws = form.provider != "gcp";
    let input = AccountInput {
        provider: if aws { "aws".into() } else { "gcp".into() },
        account_id: aws.then(|| optional(&form.account_id)).flatten(),
        role_arn: aws.then(|| optional(&form.role_arn)).flatten(),
        region: aws.then(|| optional(&form.region)).flatten(),
        project_id: (!aws).then(|| optional(&form.project_id)).flatten(),
        project_number: (!aws).then(|| optional(&form.project_number)).flatten(),
        alias: optional(&form.alias),
        environment: optional(&form.environment),
        ses_domains: lines(&form.ses_domains),
        tags: parsed_tags,
        ..AccountInput::default()
    };
    let (status, errors, refusal) = match state.cloud.connect(&access, &input).await {
        Ok(account) => {
            return Ok(redirect(&format!(
                "/org/{}/settings/accounts/{}?done=connected",
                access.organization().slug.as_str(),
                account.id
            )));
        }
        Err(CloudAccountError::Invalid(v)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::from_validation(&v, &[]),
            None,
        ),
        Err(CloudAccountError::AlreadyConnected) => (
            StatusCode::CONFLICT,
            FieldErrors::default(),
            Some("This account is already connected to this organization.".to_string()),
        ),
        Err(CloudAccountError::ConnectedElsewhere) => (
            StatusCode::CONFLICT,
            FieldErrors::default(),
            Some(
                "This account is connected to another organization. An account belongs to one organization; disconnect it there first."
                    .to_string(),
            ),
        ),
        Err(CloudAccountError::PlanLimit(limit)) => (
            StatusCode::PAYMENT_REQUIRED,
            FieldErrors::default(),
            Some(plan_limit_message(&limit)),
        ),
        Err(e) => return Err(account_failure(e)),
    };
    let p = connect_page_of(&state, &access, chrome, form, errors, refusal, None).await?;
    Ok(page(status, &p))
}

fn connection_refusal(e: ConnectionError) -> Result<String, Failure> {
    Ok(match e {
        ConnectionError::PlanLimit(limit) => plan_limit_message(&limit),
        ConnectionError::Forbidden(_) => return Err(Failure::Forbidden),
        ConnectionError::Store(s) => return Err(Failure::Store(s)),
        ConnectionError::Token(TokenRefusal::Unknown) => {
            "No connection request has this code. Check it, or run canopy connect again.".into()
        }
        ConnectionError::Token(TokenRefusal::Expired) => {
            "This connection request expired (they last 10 minutes). Run canopy connect again."
                .into()
        }
        ConnectionError::Token(TokenRefusal::Used) => {
            "This connection request was already confirmed.".into()
        }
        ConnectionError::Token(TokenRefusal::Cancelled) => {
            "This connection request was cancelled.".into()
        }
        ConnectionError::AlreadyConnected => {
            "This account is already connected to this organization.".into()
        }
        ConnectionError::ConnectedElsewhere => {
            "This account is connected to another organization.".into()
        }
        ConnectionError::Invalid(v) => v
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        ConnectionError::NotInPlan(f) => format!(
            "Your plan does not include {}; upgrade to {}.",
            f.feature, f.required_tier
        ),
    })
}

/// `POST /org/{slug}/settings/accounts/connect-token`: a token for `canopy connect`, shown
/// once with the exact command.
#[handler]
pub async fn connect_token(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    check_form(&viewer, req, &form.csrf)?;
    let base = ConnectForm {
        provider: "aws".into(),
        region: "us-east-1".into(),
        ..ConnectForm::default()
    };
    let (status, refusal, token) = match state.cloud.create_connect_token(&access).await {
        Ok(issued) => (
            StatusCode::OK,
            None,
            Some(IssuedView {
                command: issued.command,
                expires: format::ago(issued.expires_at, state.tenancy.clock().now()),
            }),
        ),
        Err(e) => {
            let status = match &e {
                ConnectionError::PlanLimit(_) => StatusCode::PAYMENT_REQUIRED,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, Some(connection_refusal(e)?), None)
        }
    };
    let p = connect_page_of(
        &state,
        &access,
        chrome,
        base,
        FieldErrors::default(),
        refusal,
        token,
    )
    .await?;
    Ok(page(status, &p))
}

/// The code of a connection request.
#[derive(Debug, Deserialize, Default)]
pub struct RequestQuery {
    token: Option<String>,
}

async fn preview_of(
    state: &ConsoleState,
    viewer: &crate::session::Viewer,
    token: &str,
) -> Result<Result<Preview, String>, Failure> {
    match state.cloud.preview_request(&viewer.principal, token).await {
        Ok(p) => {
            let input = p.token.input.clone().unwrap_or_default();
            Ok(Ok(Preview {
                provider: input.provider,
                key: input.account_id.or(input.project_id).unwrap_or_default(),
                role_arn: input.role_arn.unwrap_or_default(),
                region: input.region.unwrap_or_default(),
                alias: input.alias.unwrap_or_default(),
                organization: p.organization.name,
                expires: format::ago(p.token.expires_at, state.tenancy.clock().now()),
                expired: p.expired,
            }))
        }
        Err(e) => Ok(Err(connection_refusal(e)?)),
    }
}

/// `GET /org/{slug}/settings/accounts/requests?token=...`: enter or review a code.
#[handler]
pub async fn request_page(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Query(q): Query<RequestQuery>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    access.require(canopy_tenancy::Action::ConnectCloudAccount)?;
    let token = q.token.unwrap_or_default().trim().to_string();
    let (preview, error) = if token.is_empty() {
        (None, None)
    } else {
        match preview_of(&state, &viewer, &token).await? {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    };
    let status = if error.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Ok(page(
        status,
        &RequestPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            token,
            preview,
            error,
        },
    ))
}

/// Confirming (or cancelling) a connection request.
#[derive(Debug, Deserialize)]
pub struct Answer {
    csrf: String,
    token: String,
    #[serde(default)]
    cancel: Option<String>,
}

/// `POST /org/{slug}/settings/accounts/requests`.
#[handler]
pub async fn confirm_request(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<Answer>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "accounts").await?;
    check_form(&viewer, req, &form.csrf)?;
    let slug = access.organization().slug.as_str().to_string();
    let token = form.token.trim();
    if form.cancel.is_some() {
        return match state.cloud.cancel_request(&viewer.principal, token).await {
            Ok(()) => Ok(redirect(&format!("/org/{slug}/settings/accounts"))),
            Err(e) => {
                let error = connection_refusal(e)?;
                Ok(page(
                    StatusCode::CONFLICT,
                    &RequestPage {
                        chrome,
                        slug,
                        token: token.to_string(),
                        preview: None,
                        error: Some(error),
                    },
                ))
            }
        };
    }
    match state.cloud.confirm_request(&viewer.principal, token).await {
        Ok(account) => Ok(redirect(&format!(
            "/org/{slug}/settings/accounts/{}?done=confirmed",
            account.id
        ))),
        Err(e) => {
            let status = match &e {
                ConnectionError::PlanLimit(_) => StatusCode::PAYMENT_REQUIRED,
                ConnectionError::Token(_) => StatusCode::GONE,
                _ => StatusCode::CONFLICT,
            };
            let error = connection_refusal(e)?;
            Ok(page(
                status,
                &RequestPage {
                    chrome,
                    slug,
                    token: token.to_string(),
                    preview: None,
                    error: Some(error),
                },
            ))
        }
    }
}

/// A CloudFormation template for the role, with this organization's External ID: Canopy's
/// principal may assume it, and it may read CloudWatch (SES metrics) and what the scanners
/// read (AWS's SecurityAudit policy), nothing else.
fn cloudformation(principal: &str, external_id: &str) -> String {
    format!(
        r#"AWSTemplateFormatVersion: "2010-09-09"
Description: Read-only access for Canopy (SES metrics and detection scans)
Parameters:
  RoleName:
    Type: String
    Default: CanopyAccess
Resources:
  CanopyAccessRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: !Ref RoleName
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              AWS: "{principal}"
            Action: sts:AssumeRole
            Condition:
              StringEquals:
                sts:ExternalId: "{external_id}"
      ManagedPolicyArns:
        - arn:aws:iam::aws:policy/CloudWatchReadOnlyAccess
        - arn:aws:iam::aws:policy/SecurityAudit
Outputs:
  RoleArn:
    Description: Paste this into Canopy's connect form.
    Value: !GetAtt CanopyAccessRole.Arn
"#
    )
}

/// `GET /org/{slug}/settings/accounts/cloudformation.yaml`: the template, to download.
#[handler]
pub async fn cloudformation_file(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
) -> Result<Response, Failure> {
    let (_, access, _) = chrome::organization(&state, req, &slug, "accounts").await?;
    access.require(canopy_tenancy::Action::ConnectCloudAccount)?;
    let instructions = state
        .cloud
        .connection_instructions(&access)
        .await
        .map_err(|e| match e {
            ExternalIdError::Forbidden(_) => Failure::Forbidden,
            ExternalIdError::Store(s) => Failure::Store(s),
        })?;
    Ok(Response::builder()
        .content_type("application/yaml; charset=utf-8")
        .header(
            "content-disposition",
            "attachment; filename=\"canopy-access.yaml\"",
        )
        .body(cloudformation(
            &instructions.trusted_principal,
            &instructions.external_id,
        )))
}
