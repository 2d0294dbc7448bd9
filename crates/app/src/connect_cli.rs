//! `canopy connect`: the CLI half of the web-initiated flow. It learns the AWS account it runs
//! in (STS GetCallerIdentity with the local credentials) unless told, and redeems the connect
//! token the console issued with the account's details, through the client generated from the
//! OpenAPI document (no hand-written request: what the CLI sends is what the document says).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use anyhow::bail;
use canopy_aws::StsRoleVerifier;
use canopy_client::types::{
    CloudAccountDto, ConnectAccountRequest, ConnectWithTokenRequest, ProviderDto,
};
use canopy_client::{Client, Error};
use canopy_cloud_org::health::{AccessFailure, FailureKind};

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

/// Parses a flag's value into the client's checked type, naming the flag when it breaks the
/// published rule (the rule is the API's own, from the document the client was built from).
fn flag<T>(name: &str, raw: &str) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| anyhow::anyhow!("{name} '{raw}' is not valid: {e}"))
}

/// Redeems the token through the generated client; returns the connected account as the API
/// answered it. `sts` detects the account when `args.account_id` is `None`.
pub async fn connect(
    args: &ConnectArgs,
    sts: Option<&StsRoleVerifier>,
) -> anyhow::Result<CloudAccountDto> {
    let account = match (&args.account_id, sts) {
        (Some(id), _) => id.clone(),
        (None, Some(sts)) => sts
            .caller_account_id(&args.region)
            .await
            .map_err(|f| anyhow::anyhow!(detection_failed(&f)))?,
        (None, None) => bail!(NO_LOCAL_CREDENTIALS),
    };
    let mut tags = HashMap::new();
    for (key, value) in &args.tags {
        tags.insert(key.clone(), flag("--tag", value)?);
    }
    let request = ConnectWithTokenRequest {
        token: flag("--token", &args.token)?,
        account: ConnectAccountRequest {
            provider: ProviderDto::Aws,
            account_id: Some(flag("--account-id", &account)?),
            role_arn: Some(flag("--role", &role_arn(&args.role, &account))?),
            region: Some(flag("--region", &args.region)?),
            alias: args
                .alias
                .as_deref()
                .map(|a| flag("--alias", a))
                .transpose()?,
            environment: args
                .environment
                .as_deref()
                .map(|e| flag("--environment", e))
                .transpose()?,
            stack_name: args
                .stack_name
                .as_deref()
                .map(|s| flag("--stack-name", s))
                .transpose()?,
            ses_domains: args
                .ses_domains
                .iter()
                .map(|d| flag("--ses-domain", d))
                .collect::<anyhow::Result<_>>()?,
            tags,
            features: None,
            project_id: None,
            project_number: None,
            ses_configuration_set: None,
        },
    };
    let api_url = args.api_url.trim_end_matches('/');
    let answer = Client::new(api_url)
        .connect_with_token()
        .body(request)
        .send()
        .await;
    match answer {
        Ok(account) => Ok(account.into_inner()),
        Err(Error::ErrorResponse(problem)) => {
            let mut message = format!("{} ({})", problem.detail, problem.status);
            for e in &problem.errors {
                message.push_str(&format!("\n  {}: {}", e.field, e.message));
            }
            bail!(message)
        }
        Err(Error::CommunicationError(e)) => {
            bail!("could not reach Canopy at {api_url}: {e}")
        }
        Err(other) => bail!("Canopy answered unexpectedly: {other}"),
    }
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
