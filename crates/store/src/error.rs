//! How database failures become the domain's [`StoreError`]: an unreachable database is
//! `Unavailable` (the edge answers 503 and the client retries), anything else `Internal`.

use canopy_kernel::StoreError;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// SQLSTATE classes and codes that mean "the server is going away or not there yet":
/// connection exceptions (08), and shutdown or start-up (57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now).
const UNAVAILABLE_SQLSTATES: &[&str] = &["57P01", "57P02", "57P03"];

fn sqlx_unavailable(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        E::Protocol(_) => true,
        E::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || UNAVAILABLE_SQLSTATES.contains(&c.as_ref())),
        _ => false,
    }
}

/// True when `e` says the database cannot be reached right now.
pub(crate) fn is_unavailable(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            sqlx_unavailable(s)
        }
        _ => false,
    }
}

/// The domain's view of a database failure.
pub(crate) fn db_err(e: DbErr) -> StoreError {
    if is_unavailable(&e) {
        StoreError::unavailable(e.to_string())
    } else {
        StoreError::internal(e.to_string())
    }
}

/// Which unique constraint a violation hit, by the message the backend reports (it names the
/// constraint or the columns).
pub(crate) fn unique_violation(e: &DbErr) -> Option<String> {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => Some(message),
        _ => None,
    }
}

/// A stored value the domain cannot read back: the data was written by something else.
pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::internal(format!("unreadable {what} in storage: {value}"))
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnAcquireErr;

    use super::*;

    #[test]
    fn pool_and_connection_failures_are_unavailable_other_failures_internal() {
        assert!(db_err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)).is_unavailable());
        let io =
            sea_orm::sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(
            db_err(DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(io)))).is_unavailable()
        );
        assert!(!db_err(DbErr::RecordNotFound("x".into())).is_unavailable());
        assert!(!db_err(DbErr::Custom("bad".into())).is_unavailable());
    }
}
