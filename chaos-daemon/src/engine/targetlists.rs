//! The slot list of every targeted cgroup, for programs that look a packet's or a call's
//! ancestor cgroups up (storage errno, network impairments).
use std::collections::BTreeMap;

use chaos_common::{
    net::{TargetSlots, SLOTS_PER_TARGET},
    storage::MAX_LEVELS,
};

use super::Engine;
use crate::{error::Error, journal::CgroupRef};

/// Target depths (one bit each) and each cgroup's list.
pub(super) type Lists = (u32, Vec<(u64, TargetSlots)>);

impl Engine {
    /// Folds each targeted cgroup's slots with those of the targeted cgroups above it (the
    /// programs take the deepest match's list only), and finds the depths they sit at.
    /// `what` names the fault family in errors.
    pub(super) fn target_lists(
        &self,
        per_cgroup: &BTreeMap<u64, (Vec<u32>, &CgroupRef)>,
        what: &str,
    ) -> Result<Lists, Error> {
        let mut levels = 0u32;
        let mut lists = Vec::new();
        for (id, (own, cgroup)) in per_cgroup {
            let mut tags = own.clone();
            for (other, (their, above)) in per_cgroup {
                if other != id && cgroup.path.starts_with(&above.path) {
                    tags.extend(their.iter().filter(|t| !own.contains(t)));
                }
            }
            if tags.len() > SLOTS_PER_TARGET {
                return Err(Error::ResourceExhausted(format!(
                    "{} and the cgroups above it already have {SLOTS_PER_TARGET} {what} \
                     faults, the most one cgroup can have",
                    cgroup.path.display()
                )));
            }
            levels |= 1 << self.cgroup_level(cgroup, what)?;
            let mut slots = TargetSlots::default();
            slots.slots[..tags.len()].copy_from_slice(&tags);
            lists.push((*id, slots));
        }
        Ok((levels, lists))
    }

    /// A cgroup's depth below the v2 root: the level `bpf_get_current_ancestor_cgroup_id`
    /// and `bpf_skb_ancestor_cgroup_id` take.
    fn cgroup_level(&self, cgroup: &CgroupRef, what: &str) -> Result<u32, Error> {
        let depth = self
            .hier
            .as_ref()
            .and_then(|h| cgroup.path.strip_prefix(&h.mount).ok())
            .map(|rel| rel.components().count() as u32)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "{} is not below the cgroup v2 mount",
                    cgroup.path.display()
                ))
            })?;
        if depth >= MAX_LEVELS {
            return Err(Error::FailedPrecondition(format!(
                "{} is {depth} levels deep; {what} faults reach cgroups up to {} levels",
                cgroup.path.display(),
                MAX_LEVELS - 1
            )));
        }
        Ok(depth)
    }
}
