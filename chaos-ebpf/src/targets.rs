//! Who a program acts for: the deepest targeted ancestor cgroup of the task or packet, found
//! by one hash lookup per cgroup depth where a target sits.
use aya_ebpf::maps::{Array, HashMap};
use chaos_common::net::TargetSlots;
use chaos_common::storage::MAX_LEVELS;

/// The slot list of the deepest cgroup in `targets` among the ancestors `ancestor(level)`
/// returns (0 when there is none at that depth), at the depths set in `levels[0]`.
#[inline(always)]
pub fn deepest(
    levels: &Array<u32>,
    targets: &HashMap<u64, TargetSlots>,
    ancestor: impl Fn(i32) -> u64,
) -> Option<TargetSlots> {
    let depths = *levels.get(0)?;
    if depths == 0 {
        return None;
    }
    for i in 0..MAX_LEVELS {
        let level = MAX_LEVELS - 1 - i;
        if depths & (1 << level) == 0 {
            continue;
        }
        let id = ancestor(level as i32);
        if id == 0 {
            continue;
        }
        // SAFETY: the value is copied out.
        if let Some(slots) = unsafe { targets.get(id) } {
            return Some(*slots);
        }
    }
    None
}
