//! What a re-discovery changed, compared with what is stored. A sync that finds nothing new
//! yields no change, and then nothing is written.

use std::collections::BTreeMap;

use super::hierarchy::{DiscoveredNode, Hierarchy};
use super::member::{DiscoveredMember, MemberState};

/// One change a sync found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A member appeared.
    Joined {
        /// Account or project id.
        key: String,
    },
    /// A member moved to another OU or folder.
    Moved {
        /// Account or project id.
        key: String,
        /// Where it was.
        from: String,
        /// Where it is.
        to: String,
    },
    /// A member's lifecycle state changed (suspended, closing, closed, delete requested, back).
    StateChanged {
        /// Account or project id.
        key: String,
        /// Before.
        from: MemberState,
        /// Now.
        to: MemberState,
    },
    /// A member was renamed.
    Renamed {
        /// Account or project id.
        key: String,
        /// Before.
        from: String,
        /// Now.
        to: String,
    },
    /// A member is no longer in the organization.
    Left {
        /// Account or project id.
        key: String,
    },
    /// Anything else about a member changed (e-mail, delegated administration).
    Updated {
        /// Account or project id.
        key: String,
    },
    /// The tree changed: an OU or folder added, removed, renamed or moved.
    HierarchyChanged {
        /// Nodes added.
        added: usize,
        /// Nodes removed.
        removed: usize,
        /// Nodes renamed or moved.
        changed: usize,
    },
}

impl Change {
    /// Stored and wire name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Joined { .. } => "joined",
            Change::Moved { .. } => "moved",
            Change::StateChanged { .. } => "state_changed",
            Change::Renamed { .. } => "renamed",
            Change::Left { .. } => "left",
            Change::Updated { .. } => "updated",
            Change::HierarchyChanged { .. } => "hierarchy_changed",
        }
    }
}

/// Keeps what is stored below nodes a discovery could not read: their subtrees and members
/// are unknown this time, not gone, so they must not be reported as removed or departed.
/// Nodes and members found elsewhere (moved out of the unreadable subtree) are not kept twice.
pub fn keep_unreadable(
    stored_tree: &Hierarchy,
    stored_members: &[DiscoveredMember],
    unreadable: &[String],
    nodes: &mut Vec<DiscoveredNode>,
    members: &mut Vec<DiscoveredMember>,
) {
    if unreadable.is_empty() {
        return;
    }
    let under = |id: &str| unreadable.iter().any(|u| stored_tree.is_under(id, u));
    let found_nodes: std::collections::BTreeSet<String> =
        nodes.iter().map(|n| n.id.clone()).collect();
    for node in stored_tree.nodes() {
        if !found_nodes.contains(&node.id) && under(&node.id) {
            nodes.push(DiscoveredNode {
                id: node.id.clone(),
                parent_id: node.parent_id.clone(),
                name: node.name.clone(),
                kind: node.kind,
            });
        }
    }
    let found_members: std::collections::BTreeSet<String> =
        members.iter().map(|m| m.key.clone()).collect();
    members.extend(
        stored_members
            .iter()
            .filter(|m| !found_members.contains(&m.key) && under(&m.parent_id))
            .cloned(),
    );
}

/// Compares a discovery with what is stored. `stored_members` are the members still in the
/// organization (left ones are not compared again).
pub fn diff(
    stored_nodes: &Hierarchy,
    stored_members: &[DiscoveredMember],
    found_nodes: &[DiscoveredNode],
    found_members: &[DiscoveredMember],
) -> Vec<Change> {
    let mut changes = Vec::new();
    let found_by_id: BTreeMap<&str, &DiscoveredNode> =
        found_nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for node in stored_nodes.nodes() {
        match found_by_id.get(node.id.as_str()) {
            None => removed += 1,
            Some(f) if f.name != node.name || f.parent_id != node.parent_id => changed += 1,
            Some(_) => {}
        }
    }
    added += found_nodes
        .iter()
        .filter(|n| stored_nodes.get(&n.id).is_none())
        .count();
    if added + removed + changed > 0 {
        changes.push(Change::HierarchyChanged {
            added,
            removed,
            changed,
        });
    }

    let stored: BTreeMap<&str, &DiscoveredMember> =
        stored_members.iter().map(|m| (m.key.as_str(), m)).collect();
    let found: BTreeMap<&str, &DiscoveredMember> =
        found_members.iter().map(|m| (m.key.as_str(), m)).collect();
    for (key, now) in &found {
        let Some(before) = stored.get(key) else {
            changes.push(Change::Joined {
                key: (*key).to_string(),
            });
            continue;
        };
        let mut touched = false;
        if before.parent_id != now.parent_id {
            changes.push(Change::Moved {
                key: (*key).to_string(),
                from: before.parent_id.clone(),
                to: now.parent_id.clone(),
            });
            touched = true;
        }
        if before.state != now.state {
            changes.push(Change::StateChanged {
                key: (*key).to_string(),
                from: before.state,
                to: now.state,
            });
            touched = true;
        }
        if before.name != now.name {
            changes.push(Change::Renamed {
                key: (*key).to_string(),
                from: before.name.clone(),
                to: now.name.clone(),
            });
            touched = true;
        }
        if !touched && before != now {
            changes.push(Change::Updated {
                key: (*key).to_string(),
            });
        }
    }
    for key in stored.keys() {
        if !found.contains_key(key) {
            changes.push(Change::Left {
                key: (*key).to_string(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::organization::hierarchy::{AWS_MAX_DEPTH, NodeKind};

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

    fn member(key: &str, parent: &str) -> DiscoveredMember {
        DiscoveredMember {
            key: key.into(),
            number: None,
            name: format!("account {key}"),
            email: Some(format!("{key}@example.com")),
            state: MemberState::Active,
            joined_method: Some("CREATED".into()),
            joined_at: None,
            parent_id: parent.into(),
            is_management: false,
            delegated_admin_services: vec![],
        }
    }

    fn nodes() -> Vec<DiscoveredNode> {
        vec![
            node("r-1", None, "Root"),
            node("ou-a", Some("r-1"), "A"),
            node("ou-b", Some("r-1"), "B"),
        ]
    }

    #[test]
    fn an_unchanged_organization_yields_no_change() {
        let tree = Hierarchy::build(nodes(), AWS_MAX_DEPTH).unwrap();
        let members = vec![
            member("111111111111", "ou-a"),
            member("222222222222", "r-1"),
        ];
        assert!(diff(&tree, &members, &nodes(), &members).is_empty());
    }

    #[test]
    fn joins_moves_state_changes_renames_and_departures_are_each_reported() {
        let tree = Hierarchy::build(nodes(), AWS_MAX_DEPTH).unwrap();
        let before = vec![
            member("111111111111", "ou-a"),
            member("222222222222", "ou-a"),
            member("333333333333", "ou-a"),
            member("444444444444", "ou-a"),
        ];
        let mut moved = member("111111111111", "ou-b");
        moved.name = "renamed".into();
        let mut suspended = member("222222222222", "ou-a");
        suspended.state = MemberState::Suspended;
        let mut admin = member("333333333333", "ou-a");
        admin.delegated_admin_services = vec!["guardduty.amazonaws.com".into()];
        let after = vec![moved, suspended, admin, member("555555555555", "r-1")];
        let changes = diff(&tree, &before, &nodes(), &after);
        let kinds: Vec<_> = changes.iter().map(Change::kind).collect();
        assert_eq!(
            kinds,
            vec![
                "moved",
                "renamed",
                "state_changed",
                "updated",
                "joined",
                "left"
            ]
        );
        assert!(changes.contains(&Change::Left {
            key: "444444444444".into()
        }));
    }

    #[test]
    fn what_lies_under_an_unreadable_node_is_kept_not_reported_gone() {
        let mut stored_nodes = nodes();
        stored_nodes.push(node("ou-a1", Some("ou-a"), "A1"));
        let tree = Hierarchy::build(stored_nodes.clone(), AWS_MAX_DEPTH).unwrap();
        let before = vec![
            member("111111111111", "ou-a"),
            member("222222222222", "ou-a1"),
            member("333333333333", "ou-b"),
            member("444444444444", "ou-a"),
        ];
        // ou-a could not be listed; one of its accounts is now found under ou-b.
        let mut found_nodes = nodes();
        let mut found = vec![
            member("333333333333", "ou-b"),
            member("444444444444", "ou-b"),
        ];
        keep_unreadable(
            &tree,
            &before,
            &["ou-a".to_string()],
            &mut found_nodes,
            &mut found,
        );
        let changes = diff(&tree, &before, &found_nodes, &found);
        assert_eq!(
            changes,
            vec![Change::Moved {
                key: "444444444444".into(),
                from: "ou-a".into(),
                to: "ou-b".into()
            }]
        );
        assert_eq!(found.len(), 4, "nothing lost, nothing doubled");
        // Without the unreadable node named, the same discovery reports departures.
        let mut bare = vec![member("333333333333", "ou-b")];
        let mut bare_nodes = nodes();
        keep_unreadable(&tree, &before, &[], &mut bare_nodes, &mut bare);
        assert!(
            diff(&tree, &before, &bare_nodes, &bare)
                .iter()
                .any(|c| c.kind() == "left")
        );
    }

    #[test]
    fn a_renamed_or_new_ou_is_a_hierarchy_change() {
        let tree = Hierarchy::build(nodes(), AWS_MAX_DEPTH).unwrap();
        let mut found = nodes();
        found[1].name = "A2".into();
        found.push(node("ou-c", Some("ou-b"), "C"));
        found.remove(2);
        found.push(node("ou-b", Some("r-1"), "B"));
        assert_eq!(
            diff(&tree, &[], &found, &[]),
            vec![Change::HierarchyChanged {
                added: 1,
                removed: 0,
                changed: 1
            }]
        );
    }
}
