//! Credential crypto adapter: argon2id password hashes (PHC strings) and opaque bearer tokens
//! of 256 random bits, stored as SHA-256 digests.
//!
//! A fast digest is right for tokens: they are random and long, so there is nothing to brute
//! force, and every authenticated request computes one. Passwords are low-entropy and get
//! argon2id, which is expensive on purpose (19 MiB of working memory per hash). So hashing
//! is bounded: a fixed number of hashes run at once, each in a working memory allocated once
//! and reused (the allocator never has to give 19 MiB back, because it never takes it again),
//! on the blocking pool so the async workers never stall; a short queue waits for a slot, and
//! beyond it the caller is told `Busy` at once. A burst of log-ins costs latency, not memory.

pub mod sealing;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canopy_tenancy::NewSecret;
use canopy_tenancy::ports::{CredentialCrypto, CryptoError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

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

/// How many hashes run at once, and how many may wait for a slot.
#[derive(Debug, Clone, Copy)]
pub struct HashingLimits {
    /// Hashes at once; each holds one working memory. Sized to the cores by default.
    pub concurrent: usize,
    /// Callers that may wait for a slot; beyond them hashing answers `Busy`.
    pub queue: usize,
}

impl Default for HashingLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            concurrent: cores,
            queue: 16 * cores,
        }
    }
}

/// Working memories, one per slot, reused from hash to hash.
#[derive(Debug)]
struct Workspaces {
    slots: Semaphore,
    memories: Mutex<Vec<Vec<Block>>>,
    waiting: AtomicUsize,
    queue: usize,
}

/// A place in the queue for a slot.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(waiting: &'a AtomicUsize, queue: usize) -> Result<Self, CryptoError> {
        let place = Self(waiting);
        if waiting.fetch_add(1, Ordering::SeqCst) >= queue {
            return Err(CryptoError::Busy);
        }
        Ok(place)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A slot held for one hash: gives its memory back when dropped.
struct Lease {
    workspaces: Arc<Workspaces>,
    memory: Option<Vec<Block>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.workspaces
                .memories
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(memory);
        }
        self.workspaces.slots.add_permits(1);
    }
}

impl Workspaces {
    fn new(limits: HashingLimits) -> Self {
        let concurrent = limits.concurrent.max(1);
        Self {
            slots: Semaphore::new(concurrent),
            // Allocated on first use, then kept: an idle server holds none.
            memories: Mutex::new(Vec::with_capacity(concurrent)),
            waiting: AtomicUsize::new(0),
            queue: limits.queue,
        }
    }

    /// Waits for a slot unless the queue is full.
    async fn lease(self: &Arc<Self>, blocks: usize) -> Result<Lease, CryptoError> {
        let permit = match self.slots.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                // Counted out again on drop, so a caller that gives up frees its place.
                let _place = Waiting::enter(&self.waiting, self.queue)?;
                self.slots
                    .acquire()
                    .await
                    .map_err(|e| CryptoError::Failed(e.to_string()))?
            }
        };
        // The lease gives the permit back itself, with the memory.
        permit.forget();
        let memory = self
            .memories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .filter(|m| m.len() == blocks)
            .unwrap_or_else(|| vec![Block::default(); blocks]);
        Ok(Lease {
            workspaces: self.clone(),
            memory: Some(memory),
        })
    }
}

/// The production [`CredentialCrypto`].
#[derive(Debug, Clone)]
pub struct Argon2Crypto {
    params: Params,
    dummy_hash: String,
    workspaces: Arc<Workspaces>,
}

impl Argon2Crypto {
    /// Builds the adapter with the given cost and the default hashing limits.
    pub fn new(cost: Argon2Cost) -> Result<Self, CryptoError> {
        Self::with_limits(cost, HashingLimits::default())
    }

    /// Builds the adapter with the given cost and hashing limits.
    pub fn with_limits(cost: Argon2Cost, limits: HashingLimits) -> Result<Self, CryptoError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| CryptoError::Failed(e.to_string()))?;
        let salt = SaltString::generate(&mut OsRng);
        let mut memory = vec![Block::default(); params.block_count()];
        let dummy_hash = hash_with(&params, b"canopy-timing-equalizer", &salt, &mut memory)?;
        let workspaces = Arc::new(Workspaces::new(limits));
        Ok(Self {
            params,
            dummy_hash,
            workspaces,
        })
    }

    /// Runs `work` with a leased working memory on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, CryptoError> {
        let mut lease = self.workspaces.lease(self.params.block_count()).await?;
        tokio::task::spawn_blocking(move || {
            let out = match lease.memory.as_mut() {
                Some(memory) => work(memory),
                None => work(&mut []),
            };
            drop(lease);
            out
        })
        .await
        .map_err(|e| CryptoError::Failed(e.to_string()))
    }
}

/// An argon2id PHC string for `password`, computed in `memory`.
fn hash_with(
    params: &Params,
    password: &[u8],
    salt: &SaltString,
    memory: &mut [Block],
) -> Result<String, CryptoError> {
    let failed = |e: &dyn std::fmt::Display| CryptoError::Failed(e.to_string());
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| failed(&e))?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt_raw, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Password)
    })
    .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `hash`, computed in `memory` when the hash's own
/// cost fits it (a hash made under an older cost gets a memory of its own).
fn verify_with(password: &[u8], hash: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm), Some(salt), Some(expected)) = (
        Params::try_from(&parsed),
        Algorithm::try_from(parsed.algorithm),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let mut own;
    let memory = if memory.len() == blocks {
        memory
    } else {
        own = vec![Block::default(); blocks];
        own.as_mut_slice()
    };
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password, salt_raw, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Password)
    });
    // Output compares in constant time.
    computed.is_ok_and(|c| c == expected)
}

#[async_trait]
impl CredentialCrypto for Argon2Crypto {
    async fn hash_password(&self, password: String) -> Result<String, CryptoError> {
        let params = self.params.clone();
        self.run(move |memory| {
            let salt = SaltString::generate(&mut OsRng);
            hash_with(&params, password.as_bytes(), &salt, memory)
        })
        .await?
    }

    async fn verify_password(&self, password: String, hash: String) -> Result<bool, CryptoError> {
        self.run(move |memory| verify_with(password.as_bytes(), &hash, memory))
            .await
    }

    async fn verify_dummy(&self, password: String) -> Result<(), CryptoError> {
        let hash = self.dummy_hash.clone();
        self.run(move |memory| {
            verify_with(password.as_bytes(), &hash, memory);
        })
        .await
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

    #[tokio::test]
    async fn pooled_hashes_interoperate_with_the_standard_argon2_implementation() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let c = crypto();
        let ours = c.hash_password("tr0ub4dor&3".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"tr0ub4dor&3", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"tr0ub4dor&4", &parsed)
                .is_err()
        );

        // A hash made elsewhere, under another cost, still verifies (in a memory of its own).
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(
            c.verify_password("correct horse".into(), theirs.clone())
                .await
                .unwrap()
        );
        assert!(
            !c.verify_password("correct hors".into(), theirs)
                .await
                .unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_busy_at_once_and_drains_afterwards() {
        let cost = Argon2Cost {
            memory_kib: 8 * 1024,
            iterations: 8,
            parallelism: 1,
        };
        let c = Argon2Crypto::with_limits(
            cost,
            HashingLimits {
                concurrent: 1,
                queue: 2,
            },
        )
        .unwrap();
        let hash = c.hash_password("pw".into()).await.unwrap();
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let (c, hash) = (c.clone(), hash.clone());
                tokio::spawn(async move { c.verify_password("pw".into(), hash).await })
            })
            .collect();
        let (mut ok, mut busy) = (0, 0);
        for a in attempts {
            match a.await.unwrap() {
                Ok(true) => ok += 1,
                Err(CryptoError::Busy) => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // One running plus two waiting at most when the burst lands; the rest are refused.
        assert!(busy > 0, "no caller was refused: ok={ok}");
        assert!(ok >= 1, "every caller was refused");
        assert_eq!(ok + busy, 12);
        // Refusals hold nothing: the next caller hashes normally.
        assert!(c.verify_password("pw".into(), hash.clone()).await.unwrap());
        assert_eq!(c.workspaces.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(c.workspaces.slots.available_permits(), 1);
        // One working memory, reused, however many hashes ran.
        assert_eq!(c.workspaces.memories.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_dummy_verification_is_refused_exactly_like_a_real_one() {
        let c = Argon2Crypto::with_limits(
            Argon2Cost {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            HashingLimits {
                concurrent: 1,
                queue: 0,
            },
        )
        .unwrap();
        // A held slot and no queue: both kinds of verification are Busy.
        let held = c.workspaces.lease(c.params.block_count()).await.unwrap();
        assert!(matches!(
            c.verify_dummy("x".into()).await,
            Err(CryptoError::Busy)
        ));
        assert!(matches!(
            c.verify_password("x".into(), "y".into()).await,
            Err(CryptoError::Busy)
        ));
        drop(held);
        assert!(c.verify_dummy("x".into()).await.is_ok());
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
