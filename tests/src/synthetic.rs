//! A synthetic estate for the coverage benchmarks: deterministic detections mapping 1-3 IaaS
//! techniques with a healthy estate's mix of statuses, and organization detections reaching
//! all accounts, OU subtrees at every depth, or listed accounts.

use canopy_cloud_org::organization::CloudOrganizationId;
use canopy_detection::detection::{
    AppliesTo, Detection, DetectionId, Scope, Source, Status, TechniqueScore,
};
use canopy_detection::mapping::{Category, Value};
use canopy_kernel::id::OrganizationId;

/// The estate the coverage benchmarks build, on the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct EstateSize {
    /// Accounts in the cloud organization (the management account included).
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
    /// Own detections per account.
    #[arg(long, default_value_t = 100)]
    pub own: usize,
    /// Organization detections.
    #[arg(long, default_value_t = 50)]
    pub org: usize,
}

/// A deterministic generator (xorshift64*): the same estate on every run and machine.
pub struct Dice(pub u64);

impl Dice {
    /// The next number.
    pub fn roll(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.roll() % n as u64) as usize
    }
}

/// A custom detection of `org` named by `key` (unique per target).
pub fn detection(
    org: OrganizationId,
    key: &str,
    scope: Scope,
    techniques: Vec<TechniqueScore>,
    status: Status,
) -> Detection {
    let now = chrono::Utc::now();
    Detection {
        id: DetectionId::new(),
        organization_id: org,
        scope,
        source: Source::Custom,
        resource_key: key.to_string(),
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

/// 1-3 distinct techniques of `pool` (a detection maps each once, as the store requires),
/// each with a random category and value.
pub fn scores(dice: &mut Dice, pool: &[String]) -> Vec<TechniqueScore> {
    const CATEGORIES: [Category; 3] = [Category::Detect, Category::Protect, Category::Respond];
    const VALUES: [Value; 3] = [Value::Minimal, Value::Partial, Value::Significant];
    let mut picked: Vec<TechniqueScore> = Vec::new();
    for _ in 0..1 + dice.below(3) {
        let score = TechniqueScore::new(
            &pool[dice.below(pool.len())],
            CATEGORIES[dice.below(3)],
            VALUES[dice.below(3)],
        );
        if !picked.iter().any(|p| p.technique == score.technique) {
            picked.push(score);
        }
    }
    picked
}

/// Mostly active; a few degraded, unknown and absent.
pub fn status(dice: &mut Dice) -> Status {
    // Mostly active, as a healthy estate is; a few of each other kind.
    match dice.below(20) {
        0 => Status::Degraded,
        1 => Status::Unknown,
        2 => Status::Absent,
        _ => Status::Active,
    }
}

/// `n` organization detections of `cloud_org`: every fifth reaches all accounts, three in five
/// an OU at a random depth of `levels` (1 to 4), one in five ten of `keys`.
pub fn organization_detections(
    dice: &mut Dice,
    org: OrganizationId,
    cloud_org: CloudOrganizationId,
    levels: &[Vec<String>],
    keys: &[String],
    pool: &[String],
    n: usize,
) -> Vec<Detection> {
    (0..n)
        .map(|i| {
            let applies_to = match i % 5 {
                0 => AppliesTo::AllAccounts,
                // An OU at every depth, 1 to 4: an SCP on a whole branch or on one team.
                1..=3 => {
                    let level = &levels[1 + dice.below(levels.len() - 1)];
                    AppliesTo::Nodes([level[dice.below(level.len())].clone()].into())
                }
                _ => AppliesTo::Accounts(
                    (0..10)
                        .map(|_| keys[dice.below(keys.len())].clone())
                        .collect(),
                ),
            };
            detection(
                org,
                &format!("organization-{i}"),
                Scope::Organization {
                    cloud_organization_id: cloud_org,
                    applies_to,
                },
                scores(dice, pool),
                status(dice),
            )
        })
        .collect()
}

/// `n` own detections of account `account`.
pub fn account_detections(
    dice: &mut Dice,
    org: OrganizationId,
    account: canopy_cloud_org::CloudAccountId,
    pool: &[String],
    n: usize,
) -> Vec<Detection> {
    (0..n)
        .map(|j| {
            detection(
                org,
                &format!("own-{j}"),
                Scope::Account(account),
                scores(dice, pool),
                status(dice),
            )
        })
        .collect()
}
