//! Cloud Asset Inventory feeds at the organization (`feeds.list`, one page): each feed notifies
//! a Pub/Sub topic of changes to assets anywhere under the organization, so each is a finding
//! reaching every account, scored with CTID's `cloud_asset_inventory`. What a feed watches
//! (asset types, content type, condition) goes into the evidence.

use canopy_detection::detection::{AppliesTo, Status, normalize};
use canopy_detection::log_sources::capability_scores;
use canopy_detection::ports::Finding;
use google_cloudasset1::CloudAsset;
use serde_json::json;

use super::{Failed, Permission, Scan};
use crate::Connector;

/// What listing feeds needs.
pub(crate) const FEEDS_LIST: Permission = Permission {
    name: "cloudasset.feeds.list",
    role: "roles/cloudasset.viewer",
    api: "Cloud Asset",
};

/// Google's Cloud Asset endpoint.
const ASSET_URL: &str = "https://cloudasset.googleapis.com/";

type Hub = CloudAsset<Connector>;

fn hub(scan: &Scan<'_>) -> Hub {
    let mut hub = CloudAsset::new(scan.api(), scan.auth());
    hub.base_url(scan.base_url(ASSET_URL));
    hub.user_agent(crate::client::Google::user_agent());
    hub
}

/// The organization's asset feeds.
pub(crate) async fn feeds(scan: &Scan<'_>, org: &str) -> (Result<Vec<Finding>, Vec<Failed>>, u64) {
    let calls = scan.calls(hub(scan));
    let answer = calls
        .run(|| calls.hub.feeds().list(org).add_scope(scan.scope).doit())
        .await;
    let outcome = match answer {
        Ok(list) => Ok(list
            .feeds
            .unwrap_or_default()
            .into_iter()
            .filter_map(|feed| {
                let key = feed.name.clone()?;
                let short = key.rsplit('/').next().unwrap_or(&key).to_string();
                let topic = feed
                    .feed_output_config
                    .as_ref()
                    .and_then(|c| c.pubsub_destination.as_ref())
                    .and_then(|d| d.topic.clone());
                Some(Finding {
                    resource_key: key.clone(),
                    name: short,
                    description: Some(format!(
                        "Asset change feed of {org} to {}",
                        topic.as_deref().unwrap_or("(no topic)")
                    )),
                    status: Status::Active,
                    reason: None,
                    applies_to: AppliesTo::AllAccounts,
                    techniques: normalize(capability_scores("cloud_asset_inventory")),
                    evidence: json!({
                        "feed": key,
                        "contentType": feed.content_type,
                        "assetTypes": feed.asset_types,
                        "assetNames": feed.asset_names,
                        "condition": feed.condition.and_then(|c| c.expression),
                        "topic": topic,
                    }),
                })
            })
            .collect()),
        Err(e) => Err(vec![Failed::new(FEEDS_LIST, org, e)]),
    };
    (outcome, calls.attempts())
}
