//! Organizations: the tenant, billing and team boundary.

use canopy_kernel::FieldError;
use canopy_kernel::id::OrganizationId;
use chrono::{DateTime, Utc};

use crate::membership::Role;

/// Words that cannot be slugs because the console or API uses them as paths.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "auth",
    "billing",
    "canopy",
    "connect",
    "dashboard",
    "docs",
    "help",
    "invitations",
    "login",
    "logout",
    "me",
    "new",
    "openapi",
    "organizations",
    "settings",
    "signup",
    "slug-availability",
    "static",
    "support",
    "system",
    "v1",
    "www",
];

/// A URL slug: lower-case letters, digits and single hyphens, 3 to 48 characters, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// Shortest slug.
    pub const MIN_LEN: usize = 3;
    /// Longest slug.
    pub const MAX_LEN: usize = 48;
    /// The published form of the character rule (ECMA-262); reserved words are refused too.
    pub const PATTERN: &'static str = "^[a-z0-9]+(-[a-z0-9]+)*$";

    /// Checks a slug a client chose.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let slug = raw.trim();
        if slug.len() < Self::MIN_LEN || slug.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                field,
                "length",
                format!("must be {} to {} characters", Self::MIN_LEN, Self::MAX_LEN),
            ));
        }
        let charset_ok = slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !charset_ok || slug.starts_with('-') || slug.ends_with('-') || slug.contains("--") {
            return Err(FieldError::new(
                field,
                "format",
                "may contain only lower-case letters, digits and single hyphens, and must not start or end with a hyphen",
            ));
        }
        if RESERVED_SLUGS.contains(&slug) {
            return Err(FieldError::new(
                field,
                "reserved",
                format!("'{slug}' is reserved"),
            ));
        }
        Ok(Self(slug.to_string()))
    }

    /// Derives a valid slug from a display name plus a suffix that makes it unlikely to clash.
    pub fn derive(name: &str, suffix: &str) -> Self {
        let mut base = String::new();
        for c in name.to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                base.push(c);
            } else if !base.ends_with('-') && !base.is_empty() {
                base.push('-');
            }
        }
        let room = Self::MAX_LEN - suffix.len() - 1;
        base.truncate(room);
        let base = base.trim_matches('-');
        let base = if base.is_empty() { "org" } else { base };
        Self(format!("{base}-{suffix}"))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a slug read back from storage, where only valid slugs are written.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a client names an organization in a path: by id or by slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrgRef {
    /// By id.
    Id(OrganizationId),
    /// By slug (not validated: an invalid slug simply matches nothing).
    Slug(String),
}

impl OrgRef {
    /// What a path segment naming an organization looks like (a slug, in any case, or a
    /// UUID): published so clients and validators know it; anything else names nothing.
    pub const PATTERN: &'static str = "^[A-Za-z0-9-]{1,48}$";

    /// Reads a path segment: a UUID is an id, a possible slug a slug. Anything else (a control
    /// character, a space, 200 characters) can name no organization: `None`, answered as
    /// "not found" without asking storage.
    pub fn parse(raw: &str) -> Option<Self> {
        if let Ok(id) = raw.parse::<OrganizationId>() {
            return Some(OrgRef::Id(id));
        }
        let slug = raw.to_lowercase();
        let possible = (1..=Slug::MAX_LEN).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        possible.then_some(OrgRef::Slug(slug))
    }
}

/// A tenant organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    /// Id.
    pub id: OrganizationId,
    /// Display name.
    pub name: String,
    /// Unique URL slug.
    pub slug: Slug,
    /// Logo URL.
    pub logo: Option<String>,
    /// Free-form settings (default region, billing email, ...).
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An organization as listed for one member.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationSummary {
    /// The organization.
    pub organization: Organization,
    /// The caller's role in it.
    pub role: Role,
    /// How many members it has.
    pub member_count: u64,
}

/// A requested change to an organization; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrganizationPatch {
    /// New name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<Slug>,
    /// New logo; `Some(None)` clears it.
    pub logo: Option<Option<String>>,
    /// Replacement metadata object.
    pub metadata: Option<serde_json::Value>,
}

/// Longest logo URL.
pub const LOGO_MAX_LEN: usize = 2048;

/// The published form of the logo rule (ECMA-262).
pub const LOGO_PATTERN: &str = "^https?://[^\\s\\x00-\\x1F\\x7F-\\x9F]+$";

/// Checks a logo URL: http(s), no whitespace or control characters, at most 2048 characters.
pub fn parse_logo(raw: &str, field: &str) -> Result<String, FieldError> {
    let logo = raw.trim();
    if logo.chars().count() > LOGO_MAX_LEN {
        return Err(FieldError::new(
            field,
            "length",
            "must be at most 2048 characters",
        ));
    }
    if !(logo.starts_with("https://") || logo.starts_with("http://"))
        || logo.len() <= "http://".len()
        || logo.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(FieldError::new(field, "format", "must be an http(s) URL"));
    }
    Ok(logo.to_string())
}

/// Largest metadata object, serialized.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;

/// True when any string of `value`, key or value at any depth, holds a control character.
fn holds_control(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => canopy_kernel::text::has_control(s),
        serde_json::Value::Array(items) => items.iter().any(holds_control),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(k, v)| canopy_kernel::text::has_control(k) || holds_control(v)),
        _ => false,
    }
}

/// Checks organization metadata: a JSON object of at most 16 KiB serialized, with no control
/// character in any key or string.
pub fn check_metadata(value: &serde_json::Value, field: &str) -> Result<(), FieldError> {
    if !value.is_object() {
        return Err(FieldError::new(field, "type", "must be a JSON object"));
    }
    if value.to_string().len() > METADATA_MAX_BYTES {
        return Err(FieldError::new(field, "length", "must be at most 16 KiB"));
    }
    if holds_control(value) {
        return Err(FieldError::new(
            field,
            "format",
            "keys and strings must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        assert!(Slug::parse("acme-corp", "slug").is_ok());
        assert!(Slug::parse("a1b", "slug").is_ok());
        assert_eq!(Slug::parse("ab", "slug").unwrap_err().rule, "length");
        assert_eq!(
            Slug::parse(&"a".repeat(49), "slug").unwrap_err().rule,
            "length"
        );
        for bad in ["Acme", "acme--corp", "-acme", "acme-", "ac_me", "acmé"] {
            assert_eq!(
                Slug::parse(bad, "slug").unwrap_err().rule,
                "format",
                "{bad}"
            );
        }
        assert_eq!(Slug::parse("admin", "slug").unwrap_err().rule, "reserved");
    }

    #[test]
    fn derived_slugs_are_always_valid() {
        for name in [
            "Ada Lovelace's Organization",
            "  ",
            "Ünïcødé ©",
            &"x".repeat(200),
            "--a--",
        ] {
            let slug = Slug::derive(name, "k3j9x2");
            assert!(
                Slug::parse(slug.as_str(), "slug").is_ok(),
                "{name} gave {}",
                slug.as_str()
            );
        }
        assert_eq!(
            Slug::derive("Ada Lovelace's Organization", "abc123").as_str(),
            "ada-lovelace-s-organization-abc123"
        );
    }

    #[test]
    fn org_ref_distinguishes_ids_from_slugs() {
        let id = OrganizationId::new();
        assert_eq!(OrgRef::parse(&id.to_string()), Some(OrgRef::Id(id)));
        assert_eq!(OrgRef::parse("Acme"), Some(OrgRef::Slug("acme".into())));
        assert_eq!(OrgRef::parse("a\u{0}b"), None);
        assert_eq!(OrgRef::parse(&"a".repeat(49)), None);
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(
            check_metadata(
                &serde_json::json!({"defaultRegion": "us-east-1"}),
                "metadata"
            )
            .is_ok()
        );
        assert!(check_metadata(&serde_json::json!([1]), "metadata").is_err());
        assert!(
            check_metadata(&serde_json::json!({"x": "y".repeat(17 * 1024)}), "metadata").is_err()
        );
        for bad in [
            serde_json::json!({"a\u{0}": 1}),
            serde_json::json!({"a": ["ok", {"b": "x\u{0}y"}]}),
        ] {
            assert_eq!(check_metadata(&bad, "metadata").unwrap_err().rule, "format");
        }
    }
}
