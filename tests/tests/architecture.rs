//! The dependency rules of docs/ARCHITECTURE.md, checked against `cargo metadata`:
//! kernel <- domain crates <- adapters <- app, domain crates free of IO frameworks, adapters
//! independent of each other. A new crate must be placed in a layer here before it builds green.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Kernel,
    Domain(u8),
    Migrations,
    Adapter,
    App,
    TestSupport,
    Tests,
}

fn layer(name: &str) -> Option<Layer> {
    Some(match name {
        "canopy-kernel" => Layer::Kernel,
        // Domain crates may depend on lower-ranked domain crates only.
        "canopy-tenancy" => Layer::Domain(0),
        "canopy-billing" => Layer::Domain(1),
        "canopy-cloud-org" => Layer::Domain(2),
        "canopy-metrics" => Layer::Domain(3),
        "canopy-detection" => Layer::Domain(3),
        "canopy-coverage" => Layer::Domain(4),
        "canopy-migrations" => Layer::Migrations,
        "canopy-store" | "canopy-credentials" | "canopy-aws" | "canopy-gcp" | "canopy-cache"
        | "canopy-demo" => Layer::Adapter,
        // Local stand-ins of cloud APIs: only tests and benchmarks use them.
        "canopy-aws-testkit" => Layer::TestSupport,
        "canopy-app" => Layer::App,
        "canopy-e2e" => Layer::Tests,
        _ => return None,
    })
}

const KERNEL_EXTERNAL: &[&str] = &["thiserror", "serde", "uuid", "chrono"];
const DOMAIN_EXTERNAL: &[&str] = &[
    "thiserror",
    "async-trait",
    "tracing",
    "serde",
    "serde_json",
    "uuid",
    "chrono",
    "mockall",
    // Runtime-agnostic future combinators (the metrics fan-out); no IO, no executor.
    "futures",
];

/// Normal (non-dev) dependencies of every workspace crate.
fn workspace_dependencies() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn violations(graph: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out = vec![];
    for (krate, deps) in graph {
        let Some(from) = layer(krate) else {
            out.push(format!("{krate} is in no layer: add it to tests/tests/architecture.rs and docs/ARCHITECTURE.md"));
            continue;
        };
        for dep in deps {
            let internal = dep.starts_with("canopy-");
            let allowed = match (from, internal.then(|| layer(dep)).flatten()) {
                (Layer::Kernel, None) => KERNEL_EXTERNAL.contains(&dep.as_str()),
                (Layer::Kernel, Some(_)) => false,
                (Layer::Domain(_), None) => DOMAIN_EXTERNAL.contains(&dep.as_str()),
                (Layer::Domain(rank), Some(to)) => match to {
                    Layer::Kernel => true,
                    Layer::Domain(other) => other < rank,
                    _ => false,
                },
                (Layer::Migrations, None) => dep == "sea-orm-migration",
                (Layer::Migrations, Some(_)) => false,
                (Layer::Adapter, Some(to)) => {
                    matches!(to, Layer::Kernel | Layer::Domain(_) | Layer::Migrations)
                }
                (Layer::Adapter, None) => true,
                (Layer::TestSupport, None) => true,
                (Layer::TestSupport, Some(to)) => to == Layer::Kernel,
                (Layer::App, Some(to)) => !matches!(to, Layer::Tests | Layer::TestSupport),
                (Layer::App, None) => true,
                (Layer::Tests, _) => true,
            };
            if !allowed {
                out.push(format!("{krate} ({from:?}) must not depend on {dep}"));
            }
        }
    }
    out
}

#[test]
fn dependency_edges_follow_the_layering() {
    let graph = workspace_dependencies();
    assert!(graph.contains_key("canopy-tenancy") && graph.contains_key("canopy-app"));
    let found = violations(&graph);
    assert!(
        found.is_empty(),
        "forbidden dependency edges:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_catch_forbidden_edges() {
    let graph: BTreeMap<String, Vec<String>> = [
        (
            "canopy-tenancy".to_string(),
            vec!["sea-orm".to_string(), "canopy-store".to_string()],
        ),
        (
            "canopy-store".to_string(),
            vec!["canopy-app".to_string(), "canopy-credentials".to_string()],
        ),
        ("canopy-kernel".to_string(), vec!["tokio".to_string()]),
        (
            "canopy-billing".to_string(),
            vec!["canopy-cloud-org".to_string(), "anyhow".to_string()],
        ),
        ("canopy-mystery".to_string(), vec![]),
        (
            "canopy-app".to_string(),
            vec!["canopy-aws-testkit".to_string()],
        ),
    ]
    .into_iter()
    .collect();
    let found = violations(&graph);
    for expected in [
        "canopy-tenancy (Domain(0)) must not depend on sea-orm",
        "canopy-tenancy (Domain(0)) must not depend on canopy-store",
        "canopy-store (Adapter) must not depend on canopy-app",
        "canopy-store (Adapter) must not depend on canopy-credentials",
        "canopy-kernel (Kernel) must not depend on tokio",
        "canopy-billing (Domain(1)) must not depend on canopy-cloud-org",
        "canopy-billing (Domain(1)) must not depend on anyhow",
        "canopy-app (App) must not depend on canopy-aws-testkit",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "missing: {expected}\nfound: {found:#?}"
        );
    }
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("canopy-mystery is in no layer"))
    );
}
