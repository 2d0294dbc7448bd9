//! The OpenAPI document as clients and generators see it, and what the server reads back
//! from it so that the document and the wire cannot disagree:
//!
//! - the document itself: generated from the real handlers, then normalized for generators
//!   (a described `$ref` comes out of poem-openapi as `allOf: [$ref, {description}]`, which
//!   openapi-python-client cannot take for enums; OpenAPI 3.0 ignores a `$ref`'s siblings
//!   anyway, so it becomes a bare `$ref`);
//! - the route index ([`Routes`]): which operation a request is for, its path template (what
//!   the request log writes, never the raw path, which can carry a token), the methods a path
//!   allows (the `Allow` header of a 405);
//! - request validation: every JSON body and query parameter is checked against the schema
//!   the document publishes before a handler runs, so a constraint in the document is a
//!   constraint on the wire, and a wrong JSON type is a 422 naming the field and the rule.
//!   The domain still checks everything the schema cannot say (control characters in the
//!   middle of a name, a role in another account, a reserved slug).

mod check;
mod routes;

use std::sync::OnceLock;

use serde_json::{Value, json};

pub use check::Refusal;
pub use routes::{Lookup, Route, Routes};

/// The document, generated once per process.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let raw = crate::api::service().spec();
        let mut value: Value = serde_json::from_str(&raw).unwrap_or_else(|_| json!({}));
        normalize(&mut value);
        value
    })
}

/// The document as committed (`openapi/openapi.json`) and served (`/openapi.json`).
pub fn json() -> String {
    serde_json::to_string_pretty(document()).unwrap_or_default()
}

/// The route index built from the document, once per process.
pub fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| Routes::from_document(document()))
}

/// Replaces `allOf: [{$ref}, {description}...]` with the bare `$ref`, everywhere; a nullable
/// one becomes `{allOf: [{$ref}], nullable: true}`, the 3.0 spelling generators read as "the
/// referenced type or null" (a sibling schema with only `nullable` in it is a union member
/// without a type to openapi-python-client, which then drops the whole operation).
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let described_ref = match map.get("allOf") {
                Some(Value::Array(parts)) => match parts.split_first() {
                    Some((Value::Object(first), rest))
                        if first.len() == 1
                            && first.contains_key("$ref")
                            && rest.iter().all(|p| {
                                p.as_object().is_some_and(|o| {
                                    o.keys().all(|k| k == "description" || k == "nullable")
                                })
                            }) =>
                    {
                        let nullable = rest
                            .iter()
                            .chain(std::iter::once(&Value::Object(map.clone())))
                            .any(|p| p.get("nullable") == Some(&Value::Bool(true)));
                        first.get("$ref").cloned().map(|r| (r, nullable))
                    }
                    _ => None,
                },
                _ => None,
            };
            match described_ref {
                Some((reference, false)) => *value = json!({ "$ref": reference }),
                Some((reference, true)) => {
                    let mut nullable =
                        json!({ "allOf": [{ "$ref": reference }], "nullable": true });
                    if let (Some(description), Value::Object(out)) =
                        (map.get("description").cloned(), &mut nullable)
                    {
                        out.insert("description".into(), description);
                    }
                    *value = nullable;
                }
                None => map.values_mut().for_each(normalize),
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema says it: `null` joins the types.
pub(crate) fn to_json_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get("type").cloned() {
                    Some(Value::String(t)) => {
                        map.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        // A nullable `$ref`: either the referenced schema or null.
                        let inner = Value::Object(std::mem::take(map));
                        *value = json!({"anyOf": [inner, {"type": "null"}]});
                        if let Value::Object(m) = value
                            && let Some(Value::Array(any)) = m.get_mut("anyOf")
                            && let Some(first) = any.first_mut()
                        {
                            to_json_schema(first);
                        }
                        return;
                    }
                }
            }
            map.values_mut().for_each(to_json_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::Method;

    fn doc() -> Value {
        json!({
            "paths": {
                "/v1/organizations/{org}": {"get": {"parameters": [
                    {"name": "org", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 5}}
                ]}, "patch": {
                    "parameters": [{"name": "org", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"content": {"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/Patch"}}}}
                }},
                "/v1/organizations/slug-availability": {"get": {"parameters": [
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 200}}
                ]}}
            },
            "components": {"schemas": {"Patch": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "logo": {"type": "string", "nullable": true},
                    "role": {"$ref": "#/components/schemas/Role"}
                }
            }, "Role": {"type": "string", "enum": ["owner", "admin"]}}}
        })
    }

    fn rules(refusal: Refusal) -> Vec<(String, String)> {
        match refusal {
            Refusal::Invalid(v) => v.errors.into_iter().map(|e| (e.field, e.rule)).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn literal_segments_win_and_wrong_methods_list_the_allowed_ones() {
        let routes = Routes::from_document(&doc());
        match routes.lookup(&Method::GET, "/v1/organizations/slug-availability") {
            Lookup::Found(r, params) => {
                assert_eq!(r.template(), "/v1/organizations/slug-availability");
                assert!(params.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match routes.lookup(&Method::DELETE, "/v1/organizations/acme") {
            Lookup::MethodNotAllowed(mut m) => {
                m.sort_by_key(|m| m.to_string());
                assert_eq!(m, [Method::GET, Method::PATCH]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            routes.lookup(&Method::GET, "/v1/nope"),
            Lookup::NotFound
        ));
        assert_eq!(
            routes.template("/v1/organizations/cnp_secret"),
            Some("/v1/organizations/{org}")
        );
    }

    #[test]
    fn bodies_are_held_to_the_schema_with_the_field_and_the_rule() {
        let routes = Routes::from_document(&doc());
        let Lookup::Found(route, params) = routes.lookup(&Method::PATCH, "/v1/organizations/acme")
        else {
            panic!("patch route");
        };
        let check = |body: &str| routes.check(route, &params, "", Some(body.as_bytes()));
        assert!(check(r#"{"name": "Acme", "logo": null, "role": "admin"}"#).is_ok());
        assert_eq!(
            rules(check(r#"{"name": false, "role": "boss"}"#).unwrap_err()),
            [
                ("name".into(), "type".into()),
                ("role".into(), "enum".into())
            ]
        );
        assert_eq!(
            rules(check(r#"{"logo": "x"}"#).unwrap_err()),
            [("name".into(), "required".into())]
        );
        assert!(matches!(check("{not json"), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn query_values_are_typed_before_they_are_checked_and_paths_that_cannot_exist_are_404() {
        let routes = Routes::from_document(&doc());
        let Lookup::Found(route, params) =
            routes.lookup(&Method::GET, "/v1/organizations/slug-availability")
        else {
            panic!("route");
        };
        assert!(routes.check(route, &params, "limit=200", None).is_ok());
        assert_eq!(
            rules(routes.check(route, &params, "limit=0", None).unwrap_err()),
            [("limit".into(), "range".into())]
        );
        assert_eq!(
            rules(routes.check(route, &params, "limit=ten", None).unwrap_err()),
            [("limit".into(), "type".into())]
        );
        let Lookup::Found(route, params) = routes.lookup(&Method::GET, "/v1/organizations/toolong")
        else {
            panic!("route");
        };
        assert!(matches!(
            routes.check(route, &params, "", None),
            Err(Refusal::NoSuchResource)
        ));
    }

    #[test]
    fn described_references_become_bare_references() {
        let mut v = json!({"role": {"description": "Role.", "allOf": [{"$ref": "#/x"}, {"description": "Role."}]}});
        normalize(&mut v);
        assert_eq!(v, json!({"role": {"$ref": "#/x"}}));
        let mut nullable = json!({"env": {"description": "Env; null clears it.", "nullable": true,
            "allOf": [{"$ref": "#/e"}, {"description": "Env; null clears it.", "nullable": true}]}});
        normalize(&mut nullable);
        assert_eq!(
            nullable,
            json!({"env": {"allOf": [{"$ref": "#/e"}], "nullable": true,
                "description": "Env; null clears it."}})
        );
    }
}
