//! A cooperative stop signal: long work (a discovery, a scan) is handed one and checks it
//! before each call it is about to make, so a cancelled job stops issuing calls instead of
//! finishing the tree it was reading. Cheap to clone and to check; no IO, no runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Says whether the work holding it should stop. Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A signal nobody has raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal that is never raised (work that cannot be cancelled: a request's own call).
    pub fn never() -> Self {
        Self::default()
    }

    /// Raises it: every clone now says stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once raised.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_a_fresh_one_is_down() {
        let stop = Stop::new();
        let seen_by_work = stop.clone();
        assert!(!seen_by_work.requested());
        stop.request();
        assert!(seen_by_work.requested());
        assert!(!Stop::never().requested());
    }
}
