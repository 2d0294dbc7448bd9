//! Device log-in, in the style of RFC 8628: a terminal asks for a code, a signed-in person
//! approves it in the console, and the terminal, polling, receives an API key of its own,
//! scoped to that person. The device code is a secret stored only as a digest; the code the
//! person types is short, made of consonants only (no words, no look-alikes), and lives ten
//! minutes. Each request is answered once: the key goes to the first poll after approval,
//! and every later poll is refused.

use std::sync::Arc;

use async_trait::async_trait;
use canopy_kernel::id::{ApiKeyId, UserId};
use canopy_kernel::{Clock, FieldError, StoreError, ValidationErrors};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::credential::ApiKey;
use crate::ports::{CredentialCrypto, UserRepository};
use crate::service::IssuedApiKey;

/// How long a request may wait for its approval.
pub const LIFETIME_MINUTES: i64 = 10;

/// Seconds a terminal waits between polls, to begin with; polling faster adds five.
pub const INTERVAL_SECONDS: u32 = 5;

/// The letters of a user code: consonants a person reads and types without confusion.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Longest device name kept.
const MAX_NAME: usize = 100;

/// Token prefix of device codes.
const DEVICE_CODE_KIND: &str = "cnp_dev";

/// Token prefix of API keys (the same as keys made by hand).
const API_KEY_KIND: &str = "cnp_key";

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for a person.
    Pending,
    /// Approved; the key goes to the next poll.
    Approved,
    /// Refused by the person.
    Denied,
    /// Its key was handed out.
    Redeemed,
}

impl DeviceStatus {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Redeemed => "redeemed",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Redeemed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// A terminal's request to act as someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// Id.
    pub id: Uuid,
    /// Digest of the device code the terminal polls with.
    pub device_code_digest: String,
    /// The code the person types, `BCDF-GHJK`.
    pub user_code: String,
    /// What the terminal calls itself (shown to the person approving).
    pub client_name: String,
    /// Where it stands.
    pub status: DeviceStatus,
    /// Who approved or denied it.
    pub user_id: Option<UserId>,
    /// Seconds the terminal must wait between polls.
    pub interval_seconds: u32,
    /// When it was asked.
    pub created_at: DateTime<Utc>,
    /// When it lapses unless approved and redeemed.
    pub expires_at: DateTime<Utc>,
    /// When the person answered.
    pub decided_at: Option<DateTime<Utc>>,
    /// The terminal's last poll.
    pub last_polled_at: Option<DateTime<Utc>>,
}

/// A request as the terminal first gets it: the device code is in here and nowhere else.
#[derive(Debug, Clone)]
pub struct StartedDevice {
    /// The stored request.
    pub authorization: DeviceAuthorization,
    /// The secret the terminal polls with.
    pub device_code: String,
}

/// Device requests, stored.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DeviceAuthorizationRepository: Send + Sync {
    /// Stores a new request.
    async fn insert(&self, request: DeviceAuthorization) -> Result<(), StoreError>;

    /// The request with this user code, whatever its status.
    async fn by_user_code(&self, code: &str) -> Result<Option<DeviceAuthorization>, StoreError>;

    /// The request with this device-code digest, whatever its status.
    async fn by_device_code(&self, digest: &str)
    -> Result<Option<DeviceAuthorization>, StoreError>;

    /// Pending and unexpired at `now`: approved or denied by `user`. `false` when it was not
    /// pending any more (answered twice, or lapsed): exactly one answer wins.
    async fn decide(
        &self,
        id: Uuid,
        user: UserId,
        approve: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records a poll, with the interval from now on.
    async fn polled(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        interval_seconds: u32,
    ) -> Result<(), StoreError>;

    /// Approved: marks it redeemed and stores `key`, in one transaction. `false` when it was
    /// not approved any more (another poll took the key): nothing is stored.
    async fn redeem(&self, id: Uuid, key: ApiKey, now: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// Why a poll gets no key (RFC 8628's error codes).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The person has not answered yet.
    #[error("the request is waiting for approval")]
    AuthorizationPending,
    /// Polled before the interval passed; wait this many seconds from now on.
    #[error("polling too fast: wait {0} seconds between polls")]
    SlowDown(u32),
    /// The person refused it.
    #[error("the request was denied")]
    AccessDenied,
    /// Lapsed, already redeemed, or never issued: start again.
    #[error("the request expired or was already used; start again")]
    ExpiredToken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a request could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The device name broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a person cannot answer a request.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No pending request has this code (mistyped, lapsed, or answered).
    #[error("no pending request has this code; it may have expired")]
    NotFound,
    /// The person has not verified their address: a key would act as them, as with keys
    /// made by hand.
    #[error("verify your e-mail address before approving a device")]
    EmailUnverified,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Device log-in: start, show, answer, poll.
#[derive(Clone)]
pub struct DeviceLogins {
    requests: Arc<dyn DeviceAuthorizationRepository>,
    users: Arc<dyn UserRepository>,
    crypto: Arc<dyn CredentialCrypto>,
    clock: Arc<dyn Clock>,
}

/// `BCDFGHJK` from a digest's bytes, unbiased (bytes past the last multiple of 20 skipped),
/// written `BCDF-GHJK`.
fn user_code(digest_hex: &str) -> String {
    let bytes = (0..digest_hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&digest_hex[2 * i..2 * i + 2], 16).ok());
    let letters: Vec<u8> = bytes
        .filter(|b| *b < 240)
        .take(8)
        .map(|b| ALPHABET[usize::from(b % 20)])
        .collect();
    let letters = String::from_utf8(letters).unwrap_or_default();
    format!(
        "{}-{}",
        &letters[..4.min(letters.len())],
        &letters[4.min(letters.len())..]
    )
}

/// A typed code in the stored form (`bcdf ghjk`, `BCDFGHJK` → `BCDF-GHJK`), or `None` when it
/// cannot be one.
pub fn normalize_user_code(raw: &str) -> Option<String> {
    let letters: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (letters.len() == 8 && letters.bytes().all(|b| ALPHABET.contains(&b)))
        .then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}

impl DeviceLogins {
    /// Over its adapters.
    pub fn new(
        requests: Arc<dyn DeviceAuthorizationRepository>,
        users: Arc<dyn UserRepository>,
        crypto: Arc<dyn CredentialCrypto>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            requests,
            users,
            crypto,
            clock,
        }
    }

    /// A new request from a terminal calling itself `client_name`.
    pub async fn start(&self, client_name: &str) -> Result<StartedDevice, StartError> {
        let name = client_name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(StartError::Invalid(ValidationErrors::single(
                FieldError::new(
                    "clientName",
                    "length",
                    format!("must be 1 to {MAX_NAME} printable characters"),
                ),
            )));
        }
        let now = self.clock.now();
        let device = self.crypto.new_token(DEVICE_CODE_KIND);
        let code = user_code(&self.crypto.digest(&self.crypto.new_token("cnp_usr").plain));
        let authorization = DeviceAuthorization {
            id: Uuid::now_v7(),
            device_code_digest: device.digest,
            user_code: code,
            client_name: name.to_string(),
            status: DeviceStatus::Pending,
            user_id: None,
            interval_seconds: INTERVAL_SECONDS,
            created_at: now,
            expires_at: now + Duration::minutes(LIFETIME_MINUTES),
            decided_at: None,
            last_polled_at: None,
        };
        self.requests.insert(authorization.clone()).await?;
        Ok(StartedDevice {
            authorization,
            device_code: device.plain,
        })
    }

    /// The pending request a person typed the code of (for the approval page).
    pub async fn pending(&self, typed: &str) -> Result<DeviceAuthorization, DecideError> {
        let code = normalize_user_code(typed).ok_or(DecideError::NotFound)?;
        let found = self
            .requests
            .by_user_code(&code)
            .await?
            .ok_or(DecideError::NotFound)?;
        if found.status != DeviceStatus::Pending || found.expires_at <= self.clock.now() {
            return Err(DecideError::NotFound);
        }
        Ok(found)
    }

    /// `user` approves or denies the request with this code.
    pub async fn decide(
        &self,
        user: UserId,
        typed: &str,
        approve: bool,
    ) -> Result<DeviceAuthorization, DecideError> {
        let found = self.pending(typed).await?;
        let person = self.users.get(user).await?.ok_or(DecideError::NotFound)?;
        if approve && person.email_verified_at.is_none() {
            return Err(DecideError::EmailUnverified);
        }
        if self
            .requests
            .decide(found.id, user, approve, self.clock.now())
            .await?
        {
            Ok(found)
        } else {
            Err(DecideError::NotFound)
        }
    }

    /// A terminal's poll: the API key once approved, or why not yet.
    pub async fn poll(&self, device_code: &str) -> Result<IssuedApiKey, PollError> {
        let digest = self.crypto.digest(device_code);
        let found = self
            .requests
            .by_device_code(&digest)
            .await?
            .ok_or(PollError::ExpiredToken)?;
        let now = self.clock.now();
        if found.status == DeviceStatus::Redeemed || found.expires_at <= now {
            return Err(PollError::ExpiredToken);
        }
        let early = found
            .last_polled_at
            .is_some_and(|at| now - at < Duration::seconds(i64::from(found.interval_seconds)));
        let interval = if early {
            found.interval_seconds + 5
        } else {
            found.interval_seconds
        };
        self.requests.polled(found.id, now, interval).await?;
        if early && found.status == DeviceStatus::Pending {
            return Err(PollError::SlowDown(interval));
        }
        match found.status {
            DeviceStatus::Pending => Err(PollError::AuthorizationPending),
            DeviceStatus::Denied => Err(PollError::AccessDenied),
            DeviceStatus::Redeemed => Err(PollError::ExpiredToken),
            DeviceStatus::Approved => self.redeem(&found, now).await,
        }
    }

    async fn redeem(
        &self,
        found: &DeviceAuthorization,
        now: DateTime<Utc>,
    ) -> Result<IssuedApiKey, PollError> {
        let user = found.user_id.ok_or(PollError::ExpiredToken)?;
        // A person deleted since approving gets no key.
        self.users.get(user).await?.ok_or(PollError::ExpiredToken)?;
        let secret = self.crypto.new_token(API_KEY_KIND);
        let mut name = format!("CLI: {}", found.client_name);
        name.truncate(120);
        let key = ApiKey {
            id: ApiKeyId::new(),
            user_id: user,
            name,
            prefix: secret.display_prefix,
            token_digest: secret.digest,
            expires_at: None,
            revoked_at: None,
            created_at: now,
        };
        if self.requests.redeem(found.id, key.clone(), now).await? {
            Ok(IssuedApiKey {
                key,
                token: secret.plain,
            })
        } else {
            Err(PollError::ExpiredToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_consonants_and_typed_codes_normalize() {
        let code = user_code(&"ab".repeat(32));
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b))
        );
        assert_eq!(
            normalize_user_code("bcdf ghjk").as_deref(),
            Some("BCDF-GHJK")
        );
        assert_eq!(
            normalize_user_code("BCDF-GHJK").as_deref(),
            Some("BCDF-GHJK")
        );
        assert_eq!(
            normalize_user_code("BCDF-GHJA"),
            None,
            "A is not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        // Bytes of 240 and above are skipped, so every letter is equally likely.
        let skipped = format!("{}{}", "f5".repeat(4), "00".repeat(28));
        assert_eq!(user_code(&skipped), "BBBB-BBBB");
    }
}
