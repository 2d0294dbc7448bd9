//! Coverage computation benchmark: a cloud organization of 1,000 accounts on a 4-level OU tree
//! (4 x 4 x 4 x 4 under the root), 100 own detections per account and 50 organization
//! detections (all accounts, OU subtrees at every level, listed accounts), each mapping 1-3
//! IaaS techniques. Times, once the data is read, the full path (every account's inheritance,
//! its coverage with contributors, the organization view over them) and the compact path the
//! organization view takes (every account's summary from its folded own marks and the
//! organization detections that reach it, then the view), and checks they agree. Medians and
//! spreads over `--runs`; results in docs/benchmarks.md; `just bench-coverage`.

#![allow(clippy::expect_used)] // a generated tree that fails to build is a bug in the bench

use std::time::{Duration, Instant};

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, Hierarchy, NodeKind};
use canopy_coverage::account::account_coverage;
use canopy_coverage::organization::organization_coverage;
use canopy_coverage::summary::{AccountSummary, Marks, Member as SummaryMember, estate_summaries};
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::Detection;
use canopy_detection::service::{AccountDetection, Origin, inherit};
use canopy_e2e::synthetic::{Dice, EstateSize, account_detections, organization_detections};
use canopy_kernel::id::OrganizationId;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Canopy coverage computation benchmark")]
struct Args {
    #[command(flatten)]
    estate: EstateSize,
    /// Timed runs (the median and the spread are reported).
    #[arg(long, default_value_t = 31)]
    runs: usize,
    /// The target for the whole computation, milliseconds.
    #[arg(long, default_value_t = 20.0)]
    target_ms: f64,
}

/// The tree: the root, then four levels of four OUs under each; node ids by level.
fn tree() -> (Hierarchy, Vec<Vec<String>>) {
    let mut nodes = vec![DiscoveredNode {
        id: "r-root".into(),
        parent_id: None,
        name: "Root".into(),
        kind: NodeKind::Root,
    }];
    let mut levels = vec![vec!["r-root".to_string()]];
    for depth in 1..=4 {
        let mut level = Vec::new();
        for parent in &levels[depth - 1] {
            for i in 0..4 {
                let id = format!("{parent}-{i}").replace("r-root", "ou");
                nodes.push(DiscoveredNode {
                    id: id.clone(),
                    parent_id: Some(parent.clone()),
                    name: id.clone(),
                    kind: NodeKind::OrganizationalUnit,
                });
                level.push(id);
            }
        }
        levels.push(level);
    }
    (
        Hierarchy::build(nodes, 10).expect("the bench tree is valid"),
        levels,
    )
}

/// One account: its key, where it sits, and its own detections.
struct Member {
    id: CloudAccountId,
    key: String,
    parent: String,
    own: Vec<AccountDetection>,
}

fn estate(args: &Args) -> (Hierarchy, CloudOrganizationId, Vec<Member>, Vec<Detection>) {
    let (hierarchy, levels) = tree();
    let pool: Vec<String> = Catalog::embedded().iaas().map(|t| t.id.clone()).collect();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let (org, cloud_org) = (OrganizationId::new(), CloudOrganizationId::new());
    let leaves = &levels[4];
    let members: Vec<Member> = (0..args.estate.accounts)
        .map(|i| {
            let id = CloudAccountId::new();
            let own = account_detections(&mut dice, org, id, &pool, args.estate.own)
                .into_iter()
                .map(|detection| AccountDetection {
                    detection,
                    origin: Origin::Own,
                })
                .collect();
            Member {
                id,
                key: format!("{:012}", 300_000_000_000u64 + i as u64),
                parent: leaves[i % leaves.len()].clone(),
                own,
            }
        })
        .collect();
    let keys: Vec<String> = members.iter().map(|m| m.key.clone()).collect();
    let organization = organization_detections(
        &mut dice,
        org,
        cloud_org,
        &levels,
        &keys,
        &pool,
        args.estate.org,
    );
    (hierarchy, cloud_org, members, organization)
}

/// Effective detections of every member: its own (`own`, as a read from the store hands them
/// over) plus what reaches it.
fn inherited(
    hierarchy: &Hierarchy,
    cloud_org: CloudOrganizationId,
    members: &[Member],
    own: Vec<Vec<AccountDetection>>,
    organization: &[Detection],
) -> Vec<Vec<AccountDetection>> {
    members
        .iter()
        .zip(own)
        .map(|(m, mut rows)| {
            rows.extend(inherit(
                &m.key,
                Some(&m.parent),
                cloud_org,
                hierarchy,
                organization,
            ));
            rows
        })
        .collect()
}

fn own(members: &[Member]) -> Vec<Vec<AccountDetection>> {
    members.iter().map(|m| m.own.clone()).collect()
}

/// Every account's full coverage (with contributors, as one account's page shows it) and the
/// organization view over them; the view's average, to be used.
fn compute(members: &[Member], effective: &[Vec<AccountDetection>]) -> f64 {
    let catalog = Catalog::embedded();
    let per_account: Vec<(uuid::Uuid, String, AccountSummary)> = members
        .iter()
        .zip(effective)
        .map(|(m, rows)| {
            (
                m.id.as_uuid(),
                m.key.clone(),
                AccountSummary::from(&account_coverage(catalog, rows)),
            )
        })
        .collect();
    organization_coverage(catalog, &per_account).average
}

/// The path the organization view takes: every account's summary from its stored own marks
/// and the organization detections that reach it, then the view; the view's average.
fn compact(
    hierarchy: &Hierarchy,
    members: &[Member],
    marks: &[Marks],
    organization: &[Detection],
) -> f64 {
    let catalog = Catalog::embedded();
    let folded: Vec<SummaryMember<'_>> = members
        .iter()
        .zip(marks)
        .map(|(m, own)| SummaryMember {
            key: &m.key,
            parent: Some(&m.parent),
            own,
        })
        .collect();
    let summaries = estate_summaries(catalog, hierarchy, &folded, organization);
    let rows: Vec<(uuid::Uuid, String, AccountSummary)> = members
        .iter()
        .zip(summaries)
        .map(|(m, s)| (m.id.as_uuid(), m.key.clone(), s))
        .collect();
    organization_coverage(catalog, &rows).average
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn main() {
    let args = Args::parse();
    let (hierarchy, cloud_org, members, organization) = estate(&args);
    let reached: usize = inherited(
        &hierarchy,
        cloud_org,
        &members,
        own(&members),
        &organization,
    )
    .iter()
    .map(|rows| rows.len() - args.estate.own)
    .sum();
    println!(
        "estate: {} accounts on a 4-level tree ({} nodes), {} own detections each, {} organization detections ({:.1} reach an account on average), {} IaaS techniques",
        members.len(),
        hierarchy.nodes().count(),
        args.estate.own,
        organization.len(),
        reached as f64 / members.len() as f64,
        Catalog::embedded().iaas().count(),
    );
    let (mut inherit_times, mut compute_times, mut totals) = (vec![], vec![], vec![]);
    let mut average = 0.0;
    for _ in 0..args.runs {
        // Untimed: the own detections as the store's read returns them, owned.
        let read = own(&members);
        let start = Instant::now();
        let effective = inherited(&hierarchy, cloud_org, &members, read, &organization);
        let middle = Instant::now();
        average = compute(&members, &effective);
        let end = Instant::now();
        inherit_times.push(middle - start);
        compute_times.push(end - middle);
        totals.push(end - start);
    }
    // The compact path: own marks as the store keeps them (folded at write time, timed apart).
    let fold_start = Instant::now();
    let marks: Vec<Marks> = members
        .iter()
        .map(|m| Marks::of(Catalog::embedded(), m.own.iter().map(|d| &d.detection)))
        .collect();
    let fold_all = fold_start.elapsed();
    let mut compact_times = vec![];
    let mut compact_average = 0.0;
    for _ in 0..args.runs {
        let start = Instant::now();
        compact_average = compact(&hierarchy, &members, &marks, &organization);
        compact_times.push(start.elapsed());
    }
    assert!(
        (compact_average - average).abs() < f64::EPSILON,
        "the compact path disagrees with the full one: {compact_average} vs {average}"
    );
    let spread = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        (ms(v[0]), ms(v[v.len() - 1]))
    };
    let full = median(totals.clone());
    let (full_low, full_high) = spread(&totals);
    let total = median(compact_times.clone());
    let (low, high) = spread(&compact_times);
    println!(
        "full path (inheritance, every account's coverage with contributors, the view): median {:.2} ms (inheritance {:.2}, coverage {:.2}; fastest {full_low:.2}, slowest {full_high:.2})",
        ms(full),
        ms(median(inherit_times)),
        ms(median(compute_times)),
    );
    println!(
        "folding one account's {} own detections into marks (at write time): {:.1} us on average",
        args.estate.own,
        ms(fold_all) * 1_000.0 / members.len() as f64,
    );
    println!(
        "compact path (every account's summary from its marks + the view): median {:.2} ms over {} runs (fastest {low:.2}, slowest {high:.2}) = {:.2} x the {} ms target ({}); {:.1} x faster than the full path; average coverage {average:.1} %",
        ms(total),
        args.runs,
        ms(total) / args.target_ms,
        args.target_ms,
        if ms(total) < args.target_ms {
            "met"
        } else {
            "missed"
        },
        ms(full) / ms(total),
    );
}
