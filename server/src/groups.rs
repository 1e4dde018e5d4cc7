//! Object groups (KMIP 1.1+, Object Group Member in Locate): which member
//! of a group is its *default* one, and which groups get fresh members made
//! on demand.
//!
//! kmipd's policy for the default member is round-robin: members in
//! creation order, and the default one is the first member created after
//! the one a Get last retrieved (wrapping to the oldest). The position is
//! kept in memory per tenant (the caller's access group) and object group,
//! from the first Locate that finds members of a group's default one, so
//! one tenant's Gets never move another's; a restart begins again at the
//! oldest member. Fresh members are served oldest first.

use crate::config::ObjectGroupConfig;
use crate::model::{names, ManagedObject};
use std::collections::HashMap;
use std::sync::RwLock;

/// Most groups whose default-member position is tracked; past it, further
/// groups are served oldest first without a position (memory stays bounded
/// whatever clients name their groups).
pub const MAX_TRACKED_GROUPS: usize = 10_000;

/// Longest object group name whose position is tracked (as configuration
/// allows for on-demand groups).
pub const MAX_GROUP_NAME: usize = 256;

/// A tracked position: the caller's access group and the object group.
type Slot = (String, String);

/// Object-group state shared by every connection.
#[derive(Debug, Default)]
pub struct Groups {
    pools: Vec<ObjectGroupConfig>,
    /// Group → creation stamp of the member a Get last retrieved (`None`:
    /// tracked, nothing retrieved since).
    cursors: RwLock<HashMap<Slot, Option<i64>>>,
}

impl Groups {
    /// The state for the configured on-demand groups.
    pub fn new(pools: Vec<ObjectGroupConfig>) -> Self {
        Self {
            pools,
            cursors: RwLock::default(),
        }
    }

    /// The on-demand configuration of group `name`, if any.
    pub fn pool(&self, name: &str) -> Option<&ObjectGroupConfig> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Starts tracking the default member of object group `group` for the
    /// tenant `tenant` (a Locate found members of it) and returns the
    /// creation stamp of the member last retrieved.
    pub fn track(&self, tenant: &str, group: &str) -> Option<i64> {
        if group.len() > MAX_GROUP_NAME {
            return None;
        }
        let slot = (tenant.to_owned(), group.to_owned());
        if let Some(c) = self.read().get(&slot) {
            return *c;
        }
        let mut w = self.cursors.write().unwrap_or_else(|p| p.into_inner());
        if w.len() < MAX_TRACKED_GROUPS {
            w.entry(slot.clone()).or_insert(None);
        }
        w.get(&slot).copied().flatten()
    }

    /// A Get by a caller of tenant `tenant` retrieved `o`: a tracked group
    /// of that tenant it belongs to moves its default past it. Objects
    /// outside tracked groups cost one map lookup under a shared lock
    /// (vCenter's keys have no group and skip even that).
    pub fn retrieved(&self, tenant: &str, o: &ManagedObject) {
        let mut groups = o
            .all(names::OBJECT_GROUP)
            .filter_map(|a| a.text())
            .peekable();
        if groups.peek().is_none() {
            return;
        }
        let tracked: Vec<Slot> = {
            let r = self.read();
            groups
                .map(|g| (tenant.to_owned(), g.to_owned()))
                .filter(|slot| r.contains_key(slot))
                .collect()
        };
        if tracked.is_empty() {
            return;
        }
        let mut w = self.cursors.write().unwrap_or_else(|p| p.into_inner());
        for slot in tracked {
            if let Some(c) = w.get_mut(&slot) {
                *c = Some(o.created);
            }
        }
    }

    /// How many positions are tracked.
    pub fn tracked(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Slot, Option<i64>>> {
        self.cursors.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Orders group members for Object Group Member: oldest first, and for the
/// default member of a group whose last retrieved member is `after`, the
/// members created after it first (round-robin). `found` holds
/// (creation stamp, identifier).
pub fn order_members(found: &mut [(i64, String)], after: Option<i64>) {
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    if let Some(after) = after {
        let k = found.partition_point(|x| x.0 <= after);
        found.rotate_left(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmip::messages::attributes::Attribute;
    use kmip::tables::ObjectType;
    use kmip::Value;

    fn member(id: &str, created: i64, group: Option<&str>) -> ManagedObject {
        ManagedObject {
            id: id.into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            owner: "o".into(),
            group: "default".into(),
            creator: None,
            revision: 1,
            attributes: group
                .map(|g| {
                    vec![Attribute::new(
                        names::OBJECT_GROUP,
                        Value::TextString(g.into()),
                    )]
                })
                .unwrap_or_default(),
            material: None,
            archived: false,
            created,
        }
    }

    #[test]
    fn default_member_goes_round_robin() {
        let mut found = vec![(30, "c".to_owned()), (10, "a".into()), (20, "b".into())];
        order_members(&mut found, None);
        let ids: Vec<_> = found.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"], "oldest first");
        order_members(&mut found, Some(10));
        let ids: Vec<_> = found.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"], "after the last retrieved, then wrap");
        order_members(&mut found, Some(30));
        assert_eq!(found[0].1, "a", "wraps to the oldest");
    }

    #[test]
    fn only_tracked_groups_move_and_only_on_their_members() {
        let g = Groups::default();
        g.retrieved("t", &member("x", 5, Some("g1")));
        assert_eq!(
            g.track("t", "g1"),
            None,
            "an untracked group keeps no position"
        );
        g.retrieved("t", &member("a", 10, Some("g1")));
        assert_eq!(g.track("t", "g1"), Some(10));
        g.retrieved("t", &member("b", 20, Some("other")));
        g.retrieved("t", &member("c", 30, None));
        assert_eq!(
            g.track("t", "g1"),
            Some(10),
            "other groups' Gets do not move it"
        );
        assert_eq!(
            g.read().len(),
            1,
            "ungrouped and untracked objects add nothing"
        );
        // Another tenant's group of the same name is its own.
        g.retrieved("u", &member("d", 40, Some("g1")));
        assert_eq!(
            g.track("t", "g1"),
            Some(10),
            "tenant u's Get does not move t's"
        );
        assert_eq!(g.track("u", "g1"), None);
        g.retrieved("u", &member("d", 40, Some("g1")));
        assert_eq!(g.track("u", "g1"), Some(40));
        assert_eq!(g.track("t", "g1"), Some(10));
        // Names too long are not tracked.
        let long = "n".repeat(MAX_GROUP_NAME + 1);
        assert_eq!(g.track("t", &long), None);
        assert!(!g.read().keys().any(|(_, n)| n == &long));
    }

    #[test]
    fn tracked_groups_are_bounded() {
        let g = Groups::default();
        for i in 0..MAX_TRACKED_GROUPS + 10 {
            g.track("t", &format!("g{i}"));
        }
        assert_eq!(g.read().len(), MAX_TRACKED_GROUPS);
        let late = format!("g{}", MAX_TRACKED_GROUPS + 5);
        g.retrieved("t", &member("a", 1, Some(&late)));
        assert_eq!(g.track("t", &late), None);
    }
}
