//! [`SecretSealer`] on AES-256-GCM (RustCrypto's `aes-gcm`): a fresh 96-bit random nonce per
//! seal, the record's id as associated data (a sealed value moved to another record does not
//! open), stored as `base64(nonce || ciphertext || tag)` beside the id of the key that sealed
//! it.
//!
//! Keys are 32 random bytes given base64-encoded by the operator. A key's id is derived from
//! the key (the first 8 hex digits of its SHA-256), so rotating needs no naming scheme: the
//! new key becomes current, the old one is listed as retired, everything sealed before still
//! opens, and `canopy secrets reseal` moves it to the current key.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use canopy_cloud_org::sealing::{SealError, SealedSecret, SecretSealer};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE_BYTES: usize = 12;

/// Why an operator key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConfigError {
    /// Not base64.
    #[error("a secret key must be base64 (generate one with `openssl rand -base64 32`)")]
    NotBase64,
    /// Not 32 bytes.
    #[error("a secret key must be 32 bytes (256 bits); this one is {0}")]
    Length(usize),
}

/// AES-256-GCM sealing with the operator's current key and its retired ones.
#[derive(Clone)]
pub struct AesGcmSealer {
    current: Option<String>,
    keys: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for AesGcmSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesGcmSealer")
            .field("current", &self.current)
            .field(
                "retired",
                &(self.keys.len() - usize::from(self.current.is_some())),
            )
            .finish()
    }
}

fn decode(raw: &str) -> Result<(String, Aes256Gcm), KeyConfigError> {
    let bytes = STANDARD
        .decode(raw.trim())
        .map_err(|_| KeyConfigError::NotBase64)?;
    if bytes.len() != 32 {
        return Err(KeyConfigError::Length(bytes.len()));
    }
    let id = Sha256::digest(&bytes)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyConfigError::Length(0))?;
    Ok((id, cipher))
}

impl AesGcmSealer {
    /// Seals with `current` (none: sealing answers `NotConfigured`), opens with it and every
    /// `retired` key. Keys are base64 of 32 bytes.
    pub fn new(current: Option<&str>, retired: &[String]) -> Result<Self, KeyConfigError> {
        let mut keys = HashMap::new();
        for raw in retired {
            let (id, cipher) = decode(raw)?;
            keys.insert(id, cipher);
        }
        let current = match current {
            Some(raw) => {
                let (id, cipher) = decode(raw)?;
                keys.insert(id.clone(), cipher);
                Some(id)
            }
            None => None,
        };
        Ok(Self { current, keys })
    }
}

impl SecretSealer for AesGcmSealer {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<SealedSecret, SealError> {
        let id = self.current.as_ref().ok_or(SealError::NotConfigured)?;
        let cipher = self.keys.get(id).ok_or(SealError::NotConfigured)?;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(SealedSecret {
            key_id: id.clone(),
            sealed: STANDARD.encode(out),
        })
    }

    fn open(&self, sealed: &SealedSecret, context: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        let bytes = STANDARD
            .decode(&sealed.sealed)
            .map_err(|_| SealError::Corrupt)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SealError::Corrupt);
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Corrupt)
    }

    fn current_key_id(&self) -> Option<String> {
        self.current.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_record_and_unaltered() {
        let sealer = AesGcmSealer::new(Some(&key(1)), &[]).unwrap();
        let sealed = sealer.seal(b"private key", b"record-1").unwrap();
        assert_eq!(sealer.open(&sealed, b"record-1").unwrap(), b"private key");
        assert_eq!(sealer.open(&sealed, b"record-2"), Err(SealError::Corrupt));
        let mut bytes = STANDARD.decode(&sealed.sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = SealedSecret {
            sealed: STANDARD.encode(bytes),
            ..sealed.clone()
        };
        assert_eq!(sealer.open(&altered, b"record-1"), Err(SealError::Corrupt));
        assert!(!sealed.sealed.contains("private"));
        // A fresh nonce each time: the same secret never seals to the same text.
        assert_ne!(sealer.seal(b"private key", b"record-1").unwrap(), sealed);
    }

    #[test]
    fn rotation_keeps_old_secrets_readable_and_seals_with_the_new_key() {
        let old = AesGcmSealer::new(Some(&key(1)), &[]).unwrap();
        let sealed = old.seal(b"s", b"r").unwrap();
        let rotated = AesGcmSealer::new(Some(&key(2)), &[key(1)]).unwrap();
        assert_eq!(rotated.open(&sealed, b"r").unwrap(), b"s");
        let resealed = rotated.seal(b"s", b"r").unwrap();
        assert_ne!(resealed.key_id, sealed.key_id);
        assert_eq!(Some(resealed.key_id.clone()), rotated.current_key_id());
        // Once the old key is dropped, what it sealed names the missing key.
        let dropped = AesGcmSealer::new(Some(&key(2)), &[]).unwrap();
        assert_eq!(
            dropped.open(&sealed, b"r"),
            Err(SealError::UnknownKey(sealed.key_id.clone()))
        );
    }

    #[test]
    fn without_a_key_nothing_is_sealed_and_bad_keys_are_refused() {
        let none = AesGcmSealer::new(None, &[]).unwrap();
        assert_eq!(none.seal(b"s", b"r"), Err(SealError::NotConfigured));
        assert_eq!(
            AesGcmSealer::new(Some("not base64!"), &[]).unwrap_err(),
            KeyConfigError::NotBase64
        );
        assert_eq!(
            AesGcmSealer::new(Some(&STANDARD.encode([0u8; 16])), &[]).unwrap_err(),
            KeyConfigError::Length(16)
        );
    }
}
