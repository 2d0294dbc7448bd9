//! The dependency rules of docs/ARCHITECTURE.md, checked against `cargo metadata`:
//! kernel <- domain crates <- adapters <- app, domain crates free of IO frameworks, adapters
//! independent of each other, test support only where tests are. A new crate must be placed in
//! a layer here before it builds green. Also the tidy rules that keep the house easy to extend:
//! every port mockable, no source file past the size where it stops being one thing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Kernel,
    Domain(u8),
    Migrations,
    Adapter,
    /// A driving adapter beside the API (the console): over the domain crates only.
    Console,
    App,
    TestSupport,
    Tests,
    /// Shows embedders how to use the domain crates; no service depends on it.
    Example,
    /// Generated from the OpenAPI document; knows no other crate of ours.
    Client,
}

fn layer(name: &str) -> Option<Layer> {
    Some(match name {
        "canopy-kernel" => Layer::Kernel,
        // Domain crates may depend on lower-ranked domain crates only.
        "canopy-tenancy" => Layer::Domain(0),
        "canopy-billing" => Layer::Domain(1),
        "canopy-jobs" => Layer::Domain(1),
        "canopy-cloud-org" => Layer::Domain(2),
        "canopy-metrics" => Layer::Domain(3),
        "canopy-detection" => Layer::Domain(3),
        "canopy-coverage" => Layer::Domain(4),
        "canopy-migrations" => Layer::Migrations,
        "canopy-store" | "canopy-credentials" | "canopy-aws" | "canopy-gcp" | "canopy-cache"
        | "canopy-demo" | "canopy-mail" => Layer::Adapter,
        // Local stand-ins of cloud APIs: only tests and benchmarks use them.
        "canopy-aws-testkit" | "canopy-gcp-testkit" => Layer::TestSupport,
        "canopy-client" => Layer::Client,
        "canopy-console" => Layer::Console,
        "canopy-app" => Layer::App,
        "canopy-e2e" => Layer::Tests,
        "canopy-embedding-example" => Layer::Example,
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

fn metadata() -> serde_json::Value {
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
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Normal (non-dev) dependencies of every workspace crate.
fn workspace_dependencies() -> BTreeMap<String, Vec<String>> {
    metadata()["packages"]
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
                (Layer::Console, Some(to)) => matches!(to, Layer::Kernel | Layer::Domain(_)),
                (Layer::Console, None) => true,
                (Layer::App, Some(to)) => !matches!(to, Layer::Tests | Layer::TestSupport),
                (Layer::App, None) => true,
                (Layer::Tests, _) => true,
                (Layer::Example, Some(to)) => {
                    matches!(to, Layer::Kernel | Layer::Domain(_) | Layer::Adapter)
                }
                (Layer::Example, None) => true,
                (Layer::Client, Some(_)) => false,
                (Layer::Client, None) => true,
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

/// Fixtures, fresh databases and canned answers (`testing` features) are compiled only into
/// tests: no crate a service runs may turn them on in its normal dependencies.
#[test]
fn test_support_features_stay_out_of_production_crates() {
    let meta = metadata();
    let mut found = vec![];
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        if matches!(layer(name), Some(Layer::Tests)) {
            continue;
        }
        for dep in package["dependencies"].as_array().unwrap() {
            let normal = dep["kind"].is_null();
            let testing = dep["features"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "testing" || f == "mocks");
            if normal && testing {
                found.push(format!("{name} enables test support of {}", dep["name"]));
            }
        }
        let defaults = &package["features"]["default"];
        if defaults
            .as_array()
            .is_some_and(|d| d.iter().any(|f| f == "testing" || f == "mocks"))
        {
            found.push(format!("{name} turns test support on by default"));
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Domain crates, by directory under crates/.
const DOMAIN_DIRS: &[&str] = &[
    "tenancy",
    "billing",
    "cloud-org",
    "metrics",
    "detection",
    "coverage",
];

/// Every port (a trait in a domain crate) has a mockall mock behind the `mocks` feature, so
/// an embedder can swap any adapter in a test.
#[test]
fn every_domain_port_is_mockable() {
    let mut missing = vec![];
    let mut ports = 0;
    for dir in DOMAIN_DIRS {
        let src = workspace_root().join("crates").join(dir).join("src");
        if !src.exists() {
            continue;
        }
        let mut files = vec![];
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !line.starts_with("pub trait ") {
                    continue;
                }
                ports += 1;
                let attributes = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
                    .any(|l| l.contains("mockall::automock"));
                if !attributes {
                    missing.push(format!("{}:{}: {line}", file.display(), i + 1));
                }
            }
        }
    }
    assert!(
        ports >= 19,
        "found only {ports} ports: is the scan still looking in the right place?"
    );
    assert!(
        missing.is_empty(),
        "ports without a mock:\n{}",
        missing.join("\n")
    );
}

/// Longest source file, in lines, before it must be split by concept.
const MAX_SOURCE_LINES: usize = 650;

#[test]
fn no_source_file_outgrows_one_concept() {
    let mut files = vec![];
    for top in ["crates", "examples"] {
        let dir = workspace_root().join(top);
        if dir.exists() {
            rust_files(&dir, &mut files);
        }
    }
    let too_big: Vec<String> = files
        .iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_SOURCE_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        too_big.is_empty(),
        "split these by concept (docs/ARCHITECTURE.md):\n{}",
        too_big.join("\n")
    );
}
