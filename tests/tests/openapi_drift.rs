//! The committed `openapi/openapi.json` must equal the document generated from the handlers
//! that serve traffic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn committed_openapi_matches_the_handlers() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = canopy_app::openapi_json() + "\n";
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the handlers.\n\
         Regenerate it with `just openapi` (or `cargo run -p canopy-app -- openapi --output openapi/openapi.json`) \
         and commit the result."
    );
}

#[test]
fn every_operation_documents_problem_responses() {
    let spec: serde_json::Value = serde_json::from_str(&canopy_app::openapi_json()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(
        paths.keys().all(|p| p.starts_with("/v1/")),
        "{:?}",
        paths.keys()
    );
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let problem = &op["responses"]["422"]["content"]["application/problem+json"];
            assert!(
                problem.is_object(),
                "{method} {path} lacks a problem+json 422"
            );
            assert!(
                op["operationId"].is_string(),
                "{method} {path} lacks an operationId"
            );
        }
    }
}
