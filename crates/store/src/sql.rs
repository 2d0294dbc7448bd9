//! Raw SQL for the few queries the query builder cannot say in one round trip.

use sea_orm::DbBackend;

/// Writes `{pN}` placeholders in the backend's syntax (`$N` or SQLite's `?N`).
pub(crate) fn placeholders(backend: DbBackend, sql: &str, count: usize) -> String {
    let mut out = sql.to_string();
    for n in 1..=count {
        let marker = match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => format!("?{n}"),
        };
        out = out.replace(&format!("{{p{n}}}"), &marker);
    }
    out
}

/// A count read back from SQL (never negative).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let sql = "SELECT {p1}, {p2}, {p1}";
        assert_eq!(
            placeholders(DbBackend::Postgres, sql, 2),
            "SELECT $1, $2, $1"
        );
        assert_eq!(placeholders(DbBackend::Sqlite, sql, 2), "SELECT ?1, ?2, ?1");
    }
}
