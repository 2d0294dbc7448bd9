//! `canopy connect`: the CLI half of the web-initiated flow. It learns the AWS account it runs
//! in (STS GetCallerIdentity with the local credentials) unless told, and redeems the connect
//! token the console issued with the account's details.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use canopy_aws::StsRoleVerifier;
use canopy_cloud_org::health::{AccessFailure, FailureKind};
use serde_json::{Value, json};

/// What `canopy connect` sends.
#[derive(Debug, Clone, Default)]
pub struct ConnectArgs {
    /// Canopy API base URL.
    pub api_url: String,
    /// The connect token.
    pub token: String,
    /// AWS account id; detected when `None`.
    pub account_id: Option<String>,
    /// Role name (`CanopyAccess`) or full role ARN.
    pub role: String,
    /// Primary region.
    pub region: String,
    /// Alias.
    pub alias: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Stack name.
    pub stack_name: Option<String>,
    /// SES domains.
    pub ses_domains: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// Parses `key=value` for `--tag`.
pub fn parse_tag(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("'{raw}' is not key=value"))
}

/// The role ARN for a role name or ARN in `account`.
fn role_arn(role: &str, account: &str) -> String {
    if role.starts_with("arn:") {
        role.to_string()
    } else {
        format!("arn:aws:iam::{account}:role/{role}")
    }
}

const NO_LOCAL_CREDENTIALS: &str = "No AWS credentials were found on this machine, so the \
     account to connect cannot be detected. Pass it with --account-id 123456789012, or sign in \
     to AWS (aws configure, aws sso login, or AWS_PROFILE) and run this again.";

/// One sentence a person can act on when the local account cannot be detected.
fn detection_failed(failure: &AccessFailure) -> String {
    match failure.kind {
        FailureKind::CanopyCredentials => NO_LOCAL_CREDENTIALS.to_string(),
        _ => format!(
            "Could not detect the AWS account with STS GetCallerIdentity ({}). Pass it with \
             --account-id 123456789012 to skip detection.",
            failure.message
        ),
    }
}

/// Redeems the token; returns the connected account as the API answered it. `sts` detects the
/// account when `args.account_id` is `None`.
pub async fn connect(args: &ConnectArgs, sts: Option<&StsRoleVerifier>) -> anyhow::Result<Value> {
    let account = match (&args.account_id, sts) {
        (Some(id), _) => id.clone(),
        (None, Some(sts)) => sts
            .caller_account_id(&args.region)
            .await
            .map_err(|f| anyhow::anyhow!(detection_failed(&f)))?,
        (None, None) => bail!(NO_LOCAL_CREDENTIALS),
    };
    let mut body = json!({
        "token": args.token,
        "account": {
            "provider": "aws",
            "accountId": account,
            "roleArn": role_arn(&args.role, &account),
            "region": args.region,
            "alias": args.alias,
            "environment": args.environment,
            "stackName": args.stack_name,
            "sesDomains": args.ses_domains,
            "tags": args.tags,
        }
    });
    // Absent is absent: the API refuses null for fields it does not declare nullable.
    if let Some(account) = body["account"].as_object_mut() {
        account.retain(|_, v| !v.is_null());
    }
    let url = format!("{}/v1/connect", args.api_url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let mut message = format!(
            "{} ({})",
            answer["detail"].as_str().unwrap_or("connection refused"),
            status
        );
        if let Some(errors) = answer["errors"].as_array() {
            for e in errors {
                message.push_str(&format!(
                    "\n  {}: {}",
                    e["field"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("")
                ));
            }
        }
        bail!(message);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_tags_parse() {
        assert_eq!(
            role_arn("CanopyAccess", "123456789012"),
            "arn:aws:iam::123456789012:role/CanopyAccess"
        );
        assert_eq!(
            role_arn("arn:aws:iam::1:role/X", "123456789012"),
            "arn:aws:iam::1:role/X"
        );
        assert_eq!(
            parse_tag("team=email").unwrap(),
            ("team".into(), "email".into())
        );
        assert!(parse_tag("nokey").is_err());
        assert!(parse_tag("=v").is_err());
    }
}
