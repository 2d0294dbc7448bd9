//! Property tests of the coverage rules over random trees, accounts and detections.

use std::collections::BTreeSet;

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, Hierarchy, NodeKind};
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{
    AppliesTo, Detection, DetectionId, Scope, Source, Status, TechniqueScore,
};
use canopy_detection::mapping::{Category, Value};
use canopy_detection::service::{AccountDetection, Origin, inherit};
use canopy_kernel::id::OrganizationId;
use proptest::prelude::*;

use crate::account::{AccountCoverage, TechniqueStatus, account_coverage};
use crate::organization::organization_coverage;
use crate::summary::{AccountSummary, Marks, Member, estate_summaries};

const NODES: usize = 6;
const ACCOUNTS: usize = 5;

fn pool() -> Vec<String> {
    Catalog::embedded()
        .iaas()
        .take(10)
        .map(|t| t.id.clone())
        .collect()
}

/// A tree: node 0 is the root, node i > 0 hangs under an earlier node.
#[derive(Debug, Clone)]
struct World {
    parents: Vec<usize>,
    accounts: Vec<usize>,
    cloud_org: CloudOrganizationId,
    ids: Vec<CloudAccountId>,
}

impl World {
    fn node(i: usize) -> String {
        if i == 0 {
            "r-root".into()
        } else {
            format!("ou-{i}")
        }
    }

    fn key(i: usize) -> String {
        format!("{:012}", 100_000_000_000u64 + i as u64)
    }

    fn hierarchy(&self) -> Hierarchy {
        let nodes = (0..NODES)
            .map(|i| DiscoveredNode {
                id: Self::node(i),
                parent_id: (i > 0).then(|| Self::node(self.parents[i])),
                name: Self::node(i),
                kind: if i == 0 {
                    NodeKind::Root
                } else {
                    NodeKind::OrganizationalUnit
                },
            })
            .collect();
        Hierarchy::build(nodes, 10).expect("a generated tree is valid")
    }

    /// Whether node `n` is `ancestor` or under it.
    fn under(&self, mut n: usize, ancestor: usize) -> bool {
        loop {
            if n == ancestor {
                return true;
            }
            if n == 0 {
                return false;
            }
            n = self.parents[n];
        }
    }
}

fn world() -> impl Strategy<Value = World> {
    let parents = (1..NODES).map(|i| (0..i).boxed()).collect::<Vec<_>>();
    (parents, proptest::collection::vec(0..NODES, ACCOUNTS)).prop_map(|(parents, accounts)| {
        let mut all = vec![0];
        all.extend(parents);
        World {
            parents: all,
            accounts,
            cloud_org: CloudOrganizationId::new(),
            ids: (0..ACCOUNTS).map(|_| CloudAccountId::new()).collect(),
        }
    })
}

/// What a generated detection is, before it is placed.
#[derive(Debug, Clone)]
enum Place {
    Own(usize),
    All,
    Accounts(BTreeSet<usize>),
    Nodes(BTreeSet<usize>),
    NodesExcept(BTreeSet<usize>, BTreeSet<usize>),
}

#[derive(Debug, Clone)]
struct Spec {
    place: Place,
    status: Status,
    techniques: Vec<(usize, Category, Value)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let place = prop_oneof![
        (0..ACCOUNTS).prop_map(Place::Own),
        Just(Place::All),
        proptest::collection::btree_set(0..ACCOUNTS, 1..3).prop_map(Place::Accounts),
        proptest::collection::btree_set(0..NODES, 1..3).prop_map(Place::Nodes),
        (
            proptest::collection::btree_set(0..NODES, 1..3),
            proptest::collection::btree_set(0..NODES, 1..3)
        )
            .prop_map(|(nodes, except)| Place::NodesExcept(nodes, except)),
    ];
    let status = prop_oneof![
        Just(Status::Active),
        Just(Status::Degraded),
        Just(Status::Absent),
        Just(Status::Unknown),
    ];
    let category = prop_oneof![
        Just(Category::Detect),
        Just(Category::Protect),
        Just(Category::Respond)
    ];
    let value = prop_oneof![
        Just(Value::Minimal),
        Just(Value::Partial),
        Just(Value::Significant)
    ];
    let techniques = proptest::collection::vec((0..10usize, category, value), 1..4);
    (place, status, techniques).prop_map(|(place, status, techniques)| Spec {
        place,
        status,
        techniques,
    })
}

fn detection(w: &World, s: &Spec) -> Detection {
    let pool = pool();
    let scope = match &s.place {
        Place::Own(a) => Scope::Account(w.ids[*a]),
        other => Scope::Organization {
            cloud_organization_id: w.cloud_org,
            applies_to: match other {
                Place::Accounts(set) => {
                    AppliesTo::Accounts(set.iter().map(|a| World::key(*a)).collect())
                }
                Place::Nodes(set) => {
                    AppliesTo::Nodes(set.iter().map(|n| World::node(*n)).collect())
                }
                Place::NodesExcept(nodes, except) => AppliesTo::NodesExcept {
                    nodes: nodes.iter().map(|n| World::node(*n)).collect(),
                    except: except.iter().map(|n| World::node(*n)).collect(),
                },
                _ => AppliesTo::AllAccounts,
            },
        },
    };
    let now = chrono::Utc::now();
    Detection {
        id: DetectionId::new(),
        organization_id: OrganizationId::new(),
        scope,
        source: Source::Custom,
        resource_key: String::new(),
        name: "generated".into(),
        description: None,
        techniques: s
            .techniques
            .iter()
            .map(|(t, c, v)| TechniqueScore::new(&pool[*t], *c, *v))
            .collect(),
        status: s.status,
        reason: None,
        advice: None,
        evidence: serde_json::json!({}),
        first_seen_at: now,
        last_seen_at: Some(now),
        last_scan_job_id: None,
        created_by: None,
        created_at: now,
        updated_at: now,
    }
}

/// Account `a`'s effective detections: its own and the organization's that reach it.
fn effective(
    w: &World,
    tree: &Hierarchy,
    detections: &[Detection],
    a: usize,
) -> Vec<AccountDetection> {
    let mut rows: Vec<AccountDetection> = detections
        .iter()
        .filter(|d| d.scope == Scope::Account(w.ids[a]))
        .map(|d| AccountDetection {
            detection: d.clone(),
            origin: Origin::Own,
        })
        .collect();
    let org: Vec<Detection> = detections
        .iter()
        .filter(|d| matches!(d.scope, Scope::Organization { .. }))
        .cloned()
        .collect();
    let parent = World::node(w.accounts[a]);
    rows.extend(inherit(
        &World::key(a),
        Some(&parent),
        w.cloud_org,
        tree,
        &org,
    ));
    rows
}

fn coverage(w: &World, tree: &Hierarchy, detections: &[Detection], a: usize) -> AccountCoverage {
    account_coverage(Catalog::embedded(), &effective(w, tree, detections, a))
}

fn covered(c: &AccountCoverage) -> BTreeSet<String> {
    c.covered().map(|t| t.technique.clone()).collect()
}

proptest! {
    #[test]
    fn adding_an_organization_detection_never_lowers_any_accounts_coverage(
        w in world(),
        specs in proptest::collection::vec(spec(), 0..8),
        extra in spec().prop_filter("organization scope", |s| !matches!(s.place, Place::Own(_))),
    ) {
        let tree = w.hierarchy();
        let before: Vec<Detection> = specs.iter().map(|s| detection(&w, s)).collect();
        let mut after = before.clone();
        after.push(detection(&w, &extra));
        for a in 0..ACCOUNTS {
            let (b, c) = (coverage(&w, &tree, &before, a), coverage(&w, &tree, &after, a));
            prop_assert!(covered(&b).is_subset(&covered(&c)));
            prop_assert!(c.overall.percent >= b.overall.percent);
        }
    }

    #[test]
    fn an_account_outside_a_nodes_subtree_never_inherits_its_detections(
        w in world(),
        nodes in proptest::collection::btree_set(0..NODES, 1..3),
    ) {
        let tree = w.hierarchy();
        let d = detection(&w, &Spec {
            place: Place::Nodes(nodes.clone()),
            status: Status::Active,
            techniques: vec![(0, Category::Protect, Value::Significant)],
        });
        for a in 0..ACCOUNTS {
            let inside = nodes.iter().any(|n| w.under(w.accounts[a], *n));
            let reached = !effective(&w, &tree, std::slice::from_ref(&d), a).is_empty();
            prop_assert_eq!(inside, reached, "account {} under node {}", a, w.accounts[a]);
        }
    }

    #[test]
    fn an_account_under_a_carved_out_subtree_never_inherits_and_the_rest_does(
        w in world(),
        nodes in proptest::collection::btree_set(0..NODES, 1..3),
        except in proptest::collection::btree_set(0..NODES, 1..3),
    ) {
        let tree = w.hierarchy();
        let d = detection(&w, &Spec {
            place: Place::NodesExcept(nodes.clone(), except.clone()),
            status: Status::Active,
            techniques: vec![(0, Category::Protect, Value::Significant)],
        });
        for a in 0..ACCOUNTS {
            let inside = nodes.iter().any(|n| w.under(w.accounts[a], *n));
            let carved = except.iter().any(|n| w.under(w.accounts[a], *n));
            let reached = !effective(&w, &tree, std::slice::from_ref(&d), a).is_empty();
            prop_assert_eq!(inside && !carved, reached, "account {} under node {}", a, w.accounts[a]);
        }
    }

    #[test]
    fn the_breakdown_identity_holds(w in world(), specs in proptest::collection::vec(spec(), 0..12)) {
        let tree = w.hierarchy();
        let detections: Vec<Detection> = specs.iter().map(|s| detection(&w, s)).collect();
        for a in 0..ACCOUNTS {
            let c = coverage(&w, &tree, &detections, a);
            let b = &c.breakdown;
            prop_assert_eq!(b.total_techniques(), c.overall.covered as usize);
            prop_assert!(b.overlap_techniques.is_subset(&b.account_techniques));
            prop_assert!(b.overlap_techniques.is_subset(&b.org_techniques));
            let union: BTreeSet<_> = b.account_techniques.union(&b.org_techniques).cloned().collect();
            prop_assert_eq!(union, covered(&c));
        }
        let all: Vec<_> = (0..ACCOUNTS)
            .map(|a| (w.ids[a].as_uuid(), World::key(a), coverage(&w, &tree, &detections, a)))
            .collect();
        let all: Vec<_> = all.iter().map(|(id, k, c)| (*id, k.clone(), AccountSummary::from(c))).collect();
        let view = organization_coverage(Catalog::embedded(), &all);
        prop_assert!(view.min <= view.average && view.average <= view.max);
        // Every technique is covered everywhere, somewhere, known nowhere, or covered
        // nowhere it is known (then it is unknown somewhere).
        let unknown_only = view
            .unknown
            .iter()
            .filter(|u| !view.in_some.contains(&u.technique) && !view.in_every.contains(&u.technique))
            .count();
        prop_assert_eq!(
            view.in_every.len() + view.in_some.len() + view.in_none.len() + unknown_only,
            Catalog::embedded().iaas().count()
        );
    }

    #[test]
    fn unknown_is_never_a_gap_nor_covered_nowhere(
        w in world(),
        specs in proptest::collection::vec(spec(), 0..12),
    ) {
        let tree = w.hierarchy();
        let detections: Vec<Detection> = specs.iter().map(|s| detection(&w, s)).collect();
        let full: Vec<AccountCoverage> = (0..ACCOUNTS)
            .map(|a| coverage(&w, &tree, &detections, a))
            .collect();
        let summaries: Vec<_> = full
            .iter()
            .enumerate()
            .map(|(a, c)| (w.ids[a].as_uuid(), World::key(a), AccountSummary::from(c)))
            .collect();
        let view = organization_coverage(Catalog::embedded(), &summaries);
        for t in Catalog::embedded().iaas() {
            let status = |c: &AccountCoverage| {
                c.techniques
                    .iter()
                    .find(|x| x.technique == t.id)
                    .map_or(TechniqueStatus::Uncovered, |x| x.status)
            };
            let count = |want: &[TechniqueStatus]| {
                full.iter().filter(|c| want.contains(&status(c))).count() as u32
            };
            let unknown = count(&[TechniqueStatus::Unknown]);
            let lacking = count(&[TechniqueStatus::Uncovered, TechniqueStatus::Degraded]);
            let gap = view.gaps.iter().find(|g| g.technique == t.id).map_or(0, |g| g.accounts_lacking);
            prop_assert_eq!(gap, lacking, "{}: a gap counts only accounts known to lack it", &t.id);
            let listed = view.unknown.iter().find(|u| u.technique == t.id).map_or(0, |u| u.accounts);
            prop_assert_eq!(listed, unknown, "{}: unknown in that many accounts", &t.id);
            if unknown > 0 {
                prop_assert!(!view.in_none.contains(&t.id), "{}: unknown is not covered nowhere", &t.id);
            }
        }
        let per_account: u32 = view.accounts.iter().map(|r| r.unknown_techniques).sum();
        prop_assert_eq!(per_account, view.unknown.iter().map(|u| u.accounts).sum::<u32>());
    }

    #[test]
    fn the_compact_path_agrees_with_the_full_one(
        w in world(),
        specs in proptest::collection::vec(spec(), 0..16),
    ) {
        let tree = w.hierarchy();
        let catalog = Catalog::embedded();
        let detections: Vec<Detection> = specs.iter().map(|s| detection(&w, s)).collect();
        let own: Vec<Marks> = (0..ACCOUNTS)
            .map(|a| Marks::of(catalog, detections.iter().filter(|d| d.scope == Scope::Account(w.ids[a]))))
            .collect();
        let keys: Vec<String> = (0..ACCOUNTS).map(World::key).collect();
        let parents: Vec<String> = w.accounts.iter().map(|n| World::node(*n)).collect();
        let members: Vec<Member<'_>> = (0..ACCOUNTS)
            .map(|a| Member { key: &keys[a], parent: Some(&parents[a]), own: &own[a] })
            .collect();
        let organization: Vec<Detection> = detections
            .iter()
            .filter(|d| matches!(d.scope, Scope::Organization { .. }))
            .cloned()
            .collect();
        let compact = estate_summaries(catalog, &tree, &members, &organization);
        let full: Vec<AccountSummary> = (0..ACCOUNTS)
            .map(|a| AccountSummary::from(&coverage(&w, &tree, &detections, a)))
            .collect();
        prop_assert_eq!(&compact, &full);
        for (a, summary) in compact.iter().enumerate() {
            prop_assert_eq!(
                summary.breakdown(catalog),
                coverage(&w, &tree, &detections, a).breakdown
            );
        }
        let rows = |s: Vec<AccountSummary>| -> Vec<_> {
            s.into_iter().enumerate().map(|(a, s)| (w.ids[a].as_uuid(), World::key(a), s)).collect()
        };
        prop_assert_eq!(
            organization_coverage(catalog, &rows(compact)),
            organization_coverage(catalog, &rows(full))
        );
    }

    #[test]
    fn removing_the_last_detection_of_a_technique_uncovers_it(
        w in world(),
        specs in proptest::collection::vec(spec(), 1..10),
        a in 0..ACCOUNTS,
    ) {
        let tree = w.hierarchy();
        let detections: Vec<Detection> = specs.iter().map(|s| detection(&w, s)).collect();
        let c = coverage(&w, &tree, &detections, a);
        for technique in covered(&c) {
            let rest: Vec<Detection> = detections
                .iter()
                .filter(|d| !d.techniques.iter().any(|t| t.technique == technique))
                .cloned()
                .collect();
            let after = coverage(&w, &tree, &rest, a);
            let entry = after.techniques.iter().find(|t| t.technique == technique).unwrap();
            prop_assert_eq!(entry.status, TechniqueStatus::Uncovered);
        }
    }

    #[test]
    fn unknown_never_turns_into_covered_or_uncovered(
        w in world(),
        specs in proptest::collection::vec(spec(), 0..8),
        unknown in proptest::collection::vec(spec(), 1..4),
        a in 0..ACCOUNTS,
    ) {
        let tree = w.hierarchy();
        let base: Vec<Detection> = specs.iter().map(|s| detection(&w, s)).collect();
        let mut with_unknown = base.clone();
        with_unknown.extend(unknown.iter().map(|s| detection(&w, &Spec { status: Status::Unknown, ..s.clone() })));
        let (b, c) = (coverage(&w, &tree, &base, a), coverage(&w, &tree, &with_unknown, a));
        prop_assert_eq!(covered(&b), covered(&c), "unknown detections cover nothing");
        for (before, after) in b.techniques.iter().zip(&c.techniques) {
            if before.status == TechniqueStatus::Unknown {
                prop_assert_eq!(after.status, TechniqueStatus::Unknown);
            }
            if after.contributors.iter().all(|x| x.status == Status::Unknown) && !after.contributors.is_empty() {
                prop_assert_eq!(after.status, TechniqueStatus::Unknown);
            }
        }
    }
}

#[test]
fn an_account_with_own_and_inherited_detections_splits_its_coverage() {
    let w = World {
        parents: vec![0, 0, 1, 0, 0, 0],
        accounts: vec![2, 3, 0, 0, 0],
        cloud_org: CloudOrganizationId::new(),
        ids: (0..ACCOUNTS).map(|_| CloudAccountId::new()).collect(),
    };
    let tree = w.hierarchy();
    let pool = pool();
    let d = |place: Place, techniques: &[usize]| {
        detection(
            &w,
            &Spec {
                place,
                status: Status::Active,
                techniques: techniques
                    .iter()
                    .map(|t| (*t, Category::Detect, Value::Partial))
                    .collect(),
            },
        )
    };
    let detections = vec![
        d(Place::Own(0), &[0, 1]),
        d(Place::All, &[1, 2]),
        d(Place::Nodes(BTreeSet::from([1])), &[3]),
    ];
    // Account 0 sits under ou-2 < ou-1: own 0,1; inherited 1,2 (all) and 3 (ou-1).
    let c = coverage(&w, &tree, &detections, 0);
    let b = &c.breakdown;
    assert_eq!(
        b.account_techniques,
        BTreeSet::from([pool[0].clone(), pool[1].clone()])
    );
    assert_eq!(
        b.org_techniques,
        BTreeSet::from([pool[1].clone(), pool[2].clone(), pool[3].clone()])
    );
    assert_eq!(b.overlap_techniques, BTreeSet::from([pool[1].clone()]));
    assert_eq!(c.overall.covered, 4);
    let third = c
        .techniques
        .iter()
        .find(|t| t.technique == pool[3])
        .unwrap();
    assert_eq!(third.contributors[0].node.as_deref(), Some("ou-1"));
    // Account 1 under ou-3, a sibling of ou-1: it does not get ou-1's detection.
    let sibling = coverage(&w, &tree, &detections, 1);
    assert_eq!(sibling.overall.covered, 2);
}
