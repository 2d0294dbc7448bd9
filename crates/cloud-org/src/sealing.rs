//! Customer secrets Canopy must keep (a GCP service-account key) are sealed at rest with an
//! operator key through the [`SecretSealer`] port, bound to the record they belong to, and
//! opened only for the call that needs them. The domain never sees the operator's key.

use std::fmt;

/// A secret as stored: the id of the operator key that sealed it (so keys can rotate: old
/// ids still open, new seals use the current one) and the sealed bytes, encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The operator key's id.
    pub key_id: String,
    /// Nonce, ciphertext and tag, base64.
    pub sealed: String,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish()
    }
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The operator configured no key: nothing can be sealed.
    #[error(
        "no secret key is configured: the operator sets CANOPY_SECRET_KEY (or \
         CANOPY_SECRET_KEY_FILE) to store customer credentials"
    )]
    NotConfigured,
    /// Sealed with a key the operator no longer provides.
    #[error("the secret was sealed with key {0}, which is no longer configured")]
    UnknownKey(String),
    /// Altered, truncated, or sealed for another record.
    #[error("the sealed secret does not open: altered or not this record's")]
    Corrupt,
}

/// Seals and opens secrets with the operator's key. Implemented by `canopy-credentials`
/// (AES-256-GCM).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretSealer: Send + Sync {
    /// Seals `plaintext` bound to `context` (the id of the record that keeps it): a sealed
    /// value copied onto another record MUST NOT open there.
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<SealedSecret, SealError>;

    /// Opens what [`SecretSealer::seal`] sealed with the same `context`.
    fn open(&self, sealed: &SealedSecret, context: &[u8]) -> Result<Vec<u8>, SealError>;

    /// The id of the key new seals use; `None` when none is configured.
    fn current_key_id(&self) -> Option<String>;
}

/// A GCP service-account key (JSON) as the customer gave it. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccountKeyJson(String);

impl ServiceAccountKeyJson {
    /// Wraps the key's JSON text.
    pub fn new(json: String) -> Self {
        Self(json)
    }

    /// The JSON text, for the adapter that signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The service account's e-mail (`client_email`), if the JSON names one.
    pub fn client_email(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.0)
            .ok()?
            .get("client_email")?
            .as_str()
            .map(str::to_string)
    }
}

impl fmt::Debug for ServiceAccountKeyJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceAccountKeyJson(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_key_or_the_ciphertext() {
        let key = ServiceAccountKeyJson::new(
            r#"{"client_email":"a@b.iam.gserviceaccount.com","private_key":"-----BEGIN"}"#.into(),
        );
        assert!(!format!("{key:?}").contains("BEGIN"));
        assert_eq!(
            key.client_email().as_deref(),
            Some("a@b.iam.gserviceaccount.com")
        );
        let sealed = SealedSecret {
            key_id: "k1".into(),
            sealed: "c2VjcmV0".into(),
        };
        assert!(!format!("{sealed:?}").contains("c2VjcmV0"));
    }
}
