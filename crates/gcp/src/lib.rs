//! Canopy's GCP adapter: reads a whole GCP Organization (its folders and projects) through
//! Resource Manager v3 with the customer's service-account key, and proves access to single
//! projects, classifying every failure.
//!
//! Built on google-cloudresourcemanager3 and yup-oauth2 over one hyper 1 / rustls (aws-lc)
//! connector with Mozilla's roots compiled in: the hosts Canopy runs on have no CA store, and
//! the default builders of both crates need one.
//!
//! It also scans for detections ([`scan`]): log sinks, Security Command Center, organization
//! policies and asset feeds of an organization, and each project's own log sinks, through
//! google-logging2, google-securitycenter1, google-orgpolicy2 and google-cloudasset1 on the
//! same client.
//!
//! API boundary: [`ResourceManagerDiscoverer`] (also the domain's `OrganizationDiscoverer`),
//! [`GcpProjectVerifier`] (the domain's `ProjectVerifier`), [`scan::GcpOrganizationScanner`]
//! and [`scan::GcpAccountScanner`] (the detection domain's scanners), [`GcpSettings`],
//! [`ServiceAccountKey`], [`KeyError`], [`ProjectInfo`], [`SetupError`].

mod calls;
mod client;
mod discovery;
mod impersonation;
mod key;
mod ports;
pub mod scan;

pub use discovery::{ProjectInfo, ResourceManagerDiscoverer};
pub use impersonation::{GcpCredentials, IAM_CREDENTIALS_URL};
pub use key::{DEFAULT_TOKEN_URI, KeyError, ServiceAccountKey};
pub use ports::GcpProjectVerifier;
pub use scan::{GcpAccountScanner, GcpOrganizationScanner};

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;

/// The TLS-capable connector both clients use.
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
/// The Resource Manager hub over it.
type Hub = google_cloudresourcemanager3::CloudResourceManager<Connector>;

/// Google's Resource Manager endpoint.
pub const RESOURCE_MANAGER_URL: &str = "https://cloudresourcemanager.googleapis.com/";

/// Token endpoints a production key may name. The key is the customer's upload, and its
/// `token_uri` receives a POST from Canopy's network: anything else would let a tenant aim
/// Canopy at an internal address.
pub const GOOGLE_TOKEN_URIS: [&str; 3] = [
    DEFAULT_TOKEN_URI,
    "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
];

/// Settings of the GCP adapter, from the app's configuration.
#[derive(Debug, Clone)]
pub struct GcpSettings {
    /// Base URL override of every Google API Canopy calls (Resource Manager, IAM Credentials,
    /// Logging, Security Command Center, Org Policy, Cloud Asset: a local server answering
    /// them all, in tests); `None` for Google's. With an override, plain http and any token
    /// endpoint a key names are allowed.
    pub endpoint_url: Option<String>,
    /// Google API calls in flight for one discovery or one scan.
    pub max_in_flight: usize,
    /// Time allowed for one call, its token request included.
    pub call_timeout: Duration,
    /// Retries of one throttled call before a discovery gives up.
    pub max_retries: u32,
    /// First back-off; doubles per retry, with full jitter.
    pub base_backoff: Duration,
    /// Longest single back-off.
    pub max_backoff: Duration,
}

impl Default for GcpSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            max_in_flight: 8,
            call_timeout: Duration::from_secs(30),
            max_retries: 6,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(16),
        }
    }
}

/// Why the adapter could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The TLS configuration was refused by rustls.
    #[error("TLS could not be configured: {0}")]
    Tls(String),
    /// The endpoint override is not an http(s) URL.
    #[error("the Resource Manager endpoint {0:?} is not an http(s) URL")]
    Endpoint(String),
}

/// One connector for Resource Manager and the token endpoint. TLS is configured here rather
/// than by either crate: their defaults load the system's CA certificates (absent in Canopy's
/// images) and pick the process-wide crypto provider (a panic when none is installed).
fn connector(allow_http: bool) -> Result<Connector, SetupError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SetupError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if allow_http {
        builder.https_or_http()
    } else {
        builder.https_only()
    };
    Ok(builder.enable_http1().enable_http2().build())
}

/// The base URL the hub gets: it must end with `/` or the client panics building a request.
fn base_url(endpoint: Option<&str>) -> Result<String, SetupError> {
    let url = endpoint.unwrap_or(RESOURCE_MANAGER_URL).trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(SetupError::Endpoint(url.to_string()));
    }
    Ok(if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_always_ends_with_a_slash() {
        assert_eq!(base_url(None).unwrap(), RESOURCE_MANAGER_URL);
        assert_eq!(
            base_url(Some("http://127.0.0.1:9")).unwrap(),
            "http://127.0.0.1:9/"
        );
        assert_eq!(
            base_url(Some("http://127.0.0.1:9/")).unwrap(),
            "http://127.0.0.1:9/"
        );
        assert!(base_url(Some("127.0.0.1:9")).is_err());
    }

    #[test]
    fn connectors_build_without_a_process_wide_crypto_provider() {
        // No provider is installed in this test binary: building must not need one.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        assert!(connector(false).is_ok());
        assert!(connector(true).is_ok());
    }
}
