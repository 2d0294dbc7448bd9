//! Holding a request to the document: path and query parameters typed and checked against
//! their schemas, the JSON body against the operation's schema, every complaint turned into a
//! field error with a stable rule.

use std::collections::BTreeMap;

use canopy_kernel::{FieldError, ValidationErrors};
use jsonschema::Validator;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::routes::{In, Route, Routes};

/// Why a request was refused before a handler saw it.
#[derive(Debug)]
pub enum Refusal {
    /// The body or a query parameter breaks the published schema (422).
    Invalid(ValidationErrors),
    /// A path parameter cannot name anything that exists (404).
    NoSuchResource,
    /// The body is not JSON at all (400).
    Malformed(String),
}

impl Routes {
    /// Checks path and query parameters and the JSON body of a request for `route` against
    /// the published schemas.
    pub fn check(
        &self,
        route: &Route,
        path_params: &[(&str, String)],
        query: &str,
        body: Option<&[u8]>,
    ) -> Result<(), Refusal> {
        let mut errors = ValidationErrors::default();
        let query: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        // The one guard every request string passes, before any other rule: a control
        // character is never part of a name, id or filter a person means (PostgreSQL refuses
        // NUL outright), so it is a 422 naming the field, whatever the operation.
        let decoded: Vec<(&str, String)> = path_params
            .iter()
            .map(|(n, v)| {
                let value = percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned();
                (*n, value)
            })
            .collect();
        for (name, value) in decoded
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .chain(query.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        {
            if name.chars().any(char::is_control) || value.chars().any(char::is_control) {
                errors.push(control_characters(name));
            }
        }
        let body: Option<Value> = match body {
            Some(bytes) if route.body.is_some() => Some(
                serde_json::from_slice(bytes)
                    .map_err(|e| Refusal::Malformed(format!("The body is not valid JSON: {e}")))?,
            ),
            _ => None,
        };
        if let Some(value) = &body {
            free_of_controls(value, "", &mut errors);
        }
        if !errors.errors.is_empty() {
            return Err(Refusal::Invalid(errors));
        }
        for param in &route.params {
            let raw: Vec<String> = match param.location {
                In::Path => path_params
                    .iter()
                    .filter(|(n, _)| *n == param.name)
                    .map(|(_, v)| {
                        percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                    .collect(),
                In::Query => query
                    .iter()
                    .filter(|(n, _)| *n == param.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
            };
            if raw.is_empty() {
                if param.required {
                    errors.push(FieldError::new(&param.name, "required", "is required"));
                }
                continue;
            }
            let value = match param.kind.as_str() {
                "array" => Value::Array(raw.iter().map(|r| typed(r, &param.item_kind)).collect()),
                kind => typed(&raw[0], kind),
            };
            // A parameter is named as a whole, even when one of its repeated values is wrong.
            let found: Vec<FieldError> = describe(&param.validator, &value, "")
                .into_iter()
                .map(|e| FieldError::new(&param.name, e.rule, e.message))
                .collect();
            if !found.is_empty() {
                if param.location == In::Path {
                    // A path value that breaks its schema names nothing that exists.
                    return Err(Refusal::NoSuchResource);
                }
                for e in found {
                    errors.push(e);
                }
            }
        }
        if let (Some(validator), Some(value)) = (&route.body, &body) {
            for e in describe(validator, value, "") {
                errors.push(e);
            }
        }
        errors.into_result().map_err(Refusal::Invalid)
    }
}

/// The refusal of a control character in `field`.
fn control_characters(field: &str) -> FieldError {
    // The name itself may hold the character; it is shown without it.
    let field: String = field.chars().filter(|c| !c.is_control()).collect();
    FieldError::new(
        if field.is_empty() { "body" } else { &field },
        "control_characters",
        "must not contain control characters (only tab and line breaks, in text of a body)",
    )
}

/// Control characters in a body's strings, keys included, each named by its field as the
/// other 422s name them (`techniques.0.technique`). Tab and line breaks are text in a body (a
/// description, a pasted key file); every other C0 or C1 character and DEL are refused.
fn free_of_controls(value: &Value, at: &str, errors: &mut ValidationErrors) {
    let refused = |s: &str| {
        s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    };
    let field = |child: &str| {
        if at.is_empty() {
            child.to_string()
        } else {
            format!("{at}.{child}")
        }
    };
    match value {
        Value::String(s) if refused(s) => errors.push(control_characters(at)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                free_of_controls(item, &field(&i.to_string()), errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                // A key is not a field a client can fix by name: the object holding it is.
                if refused(key) {
                    errors.push(control_characters(at));
                } else {
                    free_of_controls(item, &field(key), errors);
                }
            }
        }
        _ => {}
    }
}

/// A raw parameter as the JSON value its schema describes; a value of the wrong shape stays a
/// string, so the type check names it.
fn typed(raw: &str, kind: &str) -> Value {
    match kind {
        "integer" => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_string())),
        "number" => raw
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .unwrap_or_else(|| Value::String(raw.to_string())),
        "boolean" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}

/// The field a JSON pointer names, as a client spells it (`account.tags.team`); `base` for the
/// document itself.
fn field_name(pointer: &str, base: &str) -> String {
    let path: Vec<String> = pointer
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    match (base.is_empty(), path.is_empty()) {
        (true, true) => "body".to_string(),
        (true, false) => path.join("."),
        (false, true) => base.to_string(),
        (false, false) => format!("{base}.{}", path.join(".")),
    }
}

fn join(base: String, child: &str) -> String {
    if base == "body" {
        child.to_string()
    } else {
        format!("{base}.{child}")
    }
}

fn type_name(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => format!("{t:?}").to_lowercase(),
        TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts.iter().map(|t| format!("{t:?}").to_lowercase()).collect();
            names.join(" or ")
        }
    }
}

/// The schema's complaints about `value`, as field errors with a stable rule and a sentence
/// that never repeats the value (it may be a password).
fn describe(validator: &Validator, value: &Value, base: &str) -> Vec<FieldError> {
    let mut out: BTreeMap<(String, String), String> = BTreeMap::new();
    for error in validator.iter_errors(value) {
        let field = field_name(error.instance_path().as_str(), base);
        let (field, rule, message) = match error.kind() {
            ValidationErrorKind::Type { kind } => {
                (field, "type", format!("must be a {}", type_name(kind)))
            }
            ValidationErrorKind::Required { property } => (
                join(field, property.as_str().unwrap_or_default()),
                "required",
                "is required".to_string(),
            ),
            ValidationErrorKind::MinLength { limit } => (
                field,
                "length",
                format!("must be at least {limit} characters"),
            ),
            ValidationErrorKind::MaxLength { limit } => (
                field,
                "length",
                format!("must be at most {limit} characters"),
            ),
            ValidationErrorKind::Pattern { .. } | ValidationErrorKind::Format { .. } => (
                field,
                "format",
                "does not have the format the API documents".to_string(),
            ),
            ValidationErrorKind::Enum { options } => (
                field,
                "enum",
                format!(
                    "must be one of {}",
                    options
                        .as_array()
                        .map(|o| o
                            .iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                ),
            ),
            ValidationErrorKind::Minimum { limit } => {
                (field, "range", format!("must be at least {limit}"))
            }
            ValidationErrorKind::Maximum { limit } => {
                (field, "range", format!("must be at most {limit}"))
            }
            ValidationErrorKind::MaxItems { limit } => {
                (field, "count", format!("must have at most {limit} items"))
            }
            ValidationErrorKind::MinItems { limit } => {
                (field, "count", format!("must have at least {limit} items"))
            }
            ValidationErrorKind::MaxProperties { limit } => {
                (field, "count", format!("must have at most {limit} entries"))
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => (
                join(field, &unexpected.join(",")),
                "unknown",
                "is not a field of this request".to_string(),
            ),
            _ => (
                field,
                "schema",
                "does not match the schema the API documents".to_string(),
            ),
        };
        out.entry((field, rule.to_string())).or_insert(message);
    }
    out.into_iter()
        .map(|((field, rule), message)| FieldError::new(field, rule, message))
        .collect()
}
