//! STS `AssumeRole` (query protocol, form in, XML out): credentials scoped to the account whose
//! role was assumed, the External ID checked when told to, faults and latency per account.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use poem::Response;
use poem::http::StatusCode;
use serde::Deserialize;

use super::{Issued, Shared, fault_answer};

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn sts_error(status: StatusCode, code: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/xml")
        .body(format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>{code}</Code><Message>{}</Message></Error><RequestId>fake</RequestId></ErrorResponse>",
            xml_escape(message)
        ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleForm {
    action: String,
    role_arn: Option<String>,
    role_session_name: Option<String>,
    external_id: Option<String>,
    duration_seconds: Option<u64>,
}

/// `arn:aws:iam::123456789012:role/Name` -> `123456789012`.
fn role_account(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    let (_, _, service, _, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (service == "iam" && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then_some(account)
}

pub(crate) async fn sts(shared: &Shared, body: String) -> Response {
    let Ok(form) = serde_urlencoded::from_str::<AssumeRoleForm>(&body) else {
        return sts_error(StatusCode::BAD_REQUEST, "MalformedInput", "unreadable form");
    };
    if form.action != "AssumeRole" {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "only AssumeRole is served here",
        );
    }
    let arn = form.role_arn.unwrap_or_default();
    let Some(account) = role_account(&arn).map(str::to_string) else {
        return sts_error(StatusCode::BAD_REQUEST, "ValidationError", "bad role ARN");
    };
    let (latency, fault, expected, ttl) = {
        let mut state = shared.lock();
        state.calls.assume_role += 1;
        let latency = state.latency;
        let ttl = state.credential_ttl;
        let a = state.accounts.entry(account.clone()).or_default();
        a.calls.assume_role += 1;
        (
            latency + a.latency,
            a.assume_fault,
            a.external_id.clone(),
            ttl,
        )
    };
    tokio::time::sleep(latency).await;
    if let Some(fault) = fault {
        let (status, code, message) = fault_answer(fault);
        return sts_error(status, code, message);
    }
    if expected.is_some() && expected != form.external_id {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!("not authorized to perform: sts:AssumeRole on resource: {arn}"),
        );
    }
    let n = shared.serial.fetch_add(1, Ordering::Relaxed);
    let access_key = format!("ASIA{n:016}");
    let session_token = format!("session-{account}-{n}");
    let lifetime = form
        .duration_seconds
        .map(Duration::from_secs)
        .map_or(ttl, |d| d.min(ttl));
    let expires_at = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
    shared.lock().credentials.insert(
        access_key.clone(),
        Issued {
            account: account.clone(),
            session_token: session_token.clone(),
            expires_at,
        },
    );
    let session = form.role_session_name.unwrap_or_default();
    let role_name = arn.rsplit('/').next().unwrap_or_default();
    Response::builder().content_type("text/xml").body(format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>secret-{n}</SecretAccessKey>\
         <SessionToken>{session_token}</SessionToken><Expiration>{}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>\
         <Arn>arn:aws:sts::{account}:assumed-role/{role_name}/{session}</Arn></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>fake-{n}</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>",
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}

#[cfg(test)]
mod tests {
    use super::role_account;

    #[test]
    fn the_account_is_read_from_the_role_arn() {
        assert_eq!(
            role_account("arn:aws:iam::123456789012:role/CanopyAccess"),
            Some("123456789012")
        );
        assert_eq!(role_account("arn:aws:iam::12345:role/X"), None);
        assert_eq!(role_account("arn:aws:s3:::bucket"), None);
    }
}
