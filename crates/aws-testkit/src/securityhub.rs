//! Security Hub's REST-JSON calls the scanners make: the management account's
//! `ListOrganizationAdminAccounts` (which moto lacks) and what an account or administrator
//! reads of itself: `DescribeHub`, `DescribeOrganizationConfiguration`, `GetEnabledStandards`,
//! `ListFindingAggregators`, `ListMembers`.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::scanning::Call;

/// The operation a Security Hub request names.
pub(crate) fn operation(method: &Method, path: &str) -> Option<&'static str> {
    Some(match (method, path) {
        (&Method::GET, "/accounts") => "DescribeHub",
        (&Method::GET, "/organization/admin") => "ListOrganizationAdminAccounts",
        (&Method::GET, "/organization/configuration") => "DescribeOrganizationConfiguration",
        (&Method::POST, "/standards/get") => "GetEnabledStandards",
        (&Method::GET, "/findingAggregator/list") => "ListFindingAggregators",
        (&Method::GET, "/members") => "ListMembers",
        _ => return None,
    })
}

type Refusal = (StatusCode, &'static str, String);

/// The answer to one Security Hub call.
pub(crate) fn answer(shared: &Shared, call: &Call) -> Result<Value, Refusal> {
    let state = shared.lock();
    let key = (call.account.clone(), call.region.clone());
    if call.action == "securityhub:ListOrganizationAdminAccounts" {
        let admins: Vec<Value> = state
            .scanning
            .hub_admins
            .get(&key)
            .map(|a| json!({ "AccountId": a, "Status": "ENABLED" }))
            .into_iter()
            .collect();
        return Ok(json!({ "AdminAccounts": admins }));
    }
    let Some(hub) = state.scanning.hubs.get(&key) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "InvalidAccessException",
            format!(
                "Account {} is not subscribed to AWS Security Hub",
                call.account
            ),
        ));
    };
    let arn = |what: &str| {
        format!(
            "arn:aws:securityhub:{}:{}:{what}",
            call.region, call.account
        )
    };
    Ok(match call.action.as_str() {
        "securityhub:DescribeHub" => json!({
            "HubArn": arn("hub/default"),
            "SubscribedAt": "2025-01-01T00:00:00.000Z",
            "AutoEnableControls": true,
        }),
        "securityhub:DescribeOrganizationConfiguration" => {
            let Some(kind) = &hub.configuration_type else {
                return Err((
                    StatusCode::FORBIDDEN,
                    "AccessDeniedException",
                    "the account is not the Security Hub administrator".into(),
                ));
            };
            json!({
                "AutoEnable": hub.auto_enable,
                "MemberAccountLimitReached": false,
                "AutoEnableStandards": "DEFAULT",
                "OrganizationConfiguration": { "ConfigurationType": kind, "Status": "ENABLED" },
            })
        }
        "securityhub:GetEnabledStandards" => json!({
            "StandardsSubscriptions": hub.standards.iter().enumerate().map(|(i, s)| json!({
                "StandardsSubscriptionArn": arn(&format!("subscription/{i}")),
                "StandardsArn": s,
                "StandardsInput": {},
                "StandardsStatus": "READY",
            })).collect::<Vec<_>>(),
        }),
        "securityhub:ListFindingAggregators" => json!({
            "FindingAggregators": hub.aggregators.iter()
                .map(|a| json!({ "FindingAggregatorArn": a }))
                .collect::<Vec<_>>(),
        }),
        "securityhub:ListMembers" => json!({
            "Members": hub.members.iter()
                .map(|m| json!({ "AccountId": m, "MemberStatus": "Enabled" }))
                .collect::<Vec<_>>(),
        }),
        other => {
            return Err((
                StatusCode::NOT_FOUND,
                "UnknownOperation",
                format!("{other} is not served here"),
            ));
        }
    })
}
