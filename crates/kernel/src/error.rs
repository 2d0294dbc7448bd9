//! The storage failure every port may return. Domain code never inspects the cause; it only
//! tells a failure that retrying later may cure (the database is restarting, a connection was
//! cut) from one it cannot explain, so the edge can answer 503 for the first and 500 for the
//! second.

/// An adapter failure the domain cannot act on. The message is for operators' logs, never
/// for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached: connection refused or closed, pool exhausted, the
    /// server shutting down. Retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a constraint the domain did not expect, unreadable data, a bug.
    #[error("storage failure: {0}")]
    Internal(String),
}

impl StoreError {
    /// An unexpected failure with its cause.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self::Internal(cause.into())
    }

    /// The store is unreachable for now.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        Self::Unavailable(cause.into())
    }

    /// True when retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailability_is_told_apart_from_other_failures() {
        assert!(StoreError::unavailable("connection refused").is_unavailable());
        assert!(!StoreError::internal("bad row").is_unavailable());
        assert_eq!(
            StoreError::internal("bad row").to_string(),
            "storage failure: bad row"
        );
    }
}
