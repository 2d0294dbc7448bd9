//! ATT&CK Navigator layers (format 4.5) to download: one account's coverage, or a cloud
//! organization's (each technique scored by the share of accounts covering it). The same
//! builders as the API's `GET .../coverage/navigator-layer`, so the two files are equal.

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_coverage::account::{AccountCoverage, account_coverage};
use canopy_coverage::navigator::{account_layer, organization_layer};
use canopy_detection::catalog::Catalog;
use canopy_kernel::StoreError;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use uuid::Uuid;

use super::accounts::name_of;
use super::cloud_orgs::coverage_failure;
use crate::ConsoleState;
use crate::chrome;
use crate::error::Failure;

/// A file name from `name`: letters, digits and single hyphens, never empty.
fn file_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    if out.is_empty() {
        "coverage".into()
    } else {
        out.to_string()
    }
}

fn download(layer: &impl serde::Serialize, name: &str) -> Result<Response, Failure> {
    let body = serde_json::to_vec_pretty(layer).map_err(|e| {
        tracing::error!(error = %e, "a navigator layer did not serialize");
        Failure::Store(StoreError::internal("a navigator layer did not serialize"))
    })?;
    Ok(Response::builder()
        .content_type("application/json")
        .header(
            "content-disposition",
            format!(
                "attachment; filename=\"canopy-{}-layer.json\"",
                file_name(name)
            ),
        )
        .body(body))
}

/// `GET /org/{slug}/settings/accounts/{id}/navigator-layer.json`.
#[handler]
pub async fn account(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let (_, _, account, effective) =
        super::account_coverage::estate(&state, req, &slug, &id).await?;
    let name = name_of(&account);
    let layer = account_layer(&name, &account_coverage(Catalog::embedded(), &effective));
    download(&layer, &name)
}

/// `GET /org/{slug}/cloud-organizations/{id}/navigator-layer.json`.
#[handler]
pub async fn organization(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let (_, access, _) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    let uuid = Uuid::parse_str(&id).map_err(|_| Failure::NotFound)?;
    let estate = state
        .detections
        .organization_estate(&access, CloudOrganizationId(uuid))
        .await
        .map_err(coverage_failure)?;
    let catalog = Catalog::embedded();
    let coverage: Vec<AccountCoverage> = estate
        .accounts
        .iter()
        .map(|(_, effective)| account_coverage(catalog, effective))
        .collect();
    let layer = organization_layer(&uuid.to_string(), &coverage);
    download(&layer, &format!("organization-{uuid}"))
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_keep_letters_and_digits_only() {
        assert_eq!(file_name("Payments Prod (EU)"), "payments-prod-eu");
        assert_eq!(file_name("<img src=x>"), "img-src-x");
        assert_eq!(file_name("---"), "coverage");
        assert_eq!(file_name("\"; rm -rf /"), "rm-rf");
    }
}
