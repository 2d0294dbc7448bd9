//! Aggregation across accounts, done once on the backend (spec "Backend aggregation with
//! per-account breakdown"): totals, each account's share, bounce / complaint / delivery
//! rates, change against the previous period, and zero-filled series combined and per account.

use std::sync::Arc;

use canopy_cloud_org::CloudAccountId;

use crate::series::AccountSeries;
use crate::window::{SesMetric, Window};

/// Sums of every metric.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals(pub [f64; 5]);

impl Totals {
    /// The sum of `metric`.
    pub fn get(&self, metric: SesMetric) -> f64 {
        self.0[metric.index()]
    }

    fn add(&mut self, other: &Totals) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Rates against sends; `None` when nothing was sent (no rate, not a division by zero).
    pub fn rates(&self) -> Rates {
        let sent = self.get(SesMetric::Send);
        let of = |m: SesMetric| (sent > 0.0).then(|| round2(self.get(m) / sent * 100.0));
        Rates {
            delivery: of(SesMetric::Delivery),
            bounce: of(SesMetric::Bounce),
            complaint: of(SesMetric::Complaint),
            reject: of(SesMetric::Reject),
        }
    }
}

/// Percentages of sends, rounded to hundredths.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    /// Delivered / sent.
    pub delivery: Option<f64>,
    /// Bounced / sent.
    pub bounce: Option<f64>,
    /// Complained / sent.
    pub complaint: Option<f64>,
    /// Rejected / sent.
    pub reject: Option<f64>,
}

/// Change against the previous period of the same length.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Change {
    /// Percent change of each total; `None` when the previous period had none.
    pub totals: [Option<f64>; 5],
    /// Percentage-point change of each rate ("Bounce Rate: 2.1% (down 0.3%)").
    pub rates: Rates,
}

/// One account's part.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountReport {
    /// The account.
    pub account: CloudAccountId,
    /// Its totals over the window.
    pub totals: Totals,
    /// Its share of each organization total, in percent; `None` when the total is zero.
    pub shares: [Option<f64>; 5],
    /// Its rates.
    pub rates: Rates,
    /// Its change against the previous period, when that is compared.
    pub change: Option<Change>,
    /// Its fetched series (shared with the cache, not copied).
    source: Arc<AccountSeries>,
    /// Where the window starts in `source` (after the previous period, when compared).
    offset: usize,
    /// Buckets in the window.
    buckets: usize,
}

impl AccountReport {
    /// Its values of `metric` per bucket of the window.
    pub fn series(&self, metric: SesMetric) -> &[f64] {
        self.source.slice(metric, self.offset, self.buckets)
    }
}

/// The aggregate over the accounts that answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The window reported.
    pub window: Window,
    /// The previous window compared against, when the plan's history reaches it.
    pub previous_window: Option<Window>,
    /// Totals across accounts.
    pub totals: Totals,
    /// Rates across accounts.
    pub rates: Rates,
    /// Totals of the previous window.
    pub previous_totals: Option<Totals>,
    /// Change against the previous window.
    pub change: Option<Change>,
    /// Combined values per bucket, per metric.
    pub series: [Vec<f64>; 5],
    /// Each answering account, in the order given.
    pub accounts: Vec<AccountReport>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn change(current: &Totals, previous: &Totals) -> Change {
    let pct = |m: SesMetric| {
        let before = previous.get(m);
        (before > 0.0).then(|| round2((current.get(m) - before) / before * 100.0))
    };
    let (now, then) = (current.rates(), previous.rates());
    let delta = |a: Option<f64>, b: Option<f64>| Some(round2(a? - b?));
    Change {
        totals: SesMetric::ALL.map(pct),
        rates: Rates {
            delivery: delta(now.delivery, then.delivery),
            bounce: delta(now.bounce, then.bounce),
            complaint: delta(now.complaint, then.complaint),
            reject: delta(now.reject, then.reject),
        },
    }
}

fn sum(values: &[f64]) -> f64 {
    values.iter().sum()
}

/// Aggregates the accounts' series over `window`. Each series covers `window`, or
/// `window.with_previous()` when `compare` (then its first half is the previous period).
pub fn aggregate(
    window: Window,
    compare: bool,
    answered: &[(CloudAccountId, Arc<AccountSeries>)],
) -> Report {
    let n = window.buckets as usize;
    let offset = if compare { n } else { 0 };
    let mut totals = Totals::default();
    let mut previous_totals = Totals::default();
    let mut series: [Vec<f64>; 5] = std::array::from_fn(|_| vec![0.0; n]);
    let mut accounts = Vec::with_capacity(answered.len());
    for (account, s) in answered {
        let mut own = Totals::default();
        let mut before = Totals::default();
        for m in SesMetric::ALL {
            let values = s.slice(m, offset, n);
            own.0[m.index()] = sum(values);
            if compare {
                before.0[m.index()] = sum(s.slice(m, 0, n));
            }
            for (acc, v) in series[m.index()].iter_mut().zip(values) {
                *acc += v;
            }
        }
        totals.add(&own);
        previous_totals.add(&before);
        accounts.push(AccountReport {
            account: *account,
            rates: own.rates(),
            change: compare.then(|| change(&own, &before)),
            totals: own,
            shares: [None; 5],
            source: s.clone(),
            offset,
            buckets: n,
        });
    }
    for a in &mut accounts {
        a.shares = SesMetric::ALL.map(|m| {
            let total = totals.get(m);
            (total > 0.0).then(|| round2(a.totals.get(m) / total * 100.0))
        });
    }
    Report {
        window,
        previous_window: compare.then(|| window.previous()),
        rates: totals.rates(),
        change: compare.then(|| change(&totals, &previous_totals)),
        previous_totals: compare.then_some(previous_totals),
        totals,
        series,
        accounts,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    use super::*;

    fn window(buckets: u32) -> Window {
        Window {
            start: DateTime::<Utc>::from_timestamp(1_790_000_000 / 300 * 300, 0)
                .unwrap_or_default(),
            period: 300,
            buckets,
        }
    }

    fn series(w: Window, values: [Vec<f64>; 5]) -> Arc<AccountSeries> {
        Arc::new(AccountSeries { window: w, values })
    }

    #[test]
    fn the_spec_example_production_is_ninety_percent() {
        let w = window(1);
        let accounts = [
            (
                CloudAccountId::new(),
                series(
                    w,
                    [
                        vec![45_000.0],
                        vec![44_000.0],
                        vec![900.0],
                        vec![9.0],
                        vec![0.0],
                    ],
                ),
            ),
            (
                CloudAccountId::new(),
                series(
                    w,
                    [
                        vec![5_000.0],
                        vec![4_990.0],
                        vec![10.0],
                        vec![0.0],
                        vec![0.0],
                    ],
                ),
            ),
        ];
        let r = aggregate(w, false, &accounts);
        assert_eq!(r.totals.get(SesMetric::Send), 50_000.0);
        assert_eq!(r.accounts[0].shares[SesMetric::Send.index()], Some(90.0));
        assert_eq!(r.rates.bounce, Some(1.82));
        assert_eq!(r.accounts[0].rates.bounce, Some(2.0));
        assert!(r.change.is_none() && r.previous_window.is_none());
    }

    #[test]
    fn change_compares_with_the_previous_period() {
        let w = window(2);
        // Previous period: 100 sent, 3 bounced. This one: 150 sent, 3 bounced.
        let s = series(
            w.with_previous(),
            [
                vec![50.0, 50.0, 100.0, 50.0],
                vec![0.0; 4],
                vec![2.0, 1.0, 2.0, 1.0],
                vec![0.0; 4],
                vec![0.0; 4],
            ],
        );
        let r = aggregate(w, true, &[(CloudAccountId::new(), s)]);
        assert_eq!(r.totals.get(SesMetric::Send), 150.0);
        assert_eq!(
            r.previous_totals.map(|t| t.get(SesMetric::Send)),
            Some(100.0)
        );
        let change = r.change.unwrap_or_default();
        assert_eq!(change.totals[SesMetric::Send.index()], Some(50.0));
        assert_eq!(change.totals[SesMetric::Delivery.index()], None);
        // 3/100 = 3% before, 3/150 = 2% now: down one point.
        assert_eq!(change.rates.bounce, Some(-1.0));
        assert_eq!(r.series[SesMetric::Send.index()], [100.0, 50.0]);
    }

    #[test]
    fn nothing_sent_gives_no_rates_and_no_shares() {
        let w = window(3);
        let zero = series(w, std::array::from_fn(|_| vec![0.0; 3]));
        let r = aggregate(w, false, &[(CloudAccountId::new(), zero)]);
        assert_eq!(r.rates, Rates::default());
        assert_eq!(r.accounts[0].shares, [None; 5]);
        assert_eq!(r.series[0], [0.0, 0.0, 0.0]);
    }

    fn arb_accounts() -> impl Strategy<Value = Vec<[Vec<f64>; 5]>> {
        let buckets = 6usize;
        let metric = proptest::collection::vec(0u32..50_000, buckets)
            .prop_map(|v| v.into_iter().map(f64::from).collect::<Vec<f64>>());
        let account = [
            metric.clone(),
            metric.clone(),
            metric.clone(),
            metric.clone(),
            metric,
        ];
        proptest::collection::vec(account, 0..12)
    }

    proptest! {
        #[test]
        fn breakdown_and_series_sum_to_the_totals_and_shares_to_a_hundred(values in arb_accounts()) {
            let w = window(6);
            let answered: Vec<_> = values
                .into_iter()
                .map(|v| (CloudAccountId::new(), series(w, v)))
                .collect();
            let r = aggregate(w, false, &answered);
            for m in SesMetric::ALL {
                let from_accounts: f64 = r.accounts.iter().map(|a| a.totals.get(m)).sum();
                prop_assert_eq!(from_accounts, r.totals.get(m));
                prop_assert_eq!(sum(&r.series[m.index()]), r.totals.get(m));
                for i in 0..6 {
                    let bucket: f64 = r.accounts.iter().map(|a| a.series(m)[i]).sum();
                    prop_assert_eq!(bucket, r.series[m.index()][i]);
                }
                let shares: Vec<f64> = r.accounts.iter().filter_map(|a| a.shares[m.index()]).collect();
                if r.totals.get(m) > 0.0 {
                    let total: f64 = shares.iter().sum();
                    let tolerance = 0.005 * r.accounts.len() as f64 + 1e-9;
                    prop_assert!((total - 100.0).abs() <= tolerance, "{} shares sum to {}", m.key(), total);
                } else {
                    prop_assert!(shares.is_empty());
                }
            }
            let sent = r.totals.get(SesMetric::Send);
            prop_assert_eq!(r.rates.bounce.is_some(), sent > 0.0);
            if let Some(rate) = r.rates.delivery {
                prop_assert!(rate.is_finite());
            }
        }
    }
}
