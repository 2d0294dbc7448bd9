//! One guard for every request string, proved from the OpenAPI document: for every operation,
//! a NUL in each string path parameter, each string query parameter and each string field of
//! the body (at any depth, in arrays and nested objects) is a 422 naming that field with the
//! rule `control_characters`, before anything is looked up or stored. Generated from the
//! document, so an operation added later is covered without anyone remembering to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::{TestApp, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A NUL inside otherwise ordinary text.
const NUL: &str = "a\u{0}b";

/// `$ref`s followed, `allOf` of one schema unwrapped.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return resolve(document, &document["components"]["schemas"][name]);
    }
    match schema["allOf"].as_array() {
        Some(parts) if parts.len() == 1 => resolve(document, &parts[0]),
        _ => schema,
    }
}

/// True for a schema whose values are strings (plain, formatted or an enum of strings).
fn is_string(document: &Value, schema: &Value) -> bool {
    let schema = resolve(document, schema);
    schema["type"] == "string"
        || schema["enum"]
            .as_array()
            .is_some_and(|e| e.iter().all(Value::is_string))
}

/// Every place a string can go in a body of `schema`: the field's name as the 422s spell it
/// (`techniques.0.technique`) and a body holding a NUL there and nothing else.
fn string_fields(document: &Value, schema: &Value, at: &str, depth: usize) -> Vec<(String, Value)> {
    let schema = resolve(document, schema);
    if depth > 6 {
        return vec![];
    }
    // A string, or a value of any type (`evidence`): a string can go there.
    let any = [
        "type",
        "properties",
        "items",
        "enum",
        "oneOf",
        "anyOf",
        "allOf",
    ]
    .iter()
    .all(|k| schema.get(*k).is_none());
    if is_string(document, schema) || any {
        return vec![(at.to_string(), json!(NUL))];
    }
    let mut found = Vec::new();
    if let Some(items) = schema.get("items") {
        let child = if at.is_empty() {
            "0".to_string()
        } else {
            format!("{at}.0")
        };
        for (field, value) in string_fields(document, items, &child, depth + 1) {
            found.push((field, json!([value])));
        }
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            let child = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            for (field, value) in string_fields(document, property, &child, depth + 1) {
                found.push((field, json!({ name: value })));
            }
        }
    }
    // A map of strings (`tags`, `metadata`): one entry holding the NUL.
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        let child = if at.is_empty() {
            "key".to_string()
        } else {
            format!("{at}.key")
        };
        for (field, value) in string_fields(document, values, &child, depth + 1) {
            found.push((field, json!({ "key": value })));
        }
    }
    for choice in ["oneOf", "anyOf"] {
        for option in schema[choice].as_array().into_iter().flatten() {
            found.extend(string_fields(document, option, at, depth + 1));
        }
    }
    found
}

/// One request of the sweep and the field its 422 must name.
struct Probe {
    method: Method,
    path: String,
    body: Option<Value>,
    field: String,
}

/// Every probe the document calls for; `org` fills `{org}`, a fresh id every other path value.
fn probes(document: &Value, org: &str) -> Vec<Probe> {
    let mut out = Vec::new();
    for (template, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let params = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let fill = |nul_in: Option<&str>| {
                let mut path = template.clone();
                for p in params.iter().filter(|p| p["in"] == "path") {
                    let name = p["name"].as_str().unwrap();
                    let value = if Some(name) == nul_in {
                        "a%00b".to_string()
                    } else if name == "org" {
                        org.to_string()
                    } else {
                        uuid::Uuid::now_v7().to_string()
                    };
                    path = path.replace(&format!("{{{name}}}"), &value);
                }
                path
            };
            for p in &params {
                let name = p["name"].as_str().unwrap();
                let schema = &p["schema"];
                let stringy = is_string(document, schema)
                    || schema
                        .get("items")
                        .is_some_and(|items| is_string(document, items));
                if !stringy {
                    continue;
                }
                match p["in"].as_str() {
                    Some("path") => out.push(Probe {
                        method: method.clone(),
                        path: fill(Some(name)),
                        body: None,
                        field: name.to_string(),
                    }),
                    Some("query") => out.push(Probe {
                        method: method.clone(),
                        path: format!("{}?{name}=a%00b", fill(None)),
                        body: None,
                        field: name.to_string(),
                    }),
                    _ => {}
                }
            }
            let body = operation["requestBody"]["content"]
                .as_object()
                .and_then(|content| {
                    content
                        .iter()
                        .find(|(media, _)| media.starts_with("application/json"))
                })
                .map(|(_, media)| &media["schema"]);
            if let Some(body) = body {
                for (field, value) in string_fields(document, body, "", 0) {
                    out.push(Probe {
                        method: method.clone(),
                        path: fill(None),
                        body: Some(value),
                        field: if field.is_empty() {
                            "body".into()
                        } else {
                            field
                        },
                    });
                }
            }
        }
    }
    out
}

async fn a_nul_in_any_string_of_any_operation_is_a_422_naming_the_field(app: TestApp) {
    let document: Value = serde_json::from_str(&canopy_app::openapi_json()).unwrap();
    let owner = app.sign_up("Owner").await;
    let org = app.create_org_on(&owner, "Guarded", "enterprise").await;
    let probes = probes(&document, &org);
    // The sweep must reach what the issue named (a custom detection's name) and be wide.
    assert!(
        probes
            .iter()
            .any(|p| p.path.ends_with("/detections") && p.field == "name"),
        "no probe of a detection's name"
    );
    assert!(probes.len() > 150, "only {} probes", probes.len());
    let mut wrong = Vec::new();
    for probe in &probes {
        let resp = app
            .call(
                probe.method.clone(),
                &probe.path,
                Some(&owner.token),
                probe.body.clone(),
            )
            .await;
        let named = resp.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["field"] == probe.field.as_str() && e["rule"] == "control_characters");
        if resp.status != StatusCode::UNPROCESSABLE_ENTITY || !named {
            wrong.push(format!(
                "{} {} {} -> {} {}",
                probe.method,
                probe.path,
                probe
                    .body
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default(),
                resp.status,
                resp.body
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} probes not refused as a 422 naming their field:\n{}",
        wrong.len(),
        probes.len(),
        wrong.join("\n")
    );
    // Nothing was stored along the way: the organization is as it was created.
    let after = app
        .get(&format!("/v1/organizations/{org}"), &owner.token)
        .await;
    assert_eq!(after.body["organization"]["name"], "Guarded");
    assert_eq!(after.body["organization"]["metadata"], json!({}));
}

on_both_backends!(a_nul_in_any_string_of_any_operation_is_a_422_naming_the_field);
