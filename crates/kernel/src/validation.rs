//! Validation errors that name the field and the rule it broke, so a client can show the
//! message next to the right input.

use serde::Serialize;

/// One field that failed one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The request field, as the client spelled it (`email`, `slug`, `limit`).
    pub field: String,
    /// A stable rule name (`length`, `format`, `reserved`, `range`).
    pub rule: String,
    /// A human sentence.
    pub message: String,
}

impl FieldError {
    /// Builds one field error.
    pub fn new(
        field: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
            message: message.into(),
        }
    }
}

/// All the field errors of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("invalid input: {}", .errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors {
    /// The failures, in field order.
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// A single failure.
    pub fn single(error: FieldError) -> Self {
        Self {
            errors: vec![error],
        }
    }

    /// Records a failure.
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Records the error of a field parse, if any, and returns its value.
    pub fn collect<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
        }
    }

    /// `Ok(())` when nothing failed.
    pub fn into_result(self) -> Result<(), Self> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}
