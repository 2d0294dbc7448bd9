//! The ATT&CK catalog over HTTP, as a client without an account reads it: the version, the
//! tactics in kill-chain order, techniques with their sub-techniques, and MITRE's attribution
//! with the license text the ATT&CK terms require to travel with every copy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_e2e::TestApp;
use reqwest::{Method, StatusCode};

/// The catalog is compiled in: one backend is enough.
#[tokio::test]
async fn the_catalog_is_public_versioned_and_attributed() {
    let app = TestApp::start("sqlite").await;
    let resp = app
        .call(Method::GET, "/v1/attack/catalog", None, None)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let c = &resp.body;
    assert_eq!(c["attackVersion"], "18.1");
    assert_eq!(c["domain"], "enterprise-attack");
    let tactics: Vec<_> = c["tactics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["shortname"].as_str().unwrap())
        .collect();
    assert_eq!(tactics.first(), Some(&"initial-access"));
    assert_eq!(tactics.last(), Some(&"impact"));
    assert_eq!(tactics.len(), 11);
    let techniques = c["techniques"].as_array().unwrap();
    // 56 IaaS techniques plus the 2 parents kept for their IaaS sub-techniques; the 48
    // sub-techniques are nested, none at the top.
    assert_eq!(techniques.len(), 58);
    let subs: usize = techniques
        .iter()
        .map(|t| t["subTechniques"].as_array().unwrap().len())
        .sum();
    assert_eq!(subs, 48);
    let valid = techniques.iter().find(|t| t["id"] == "T1078").unwrap();
    assert_eq!(valid["name"], "Valid Accounts");
    assert!(
        valid["subTechniques"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "T1078.004"
                && s["url"] == "https://attack.mitre.org/techniques/T1078/004")
    );
    let attribution = &c["attribution"];
    assert!(
        attribution["copyright"]
            .as_str()
            .unwrap()
            .contains("The MITRE Corporation")
    );
    assert!(
        attribution["license"]
            .as_str()
            .unwrap()
            .contains("royalty-free license")
    );
    assert!(
        attribution["source"]
            .as_str()
            .unwrap()
            .contains("mitre/cti")
    );
}
