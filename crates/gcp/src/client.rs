//! The one Google client every adapter of this crate calls through: a connection pool for the
//! APIs and one for the token endpoints, the settings, and Canopy's own identity. Each API hub
//! (Resource Manager, Logging, Security Command Center, Org Policy, Cloud Asset) is built on it
//! with an [`Auth`] for the service account it acts as, so a whole discovery or scan shares one
//! token and one pool.

use std::future::Future;
use std::pin::Pin;

use google_cloudresourcemanager3::common::{self, GetToken};
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::{CustomHyperClientBuilder, ServiceAccountAuthenticator};

use crate::calls::CallError;
use crate::impersonation::GcpCredentials;
use crate::{Connector, GOOGLE_TOKEN_URIS, GcpSettings, ServiceAccountKey, SetupError};

/// The token scope that lets a hub call every API a scan reads: Security Command Center, Org
/// Policy and Cloud Asset accept no narrower one. What the token may do is still only what the
/// customer's IAM grants its service account.
pub(crate) const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The scope of discovery's and verification's tokens: reading is all they do.
pub(crate) const READ_ONLY: &str = "https://www.googleapis.com/auth/cloud-platform.read-only";

/// What [`GetToken::get_token`] answers (the trait's own alias is private).
type TokenFuture<'a> = Pin<
    Box<
        dyn Future<Output = Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'a,
    >,
>;

/// How a hub gets its bearer token.
#[derive(Clone)]
pub(crate) enum Auth {
    /// A customer's key: yup-oauth2 signs an assertion and caches the token per scope set.
    Key(Authenticator<Connector>),
    /// A token already obtained (impersonation), valid for the scope it was minted with.
    Token(String),
}

impl GetToken for Auth {
    fn get_token<'a>(&'a self, scopes: &'a [&str]) -> TokenFuture<'a> {
        match self {
            Auth::Key(auth) => auth.get_token(scopes),
            Auth::Token(token) => token.get_token(scopes),
        }
    }
}

/// Connection pools, settings and Canopy's own identity. Cheap to clone: the pools are shared.
#[derive(Clone)]
pub(crate) struct Google {
    settings: GcpSettings,
    /// The override of every API's base URL, ending with `/`.
    endpoint: Option<String>,
    iam_base_url: String,
    /// Canopy's own service account, for impersonating customers' (none: keys only).
    own: Option<ServiceAccountKey>,
    api: common::Client<Connector>,
    /// yup-oauth2 sends `String` bodies; same connector, its own pool.
    tokens: hyper_util::client::legacy::Client<Connector, String>,
}

impl Google {
    /// Pools with their own TLS configuration (no process-wide crypto provider needed).
    pub(crate) fn new(settings: GcpSettings) -> Result<Self, SetupError> {
        let endpoint = match &settings.endpoint_url {
            Some(url) => Some(crate::base_url(Some(url))?),
            None => None,
        };
        let connector = crate::connector(endpoint.is_some())?;
        let executor = hyper_util::rt::TokioExecutor::new();
        let api =
            hyper_util::client::legacy::Client::builder(executor.clone()).build(connector.clone());
        let tokens = hyper_util::client::legacy::Client::builder(executor).build(connector);
        let iam_base_url = endpoint
            .clone()
            .unwrap_or_else(|| crate::impersonation::IAM_CREDENTIALS_URL.to_string());
        Ok(Self {
            settings,
            endpoint,
            iam_base_url,
            own: None,
            api,
            tokens,
        })
    }

    pub(crate) fn set_own(&mut self, own: Option<ServiceAccountKey>) {
        self.own = own;
    }

    pub(crate) fn own_identity(&self) -> Option<&ServiceAccountKey> {
        self.own.as_ref()
    }

    pub(crate) fn settings(&self) -> &GcpSettings {
        &self.settings
    }

    pub(crate) fn iam_base_url(&self) -> &str {
        &self.iam_base_url
    }

    pub(crate) fn token_client(&self) -> &hyper_util::client::legacy::Client<Connector, String> {
        &self.tokens
    }

    /// The pool every hub is built on.
    pub(crate) fn api(&self) -> common::Client<Connector> {
        self.api.clone()
    }

    /// The base URL of an API whose production URL is `production`: the override when the
    /// settings have one (a local server answering every API), else Google's.
    pub(crate) fn base_url(&self, production: &str) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| production.to_string())
    }

    /// The user agent every hub sends.
    pub(crate) fn user_agent() -> String {
        concat!("canopy/", env!("CARGO_PKG_VERSION")).to_string()
    }

    /// Credentials for hubs acting as `who`, with a token for `scope` already fetched. A key's
    /// authenticator is built once and shared by every hub it is cloned into (it caches the
    /// token per scope set, so calls must ask for `scope`); an impersonated account's token is
    /// minted with `scope` (one IAM Credentials call).
    pub(crate) async fn auth(&self, who: &GcpCredentials, scope: &str) -> Result<Auth, CallError> {
        match who {
            GcpCredentials::Key(key) => {
                if self.settings.endpoint_url.is_none()
                    && !GOOGLE_TOKEN_URIS.contains(&key.token_uri())
                {
                    return Err(CallError::KeyRefused(
                        "its token_uri is not Google's token endpoint".into(),
                    ));
                }
                let auth = ServiceAccountAuthenticator::with_client(
                    key.to_yup(),
                    CustomHyperClientBuilder::from(self.tokens.clone()),
                )
                .build()
                .await
                .map_err(|_| CallError::KeyRefused("its private key could not be loaded".into()))?;
                // The token is fetched now, once: hubs calling at once would each fetch one
                // (yup-oauth2 does not share a fetch in flight), and a refused key fails here
                // rather than once per call.
                tokio::time::timeout(self.settings.call_timeout, auth.token(&[scope]))
                    .await
                    .map_err(|_| CallError::Timeout)?
                    .map_err(|e| crate::calls::token_failure(&e))?;
                Ok(Auth::Key(auth))
            }
            GcpCredentials::Impersonate(target) => {
                Ok(Auth::Token(self.impersonated_token(target, scope).await?))
            }
        }
    }
}
