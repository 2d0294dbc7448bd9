//! Credential crypto adapter: argon2id password hashes (PHC strings) and opaque bearer tokens
//! of 256 random bits, stored as SHA-256 digests.
//!
//! A fast digest is right for tokens: they are random and long, so there is nothing to brute
//! force, and every authenticated request computes one. Passwords are low-entropy and get
//! argon2id, run on the blocking pool so a hash never stalls the async workers.

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canopy_tenancy::NewSecret;
use canopy_tenancy::ports::{CredentialCrypto, CryptoError};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes in every token: 32 bytes is 256 bits.
const TOKEN_BYTES: usize = 32;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy)]
pub struct Argon2Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    /// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The production [`CredentialCrypto`].
#[derive(Debug, Clone)]
pub struct Argon2Crypto {
    params: Params,
    dummy_hash: String,
}

impl Argon2Crypto {
    /// Builds the adapter with the given cost.
    pub fn new(cost: Argon2Cost) -> Result<Self, CryptoError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| CryptoError(e.to_string()))?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = hasher
            .hash_password(b"canopy-timing-equalizer", &salt)
            .map_err(|e| CryptoError(e.to_string()))?
            .to_string();
        Ok(Self { params, dummy_hash })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

fn verify(argon2: &Argon2<'_>, password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[async_trait]
impl CredentialCrypto for Argon2Crypto {
    async fn hash_password(&self, password: String) -> Result<String, CryptoError> {
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| CryptoError(e.to_string()))
        })
        .await
        .map_err(|e| CryptoError(e.to_string()))?
    }

    async fn verify_password(&self, password: String, hash: String) -> Result<bool, CryptoError> {
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || verify(&argon2, &password, &hash))
            .await
            .map_err(|e| CryptoError(e.to_string()))
    }

    async fn verify_dummy(&self, password: String) {
        let argon2 = self.argon2();
        let hash = self.dummy_hash.clone();
        let _ = tokio::task::spawn_blocking(move || verify(&argon2, &password, &hash)).await;
    }

    fn new_token(&self, kind: &'static str) -> NewSecret {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let body = URL_SAFE_NO_PAD.encode(bytes);
        let plain = format!("{kind}_{body}");
        let display_prefix = format!("{kind}_{}", &body[..8]);
        NewSecret {
            digest: self.digest(&plain),
            plain,
            display_prefix,
        }
    }

    fn digest(&self, token: &str) -> String {
        let digest = Sha256::digest(token.as_bytes());
        let mut out = String::with_capacity(64);
        for byte in digest {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    fn slug_suffix(&self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
        let mut bytes = [0u8; 6];
        rand::rng().fill_bytes(&mut bytes);
        bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect()
    }
}

/// External IDs: `cnp-` and 160 random bits, within STS's allowed characters.
impl canopy_cloud_org::ports::SecretSource for Argon2Crypto {
    fn external_id(&self) -> String {
        let mut bytes = [0u8; 20];
        rand::rng().fill_bytes(&mut bytes);
        format!("cnp-{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    fn connection_token(&self) -> String {
        CredentialCrypto::new_token(self, "cnp_conn").plain
    }

    fn token_digest(&self, token: &str) -> String {
        CredentialCrypto::digest(self, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> Argon2Crypto {
        Argon2Crypto::new(Argon2Cost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let c = crypto();
        let hash = c.hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            c.verify_password("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!c.verify_password("wrong horse".into(), hash).await.unwrap());
        assert!(
            !c.verify_password("x".into(), "not a phc string".into())
                .await
                .unwrap()
        );
    }

    #[test]
    fn tokens_carry_256_bits_and_their_digest_is_stable() {
        let c = crypto();
        let a = c.new_token("cnp_sess");
        let b = c.new_token("cnp_sess");
        assert_ne!(a.plain, b.plain);
        let body = a.plain.strip_prefix("cnp_sess_").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert_eq!(c.digest(&a.plain), a.digest);
        assert_eq!(a.digest.len(), 64);
        assert!(a.plain.starts_with(&a.display_prefix));
        assert!(!a.digest.contains(body));
    }

    #[test]
    fn external_ids_are_random_and_sts_safe() {
        use canopy_cloud_org::ports::SecretSource;
        let c = crypto();
        let (a, b) = (c.external_id(), c.external_id());
        assert_ne!(a, b);
        assert!(a.len() >= 2 + 27 && a.len() <= 1224);
        assert!(
            a.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@:/-_".contains(ch)),
            "{a}"
        );
    }

    #[test]
    fn slug_suffixes_are_slug_safe() {
        let c = crypto();
        let s = c.slug_suffix();
        assert_eq!(s.len(), 6);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
