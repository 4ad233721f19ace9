//! Typed access to the network impairment maps shared with `chaos-ebpf/src/shape.rs`.
use aya::{
    maps::{Array, MapData, PerCpuArray},
    Ebpf,
};
use chaos_common::shape::{
    JitterTable, JitterTables, ShapeCounters, ShapeSlots, CLOCKS_MAP, COUNTERS_MAP, IFACES_MAP,
    JITTER_MAP, LEVELS_MAP, MAX_IFACES, TABLES_MAP, TARGETS_MAP,
};

use super::{
    netmaps::{map_err, per_cpu_zero, possible_cpus, span, take},
    targetmaps::TargetMaps,
    Error,
};

/// The impairment maps, owned.
pub struct ShapeMaps {
    /// Who: targeted cgroups and their depths.
    pub targets: TargetMaps,
    /// Ingress routes: slot lists by interface tag − 1.
    ifaces: Array<MapData, ShapeSlots>,
    clocks: Array<MapData, u64>,
    jitter: PerCpuArray<MapData, i64>,
    counters: PerCpuArray<MapData, ShapeCounters>,
    cpus: usize,
}

impl ShapeMaps {
    /// Takes the maps out of the loaded object and writes the jitter tables.
    pub fn take(ebpf: &mut Ebpf, tables: &JitterTables) -> Result<Self, Error> {
        let mut map: Array<MapData, JitterTable> = take(ebpf, TABLES_MAP)?;
        for (index, table) in (0..).zip(tables) {
            map.set(index, table, 0).map_err(map_err(TABLES_MAP))?;
        }
        Ok(Self {
            targets: TargetMaps::take(ebpf, LEVELS_MAP, TARGETS_MAP)?,
            ifaces: take(ebpf, IFACES_MAP)?,
            clocks: take(ebpf, CLOCKS_MAP)?,
            jitter: take(ebpf, JITTER_MAP)?,
            counters: take(ebpf, COUNTERS_MAP)?,
            cpus: possible_cpus(COUNTERS_MAP)?,
        })
    }

    /// Sets the faults acting on the ingress route tagged `tag` (1-based).
    pub fn set_iface(&mut self, tag: u16, slots: &ShapeSlots) -> Result<(), Error> {
        let index = u32::from(tag).wrapping_sub(1);
        if index >= MAX_IFACES {
            return Err(Error::Full(format!(
                "ingress route tag {tag} is past the {MAX_IFACES} the map holds"
            )));
        }
        self.ifaces
            .set(index, slots, 0)
            .map_err(map_err(IFACES_MAP))
    }

    /// Starts a slot afresh: idle bottlenecks, no previous jitter, zero counters.
    pub fn reset(&mut self, slot: u32) -> Result<(), Error> {
        for clock in [slot, chaos_common::net::MAX_FAULTS + slot] {
            self.clocks.set(clock, 0, 0).map_err(map_err(CLOCKS_MAP))?;
        }
        self.jitter
            .set(slot, per_cpu_zero(JITTER_MAP, self.cpus)?, 0)
            .map_err(map_err(JITTER_MAP))?;
        self.counters
            .set(slot, per_cpu_zero(COUNTERS_MAP, self.cpus)?, 0)
            .map_err(map_err(COUNTERS_MAP))
    }

    /// A slot's counters, summed over CPUs (first/last: earliest and latest).
    pub fn counters(&self, slot: u32) -> Result<ShapeCounters, Error> {
        let values = self.counters.get(&slot, 0).map_err(map_err(COUNTERS_MAP))?;
        let mut sum = ShapeCounters::default();
        for cpu in values.iter() {
            sum.seen += cpu.seen;
            sum.matched += cpu.matched;
            sum.delayed += cpu.delayed;
            sum.dropped += cpu.dropped;
            sum.corrupted += cpu.corrupted;
            sum.duplicated += cpu.duplicated;
            sum.affected += cpu.affected;
            (sum.first_ns, sum.last_ns) =
                span((sum.first_ns, sum.last_ns), (cpu.first_ns, cpu.last_ns));
        }
        Ok(sum)
    }
}
