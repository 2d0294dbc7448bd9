//! Users, their login email and their password rules.

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_kernel::{FieldError, bounded_text};
use chrono::{DateTime, Utc};

/// A normalized email address: trimmed, lower-cased, one `@`, a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Longest address accepted, in characters (RFC 5321 path limit).
    pub const MAX_LEN: usize = 254;

    /// The published form of the rule (ECMA-262): one `@`, a dotted domain, no whitespace or
    /// control characters inside (spaces around are trimmed).
    pub const PATTERN: &'static str = "^ *[^@\\s\\x00-\\x1F\\x7F-\\x9F]+@[^@.\\s\\x00-\\x1F\\x7F-\\x9F]+(\\.[^@.\\s\\x00-\\x1F\\x7F-\\x9F]+)+ *$";

    /// Normalizes and checks an address; `field` names the input in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new(field, "required", "is required"));
        }
        // Counted before lower-casing, which can lengthen a few characters.
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(FieldError::new(
                field,
                "length",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        let email = trimmed.to_lowercase();
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
                    && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !valid {
            return Err(FieldError::new(
                field,
                "format",
                "must be an email address like name@example.com",
            ));
        }
        Ok(Self(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds an address read back from storage, where it was stored normalized.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest display name (users, organizations, API keys), in characters.
pub const NAME_MAX_CHARS: usize = 100;

/// Validates a display name: the kernel's bounded-text rule, at most [`NAME_MAX_CHARS`].
pub fn parse_name(raw: &str, field: &str) -> Result<String, FieldError> {
    bounded_text(raw, field, NAME_MAX_CHARS)
}

/// A password that meets the length rules. Never logged: `Debug` is redacted.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Minimum length in characters (NIST SP 800-63B asks for at least 8).
    pub const MIN_CHARS: usize = 10;
    /// Maximum length in characters; bounds the hashing work a request can cause.
    pub const MAX_CHARS: usize = 256;

    /// Checks the length rules of a new password.
    pub fn parse(raw: String, field: &str) -> Result<Self, FieldError> {
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(FieldError::new(
                field,
                "length",
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                "length",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw))
    }

    /// The secret itself, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A registered person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Normalized login email.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// The organization the console opens by default.
    pub active_organization_id: Option<OrganizationId>,
    /// When the address was proven by opening a link sent to it; `None` until then.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A user record together with the stored password hash, for log-in only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// PHC-format hash.
    pub password_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ", "email")
                .unwrap()
                .as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused_with_the_rule() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a@b@c.com",
            "ada @x.com",
            "ada@.com",
        ] {
            let err = Email::parse(bad, "email").unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
        assert_eq!(Email::parse("", "email").unwrap_err().rule, "required");
    }

    #[test]
    fn password_length_is_bounded_both_ways() {
        assert_eq!(
            Password::parse("short".into(), "password")
                .unwrap_err()
                .rule,
            "length"
        );
        assert!(Password::parse("x".repeat(10), "password").is_ok());
        assert!(Password::parse("x".repeat(257), "password").is_err());
        assert!(Password::parse("é".repeat(256), "password").is_ok());
        assert!(
            format!("{:?}", Password::parse("supersecret1".into(), "p").unwrap())
                .contains("redacted")
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name(" Ada ", "name").unwrap(), "Ada");
        assert!(parse_name("   ", "name").is_err());
        assert!(parse_name(&"a".repeat(101), "name").is_err());
        assert_eq!(parse_name("a\u{0}b", "name").unwrap_err().rule, "format");
    }
}
