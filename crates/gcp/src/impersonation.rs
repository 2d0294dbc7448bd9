//! Acting as a customer's service account without holding its key: Canopy's own service
//! account asks IAM Credentials for a short-lived token of the customer's
//! (`generateAccessToken`), which the customer allows by granting Canopy's account
//! `roles/iam.serviceAccountTokenCreator` on theirs. Nothing of the customer's is stored.

use http_body_util::BodyExt;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use yup_oauth2::{CustomHyperClientBuilder, ServiceAccountAuthenticator};

use crate::ServiceAccountKey;
use crate::calls::CallError;
use crate::client::{CLOUD_PLATFORM, Google};

/// Google's IAM Credentials endpoint.
pub const IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com/";

/// Whom Resource Manager calls act as.
#[derive(Clone)]
pub enum GcpCredentials {
    /// The customer's service account, by its key.
    Key(ServiceAccountKey),
    /// The customer's service account by its e-mail, impersonated by Canopy's own.
    Impersonate(String),
}

impl std::fmt::Debug for GcpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(key) => f.debug_tuple("Key").field(&key.client_email()).finish(),
            Self::Impersonate(email) => f.debug_tuple("Impersonate").field(email).finish(),
        }
    }
}

impl From<&ServiceAccountKey> for GcpCredentials {
    fn from(key: &ServiceAccountKey) -> Self {
        Self::Key(key.clone())
    }
}

impl From<&GcpCredentials> for GcpCredentials {
    fn from(who: &GcpCredentials) -> Self {
        who.clone()
    }
}

/// A service account's e-mail as it may go into the URL path: no separator of any kind.
pub(crate) fn valid_email(raw: &str) -> bool {
    let mut parts = raw.split('@');
    let (Some(user), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    raw.len() <= 254
        && !user.is_empty()
        && domain.contains('.')
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'-' | b'_'))
}

impl Google {
    /// A one-hour token of `target` for `scope`, obtained as Canopy's own service account
    /// (Canopy's own token needs the cloud-platform scope to call IAM Credentials).
    pub(crate) async fn impersonated_token(
        &self,
        target: &str,
        scope: &str,
    ) -> Result<String, CallError> {
        let own = self.own_identity().ok_or_else(|| {
            CallError::ImpersonationRefused(
                "this Canopy has no Google identity of its own to impersonate with: send the \
                 service account's key instead, or the operator sets CANOPY_GCP_CREDENTIALS_FILE"
                    .into(),
            )
        })?;
        if !valid_email(target) {
            return Err(CallError::ImpersonationRefused(format!(
                "{target:?} is not a service account e-mail"
            )));
        }
        let token = self.own_token(own).await?;
        let url = format!(
            "{}v1/projects/-/serviceAccounts/{target}:generateAccessToken",
            self.iam_base_url()
        );
        let body = serde_json::json!({"scope": [scope], "lifetime": "3600s"}).to_string();
        let request = hyper::Request::post(url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| CallError::Other(e.to_string()))?;
        let answer = tokio::time::timeout(
            self.settings().call_timeout,
            self.token_client().request(request),
        )
        .await
        .map_err(|_| CallError::Timeout)?
        .map_err(|e| {
            tracing::warn!(cause = %e, "IAM Credentials unreachable");
            CallError::Network("IAM Credentials could not be reached".into())
        })?;
        let status = answer.status();
        let bytes = answer
            .into_body()
            .collect()
            .await
            .map_err(|_| CallError::Network("IAM Credentials closed the answer early".into()))?
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        match status.as_u16() {
            200 => value["accessToken"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| CallError::Other("IAM Credentials answered without a token".into())),
            403 | 404 => Err(CallError::ImpersonationRefused(format!(
                "Canopy ({}) may not act as {target}: grant it \
                 roles/iam.serviceAccountTokenCreator on that service account",
                own.client_email()
            ))),
            429 => Err(CallError::ThrottledOut),
            code => Err(CallError::Other(format!(
                "IAM Credentials answered {code}: {}",
                value["error"]["message"].as_str().unwrap_or_default()
            ))),
        }
    }

    async fn own_token(&self, own: &ServiceAccountKey) -> Result<String, CallError> {
        let auth = ServiceAccountAuthenticator::with_client(
            own.to_yup(),
            CustomHyperClientBuilder::from(self.token_client().clone()),
        )
        .build()
        .await
        .map_err(|_| CallError::Other("Canopy's own Google key could not be loaded".into()))?;
        let token =
            tokio::time::timeout(self.settings().call_timeout, auth.token(&[CLOUD_PLATFORM]))
                .await
                .map_err(|_| CallError::Timeout)?
                .map_err(|e| match crate::calls::token_failure(&e) {
                    // Canopy's own key refused is the operator's problem, not the customer's.
                    CallError::KeyRefused(code) => {
                        CallError::Other(format!("Canopy's own Google key was refused: {code}"))
                    }
                    other => other,
                })?;
        token
            .token()
            .map(str::to_string)
            .ok_or_else(|| CallError::Other("no access token for Canopy's own identity".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_service_account_emails_reach_the_url() {
        assert!(valid_email("reader@acme-prod.iam.gserviceaccount.com"));
        for bad in [
            "",
            "reader",
            "a@b@c.com",
            "reader@acme/../x.com",
            "reader@acme.com:generateIdToken",
            "reader@acme.com?x=1",
            "@acme.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
