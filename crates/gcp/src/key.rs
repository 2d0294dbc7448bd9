//! The customer's service-account key, parsed and checked once, so a malformed upload is refused
//! when it is given rather than on the first discovery, and its private half never reaches a
//! log line.

use std::fmt;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

/// Google's token endpoint, which keys name unless they are older than it.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Largest key JSON accepted; a real one is about 2.3 KB.
const MAX_KEY_BYTES: usize = 64 * 1024;

/// Why a key JSON was refused. No variant carries any part of the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not JSON, or a field of the wrong type; where only, since serde's text may quote the
    /// offending value.
    #[error("the key is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// Line of the fault.
        line: usize,
        /// Column of the fault.
        column: usize,
    },
    /// `type` is not `service_account` (a user credential or an external account).
    #[error(
        "the key is not a service account key (type {0:?}); create a JSON key for a service account"
    )]
    NotServiceAccount(String),
    /// A required field is absent or empty.
    #[error("the key has no {0}")]
    Missing(&'static str),
    /// `private_key` is not an RSA private key in PEM.
    #[error("the key's private_key is not an RSA private key in PEM form")]
    PrivateKey,
    /// `token_uri` is not an http(s) URL.
    #[error("the key's token_uri is not an https URL")]
    TokenUri,
    /// Larger than any real key.
    #[error("the key is larger than {MAX_KEY_BYTES} bytes")]
    TooLarge,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    key_type: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
    client_id: Option<String>,
    token_uri: Option<String>,
}

/// A customer's service-account key (the JSON the Cloud Console downloads), validated.
#[derive(Clone)]
pub struct ServiceAccountKey {
    client_email: String,
    project_id: Option<String>,
    private_key_id: Option<String>,
    client_id: Option<String>,
    private_key: String,
    token_uri: String,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("project_id", &self.project_id)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn present(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl ServiceAccountKey {
    /// Parses and checks a key JSON: a service account's, with a readable RSA private key,
    /// a client e-mail and a token endpoint (Google's when the key names none).
    pub fn parse(json: &str) -> Result<Self, KeyError> {
        if json.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLarge);
        }
        let raw: Raw = serde_json::from_str(json).map_err(|e| KeyError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        match raw.key_type.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(KeyError::NotServiceAccount(
                    other.chars().take(40).collect(),
                ));
            }
            None => return Err(KeyError::Missing("type")),
        }
        let private_key = raw.private_key.filter(|k| !k.trim().is_empty());
        let private_key = private_key.ok_or(KeyError::Missing("private_key"))?;
        // yup-oauth2 reads the key the same way and would fail only at the first token request.
        let der = PrivateKeyDer::from_pem_slice(private_key.as_bytes())
            .map_err(|_| KeyError::PrivateKey)?;
        rustls::crypto::aws_lc_rs::sign::RsaSigningKey::new(&der)
            .map_err(|_| KeyError::PrivateKey)?;
        let client_email = present(raw.client_email)
            .filter(|e| e.contains('@'))
            .ok_or(KeyError::Missing("client_email"))?;
        let token_uri = present(raw.token_uri).unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err(KeyError::TokenUri);
        }
        Ok(Self {
            client_email,
            project_id: present(raw.project_id),
            private_key_id: present(raw.private_key_id),
            client_id: present(raw.client_id),
            private_key,
            token_uri,
        })
    }

    /// The service account's e-mail, the identity customers grant roles to.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The project the service account lives in.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// Which of the account's keys this is, so a customer can tell which one to rotate.
    pub fn private_key_id(&self) -> Option<&str> {
        self.private_key_id.as_deref()
    }

    /// The token endpoint the key names.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    pub(crate) fn to_yup(&self) -> yup_oauth2::ServiceAccountKey {
        yup_oauth2::ServiceAccountKey {
            key_type: Some("service_account".into()),
            project_id: self.project_id.clone(),
            private_key_id: self.private_key_id.clone(),
            private_key: self.private_key.clone(),
            client_email: self.client_email.clone(),
            client_id: self.client_id.clone(),
            auth_uri: None,
            token_uri: self.token_uri.clone(),
            auth_provider_x509_cert_url: None,
            client_x509_cert_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys with a real private key are parsed in tests/resource_manager.rs, from the testkit.
    fn with(fields: serde_json::Value) -> String {
        fields.to_string()
    }

    #[test]
    fn wrong_types_and_missing_fields_are_named() {
        assert_eq!(
            ServiceAccountKey::parse(&with(serde_json::json!({"type": "authorized_user"})))
                .map(|k| k.client_email().to_string()),
            Err(KeyError::NotServiceAccount("authorized_user".into()))
        );
        assert_eq!(
            ServiceAccountKey::parse(&with(serde_json::json!({"client_email": "a@b"})))
                .map(|k| k.client_email().to_string()),
            Err(KeyError::Missing("type"))
        );
        assert_eq!(
            ServiceAccountKey::parse(&with(
                serde_json::json!({"type": "service_account", "client_email": "a@b"})
            ))
            .map(|k| k.client_email().to_string()),
            Err(KeyError::Missing("private_key"))
        );
        assert_eq!(
            ServiceAccountKey::parse(&with(serde_json::json!({
                "type": "service_account",
                "client_email": "a@b",
                "private_key": "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"
            })))
            .map(|k| k.client_email().to_string()),
            Err(KeyError::PrivateKey)
        );
    }

    #[test]
    fn json_errors_say_where_but_never_quote_the_input() {
        let err = ServiceAccountKey::parse(
            r#"{"type": "service_account", "private_key": 5, "x": "SECRET"#,
        )
        .map(|k| k.client_email().to_string());
        let Err(err) = err else {
            panic!("parsed");
        };
        assert!(matches!(err, KeyError::NotJson { line: 1, .. }), "{err:?}");
        assert!(!err.to_string().contains("SECRET"));
        assert_eq!(
            ServiceAccountKey::parse(&" ".repeat(MAX_KEY_BYTES + 1)).map(|_| ()),
            Err(KeyError::TooLarge)
        );
    }
}
