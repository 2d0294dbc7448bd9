//! Service-account keys the fake issues and the RS256 assertions it checks, as Google's token
//! endpoint does for the JWT-bearer grant.

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

/// One RSA key and its PKCS#8 PEM.
pub(crate) struct Rsa {
    pair: KeyPair,
    pem: String,
}

impl Rsa {
    fn generate() -> Self {
        // Key generation cannot fail for a supported size short of the process being out of
        // entropy, which no test can recover from.
        #[allow(clippy::expect_used)]
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        #[allow(clippy::expect_used)]
        let der: Pkcs8V1Der<'static> = pair.as_der().expect("PKCS#8 encoding");
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Self { pair, pem }
    }

    /// The private key as a key JSON carries it.
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// Signs `message` with RS256 (tests of the verifier itself).
    #[cfg(test)]
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        #[allow(clippy::expect_used)]
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
            .expect("RS256 signing");
        sig
    }

    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public_key().as_ref(),
        )
        .verify(message, sig)
        .is_ok()
    }
}

/// The key every fake issues. One per process: generation is the slow part of a test run.
pub(crate) fn issued() -> &'static Rsa {
    static KEY: OnceLock<Rsa> = OnceLock::new();
    KEY.get_or_init(Rsa::generate)
}

/// A key no fake issued, to stand for a customer's stale or foreign key.
pub(crate) fn foreign() -> &'static Rsa {
    static KEY: OnceLock<Rsa> = OnceLock::new();
    KEY.get_or_init(Rsa::generate)
}

/// A full key JSON as the Cloud Console downloads it.
pub(crate) fn key_json(key: &Rsa, client_email: &str, token_uri: &str) -> String {
    let project = client_email
        .split('@')
        .nth(1)
        .and_then(|d| d.split('.').next())
        .unwrap_or("canopy-test");
    serde_json::json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": key.pem(),
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
    })
    .to_string()
}

/// yup-oauth2 pads its base64url; Google accepts both, so the fake does too.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The claims of a service account's assertion that the fake checks.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Claims {
    /// The service account's e-mail.
    pub iss: String,
    /// Must be the token endpoint's own URL.
    pub aud: String,
    /// Seconds since the epoch.
    pub exp: i64,
    /// Seconds since the epoch.
    pub iat: i64,
    /// Space-separated OAuth scopes.
    #[serde(default)]
    pub scope: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Why an assertion was refused; becomes the `error_description` of an `invalid_grant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not three base64url parts of JSON.
    Malformed,
    /// Not RS256.
    Algorithm,
    /// Not signed by the issued key.
    Signature,
    /// For another token endpoint, or expired.
    Claims(&'static str),
}

impl Refusal {
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Refusal::Malformed => "Invalid JWT: malformed",
            Refusal::Algorithm => "Invalid JWT: only RS256 is accepted",
            Refusal::Signature => "Invalid JWT Signature.",
            Refusal::Claims(why) => why,
        }
    }
}

/// Checks an assertion's signature against `key` and its audience and lifetime.
pub(crate) fn verify(
    key: &Rsa,
    assertion: &str,
    audience: &str,
    now: i64,
) -> Result<Claims, Refusal> {
    let mut parts = assertion.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let decode = |part: &str| B64URL.decode(part).map_err(|_| Refusal::Malformed);
    let header: Header = serde_json::from_slice(&decode(head)?).map_err(|_| Refusal::Malformed)?;
    if header.alg != "RS256" {
        return Err(Refusal::Algorithm);
    }
    let signed = &assertion[..head.len() + 1 + body.len()];
    if !key.verifies(signed.as_bytes(), &decode(sig)?) {
        return Err(Refusal::Signature);
    }
    let claims: Claims = serde_json::from_slice(&decode(body)?).map_err(|_| Refusal::Malformed)?;
    if claims.aud != audience {
        return Err(Refusal::Claims(
            "Invalid JWT: audience is not this token endpoint",
        ));
    }
    if claims.exp <= now || claims.iat > now + 300 || claims.exp - claims.iat > 3600 {
        return Err(Refusal::Claims(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion(key: &Rsa, claims: &serde_json::Value, padded: bool) -> String {
        let engine = if padded {
            base64::engine::general_purpose::URL_SAFE
        } else {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
        };
        let mut jwt = format!(
            "{}.{}",
            engine.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            engine.encode(claims.to_string())
        );
        let sig = key.sign(jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&engine.encode(sig));
        jwt
    }

    fn claims(aud: &str, iat: i64) -> serde_json::Value {
        serde_json::json!({"iss": "sa@p.iam.gserviceaccount.com", "aud": aud, "iat": iat,
            "exp": iat + 3595, "scope": "https://www.googleapis.com/auth/cloud-platform.read-only"})
    }

    #[test]
    fn a_well_signed_assertion_passes_padded_or_not() {
        let aud = "http://127.0.0.1:1/token";
        for padded in [true, false] {
            let jwt = assertion(issued(), &claims(aud, 1_000), padded);
            let ok = verify(issued(), &jwt, aud, 1_010).map(|c| c.iss);
            assert_eq!(ok, Ok("sa@p.iam.gserviceaccount.com".to_string()));
        }
    }

    #[test]
    fn foreign_keys_tampering_audience_and_expiry_are_refused() {
        let aud = "http://127.0.0.1:1/token";
        let foreign = assertion(foreign(), &claims(aud, 1_000), true);
        assert_eq!(
            verify(issued(), &foreign, aud, 1_010).map(|c| c.iss),
            Err(Refusal::Signature)
        );
        // Same signature over claims naming another account.
        let good = assertion(issued(), &claims(aud, 1_000), true);
        let mut parts: Vec<&str> = good.split('.').collect();
        let other = B64URL.encode(
            claims(aud, 1_000)
                .to_string()
                .replace("sa@p", "admin@p")
                .as_bytes(),
        );
        parts[1] = &other;
        assert_eq!(
            verify(issued(), &parts.join("."), aud, 1_010).map(|c| c.iss),
            Err(Refusal::Signature)
        );
        assert!(matches!(
            verify(issued(), &good, "http://elsewhere/token", 1_010),
            Err(Refusal::Claims(_))
        ));
        assert!(matches!(
            verify(issued(), &good, aud, 1_000 + 3_600),
            Err(Refusal::Claims(_))
        ));
        assert_eq!(
            verify(issued(), "a.b", aud, 0).map(|c| c.iss),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn the_issued_key_is_a_pkcs8_pem_and_differs_from_the_foreign_one() {
        assert!(issued().pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(issued().pem().ends_with("-----END PRIVATE KEY-----\n"));
        assert_ne!(issued().pem(), foreign().pem());
    }
}
