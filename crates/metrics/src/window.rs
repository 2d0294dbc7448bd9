//! The SES metrics Canopy reads, and the time windows they are read over: a preset range or
//! an explicit start and end, cut into period buckets aligned to the epoch so every viewer of
//! the same range in the same period sees (and caches) the same window.

use canopy_kernel::{FieldError, ValidationErrors};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// An SES metric in CloudWatch's `AWS/SES` namespace, summed per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SesMetric {
    /// Messages sent.
    Send,
    /// Messages delivered.
    Delivery,
    /// Hard bounces.
    Bounce,
    /// Complaints.
    Complaint,
    /// Messages SES rejected (virus).
    Reject,
}

impl SesMetric {
    /// Every metric, in the order of series arrays.
    pub const ALL: [SesMetric; 5] = [
        SesMetric::Send,
        SesMetric::Delivery,
        SesMetric::Bounce,
        SesMetric::Complaint,
        SesMetric::Reject,
    ];

    /// Position in series arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// CloudWatch's metric name.
    pub fn cloudwatch_name(self) -> &'static str {
        match self {
            SesMetric::Send => "Send",
            SesMetric::Delivery => "Delivery",
            SesMetric::Bounce => "Bounce",
            SesMetric::Complaint => "Complaint",
            SesMetric::Reject => "Reject",
        }
    }

    /// Wire key.
    pub fn key(self) -> &'static str {
        match self {
            SesMetric::Send => "send",
            SesMetric::Delivery => "delivery",
            SesMetric::Bounce => "bounce",
            SesMetric::Complaint => "complaint",
            SesMetric::Reject => "reject",
        }
    }

    /// Reads CloudWatch's metric name.
    pub fn from_cloudwatch(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.cloudwatch_name() == name)
    }
}

/// A preset range: the last hour, day, week or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangePreset {
    /// `1h`, at 5 minutes.
    Hour,
    /// `24h`, at 5 minutes.
    Day,
    /// `7d`, hourly.
    Week,
    /// `30d`, at 6 hours.
    Month,
}

impl RangePreset {
    /// Parses `1h`, `24h`, `7d` or `30d`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        match raw {
            "1h" => Ok(Self::Hour),
            "24h" => Ok(Self::Day),
            "7d" => Ok(Self::Week),
            "30d" => Ok(Self::Month),
            _ => Err(FieldError::new(field, "enum", "must be 1h, 24h, 7d or 30d")),
        }
    }

    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Week => 7 * 86_400,
            Self::Month => 30 * 86_400,
        }
    }

    /// The period that keeps a chart readable: 12, 288, 168 and 120 points.
    pub fn period_seconds(self) -> i64 {
        match self {
            Self::Hour | Self::Day => 300,
            Self::Week => 3_600,
            Self::Month => 21_600,
        }
    }
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// A preset ending now.
    Preset(RangePreset),
    /// An explicit interval.
    Between {
        /// Start (inclusive).
        start: DateTime<Utc>,
        /// End (exclusive).
        end: DateTime<Utc>,
    },
}

/// Periods an explicit range may get, smallest first.
const PERIODS: [i64; 8] = [60, 300, 900, 3_600, 10_800, 21_600, 86_400, 172_800];
/// Most buckets an explicit range is cut into.
const MAX_BUCKETS: i64 = 360;
/// CloudWatch keeps 1-minute data 15 days, 5-minute data 63 days, hourly data 455 days.
const RETENTION_STEPS: [(i64, i64); 2] = [(63 * 86_400, 3_600), (15 * 86_400, 300)];
const LONGEST_SECONDS: i64 = 455 * 86_400;

/// Buckets of `period` seconds from `start`, aligned to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First bucket's start.
    pub start: DateTime<Utc>,
    /// Bucket length, seconds.
    pub period: i64,
    /// Number of buckets.
    pub buckets: u32,
}

fn floor_to(t: DateTime<Utc>, period: i64) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(period) * period;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

impl Window {
    /// The window a client's range resolves to at `now`. A preset's last bucket is the one
    /// holding `now`; an explicit range is widened to whole buckets.
    pub fn resolve(spec: RangeSpec, now: DateTime<Utc>) -> Result<Window, ValidationErrors> {
        match spec {
            RangeSpec::Preset(p) => {
                let period = p.period_seconds();
                let end = floor_to(now, period) + Duration::seconds(period);
                let buckets = p.seconds() / period;
                Ok(Window {
                    start: end - Duration::seconds(buckets * period),
                    period,
                    buckets: u32::try_from(buckets).unwrap_or(u32::MAX),
                })
            }
            RangeSpec::Between { start, end } => {
                let mut errors = ValidationErrors::default();
                let len = (end - start).num_seconds();
                if len < 60 {
                    errors.push(FieldError::new(
                        "end",
                        "after_start",
                        "must be at least a minute after start",
                    ));
                }
                if len > LONGEST_SECONDS {
                    errors.push(FieldError::new(
                        "start",
                        "range",
                        "a range spans at most 455 days (CloudWatch's retention)",
                    ));
                }
                if start > now {
                    errors.push(FieldError::new(
                        "start",
                        "past",
                        "must not be in the future",
                    ));
                }
                errors.into_result()?;
                // The period must be one CloudWatch serves for the oldest data read, and a
                // comparison reads the previous period too, one range length earlier.
                let age = (now - start).num_seconds() + len;
                let finest = RETENTION_STEPS
                    .iter()
                    .find(|(older_than, _)| age > *older_than)
                    .map_or(60, |(_, step)| *step);
                let aligned = |period: i64| {
                    let first = floor_to(start, period);
                    let last =
                        floor_to(end - Duration::seconds(1), period) + Duration::seconds(period);
                    (first, (last - first).num_seconds() / period)
                };
                let period = PERIODS
                    .into_iter()
                    .filter(|p| *p >= finest)
                    .find(|p| aligned(*p).1 <= MAX_BUCKETS)
                    .unwrap_or(PERIODS[PERIODS.len() - 1]);
                let (first, buckets) = aligned(period);
                Ok(Window {
                    start: first,
                    period,
                    buckets: u32::try_from(buckets).unwrap_or(u32::MAX),
                })
            }
        }
    }

    /// End of the last bucket (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::seconds(self.period * i64::from(self.buckets))
    }

    /// The window of the same length just before this one.
    pub fn previous(&self) -> Window {
        Window {
            start: self.start - (self.end() - self.start),
            ..*self
        }
    }

    /// This window preceded by the previous one: what one fetch covers to compare them.
    pub fn with_previous(&self) -> Window {
        Window {
            start: self.previous().start,
            buckets: self.buckets * 2,
            ..*self
        }
    }

    /// The bucket holding `t`, if inside.
    pub fn bucket_of(&self, t: DateTime<Utc>) -> Option<usize> {
        if t < self.start || t >= self.end() {
            return None;
        }
        usize::try_from((t - self.start).num_seconds() / self.period).ok()
    }

    /// Start of every bucket.
    pub fn timestamps(&self) -> Vec<DateTime<Utc>> {
        (0..i64::from(self.buckets))
            .map(|i| self.start + Duration::seconds(i * self.period))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn presets_end_with_the_bucket_holding_now() {
        let now = at("2026-11-23T12:07:30Z");
        let day = Window::resolve(RangeSpec::Preset(RangePreset::Day), now).unwrap();
        assert_eq!(day.end(), at("2026-11-23T12:10:00Z"));
        assert_eq!((day.period, day.buckets), (300, 288));
        assert_eq!(day.start, at("2026-11-22T12:10:00Z"));
        let month = Window::resolve(RangeSpec::Preset(RangePreset::Month), now).unwrap();
        assert_eq!((month.period, month.buckets), (21_600, 120));
        assert_eq!(month.end(), at("2026-11-23T18:00:00Z"));
        let week = Window::resolve(RangeSpec::Preset(RangePreset::Week), now).unwrap();
        assert_eq!((week.period, week.buckets), (3_600, 168));
        let hour = Window::resolve(RangeSpec::Preset(RangePreset::Hour), now).unwrap();
        assert_eq!((hour.period, hour.buckets), (300, 12));
    }

    #[test]
    fn explicit_ranges_get_whole_buckets_and_a_readable_period() {
        let now = at("2026-11-23T12:00:00Z");
        let w = Window::resolve(
            RangeSpec::Between {
                start: at("2026-11-23T09:00:30Z"),
                end: at("2026-11-23T11:00:00Z"),
            },
            now,
        )
        .unwrap();
        assert_eq!(w.period, 60);
        assert_eq!(w.start, at("2026-11-23T09:00:00Z"));
        assert_eq!(w.end(), at("2026-11-23T11:00:00Z"));
        let long = Window::resolve(
            RangeSpec::Between {
                start: at("2026-09-01T00:00:00Z"),
                end: at("2026-10-01T00:00:00Z"),
            },
            now,
        )
        .unwrap();
        assert!(long.buckets <= 360 && long.period >= 3_600, "{long:?}");
    }

    #[test]
    fn explicit_ranges_never_exceed_the_bucket_cap_and_respect_cloudwatch_resolution() {
        let now = at("2026-11-23T12:00:00Z");
        for (days_back, hours) in [(455, 455 * 24), (14, 6), (15, 1), (62, 24), (10, 360 * 24)] {
            let start = now - Duration::days(days_back);
            let end = (start + Duration::hours(hours)).min(now);
            let w = Window::resolve(RangeSpec::Between { start, end }, now).unwrap();
            assert!(w.buckets <= 360, "{days_back} days back, {hours} h: {w:?}");
            // The comparison reaches back one more range length: its data's resolution rules.
            let oldest = (now - w.with_previous().start).num_seconds();
            let finest = if oldest > 63 * 86_400 {
                3_600
            } else if oldest > 15 * 86_400 {
                300
            } else {
                60
            };
            assert!(
                w.period >= finest,
                "{days_back} days back, {hours} h: {w:?}"
            );
        }
    }

    #[test]
    fn explicit_ranges_are_validated() {
        let now = at("2026-11-23T12:00:00Z");
        let rules = |start: &str, end: &str| -> Vec<String> {
            Window::resolve(
                RangeSpec::Between {
                    start: at(start),
                    end: at(end),
                },
                now,
            )
            .err()
            .map(|e| e.errors.into_iter().map(|f| f.rule).collect())
            .unwrap_or_default()
        };
        assert_eq!(
            rules("2026-11-23T10:00:00Z", "2026-11-23T09:00:00Z"),
            ["after_start"]
        );
        assert_eq!(
            rules("2025-01-01T00:00:00Z", "2026-11-01T00:00:00Z"),
            ["range"]
        );
        assert_eq!(
            rules("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"),
            ["past"]
        );
    }

    #[test]
    fn previous_window_is_adjacent_and_fetch_window_covers_both() {
        let w = Window::resolve(
            RangeSpec::Preset(RangePreset::Hour),
            at("2026-11-23T12:00:00Z"),
        )
        .unwrap();
        assert_eq!(w.previous().end(), w.start);
        let both = w.with_previous();
        assert_eq!((both.start, both.end()), (w.previous().start, w.end()));
        assert_eq!(both.bucket_of(w.start), Some(12));
        assert_eq!(both.bucket_of(w.end()), None);
    }
}
