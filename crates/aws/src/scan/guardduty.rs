//! GuardDuty: an account's detectors (`aws.guardduty.detector`, one per region) and the
//! organization's delegated administrator (`aws.guardduty.delegated_admin`). The administrator
//! is regional and listed by the management account; how far it reaches (auto-enable, enabled
//! members) only the administrator itself can read, so Canopy assumes the member role there.
//! What the administrator's side could not be read degrades the finding instead of hiding it.

use std::collections::BTreeSet;

use aws_sdk_guardduty::types::{AdminStatus, AutoEnableMembers, DetectorStatus};
use canopy_detection::detection::{AppliesTo, Status, normalize};
use canopy_detection::log_sources::capability_scores;
use canopy_detection::ports::{Finding, ReadFailure, ReadFailureKind};
use serde_json::{Value, json};

use super::calls::{CallFailure, Tally, all_pages};
use super::session::Session;
use super::{Admins, each_region, status, unknown_reach};

const CTID: &str = "amazon_guardduty";

/// One detector as read.
struct Detector {
    id: String,
    enabled: bool,
    status: String,
    features: Value,
    frequency: Option<String>,
}

/// The detector of `region`, if there is one.
async fn detector(
    s: &Session,
    tally: &Tally,
    region: &str,
) -> Result<Option<Detector>, CallFailure> {
    let client = s.guardduty(region);
    let ids = all_pages(|token| {
        let client = &client;
        async move {
            let out = s
                .call(tally, "guardduty:ListDetectors", region, || {
                    client.list_detectors().set_next_token(token.clone()).send()
                })
                .await?;
            Ok((
                out.detector_ids().to_vec(),
                out.next_token().map(str::to_string),
            ))
        }
    })
    .await?;
    // GuardDuty allows one detector per account and region.
    let Some(id) = ids.into_iter().next() else {
        return Ok(None);
    };
    let out = s
        .call(tally, "guardduty:GetDetector", region, || {
            client.get_detector().detector_id(&id).send()
        })
        .await?;
    let features: Vec<Value> = out
        .features()
        .iter()
        .map(|f| {
            json!({
                "name": f.name().map(|n| n.as_str()),
                "status": f.status().map(|s| s.as_str()),
            })
        })
        .collect();
    Ok(Some(Detector {
        id,
        enabled: out.status() == Some(&DetectorStatus::Enabled),
        status: out.status().map_or("UNKNOWN", |s| s.as_str()).to_string(),
        features: Value::Array(features),
        frequency: out
            .finding_publishing_frequency()
            .map(|f| f.as_str().to_string()),
    }))
}

/// An account's detectors, one finding per region that has one.
pub(crate) async fn detectors(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, CallFailure> {
    each_region(regions, |region| async move {
        let Some(d) = detector(s, tally, region).await? else {
            return Ok(Vec::new());
        };
        let (status, reason) = status(if d.enabled {
            Vec::new()
        } else {
            vec![format!("the detector is {}", d.status)]
        });
        Ok(vec![Finding {
            resource_key: region.to_string(),
            name: format!("GuardDuty ({region})"),
            description: Some(format!("GuardDuty detector {} in {region}", d.id)),
            status,
            reason,
            applies_to: AppliesTo::AllAccounts,
            techniques: normalize(capability_scores(CTID)),
            evidence: json!({
                "region": region,
                "detectorId": d.id,
                "status": d.status,
                "findingPublishingFrequency": d.frequency,
                "features": d.features,
            }),
        }])
    })
    .await
}

/// How far the administrator reaches in one region, as the administrator reads it.
struct Reach {
    auto_enable: String,
    features: Value,
    enabled_members: BTreeSet<String>,
}

/// The administrator's detector, and how far it reaches (which can fail on its own: the
/// detector found is worth reporting even when its organization configuration is not
/// readable).
async fn administered(
    s: &Session,
    tally: &Tally,
    region: &str,
) -> Result<Option<(Detector, Result<Reach, CallFailure>)>, CallFailure> {
    let Some(d) = detector(s, tally, region).await? else {
        return Ok(None);
    };
    let reach = reach(s, tally, region, &d.id).await;
    Ok(Some((d, reach)))
}

async fn reach(
    s: &Session,
    tally: &Tally,
    region: &str,
    detector: &str,
) -> Result<Reach, CallFailure> {
    let client = s.guardduty(region);
    let config = s
        .call(
            tally,
            "guardduty:DescribeOrganizationConfiguration",
            region,
            || {
                client
                    .describe_organization_configuration()
                    .detector_id(detector)
                    .send()
            },
        )
        .await?;
    #[allow(deprecated)]
    let auto_enable = match config.auto_enable_organization_members() {
        Some(AutoEnableMembers::All) => "ALL",
        Some(AutoEnableMembers::New) => "NEW",
        Some(AutoEnableMembers::None) => "NONE",
        // Older answers carry only the deprecated flag, which meant "new accounts".
        _ if config.auto_enable() == Some(true) => "NEW",
        _ => "NONE",
    };
    let features = config
        .features()
        .iter()
        .map(|f| {
            json!({
                "name": f.name().map(|n| n.as_str()),
                "autoEnable": f.auto_enable().map(|a| a.as_str()),
            })
        })
        .collect();
    let members = all_pages(|token| {
        let client = &client;
        async move {
            let out = s
                .call(tally, "guardduty:ListMembers", region, || {
                    client
                        .list_members()
                        .detector_id(detector)
                        .only_associated("true")
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let enabled = out
                .members()
                .iter()
                .filter(|m| {
                    m.relationship_status()
                        .is_some_and(|r| r.eq_ignore_ascii_case("enabled"))
                })
                .filter_map(|m| m.account_id().map(str::to_string))
                .collect();
            Ok((enabled, out.next_token().map(str::to_string)))
        }
    })
    .await?;
    Ok(Reach {
        auto_enable: auto_enable.to_string(),
        features: Value::Array(features),
        enabled_members: members.into_iter().collect(),
    })
}

/// The administrator of each region, as the management account lists them.
async fn administrators(
    s: &Session,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<(String, String)>, CallFailure> {
    each_region(regions, |region| async move {
        let client = s.guardduty(region);
        let admins = all_pages(|token| {
            let client = &client;
            async move {
                let out = s
                    .call(
                        tally,
                        "guardduty:ListOrganizationAdminAccounts",
                        region,
                        || {
                            client
                                .list_organization_admin_accounts()
                                .set_next_token(token.clone())
                                .send()
                        },
                    )
                    .await?;
                let enabled = out
                    .admin_accounts()
                    .iter()
                    .filter(|a| a.admin_status() != Some(&AdminStatus::DisableInProgress))
                    .filter_map(|a| a.admin_account_id().map(str::to_string))
                    .collect();
                Ok((enabled, out.next_token().map(str::to_string)))
            }
        })
        .await?;
        Ok(admins
            .into_iter()
            .map(|a| (region.to_string(), a))
            .collect())
    })
    .await
}

/// A reason from a failure of the administrator's side (throttling is not one: it fails the
/// source, as anywhere else).
fn unread(failure: ReadFailure, what: &str) -> Result<String, ReadFailure> {
    match failure.kind {
        ReadFailureKind::ThrottledOut => Err(failure),
        _ => Ok(format!(
            "the administrator's {what} could not be read: {} ({})",
            failure.message, failure.advice
        )),
    }
}

type Administered = Option<(Detector, Result<Reach, ReadFailure>)>;

/// The delegated administrator of every scanned region that has one.
pub(crate) async fn delegated_admin(
    s: &Session,
    admins: &Admins<'_>,
    tally: &Tally,
    regions: &[String],
) -> Result<Vec<Finding>, ReadFailure> {
    let listed = administrators(s, tally, regions)
        .await
        .map_err(CallFailure::into_read_failure)?;
    let reads = listed.into_iter().map(|(region, admin)| async move {
        let read = match admins.session(&admin).await {
            Ok(session) => administered(&session, tally, &region)
                .await
                .map(|found| {
                    found.map(|(d, reach)| (d, reach.map_err(CallFailure::into_read_failure)))
                })
                .map_err(CallFailure::into_read_failure),
            Err(f) => Err(f),
        };
        findings(region, admin, read)
    });
    Ok(futures::future::try_join_all(reads)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// What one region's administrator amounts to. Its reach read: one finding reaching the
/// enrolled members (or all accounts when every account is enrolled automatically). Its reach
/// unread: the administrator's own detector as read, and the control `unknown` for every
/// account it may reach. Nothing of it read: `unknown` everywhere.
fn findings(
    region: String,
    admin: String,
    read: Result<Administered, ReadFailure>,
) -> Result<Vec<Finding>, ReadFailure> {
    let mut reasons = Vec::new();
    let mut applies = BTreeSet::from([admin.clone()]);
    let mut evidence = json!({ "region": region, "adminAccountId": admin });
    let mut all = false;
    let mut unknown = None;
    match read {
        Err(f) => unknown = Some(unread(f, "detector")?),
        Ok(None) => reasons.push(format!("the administrator has no detector in {region}")),
        Ok(Some((d, reach))) => {
            if !d.enabled {
                reasons.push(format!("the detector is {}", d.status));
            }
            evidence["detectorId"] = json!(d.id);
            evidence["detectorStatus"] = json!(d.status);
            match reach {
                Err(f) => unknown = Some(unread(f, "reach")?),
                Ok(r) => {
                    if r.auto_enable == "NONE" {
                        reasons.push("new accounts are not enrolled automatically".to_string());
                    }
                    all = r.auto_enable == "ALL";
                    applies.extend(r.enabled_members.iter().cloned());
                    evidence["autoEnableOrganizationMembers"] = json!(r.auto_enable);
                    evidence["features"] = r.features;
                    evidence["enabledMembers"] = json!(r.enabled_members.len());
                }
            }
        }
    }
    let (status, reason) = status(reasons);
    let own = Finding {
        resource_key: region.clone(),
        name: format!("GuardDuty delegated administrator ({region})"),
        description: Some(format!(
            "GuardDuty administered for the organization by {admin} in {region}"
        )),
        status,
        reason,
        applies_to: if all {
            AppliesTo::AllAccounts
        } else {
            AppliesTo::Accounts(applies)
        },
        techniques: normalize(capability_scores(CTID)),
        evidence,
    };
    Ok(match unknown {
        None => vec![own],
        // Not even the administrator's detector was read: unknown for every account.
        Some(why) if own.evidence.get("detectorId").is_none() => vec![Finding {
            status: Status::Unknown,
            reason: Some(why),
            applies_to: AppliesTo::AllAccounts,
            ..own
        }],
        Some(why) => {
            let reach = unknown_reach(&own, why);
            vec![own, reach]
        }
    })
}
