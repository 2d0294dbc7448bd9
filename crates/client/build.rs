//! Generates the client from the committed OpenAPI document, so the client is always the
//! document's: a change to the API that the document does not carry cannot reach it.

use std::path::Path;

fn main() {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let file = std::fs::File::open(&spec_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", spec_path.display()));
    let spec: openapiv3::OpenAPI =
        serde_json::from_reader(file).unwrap_or_else(|e| panic!("parsing the document: {e}"));
    let mut settings = progenitor::GenerationSettings::default();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged);
    let mut generator = progenitor::Generator::new(&settings);
    let tokens = generator
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("progenitor refused the document: {e}"));
    let file = syn::parse2(tokens).unwrap_or_else(|e| panic!("generated code: {e}"));
    let code = prettyplease::unparse(&file);
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"));
    let out = Path::new(&out_dir).join("canopy_client.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
