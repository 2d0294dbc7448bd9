//! AWS Organizations (JSON 1.1 protocol, `X-Amz-Target: AWSOrganizationsV20161128.*`) on the
//! same port as STS: the calls discovery makes, with pages, a denied subtree, a caller that is
//! not the management account, throttling every n-th call, latency, and the highest number of
//! calls seen in flight at once. It answers what moto cannot be made to answer.

use std::collections::{HashMap, HashSet};

use poem::Request;
use poem::http::StatusCode;
use serde_json::{Value, json};

use super::{FakeAws, Shared, access_key};

const TARGET_PREFIX: &str = "AWSOrganizationsV20161128.";

/// Organizations calls answered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrganizationsCalls {
    /// Every request, throttled ones included.
    pub total: u64,
    /// Requests answered `TooManyRequestsException`.
    pub throttled: u64,
    /// The most requests in flight at once.
    pub max_in_flight: u64,
}

#[derive(Debug, Clone)]
struct AccountRecord {
    id: String,
    name: String,
    email: String,
    state: String,
    parent: String,
}

#[derive(Debug, Default)]
pub(crate) struct Organization {
    id: String,
    management: String,
    management_email: String,
    root: String,
    /// Parent id -> (OU id, name), in creation order.
    units: HashMap<String, Vec<(String, String)>>,
    accounts: Vec<AccountRecord>,
    delegated: HashMap<String, Vec<String>>,
    denied_parents: HashSet<String>,
    /// Operations refused to every caller (a role whose policy lacks them).
    denied_operations: HashSet<String>,
    throttle_every: Option<u64>,
    page_size: usize,
    serial: u64,
    calls: OrganizationsCalls,
    in_flight: u64,
}

impl FakeAws {
    fn with_org<T>(&self, f: impl FnOnce(&mut Organization) -> T) -> T {
        let mut state = self.shared.lock();
        f(state.organization.get_or_insert_with(|| Organization {
            page_size: 20,
            ..Organization::default()
        }))
    }

    /// Creates the organization `o-...` with `management` as its management account; returns
    /// the root id. Without it, every call answers `AWSOrganizationsNotInUseException`.
    pub fn create_organization(&self, org_id: &str, management: &str, email: &str) -> String {
        self.with_org(|o| {
            o.id = org_id.to_string();
            o.management = management.to_string();
            o.management_email = email.to_string();
            let suffix: String = org_id.trim_start_matches("o-").chars().take(4).collect();
            o.root = format!("r-{suffix}");
            o.root.clone()
        })
    }

    /// Adds an OU under `parent`; returns its id.
    pub fn add_ou(&self, parent: &str, name: &str) -> String {
        self.with_org(|o| {
            o.serial += 1;
            let id = format!("ou-{}-{:08x}", &o.root[2..], o.serial);
            o.units
                .entry(parent.to_string())
                .or_default()
                .push((id.clone(), name.to_string()));
            id
        })
    }

    /// Adds an account under `parent` in `state` (`ACTIVE`, `SUSPENDED`, ...).
    pub fn add_org_account(&self, parent: &str, id: &str, name: &str, state: &str) {
        self.with_org(|o| {
            o.accounts.push(AccountRecord {
                id: id.to_string(),
                name: name.to_string(),
                email: format!("{id}@example.com"),
                state: state.to_string(),
                parent: parent.to_string(),
            })
        });
    }

    /// Moves an account to another parent.
    pub fn move_org_account(&self, id: &str, parent: &str) {
        self.with_org(|o| {
            for a in o.accounts.iter_mut().filter(|a| a.id == id) {
                a.parent = parent.to_string();
            }
        });
    }

    /// Sets an account's state.
    pub fn set_org_account_state(&self, id: &str, state: &str) {
        self.with_org(|o| {
            for a in o.accounts.iter_mut().filter(|a| a.id == id) {
                a.state = state.to_string();
            }
        });
    }

    /// Registers `account` as delegated administrator of `service`.
    pub fn delegate_admin(&self, account: &str, service: &str) {
        self.with_org(|o| {
            o.delegated
                .entry(account.to_string())
                .or_default()
                .push(service.to_string())
        });
    }

    /// Listing under `parent` answers `AccessDeniedException` (an SCP or a narrow policy).
    pub fn deny_parent(&self, parent: &str) {
        self.with_org(|o| o.denied_parents.insert(parent.to_string()));
    }

    /// Every n-th Organizations call answers `TooManyRequestsException` (10 for 10 %).
    pub fn throttle_every(&self, n: Option<u64>) {
        self.with_org(|o| o.throttle_every = n.filter(|n| *n > 0));
    }

    /// Items per page (AWS's default is 20).
    pub fn set_org_page_size(&self, n: usize) {
        self.with_org(|o| o.page_size = n.max(1));
    }

    /// Organizations calls so far.
    pub fn organizations_calls(&self) -> OrganizationsCalls {
        self.with_org(|o| o.calls)
    }

    /// Refuses `operation` (`DescribeOrganization`) to every caller, as AWS refuses a role
    /// whose policy does not allow it.
    pub fn deny_operation(&self, operation: &str) {
        self.with_org(|o| o.denied_operations.insert(operation.to_string()));
    }

    /// Zeroes the Organizations call counts.
    pub fn reset_organizations_calls(&self) {
        self.with_org(|o| o.calls = OrganizationsCalls::default());
    }
}

fn error(code: &str, message: &str) -> poem::Response {
    poem::Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/x-amz-json-1.1")
        .header("x-amzn-ErrorType", code)
        .body(json!({ "__type": code, "Message": message }).to_string())
}

pub(crate) fn page<T: Clone>(
    items: &[T],
    token: Option<&str>,
    size: usize,
) -> (Vec<T>, Option<String>) {
    let start = token.and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    (items.get(start..end).unwrap_or_default().to_vec(), next)
}

fn account_json(org: &Organization, a: &AccountRecord) -> Value {
    json!({
        "Id": a.id,
        "Arn": format!("arn:aws:organizations::{}:account/{}/{}", org.management, org.id, a.id),
        "Email": a.email,
        "Name": a.name,
        "State": a.state,
        "Status": if a.state == "ACTIVE" { "ACTIVE" } else { "SUSPENDED" },
        "JoinedMethod": if a.id == org.management { "CREATED" } else { "INVITED" },
        "JoinedTimestamp": 1_700_000_000.0,
    })
}

/// Answers one Organizations request; `None` when the target is not an Organizations one.
pub(crate) async fn answer(req: &Request, shared: &Shared, body: &str) -> Option<poem::Response> {
    let operation = req
        .header("x-amz-target")?
        .strip_prefix(TARGET_PREFIX)?
        .to_string();
    // Whether this call is throttled is decided as it arrives: decided when answering, calls
    // overlapping in flight would shift which ones land on a multiple.
    let (latency, throttled) = {
        let mut state = shared.lock();
        let latency = state.latency;
        let org = state.organization.get_or_insert_with(Organization::default);
        org.calls.total += 1;
        org.in_flight += 1;
        org.calls.max_in_flight = org.calls.max_in_flight.max(org.in_flight);
        let throttled = org
            .throttle_every
            .is_some_and(|n| org.calls.total.is_multiple_of(n));
        (latency, throttled)
    };
    tokio::time::sleep(latency).await;
    let response = respond(req, shared, &operation, body, throttled);
    let mut state = shared.lock();
    if let Some(org) = state.organization.as_mut() {
        org.in_flight -= 1;
    }
    Some(response)
}

fn respond(
    req: &Request,
    shared: &Shared,
    operation: &str,
    body: &str,
    throttled: bool,
) -> poem::Response {
    let input: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let caller = access_key(req).and_then(|k| {
        shared
            .lock()
            .credentials
            .get(&k)
            .map(|issued| issued.account.clone())
    });
    let Some(caller) = caller else {
        return error(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    let mut state = shared.lock();
    let Some(org) = state.organization.as_mut().filter(|o| !o.id.is_empty()) else {
        return error(
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
        );
    };
    if throttled {
        org.calls.throttled += 1;
        return error("TooManyRequestsException", "Rate exceeded");
    }
    if org.denied_operations.contains(operation) {
        return error(
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::{caller}:assumed-role/CanopyManagement/canopy-discovery is not \
                 authorized to perform: organizations:{operation}"
            ),
        );
    }
    let management_only = operation != "DescribeOrganization";
    if management_only && caller != org.management {
        return error(
            "AccessDeniedException",
            "You don't have permissions to access this resource.",
        );
    }
    let token = input.get("NextToken").and_then(Value::as_str);
    let size = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .map_or(org.page_size, |m| (m as usize).min(org.page_size));
    let parent = input
        .get("ParentId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let org = &*org;
    let body = match operation {
        "DescribeOrganization" => json!({ "Organization": {
            "Id": org.id,
            "Arn": format!("arn:aws:organizations::{}:organization/{}", org.management, org.id),
            "FeatureSet": "ALL",
            "MasterAccountArn": format!("arn:aws:organizations::{}:account/{}/{}", org.management, org.id, org.management),
            "MasterAccountId": org.management,
            "MasterAccountEmail": org.management_email,
        }}),
        "ListRoots" => json!({ "Roots": [{
            "Id": org.root,
            "Arn": format!("arn:aws:organizations::{}:root/{}/{}", org.management, org.id, org.root),
            "Name": "Root",
            "PolicyTypes": [],
        }]}),
        "ListOrganizationalUnitsForParent" | "ListAccountsForParent"
            if org.denied_parents.contains(parent) =>
        {
            return error(
                "AccessDeniedException",
                "You don't have permissions to access this resource.",
            );
        }
        "ListOrganizationalUnitsForParent" => {
            let units = org.units.get(parent).cloned().unwrap_or_default();
            let (items, next) = page(&units, token, size);
            json!({
                "OrganizationalUnits": items.iter().map(|(id, name)| json!({
                    "Id": id,
                    "Arn": format!("arn:aws:organizations::{}:ou/{}/{id}", org.management, org.id),
                    "Name": name,
                })).collect::<Vec<_>>(),
                "NextToken": next,
            })
        }
        "ListAccountsForParent" => {
            let accounts: Vec<_> = org.accounts.iter().filter(|a| a.parent == parent).collect();
            let (items, next) = page(&accounts, token, size);
            json!({
                "Accounts": items.iter().map(|a| account_json(org, a)).collect::<Vec<_>>(),
                "NextToken": next,
            })
        }
        "ListDelegatedAdministrators" => {
            let mut admins: Vec<_> = org.delegated.keys().cloned().collect();
            admins.sort();
            let (items, next) = page(&admins, token, size);
            json!({
                "DelegatedAdministrators": items.iter().filter_map(|id| {
                    org.accounts.iter().find(|a| &a.id == id).map(|a| account_json(org, a))
                }).collect::<Vec<_>>(),
                "NextToken": next,
            })
        }
        "ListDelegatedServicesForAccount" => {
            let account = input
                .get("AccountId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let services = org.delegated.get(account).cloned().unwrap_or_default();
            let (items, next) = page(&services, token, size);
            json!({
                "DelegatedServices": items.iter().map(|s| json!({
                    "ServicePrincipal": s,
                    "DelegationEnabledDate": 1_700_000_000.0,
                })).collect::<Vec<_>>(),
                "NextToken": next,
            })
        }
        // No policies: an organization scan of this fake finds no SCPs.
        "ListPolicies" => json!({ "Policies": [] }),
        other => {
            return error(
                "InvalidInputException",
                &format!("{other} is not served here"),
            );
        }
    };
    let mut body = body;
    // AWS leaves out a `NextToken` it does not send rather than writing null.
    if let Some(map) = body.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    poem::Response::builder()
        .content_type("application/x-amz-json-1.1")
        .body(body.to_string())
}
