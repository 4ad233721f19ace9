//! The "who" maps of programs that find their target by ancestor cgroup (storage errno,
//! network impairments): the depths targets sit at, and each targeted cgroup's fault slots.
use aya::{
    maps::{Array, HashMap, MapData},
    Ebpf,
};
use chaos_common::net::TargetSlots;

use super::{
    netmaps::{ignore_missing, map_err, take},
    Error,
};

/// One program family's levels and targets maps.
pub struct TargetMaps {
    levels: Array<MapData, u32>,
    targets: HashMap<MapData, u64, TargetSlots>,
    levels_name: &'static str,
    targets_name: &'static str,
}

impl TargetMaps {
    pub fn take(
        ebpf: &mut Ebpf,
        levels_name: &'static str,
        targets_name: &'static str,
    ) -> Result<Self, Error> {
        Ok(Self {
            levels: take(ebpf, levels_name)?,
            targets: take(ebpf, targets_name)?,
            levels_name,
            targets_name,
        })
    }

    /// Makes the maps hold exactly `lists` at depths `levels`: new lists before the depths
    /// that make the programs look at them, stale cgroups after, so no event meets half a
    /// change.
    pub fn replace(&mut self, levels: u32, lists: &[(u64, TargetSlots)]) -> Result<(), Error> {
        for (id, slots) in lists {
            self.targets
                .insert(id, slots, 0)
                .map_err(map_err(self.targets_name))?;
        }
        let old: Vec<u64> = self.targets.keys().filter_map(Result::ok).collect();
        self.levels
            .set(0, levels, 0)
            .map_err(map_err(self.levels_name))?;
        for id in old {
            if !lists.iter().any(|(listed, _)| *listed == id) {
                ignore_missing(self.targets.remove(&id)).map_err(map_err(self.targets_name))?;
            }
        }
        Ok(())
    }
}
