//! The demo cloud: SES metrics that look like real traffic (a daily curve peaking in the
//! afternoon, quieter weekends, each account its own volume and bounce profile, bucket-level
//! noise) and are the same on every run, so a newcomer sees a full dashboard without AWS
//! credentials and a benchmark has a source that costs nothing. Accounts named as failing
//! answer like a role that does not trust Canopy.
//!
//! It also holds a demo AWS Organization and GCP Organization ([`estate`]) behind the
//! discovery, verification and detection-scanner ports ([`discovery`], [`scanners`]), so the
//! real discovery, reconciliation and coverage run on an estate with OU and folder trees and
//! organization- and account-level controls.
//!
//! API boundary: [`DemoSource`], [`estate`]'s ids, [`discovery`]'s and [`scanners`]' port
//! adapters. Used only when asked for (`canopy serve --demo`).

mod controls;
pub mod discovery;
pub mod estate;
pub mod scanners;

use std::collections::HashSet;
use std::f64::consts::PI;
use std::sync::Arc;

use async_trait::async_trait;
use canopy_cloud_org::health::{AccessFailure, FailureKind};
use canopy_kernel::Clock;
use canopy_metrics::ports::{MetricSource, MetricTarget};
use canopy_metrics::{Datapoints, SesMetric, Window};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};

/// Deterministic synthetic metrics behind the [`MetricSource`] port.
#[derive(Debug, Clone)]
pub struct DemoSource {
    failing: HashSet<String>,
    clock: Arc<dyn Clock>,
}

/// FNV-1a: a stable, dependency-free hash so each account and bucket gets its own noise.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// One account's traffic profile.
#[derive(Debug, Clone, Copy)]
struct Profile {
    sends_per_hour_at_peak: f64,
    bounce_rate: f64,
    complaint_rate: f64,
    reject_rate: f64,
}

impl Profile {
    fn of(account: &str) -> Self {
        let h = |salt: &str| unit(hash(&[account.as_bytes(), salt.as_bytes()]));
        Self {
            sends_per_hour_at_peak: 600.0 + 24_000.0 * h("volume").powi(2),
            bounce_rate: 0.004 + 0.03 * h("bounce"),
            complaint_rate: 0.0001 + 0.0009 * h("complaint"),
            reject_rate: 0.0002 * h("reject"),
        }
    }
}

/// Share of the peak hourly volume at `t`: low at night, peak around 15:00 UTC, quieter at
/// weekends.
fn shape(t: DateTime<Utc>) -> f64 {
    let hour = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
    let day = 0.15 + 0.85 * ((hour - 9.0) / 24.0 * 2.0 * PI).sin().max(0.0);
    let week = match t.weekday() {
        Weekday::Sat | Weekday::Sun => 0.55,
        _ => 1.0,
    };
    day * week
}

impl DemoSource {
    /// A source where the accounts in `failing` (12-digit ids) refuse access.
    pub fn new(failing: impl IntoIterator<Item = String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            failing: failing.into_iter().collect(),
            clock,
        }
    }

    /// The datapoints of `account` over `window`, as of `now`: buckets after `now` are
    /// empty, the bucket holding `now` is partial.
    pub fn datapoints(account: &str, window: &Window, now: DateTime<Utc>) -> Datapoints {
        let p = Profile::of(account);
        let mut data = Datapoints::default();
        for start in window.timestamps() {
            if start >= now {
                break;
            }
            let end = (start + Duration::seconds(window.period)).min(now);
            let hours = (end - start).num_seconds() as f64 / 3_600.0;
            let stamp = start.timestamp().to_le_bytes();
            let noise = |salt: &str| unit(hash(&[account.as_bytes(), &stamp, salt.as_bytes()]));
            let sends =
                (p.sends_per_hour_at_peak * shape(start) * hours * (0.85 + 0.3 * noise("send")))
                    .round();
            if sends <= 0.0 {
                continue;
            }
            let bounces = (sends * p.bounce_rate * (0.6 + 0.8 * noise("bounce"))).round();
            let rejects = (sends * p.reject_rate * 2.0 * noise("reject")).round();
            let complaints = (sends * p.complaint_rate * (0.5 + noise("complaint"))).round();
            let delivered = (sends - bounces - rejects).max(0.0);
            for (metric, value) in [
                (SesMetric::Send, sends),
                (SesMetric::Delivery, delivered),
                (SesMetric::Bounce, bounces),
                (SesMetric::Complaint, complaints),
                (SesMetric::Reject, rejects),
            ] {
                if value > 0.0 {
                    data.points.push((metric, start, value));
                }
            }
        }
        data
    }
}

#[async_trait]
impl MetricSource for DemoSource {
    async fn fetch(
        &self,
        target: &MetricTarget,
        window: &Window,
    ) -> Result<Datapoints, AccessFailure> {
        if self.failing.contains(target.aws_account_id.as_str()) {
            return Err(AccessFailure {
                kind: FailureKind::AccessDenied,
                message: format!(
                    "AccessDenied: (demo) the role {} does not trust Canopy with this External ID",
                    target.role_arn
                ),
            });
        }
        Ok(Self::datapoints(
            target.aws_account_id.as_str(),
            window,
            self.clock.now(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use canopy_cloud_org::identifiers::{AwsAccountId, AwsRegion, RoleArn};
    use canopy_metrics::{AccountSeries, RangePreset, RangeSpec};

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T16:02:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn day() -> Window {
        Window::resolve(RangeSpec::Preset(RangePreset::Day), now()).unwrap_or(Window {
            start: now(),
            period: 300,
            buckets: 1,
        })
    }

    #[test]
    fn the_same_account_and_window_always_give_the_same_data() {
        assert_eq!(
            DemoSource::datapoints("123456789012", &day(), now()),
            DemoSource::datapoints("123456789012", &day(), now())
        );
        assert_ne!(
            DemoSource::datapoints("123456789012", &day(), now()),
            DemoSource::datapoints("210987654321", &day(), now())
        );
    }

    #[test]
    fn traffic_follows_a_daily_curve_and_stays_plausible() {
        let w = day();
        let s =
            AccountSeries::from_datapoints(w, &DemoSource::datapoints("123456789012", &w, now()));
        let sends = &s.values[SesMetric::Send.index()];
        let at = |hour: u32| {
            w.timestamps()
                .iter()
                .position(|t| t.hour() == hour && t.minute() == 0)
                .map(|i| sends[i])
                .unwrap_or_default()
        };
        assert!(
            at(15) > 2.0 * at(3),
            "afternoon {} vs night {}",
            at(15),
            at(3)
        );
        let total: f64 = sends.iter().sum();
        let bounced: f64 = s.values[SesMetric::Bounce.index()].iter().sum();
        let delivered: f64 = s.values[SesMetric::Delivery.index()].iter().sum();
        assert!(total > 0.0 && bounced / total < 0.05 && delivered <= total);
        assert!(
            sends.last().is_some_and(|v| *v < sends[sends.len() - 2]),
            "the bucket holding now is partial"
        );
    }

    #[tokio::test]
    async fn failing_accounts_refuse_like_an_untrusting_role() {
        let src = DemoSource::new(
            ["999999999999".to_string()],
            Arc::new(canopy_kernel::ManualClock::new(now())),
        );
        let target = |id: &str| MetricTarget {
            account: canopy_cloud_org::CloudAccountId::new(),
            aws_account_id: AwsAccountId::parse(id, "accountId").unwrap(),
            role_arn: RoleArn::parse(&format!("arn:aws:iam::{id}:role/CanopyAccess"), "roleArn")
                .unwrap(),
            region: AwsRegion::parse("us-east-1", "region").unwrap(),
            external_id: "x".into(),
            session_name: "s".into(),
        };
        let err = src
            .fetch(&target("999999999999"), &day())
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::AccessDenied);
        assert!(src.fetch(&target("123456789012"), &day()).await.is_ok());
    }
}
