//! GuardDuty's REST-JSON calls the scanners make, beyond what moto serves: an administrator's
//! `DescribeOrganizationConfiguration` and `ListMembers`, with the management account's
//! `ListOrganizationAdminAccounts` and an account's `ListDetectors` / `GetDetector`.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::scanning::Call;
use super::{FakeAws, Shared};

/// GuardDuty of one account in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardDutySetup {
    /// `ENABLED` when true, `DISABLED` otherwise.
    pub enabled: bool,
    /// As administrator: `ALL`, `NEW` or `NONE` (`None`: not an administrator).
    pub auto_enable: Option<String>,
    /// As administrator: member accounts, all `Enabled`.
    pub members: Vec<String>,
}

impl FakeAws {
    /// Gives `account` a GuardDuty detector in `region` as described.
    pub fn enable_guardduty(&self, account: &str, region: &str, setup: GuardDutySetup) {
        self.shared
            .lock()
            .scanning
            .detectors
            .insert((account.into(), region.into()), setup);
    }

    /// Makes `admin` the GuardDuty administrator of `management`'s organization in `region`.
    pub fn set_guardduty_admin(&self, management: &str, region: &str, admin: &str) {
        self.shared
            .lock()
            .scanning
            .detector_admins
            .insert((management.into(), region.into()), admin.into());
    }
}

/// The operation a GuardDuty request names.
pub(crate) fn operation(method: &Method, path: &str) -> Option<&'static str> {
    if method != Method::GET {
        return None;
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match parts.as_slice() {
        ["admin"] => "ListOrganizationAdminAccounts",
        ["detector"] => "ListDetectors",
        ["detector", _] => "GetDetector",
        ["detector", _, "admin"] => "DescribeOrganizationConfiguration",
        ["detector", _, "member"] => "ListMembers",
        _ => return None,
    })
}

type Refusal = (StatusCode, &'static str, String);

/// The answer to one GuardDuty call.
pub(crate) fn answer(shared: &Shared, call: &Call, path: &str) -> Result<Value, Refusal> {
    let state = shared.lock();
    let key = (call.account.clone(), call.region.clone());
    let detector_id = format!("det{}", call.account);
    let mine = state.scanning.detectors.get(&key);
    Ok(match call.action.as_str() {
        "guardduty:ListOrganizationAdminAccounts" => json!({
            "adminAccounts": state.scanning.detector_admins.get(&key)
                .map(|a| json!({ "adminAccountId": a, "adminStatus": "ENABLED" }))
                .into_iter().collect::<Vec<_>>(),
        }),
        "guardduty:ListDetectors" => json!({
            "detectorIds": mine.map(|_| detector_id.clone()).into_iter().collect::<Vec<_>>(),
        }),
        _ => {
            let Some(setup) = mine.filter(|_| path.contains(&detector_id)) else {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "BadRequestException",
                    "The request is rejected because the input detectorId is not owned by the current account.".into(),
                ));
            };
            match call.action.as_str() {
                "guardduty:GetDetector" => json!({
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "findingPublishingFrequency": "SIX_HOURS",
                    "serviceRole": format!("arn:aws:iam::{}:role/aws-service-role/guardduty.amazonaws.com/AWSServiceRoleForAmazonGuardDuty", call.account),
                    "status": if setup.enabled { "ENABLED" } else { "DISABLED" },
                    "features": [{ "name": "CLOUD_TRAIL", "status": "ENABLED" }],
                }),
                "guardduty:DescribeOrganizationConfiguration" => {
                    let Some(auto) = &setup.auto_enable else {
                        return Err((
                            StatusCode::BAD_REQUEST,
                            "BadRequestException",
                            "The request is rejected because the current account is not the administrator.".into(),
                        ));
                    };
                    json!({
                        "autoEnable": auto != "NONE",
                        "memberAccountLimitReached": false,
                        "autoEnableOrganizationMembers": auto,
                        "features": [{ "name": "S3_DATA_EVENTS", "autoEnable": auto }],
                    })
                }
                _ => json!({
                    "members": setup.members.iter().map(|m| json!({
                        "accountId": m,
                        "detectorId": format!("det{m}"),
                        "masterId": call.account,
                        "administratorId": call.account,
                        "email": format!("{m}@example.com"),
                        "relationshipStatus": "Enabled",
                        "updatedAt": "2026-01-01T00:00:00.000Z",
                    })).collect::<Vec<_>>(),
                }),
            }
        }
    })
}
