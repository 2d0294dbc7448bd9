//! Which operation a request is for: methods, path templates, parameters and body schemas
//! read from the document, each schema compiled once.

use std::sync::Arc;

use jsonschema::{Draft, Validator};
use poem::http::Method;
use serde_json::{Value, json};

use super::to_json_schema;

/// One path segment of a route.
#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum In {
    Path,
    Query,
}

/// A parameter and the validator of its schema.
#[derive(Debug, Clone)]
pub(super) struct Param {
    pub(super) name: String,
    pub(super) location: In,
    pub(super) required: bool,
    /// `integer`, `number`, `boolean`, `string` or `array`: how a raw string becomes JSON.
    pub(super) kind: String,
    /// For arrays, how each item becomes JSON.
    pub(super) item_kind: String,
    pub(super) validator: Arc<Validator>,
}

/// One operation: method, path template, parameters and body schema.
#[derive(Debug, Clone)]
pub struct Route {
    pub(super) method: Method,
    pub(super) template: String,
    segments: Vec<Segment>,
    pub(super) params: Vec<Param>,
    pub(super) body: Option<Arc<Validator>>,
    secured: bool,
}

impl Route {
    /// The path template (`/v1/connection-requests/{token}`): what the request log writes.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// True when the operation takes a JSON body.
    pub fn has_body(&self) -> bool {
        self.body.is_some()
    }

    /// True when the operation needs a bearer token.
    pub fn secured(&self) -> bool {
        self.secured
    }
}

/// What the index says of a request.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The operation, with the raw (still percent-encoded) path parameters.
    Found(&'a Route, Vec<(&'a str, String)>),
    /// The path exists but not with this method; these are the methods it has.
    MethodNotAllowed(Vec<Method>),
    /// No operation has this path (it may still be `/docs`, `/healthz`, ...).
    NotFound,
}

/// Every operation of the document.
#[derive(Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

/// The `#/components/schemas/...` names `value` refers to, directly.
fn refs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_string());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// Only the component schemas `schema` reaches, transitively: a validator keeps its root
/// document, and carrying every component into each of ~150 validators cost 35 MB.
fn reachable_schemas(schema: &Value, components: &Value) -> Value {
    let mut pending = Vec::new();
    refs_in(schema, &mut pending);
    let mut reached = serde_json::Map::new();
    while let Some(name) = pending.pop() {
        if reached.contains_key(&name) {
            continue;
        }
        let Some(found) = components.get("schemas").and_then(|s| s.get(&name)) else {
            continue;
        };
        refs_in(found, &mut pending);
        reached.insert(name, found.clone());
    }
    json!({ "schemas": reached })
}

fn compile(schema: &Value, components: &Value) -> Option<Arc<Validator>> {
    let mut components = reachable_schemas(schema, components);
    to_json_schema(&mut components);
    let mut schema = schema.clone();
    to_json_schema(&mut schema);
    // References point at `#/components/schemas/...`: carry what they reach at the root.
    let root = json!({ "components": components, "allOf": [schema] });
    match jsonschema::options()
        .with_draft(Draft::Draft7)
        .should_validate_formats(true)
        .with_format("uuid", |s: &str| uuid::Uuid::try_parse(s).is_ok())
        .build(&root)
    {
        Ok(validator) => Some(Arc::new(validator)),
        Err(e) => {
            tracing::error!(error = %e, "a schema of the OpenAPI document does not compile");
            None
        }
    }
}

fn schema_kind(schema: &Value, components: &Value) -> String {
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/components/")
            .and_then(|path| {
                path.split('/')
                    .try_fold(components, |node, key| node.get(key))
            })
            .unwrap_or(schema),
        None => schema,
    };
    resolved
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string")
        .to_string()
}

impl Routes {
    /// Reads every operation of `document`.
    pub fn from_document(document: &Value) -> Self {
        let components = document.get("components").cloned().unwrap_or(json!({}));
        let mut routes = vec![];
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return Self::default();
        };
        for (template, item) in paths {
            let segments = template
                .split('/')
                .filter(|s| !s.is_empty())
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param(name.to_string()),
                        None => Segment::Literal(s.to_string()),
                    },
                )
                .collect::<Vec<_>>();
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, operation) in item {
                let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                    continue;
                };
                let params = operation
                    .get("parameters")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| {
                                let schema = p.get("schema")?;
                                let location = match p.get("in")?.as_str()? {
                                    "path" => In::Path,
                                    "query" => In::Query,
                                    _ => return None,
                                };
                                Some(Param {
                                    name: p.get("name")?.as_str()?.to_string(),
                                    location,
                                    required: p.get("required") == Some(&Value::Bool(true)),
                                    kind: schema_kind(schema, &components),
                                    item_kind: schema
                                        .get("items")
                                        .map(|i| schema_kind(i, &components))
                                        .unwrap_or_default(),
                                    validator: compile(schema, &components)?,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let body = operation
                    .pointer("/requestBody/content")
                    .and_then(Value::as_object)
                    .and_then(|content| {
                        content
                            .iter()
                            .find(|(media, _)| media.starts_with("application/json"))
                    })
                    .and_then(|(_, media)| media.get("schema"))
                    .and_then(|schema| compile(schema, &components));
                let secured = operation
                    .get("security")
                    .and_then(Value::as_array)
                    .is_some_and(|s| !s.is_empty());
                routes.push(Route {
                    secured,
                    method,
                    template: template.clone(),
                    segments: segments.clone(),
                    params,
                    body,
                });
            }
        }
        Self { routes }
    }

    /// The operations, in the document's order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Matches a request path against the templates; the template with the most literal
    /// segments wins (`/organizations/slug-availability` over `/organizations/{org}`).
    pub(super) fn matching<'a>(&'a self, path: &str) -> Vec<(&'a Route, Vec<(&'a str, String)>)> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Vec<(&Route, Vec<(&str, String)>)> = vec![];
        let mut best_literals = 0;
        for route in &self.routes {
            if route.segments.len() != parts.len() {
                continue;
            }
            let mut params = vec![];
            let mut literals = 0;
            let matched = route
                .segments
                .iter()
                .zip(&parts)
                .all(|(seg, part)| match seg {
                    Segment::Literal(l) => {
                        literals += 1;
                        l == part
                    }
                    Segment::Param(name) => {
                        params.push((name.as_str(), (*part).to_string()));
                        true
                    }
                });
            if !matched {
                continue;
            }
            if literals > best_literals {
                best.clear();
                best_literals = literals;
            }
            if literals == best_literals {
                best.push((route, params));
            }
        }
        best
    }

    /// The operation `method path` is for.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let candidates = self.matching(path);
        if candidates.is_empty() {
            return Lookup::NotFound;
        }
        let methods: Vec<Method> = candidates.iter().map(|(r, _)| r.method.clone()).collect();
        match candidates.into_iter().find(|(r, _)| r.method == *method) {
            Some((route, params)) => Lookup::Found(route, params),
            None => Lookup::MethodNotAllowed(methods),
        }
    }

    /// The template a path belongs to, whatever the method (for the request log).
    pub fn template(&self, path: &str) -> Option<&str> {
        self.matching(path)
            .first()
            .map(|(r, _)| r.template.as_str())
    }
}
