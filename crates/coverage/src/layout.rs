//! The catalog laid out for counting: each IaaS entry's position and the positions of its
//! tactics, so coverage is array indexing, not lookups by technique id.

use std::collections::HashMap;
use std::sync::OnceLock;

use canopy_detection::catalog::Catalog;

/// Positions of one catalog's IaaS entries and their tactics.
pub(crate) struct Layout {
    /// Technique id to its position in catalog order.
    pub(crate) positions: HashMap<String, usize>,
    /// Per position, the positions of its tactics in `catalog.tactics()`.
    pub(crate) tactics_of: Vec<Vec<usize>>,
}

impl Layout {
    fn of(catalog: &Catalog) -> Self {
        let tactic_at: HashMap<&str, usize> = catalog
            .tactics()
            .iter()
            .enumerate()
            .map(|(i, t)| (t.shortname.as_str(), i))
            .collect();
        let mut positions = HashMap::new();
        let mut tactics_of = Vec::new();
        for (i, entry) in catalog.iaas().enumerate() {
            positions.insert(entry.id.clone(), i);
            tactics_of.push(
                entry
                    .tactics
                    .iter()
                    .filter_map(|t| tactic_at.get(t.as_str()).copied())
                    .collect(),
            );
        }
        Self {
            positions,
            tactics_of,
        }
    }

    /// The embedded catalog's layout is computed once; any other catalog's on each call.
    pub(crate) fn with<R>(catalog: &Catalog, f: impl FnOnce(&Layout) -> R) -> R {
        static EMBEDDED: OnceLock<Layout> = OnceLock::new();
        if std::ptr::eq(catalog, Catalog::embedded()) {
            f(EMBEDDED.get_or_init(|| Layout::of(catalog)))
        } else {
            f(&Layout::of(catalog))
        }
    }
}
