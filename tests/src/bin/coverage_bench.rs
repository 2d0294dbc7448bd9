//! Coverage computation benchmark: a cloud organization of 1,000 accounts on a 4-level OU tree
//! (4 x 4 x 4 x 4 under the root), 100 own detections per account and 50 organization
//! detections (all accounts, OU subtrees at every level, listed accounts), each mapping 1-3
//! IaaS techniques. Times what `GET .../cloud-organizations/{id}/coverage` computes once the
//! detections are read: every account's inheritance (which organization detections reach it),
//! every account's coverage, and the organization view. Medians and spreads over `--runs`;
//! results in docs/benchmarks.md; `just bench-coverage`.

#![allow(clippy::expect_used)] // a generated tree that fails to build is a bug in the bench

use std::time::{Duration, Instant};

use canopy_cloud_org::CloudAccountId;
use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_cloud_org::organization::hierarchy::{DiscoveredNode, Hierarchy, NodeKind};
use canopy_coverage::account::{AccountCoverage, account_coverage};
use canopy_coverage::organization::organization_coverage;
use canopy_detection::catalog::Catalog;
use canopy_detection::detection::{
    AppliesTo, Detection, DetectionId, Scope, Source, Status, TechniqueScore,
};
use canopy_detection::mapping::{Category, Value};
use canopy_detection::service::{AccountDetection, Origin, inherit};
use canopy_kernel::id::OrganizationId;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Canopy coverage computation benchmark")]
struct Args {
    /// Accounts in the cloud organization.
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    /// Own detections per account.
    #[arg(long, default_value_t = 100)]
    own: usize,
    /// Organization detections.
    #[arg(long, default_value_t = 50)]
    org: usize,
    /// Timed runs (the median and the spread are reported).
    #[arg(long, default_value_t = 31)]
    runs: usize,
    /// The target for the whole computation, milliseconds.
    #[arg(long, default_value_t = 20.0)]
    target_ms: f64,
}

/// A deterministic generator (xorshift64*): the same estate on every run and machine.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
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

fn detection(scope: Scope, techniques: Vec<TechniqueScore>, status: Status) -> Detection {
    let now = chrono::Utc::now();
    Detection {
        id: DetectionId::new(),
        organization_id: OrganizationId::new(),
        scope,
        source: Source::Custom,
        resource_key: String::new(),
        name: "bench".into(),
        description: None,
        techniques,
        status,
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

fn scores(dice: &mut Dice, pool: &[String]) -> Vec<TechniqueScore> {
    const CATEGORIES: [Category; 3] = [Category::Detect, Category::Protect, Category::Respond];
    const VALUES: [Value; 3] = [Value::Minimal, Value::Partial, Value::Significant];
    (0..1 + dice.below(3))
        .map(|_| {
            TechniqueScore::new(
                &pool[dice.below(pool.len())],
                CATEGORIES[dice.below(3)],
                VALUES[dice.below(3)],
            )
        })
        .collect()
}

fn status(dice: &mut Dice) -> Status {
    // Mostly active, as a healthy estate is; a few of each other kind.
    match dice.below(20) {
        0 => Status::Degraded,
        1 => Status::Unknown,
        2 => Status::Absent,
        _ => Status::Active,
    }
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
    let cloud_org = CloudOrganizationId::new();
    let leaves = &levels[4];
    let members: Vec<Member> = (0..args.accounts)
        .map(|i| {
            let id = CloudAccountId::new();
            let own = (0..args.own)
                .map(|_| AccountDetection {
                    detection: detection(
                        Scope::Account(id),
                        scores(&mut dice, &pool),
                        status(&mut dice),
                    ),
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
    let organization: Vec<Detection> = (0..args.org)
        .map(|i| {
            let applies_to = match i % 5 {
                0 => AppliesTo::AllAccounts,
                // An OU at every depth, 1 to 4: an SCP on a whole branch or on one team.
                1..=3 => {
                    let level = &levels[1 + dice.below(4)];
                    AppliesTo::Nodes([level[dice.below(level.len())].clone()].into())
                }
                _ => AppliesTo::Accounts(
                    (0..10)
                        .map(|_| members[dice.below(members.len())].key.clone())
                        .collect(),
                ),
            };
            detection(
                Scope::Organization {
                    cloud_organization_id: cloud_org,
                    applies_to,
                },
                scores(&mut dice, &pool),
                status(&mut dice),
            )
        })
        .collect();
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

/// Every account's coverage and the organization view; the view's average, to be used.
fn compute(members: &[Member], effective: &[Vec<AccountDetection>]) -> f64 {
    let catalog = Catalog::embedded();
    let per_account: Vec<(uuid::Uuid, String, AccountCoverage)> = members
        .iter()
        .zip(effective)
        .map(|(m, rows)| {
            (
                m.id.as_uuid(),
                m.key.clone(),
                account_coverage(catalog, rows),
            )
        })
        .collect();
    organization_coverage(&per_account).average
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
    .map(|rows| rows.len() - args.own)
    .sum();
    println!(
        "estate: {} accounts on a 4-level tree ({} nodes), {} own detections each, {} organization detections ({:.1} reach an account on average), {} IaaS techniques",
        members.len(),
        hierarchy.nodes().count(),
        args.own,
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
    let spread = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        (ms(v[0]), ms(v[v.len() - 1]))
    };
    let total = median(totals.clone());
    let (low, high) = spread(&totals);
    println!(
        "inheritance (which organization detections reach each account): median {:.2} ms",
        ms(median(inherit_times)),
    );
    println!(
        "coverage of every account + the organization view: median {:.2} ms",
        ms(median(compute_times)),
    );
    println!(
        "all of it: median {:.2} ms over {} runs (fastest {low:.2}, slowest {high:.2}) = {:.2} x the {} ms target ({}); average coverage {average:.1} %",
        ms(total),
        args.runs,
        ms(total) / args.target_ms,
        args.target_ms,
        if ms(total) < args.target_ms {
            "met"
        } else {
            "missed"
        },
    );
}
