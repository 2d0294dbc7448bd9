//! How numbers, times and states read on a page.

use chrono::{DateTime, Utc};

/// `12,345` (whole numbers; metric totals are counts).
pub fn count(value: f64) -> String {
    let whole = value.round() as i64;
    let digits = whole.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 { format!("-{out}") } else { out }
}

/// `2.35%`, or an em dash when there is nothing to divide.
pub fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{v:.2}%"),
        None => "—".into(),
    }
}

/// `+12.5%` / `−3.0%` against the previous period, or nothing to compare.
pub fn change(value: Option<f64>) -> String {
    match value {
        Some(v) if v > 0.0 => format!("+{v:.1}%"),
        Some(v) if v < 0.0 => format!("−{:.1}%", v.abs()),
        Some(_) => "±0%".into(),
        None => "no earlier data".into(),
    }
}

/// `2 minutes ago`, `3 days ago`, `in 5 hours`.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let (future, secs) = (secs < 0, secs.unsigned_abs());
    let (n, unit) = match secs {
        0..=44 => {
            return if future {
                "in a moment".into()
            } else {
                "just now".into()
            };
        }
        45..=5_399 => (secs.div_ceil(60).max(1), "minute"),
        // Up to two days in hours: "in 1 day" for 47 hours left would mislead.
        5_400..=172_799 => (secs / 3_600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// `2026-12-07 14:03 UTC`, what a `<time>` element shows (its `datetime` is RFC 3339).
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn numbers_and_times_read_as_people_write_them() {
        assert_eq!(count(697_384.0), "697,384");
        assert_eq!(count(12.0), "12");
        assert_eq!(count(1_000.0), "1,000");
        assert_eq!(percent(Some(1.8473)), "1.85%");
        assert_eq!(percent(None), "—");
        assert_eq!(change(Some(12.46)), "+12.5%");
        assert_eq!(change(Some(-3.0)), "−3.0%");
        let now = Utc::now();
        assert_eq!(ago(now - Duration::seconds(10), now), "just now");
        assert_eq!(ago(now - Duration::minutes(2), now), "2 minutes ago");
        assert_eq!(ago(now - Duration::hours(3), now), "3 hours ago");
        assert_eq!(ago(now - Duration::days(1), now), "24 hours ago");
        assert_eq!(ago(now - Duration::days(3), now), "3 days ago");
        assert_eq!(ago(now + Duration::hours(47), now), "in 47 hours");
    }
}
