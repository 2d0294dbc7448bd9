//! The OU / folder tree of a cloud organization, stored as nodes plus a closure table, so
//! "which accounts are under this OU or folder" is one indexed query
//! (docs/adr/0002-hierarchy-closure-table.md).

use std::collections::{BTreeMap, HashMap};

/// Deepest AWS OU nesting (below the root).
pub const AWS_MAX_DEPTH: u8 = 5;
/// Deepest GCP folder nesting (below the organization).
pub const GCP_MAX_DEPTH: u8 = 10;

/// What kind of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// The AWS root or the GCP organization itself.
    Root,
    /// An AWS organizational unit.
    OrganizationalUnit,
    /// A GCP folder.
    Folder,
}

impl NodeKind {
    /// Stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Root => "root",
            NodeKind::OrganizationalUnit => "ou",
            NodeKind::Folder => "folder",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        [Self::Root, Self::OrganizationalUnit, Self::Folder]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// A node as discovery reports it: the provider's ids and the parent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredNode {
    /// The provider's id (`r-ab12`, `ou-ab12-cd34ef56`, `organizations/123`, `folders/456`).
    pub id: String,
    /// The parent's id; `None` for the root.
    pub parent_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Root, OU or folder.
    pub kind: NodeKind,
}

/// A node placed in its tree: depth, the name path people read and the id path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyNode {
    /// The provider's id.
    pub id: String,
    /// The parent's id; `None` for the root.
    pub parent_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Root, OU or folder.
    pub kind: NodeKind,
    /// 0 for the root.
    pub depth: u8,
    /// Names from the root, `Root/Production/Web`.
    pub path: String,
    /// Ids from the root down to this node, itself included.
    pub id_path: Vec<String>,
}

/// Why a set of discovered nodes is not a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// No node without a parent, or more than one.
    #[error("the hierarchy has {0} roots; exactly one is expected")]
    Roots(usize),
    /// A node's parent was not discovered (and not reported unreadable).
    #[error("node {node} names parent {parent}, which was not discovered")]
    Orphan {
        /// The node.
        node: String,
        /// Its missing parent.
        parent: String,
    },
    /// Deeper than the provider allows: a cycle or corrupt data.
    #[error("node {0} is deeper than the provider allows")]
    TooDeep(String),
}

/// The whole tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hierarchy {
    nodes: BTreeMap<String, HierarchyNode>,
}

impl Hierarchy {
    /// Places discovered nodes in their tree, refusing orphans, several roots and depths past
    /// `max_depth` (which also stops cycles).
    pub fn build(nodes: Vec<DiscoveredNode>, max_depth: u8) -> Result<Self, TreeError> {
        let roots = nodes.iter().filter(|n| n.parent_id.is_none()).count();
        if roots != 1 {
            return Err(TreeError::Roots(roots));
        }
        let by_id: HashMap<&str, &DiscoveredNode> =
            nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut placed = BTreeMap::new();
        for node in &nodes {
            let mut chain = vec![node];
            let mut current = node;
            while let Some(parent) = &current.parent_id {
                let Some(p) = by_id.get(parent.as_str()) else {
                    return Err(TreeError::Orphan {
                        node: current.id.clone(),
                        parent: parent.clone(),
                    });
                };
                chain.push(p);
                if chain.len() > usize::from(max_depth) + 1 {
                    return Err(TreeError::TooDeep(node.id.clone()));
                }
                current = p;
            }
            chain.reverse();
            placed.insert(
                node.id.clone(),
                HierarchyNode {
                    id: node.id.clone(),
                    parent_id: node.parent_id.clone(),
                    name: node.name.clone(),
                    kind: node.kind,
                    depth: u8::try_from(chain.len() - 1).unwrap_or(u8::MAX),
                    path: chain
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join("/"),
                    id_path: chain.iter().map(|n| n.id.clone()).collect(),
                },
            );
        }
        Ok(Self { nodes: placed })
    }

    /// The tree from stored nodes (already placed).
    pub fn from_placed(nodes: impl IntoIterator<Item = HierarchyNode>) -> Self {
        Self {
            nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
        }
    }

    /// One node.
    pub fn get(&self, id: &str) -> Option<&HierarchyNode> {
        self.nodes.get(id)
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &HierarchyNode> {
        self.nodes.values()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for an empty tree (nothing discovered yet).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The closure rows: (ancestor, descendant, distance) for every node and each of its
    /// ancestors, itself included at distance 0. A subtree is then `WHERE ancestor = X`.
    pub fn closure(&self) -> Vec<(String, String, u8)> {
        let mut rows = Vec::new();
        for node in self.nodes.values() {
            let len = node.id_path.len();
            for (i, ancestor) in node.id_path.iter().enumerate() {
                let distance = u8::try_from(len - 1 - i).unwrap_or(u8::MAX);
                rows.push((ancestor.clone(), node.id.clone(), distance));
            }
        }
        rows
    }

    /// True when `node` is `ancestor` or lies under it.
    pub fn is_under(&self, node: &str, ancestor: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.id_path.iter().any(|a| a == ancestor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>, name: &str) -> DiscoveredNode {
        DiscoveredNode {
            id: id.into(),
            parent_id: parent.map(Into::into),
            name: name.into(),
            kind: if parent.is_none() {
                NodeKind::Root
            } else {
                NodeKind::OrganizationalUnit
            },
        }
    }

    fn tree() -> Hierarchy {
        Hierarchy::build(
            vec![
                node("r-1", None, "Root"),
                node("ou-prod", Some("r-1"), "Production"),
                node("ou-web", Some("ou-prod"), "Web"),
                node("ou-dev", Some("r-1"), "Development"),
            ],
            AWS_MAX_DEPTH,
        )
        .unwrap()
    }

    #[test]
    fn nodes_get_their_depth_and_paths() {
        let t = tree();
        let web = t.get("ou-web").unwrap();
        assert_eq!(web.depth, 2);
        assert_eq!(web.path, "Root/Production/Web");
        assert_eq!(web.id_path, vec!["r-1", "ou-prod", "ou-web"]);
        assert_eq!(t.get("r-1").unwrap().depth, 0);
    }

    #[test]
    fn the_closure_holds_every_ancestor_pair_and_selects_subtrees() {
        let t = tree();
        let closure = t.closure();
        // 1 + 2 + 3 + 2 rows.
        assert_eq!(closure.len(), 8);
        let under_prod: Vec<_> = closure
            .iter()
            .filter(|(a, _, _)| a == "ou-prod")
            .map(|(_, d, _)| d.as_str())
            .collect();
        assert_eq!(under_prod, vec!["ou-prod", "ou-web"]);
        assert!(t.is_under("ou-web", "ou-prod"));
        assert!(!t.is_under("ou-dev", "ou-prod"), "a sibling is not under");
    }

    #[test]
    fn orphans_several_roots_and_cycles_are_refused() {
        assert_eq!(
            Hierarchy::build(vec![node("ou-x", Some("r-9"), "X")], 5),
            Err(TreeError::Roots(0))
        );
        assert!(matches!(
            Hierarchy::build(
                vec![
                    node("r-1", None, "Root"),
                    node("ou-x", Some("ou-gone"), "X")
                ],
                5
            ),
            Err(TreeError::Orphan { .. })
        ));
        assert_eq!(
            Hierarchy::build(vec![node("r-1", None, "A"), node("r-2", None, "B")], 5),
            Err(TreeError::Roots(2))
        );
        let cycle = vec![
            node("r-1", None, "Root"),
            node("ou-a", Some("ou-b"), "A"),
            node("ou-b", Some("ou-a"), "B"),
        ];
        assert!(matches!(
            Hierarchy::build(cycle, 5),
            Err(TreeError::TooDeep(_))
        ));
    }

    #[test]
    fn depth_past_the_providers_limit_is_refused() {
        let mut nodes = vec![node("r-1", None, "Root")];
        for i in 1..=6 {
            let parent = if i == 1 {
                "r-1".to_string()
            } else {
                format!("ou-{}", i - 1)
            };
            nodes.push(node(&format!("ou-{i}"), Some(&parent), "x"));
        }
        assert!(matches!(
            Hierarchy::build(nodes.clone(), AWS_MAX_DEPTH),
            Err(TreeError::TooDeep(_))
        ));
        assert!(Hierarchy::build(nodes, GCP_MAX_DEPTH).is_ok());
    }
}
