//! The one rule for free text a person types (names, aliases): no control characters anywhere
//! (NUL included: PostgreSQL refuses it, and nothing a person names contains one), trimmed,
//! not blank, bounded in characters. Also its form as an ECMA-262 pattern, which the OpenAPI
//! document publishes so that what the document allows the domain accepts.

use crate::validation::FieldError;

/// Pattern of a bounded text: only non-control characters, at least one of them not
/// whitespace. The length bound is published beside it (`maxLength`).
pub const TEXT_PATTERN: &str = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\x00-\\x20\\x7F-\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\x00-\\x1F\\x7F-\\x9F]*$";

/// Pattern of a text that may also be empty or blank (no control characters).
pub const NO_CONTROL_PATTERN: &str = "^[^\\x00-\\x1F\\x7F-\\x9F]*$";

/// True when `s` holds a control character (C0, DEL or C1).
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Checks a free text: no control characters, not blank, at most `max_chars` characters once
/// trimmed. Returns it trimmed.
pub fn bounded_text(raw: &str, field: &str, max_chars: usize) -> Result<String, FieldError> {
    if has_control(raw) {
        return Err(FieldError::new(
            field,
            "format",
            "must not contain control characters",
        ));
    }
    let text = raw.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            "length",
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_blank_and_long_texts_are_refused_with_their_rule() {
        assert_eq!(bounded_text("  Acme  ", "name", 10).unwrap(), "Acme");
        assert_eq!(
            bounded_text("a\u{0}b", "name", 10).unwrap_err().rule,
            "format"
        );
        assert_eq!(
            bounded_text("\tAda", "name", 10).unwrap_err().rule,
            "format"
        );
        assert_eq!(
            bounded_text("a\u{85}b", "name", 10).unwrap_err().rule,
            "format"
        );
        assert_eq!(
            bounded_text(" \u{3000} ", "name", 10).unwrap_err().rule,
            "required"
        );
        assert_eq!(
            bounded_text(&"é".repeat(11), "name", 10).unwrap_err().rule,
            "length"
        );
        assert!(bounded_text(&"é".repeat(10), "name", 10).is_ok());
    }
}
