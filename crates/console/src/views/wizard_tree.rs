//! The wizard's last steps: the discovered hierarchy as a tree to choose members from (nodes
//! collapsed, a count on each, a text filter; checking an OU or folder takes its subtree, and
//! with JavaScript on the boxes are tri-state), then the plan check before anything is
//! connected (how many fit, connecting up to the limit, the tier that fits them all), then
//! the connect, whose progress is [`super::wizard::job_page`].
//!
//! A large organization's members load per node when it is opened (htmx), so no page holds
//! more than one node's members; without JavaScript a node opens through its own link.

use askama::Template;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::member::MemberStatus;
use canopy_cloud_org::organization::ports::{MemberFilter, Selection, StoredMember};
use canopy_cloud_org::organization::service::CloudOrganizationError;
use canopy_kernel::PageRequest;
use canopy_tenancy::service::OrgAccess;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::cloud_orgs::{Head, failure, head, member_status_class};
use super::wizard::{PlanGate, Refusal, Step, plan_gate, steps};
use super::{check_form, plan_limit_message};
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};

/// Up to this many members the whole tree is drawn at once; beyond, each node's members
/// load when it is opened.
const INLINE_MEMBERS: u32 = 400;

/// Members listed for a text filter at most.
const FOUND_AT_MOST: u32 = 200;

/// One line of the tree, in document order: nodes open and close around their members.
enum Line {
    Open {
        id: String,
        name: String,
        kind: &'static str,
        total: u32,
        direct: u32,
        open: bool,
        /// Its members are drawn in (or load when it is opened).
        inline: bool,
    },
    Member(MemberLine),
    Close,
}

/// A member as the tree shows it.
struct MemberLine {
    key: String,
    name: String,
    email: String,
    path: String,
    status: &'static str,
    status_class: &'static str,
    selectable: bool,
}

fn member_line(m: &StoredMember) -> MemberLine {
    MemberLine {
        key: m.found.key.clone(),
        name: m.found.name.clone(),
        email: m.found.email.clone().unwrap_or_default(),
        path: m.hierarchy_path.clone(),
        status: m.status.as_str(),
        status_class: member_status_class(m.status),
        selectable: matches!(m.status, MemberStatus::Discovered | MemberStatus::Failed),
    }
}

#[derive(Template)]
#[template(path = "cloud_orgs/select.html")]
struct SelectPage {
    chrome: Chrome,
    slug: String,
    steps: Vec<Step>,
    head: Head,
    lines: Vec<Line>,
    query: String,
    found: Option<Vec<MemberLine>>,
    found_more: bool,
}

#[derive(Template)]
#[template(path = "cloud_orgs/node_members.html")]
struct NodeMembers {
    members: Vec<MemberLine>,
}

/// The tree step's query: a text filter, or a node opened without JavaScript.
#[derive(Debug, Deserialize, Default)]
pub struct SelectQuery {
    q: Option<String>,
    open: Option<String>,
}

/// Every member matching `filter`, page after page.
async fn all_members(
    state: &ConsoleState,
    access: &OrgAccess,
    id: CloudOrganizationId,
    filter: &MemberFilter,
    at_most: u32,
) -> Result<(Vec<StoredMember>, bool), Failure> {
    let mut out = Vec::new();
    let mut request = PageRequest {
        limit: PageRequest::MAX_LIMIT.min(at_most),
        after: None,
    };
    loop {
        let page = state
            .cloud_orgs
            .members(access, id, filter, request)
            .await
            .map_err(failure)?;
        out.extend(page.items);
        match page.next {
            Some(next) if (out.len() as u32) < at_most => request.after = Some(next),
            more => return Ok((out, more.is_some())),
        }
    }
}

/// `GET /org/{slug}/cloud-organizations/{id}/select`: the tree to choose from.
#[handler]
pub async fn select(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
    poem::web::Query(q): poem::web::Query<SelectQuery>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    access.require(canopy_tenancy::Action::ConnectCloudAccount)?;
    let id = CloudOrganizationId(id);
    let cloud_org = state.cloud_orgs.get(&access, id).await.map_err(failure)?;
    let tree = state
        .cloud_orgs
        .hierarchy(&access, id)
        .await
        .map_err(failure)?;
    let count = |node: &str| {
        tree.counts
            .iter()
            .find(|c| c.node_id == node)
            .map_or((0, 0), |c| (c.total, c.direct))
    };
    let everyone: u32 = tree.counts.iter().map(|c| c.direct).sum();
    let inline_all = everyone <= INLINE_MEMBERS;
    let members = if inline_all {
        all_members(
            &state,
            &access,
            id,
            &MemberFilter::default(),
            INLINE_MEMBERS,
        )
        .await?
        .0
    } else if let Some(node) = q.open.as_deref() {
        let filter = MemberFilter {
            parent: Some(node.to_string()),
            ..MemberFilter::default()
        };
        all_members(&state, &access, id, &filter, u32::MAX).await?.0
    } else {
        Vec::new()
    };
    // Nodes in pre-order: each node opens, its members follow, then its children, then it
    // closes.
    let opened: Vec<String> = q
        .open
        .as_deref()
        .and_then(|n| tree.hierarchy.get(n))
        .map(|n| n.id_path.clone())
        .unwrap_or_default();
    let mut lines = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut nodes: Vec<_> = tree.hierarchy.nodes().collect();
    nodes.sort_by(|a, b| a.id_path.cmp(&b.id_path));
    for node in nodes {
        while stack
            .last()
            .is_some_and(|top| node.parent_id.as_deref() != Some(top.as_str()))
        {
            stack.pop();
            lines.push(Line::Close);
        }
        let (total, direct) = count(&node.id);
        let shown = inline_all || opened.last() == Some(&node.id);
        lines.push(Line::Open {
            id: node.id.clone(),
            name: node.name.clone(),
            kind: node.kind.as_str(),
            total,
            direct,
            open: node.depth == 0 || opened.contains(&node.id),
            inline: shown,
        });
        if shown {
            lines.extend(
                members
                    .iter()
                    .filter(|m| m.found.parent_id == node.id)
                    .map(|m| Line::Member(member_line(m))),
            );
        }
        stack.push(node.id.clone());
    }
    lines.extend(stack.iter().map(|_| Line::Close));
    let query = q.q.clone().unwrap_or_default();
    let (found, found_more) = match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => {
            let filter = MemberFilter {
                text: Some(text.to_string()),
                ..MemberFilter::default()
            };
            let (found, more) = all_members(&state, &access, id, &filter, FOUND_AT_MOST).await?;
            (Some(found.iter().map(member_line).collect()), more)
        }
        None => (None, false),
    };
    let now = state.tenancy.clock().now();
    Ok(page(
        StatusCode::OK,
        &SelectPage {
            chrome,
            slug: access.organization().slug.as_str().to_string(),
            steps: steps(3),
            head: head(&cloud_org, now),
            lines,
            query,
            found,
            found_more,
        },
    ))
}

/// Which node's members.
#[derive(Debug, Deserialize)]
pub struct NodeQuery {
    node: String,
}

/// `GET /org/{slug}/cloud-organizations/{id}/select/node?node=...`: one node's own members,
/// the fragment htmx loads when the node is opened.
#[handler]
pub async fn node_members(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
    poem::web::Query(q): poem::web::Query<NodeQuery>,
) -> Result<Response, Failure> {
    let (_, access, _) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    access.require(canopy_tenancy::Action::ConnectCloudAccount)?;
    let filter = MemberFilter {
        parent: Some(q.node),
        ..MemberFilter::default()
    };
    let (members, _) =
        all_members(&state, &access, CloudOrganizationId(id), &filter, u32::MAX).await?;
    Ok(page(
        StatusCode::OK,
        &NodeMembers {
            members: members.iter().map(member_line).collect(),
        },
    ))
}

/// A selection as the tree's form sends it (`under` nodes and `account` keys, repeated).
#[derive(Debug, Default)]
struct Chosen {
    under: Vec<String>,
    accounts: Vec<String>,
}

impl Chosen {
    fn of(req: &Request, body: Option<&str>) -> Self {
        let raw = body.unwrap_or_else(|| req.uri().query().unwrap_or_default());
        let mut chosen = Chosen::default();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            match k.as_ref() {
                "under" => chosen.under.push(v.into_owned()),
                "account" => chosen.accounts.push(v.into_owned()),
                _ => {}
            }
        }
        chosen.under.sort();
        chosen.under.dedup();
        chosen.accounts.sort();
        chosen.accounts.dedup();
        chosen
    }

    /// The domain's selection: nodes alone go as nodes; with accounts, the nodes' members are
    /// read and everything goes as account ids.
    async fn selection(
        &self,
        state: &ConsoleState,
        access: &OrgAccess,
        id: CloudOrganizationId,
    ) -> Result<Option<Selection>, Failure> {
        if self.accounts.is_empty() {
            return Ok((!self.under.is_empty()).then(|| Selection::Under(self.under.clone())));
        }
        let mut keys = self.accounts.clone();
        for node in &self.under {
            let filter = MemberFilter {
                under: Some(node.clone()),
                ..MemberFilter::default()
            };
            let (members, _) = all_members(state, access, id, &filter, u32::MAX).await?;
            keys.extend(members.into_iter().map(|m| m.found.key));
        }
        keys.sort();
        keys.dedup();
        Ok(Some(Selection::Keys(keys)))
    }

    /// The hidden fields that carry the selection on to the next step.
    fn fields(&self) -> Vec<(&'static str, String)> {
        self.under
            .iter()
            .map(|n| ("under", n.clone()))
            .chain(self.accounts.iter().map(|a| ("account", a.clone())))
            .collect()
    }
}

#[derive(Template)]
#[template(path = "cloud_orgs/confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    slug: String,
    steps: Vec<Step>,
    head: Head,
    id: String,
    fields: Vec<(&'static str, String)>,
    gate: Option<PlanGate>,
    selected: usize,
    sample: Vec<String>,
    fits: usize,
    remaining: Option<u64>,
    refusal: Option<Refusal>,
    upgrade_to: Option<String>,
}

/// `GET /org/{slug}/cloud-organizations/{id}/confirm?under=...&account=...`: the plan check.
#[handler]
pub async fn confirm(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    access.require(canopy_tenancy::Action::ConnectCloudAccount)?;
    let id = CloudOrganizationId(id);
    let chosen = Chosen::of(req, None);
    let slug = access.organization().slug.as_str().to_string();
    let Some(selection) = chosen.selection(&state, &access, id).await? else {
        return Ok(redirect(&format!(
            "/org/{slug}/cloud-organizations/{}/select?none=1",
            id.as_uuid()
        )));
    };
    let cloud_org = state.cloud_orgs.get(&access, id).await.map_err(failure)?;
    let gate = plan_gate(&state, &access).await?;
    let (selected, sample, fits, remaining, refusal, upgrade_to) = if gate.is_some() {
        (0, Vec::new(), 0, None, None, None)
    } else {
        let preview = state
            .cloud_orgs
            .preview_connect(&access, id, &selection)
            .await
            .map_err(failure)?;
        let selected = preview.keys.len();
        let fits = preview.room.remaining.map_or(selected, |r| {
            selected.min(usize::try_from(r).unwrap_or(usize::MAX))
        });
        let upgrade_to = preview
            .room
            .refusal
            .as_ref()
            .map(|r| super::tier_name(&r.required_tier).to_string());
        let refusal = preview.room.refusal.as_ref().map(|r| Refusal {
            title: plan_limit_message(r),
            advice: String::new(),
        });
        let sample = preview.keys.iter().take(12).cloned().collect();
        (
            selected,
            sample,
            fits,
            preview.room.remaining,
            refusal,
            upgrade_to,
        )
    };
    let now = state.tenancy.clock().now();
    Ok(page(
        StatusCode::OK,
        &ConfirmPage {
            chrome,
            slug,
            steps: steps(4),
            head: head(&cloud_org, now),
            id: id.as_uuid().to_string(),
            fields: chosen.fields(),
            gate,
            selected,
            sample,
            fits,
            remaining,
            refusal,
            upgrade_to,
        },
    ))
}

/// `POST /org/{slug}/cloud-organizations/{id}/connect`: queue the connect, follow its job.
#[handler]
pub async fn connect(
    state: Data<&ConsoleState>,
    req: &Request,
    Path((slug, id)): Path<(String, Uuid)>,
    body: String,
) -> Result<Response, Failure> {
    let (viewer, access, _) = chrome::organization(&state, req, &slug, "cloud-orgs").await?;
    let field = |name: &str| {
        form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    check_form(&viewer, req, &field("csrf"))?;
    access.require(canopy_tenancy::Action::ConnectCloudAccount)?;
    let id = CloudOrganizationId(id);
    let chosen = Chosen::of(req, Some(&body));
    let up_to_limit = field("upToLimit") == "true";
    let slug = access.organization().slug.as_str().to_string();
    let Some(selection) = chosen.selection(&state, &access, id).await? else {
        return Ok(redirect(&format!(
            "/org/{slug}/cloud-organizations/{}/select",
            id.as_uuid()
        )));
    };
    match state
        .cloud_orgs
        .connect_members(&access, id, selection, up_to_limit)
        .await
    {
        Ok(plan) => Ok(redirect(&format!(
            "/org/{slug}/cloud-organizations/{}/jobs/{}",
            id.as_uuid(),
            plan.job.id.0
        ))),
        Err(CloudOrganizationError::ConnectInProgress(job)) => Ok(redirect(&format!(
            "/org/{slug}/cloud-organizations/{}/jobs/{}",
            id.as_uuid(),
            job.0
        ))),
        // Refused by the plan or emptied meanwhile: the check says what is left to do.
        Err(CloudOrganizationError::PlanLimit(_) | CloudOrganizationError::Invalid(_)) => {
            Ok(redirect(&format!(
                "/org/{slug}/cloud-organizations/{}/confirm?{}",
                id.as_uuid(),
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(chosen.fields())
                    .finish()
            )))
        }
        Err(e) => Err(failure(e)),
    }
}
