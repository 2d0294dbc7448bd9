//! CloudTrail trails: organization trails (`aws.cloudtrail.org_trail`, read as the management
//! account) and an account's own trails (`aws.cloudtrail.trail`). A trail is found in every
//! scanned region (shadow trails included, so a multi-region trail is seen everywhere and
//! counted once), then its status and event selectors are read in its home region.

use std::collections::BTreeMap;

use aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput;
use aws_sdk_cloudtrail::types::{ReadWriteType, Trail};
use canopy_detection::detection::{AppliesTo, normalize};
use canopy_detection::log_sources::log_scores;
use canopy_detection::ports::Finding;
use serde_json::json;

use super::calls::{CallFailure, Tally};
use super::session::Session;
use super::{each_region, status};

/// What a trail's event selectors record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Recorded {
    /// Management events, read or write.
    pub management: bool,
    /// Management events that change something (`StopLogging`, `DeleteTrail`, ...).
    pub writes: bool,
    /// Management events that only read.
    pub reads: bool,
    /// Data events (S3 objects, Lambda invocations, ...).
    pub data: bool,
}

impl Recorded {
    fn read_write(self) -> &'static str {
        match (self.reads, self.writes) {
            (true, true) => "All",
            (true, false) => "ReadOnly",
            (false, true) => "WriteOnly",
            (false, false) => "None",
        }
    }
}

/// Reads basic and advanced selectors alike. A trail with neither records every management
/// event, which is CloudTrail's default.
pub(crate) fn recorded(out: &GetEventSelectorsOutput) -> Recorded {
    let basic = out.event_selectors();
    let advanced = out.advanced_event_selectors();
    if basic.is_empty() && advanced.is_empty() {
        return Recorded {
            management: true,
            writes: true,
            reads: true,
            data: false,
        };
    }
    let mut r = Recorded::default();
    for s in basic {
        if s.include_management_events().unwrap_or(true) {
            r.management = true;
            let (reads, writes) = match s.read_write_type() {
                Some(ReadWriteType::ReadOnly) => (true, false),
                Some(ReadWriteType::WriteOnly) => (false, true),
                _ => (true, true),
            };
            r.reads |= reads;
            r.writes |= writes;
        }
        r.data |= !s.data_resources().is_empty();
    }
    for s in advanced {
        let field = |name: &str| {
            s.field_selectors()
                .iter()
                .find(|f| f.field().eq_ignore_ascii_case(name))
        };
        let category = field("eventCategory")
            .and_then(|f| f.equals().first())
            .map(String::as_str);
        match category {
            Some("Management") => {
                r.management = true;
                let read_only = field("readOnly").and_then(|f| f.equals().first());
                let (reads, writes) = match read_only.map(String::as_str) {
                    Some("true") => (true, false),
                    Some("false") => (false, true),
                    _ => (true, true),
                };
                r.reads |= reads;
                r.writes |= writes;
            }
            Some("Data") => r.data = true,
            _ => {}
        }
    }
    r
}

/// The trails seen from `s` that are (`organization`) or are not organization trails.
pub(crate) async fn trails(
    s: &Session,
    tally: &Tally,
    regions: &[String],
    organization: bool,
) -> Result<Vec<Finding>, CallFailure> {
    let seen = each_region(regions, |region| async move {
        let client = s.cloudtrail(region);
        let out = s
            .call(tally, "cloudtrail:DescribeTrails", region, || {
                client.describe_trails().include_shadow_trails(true).send()
            })
            .await?;
        Ok(out
            .trail_list()
            .iter()
            .map(|t| (t.clone(), region.to_string()))
            .collect())
    })
    .await?;
    let mut unique: BTreeMap<String, (Trail, String)> = BTreeMap::new();
    for (trail, region) in seen {
        if trail.is_organization_trail().unwrap_or(false) != organization {
            continue;
        }
        if let Some(arn) = trail.trail_arn() {
            unique.entry(arn.to_string()).or_insert((trail, region));
        }
    }
    futures::future::try_join_all(
        unique
            .into_values()
            .map(|(trail, region)| read(s, tally, trail, region, organization)),
    )
    .await
}

async fn read(
    s: &Session,
    tally: &Tally,
    trail: Trail,
    seen_in: String,
    organization: bool,
) -> Result<Finding, CallFailure> {
    let arn = trail.trail_arn().unwrap_or_default().to_string();
    let home = trail.home_region().unwrap_or(&seen_in).to_string();
    // Status and selectors are only served in the trail's home region.
    let client = s.cloudtrail(&home);
    let (state, selectors) = futures::try_join!(
        s.call(tally, "cloudtrail:GetTrailStatus", &home, || {
            client.get_trail_status().name(&arn).send()
        }),
        s.call(tally, "cloudtrail:GetEventSelectors", &home, || {
            client.get_event_selectors().trail_name(&arn).send()
        }),
    )?;
    let logging = state.is_logging().unwrap_or(false);
    let multi_region = trail.is_multi_region_trail().unwrap_or(false);
    let events = recorded(&selectors);
    let mut reasons = Vec::new();
    if !logging {
        reasons.push("the trail is not logging".to_string());
    }
    if !multi_region {
        reasons.push(format!(
            "the trail records only {home}; activity in other regions goes unrecorded"
        ));
    }
    if !events.management {
        reasons.push("the trail records no management events".to_string());
    } else if !events.writes {
        reasons.push(
            "the trail records only read-only management events, so changes such as \
             StopLogging are not recorded"
                .to_string(),
        );
    }
    let (status, reason) = status(reasons);
    let name = trail.name().unwrap_or(&arn).to_string();
    Ok(Finding {
        resource_key: arn.clone(),
        name: name.clone(),
        description: Some(if organization {
            format!("CloudTrail organization trail {name}, recording every account")
        } else {
            format!("CloudTrail trail {name}")
        }),
        status,
        reason,
        applies_to: AppliesTo::AllAccounts,
        techniques: normalize(log_scores(events.management, events.data)),
        evidence: json!({
            "arn": arn,
            "homeRegion": home,
            "multiRegion": multi_region,
            "isLogging": logging,
            "managementEvents": events.management,
            "readWriteType": events.read_write(),
            "dataEvents": events.data,
            "s3Bucket": trail.s3_bucket_name(),
            "organizationTrail": trail.is_organization_trail().unwrap_or(false),
            "logGroup": trail.cloud_watch_logs_log_group_arn(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudtrail::types::{
        AdvancedEventSelector, AdvancedFieldSelector, DataResource, EventSelector,
    };

    fn field(name: &str, value: &str) -> AdvancedFieldSelector {
        AdvancedFieldSelector::builder()
            .field(name)
            .equals(value)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn no_selectors_is_the_default_of_every_management_event() {
        let r = recorded(&GetEventSelectorsOutput::builder().build());
        assert!(r.management && r.writes && r.reads && !r.data);
        assert_eq!(r.read_write(), "All");
    }

    #[test]
    fn basic_selectors_say_read_write_and_data() {
        let out = GetEventSelectorsOutput::builder()
            .event_selectors(
                EventSelector::builder()
                    .read_write_type(ReadWriteType::ReadOnly)
                    .include_management_events(true)
                    .data_resources(
                        DataResource::builder()
                            .r#type("AWS::S3::Object")
                            .values("arn:aws:s3")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let r = recorded(&out);
        assert!(r.management && r.reads && !r.writes && r.data);
        assert_eq!(r.read_write(), "ReadOnly");
    }

    #[test]
    fn advanced_selectors_count_too() {
        let out = GetEventSelectorsOutput::builder()
            .advanced_event_selectors(
                AdvancedEventSelector::builder()
                    .field_selectors(field("eventCategory", "Management"))
                    .field_selectors(field("readOnly", "false"))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .advanced_event_selectors(
                AdvancedEventSelector::builder()
                    .field_selectors(field("eventCategory", "Data"))
                    .field_selectors(field("resources.type", "AWS::S3::Object"))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .build();
        let r = recorded(&out);
        assert!(r.management && r.writes && !r.reads && r.data);
        assert_eq!(r.read_write(), "WriteOnly");
    }
}
