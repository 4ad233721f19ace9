//! Typed access to the storage errno maps shared with `chaos-ebpf/src/storage.rs`.
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray},
    Ebpf,
};
use chaos_common::storage::{
    PathKey, StorageCounters, StorageFault, COUNTERS_MAP, FAILURES_MAP, FAULTS_MAP, LEVELS_MAP,
    PATHS_MAP, TARGETS_MAP,
};

use super::{
    netmaps::{ignore_missing, map_err, per_cpu_zero, possible_cpus, sum_counters, take},
    targetmaps::TargetMaps,
    Error,
};

/// The storage maps, owned.
pub struct StorageMaps {
    /// Who: targeted cgroups and their depths.
    pub targets: TargetMaps,
    faults: Array<MapData, StorageFault>,
    paths: HashMap<MapData, PathKey, u8>,
    counters: PerCpuArray<MapData, StorageCounters>,
    failures: Array<MapData, u64>,
    cpus: usize,
}

impl StorageMaps {
    /// Takes the storage maps out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, Error> {
        Ok(Self {
            targets: TargetMaps::take(ebpf, LEVELS_MAP, TARGETS_MAP)?,
            faults: take(ebpf, FAULTS_MAP)?,
            paths: take(ebpf, PATHS_MAP)?,
            counters: take(ebpf, COUNTERS_MAP)?,
            failures: take(ebpf, FAILURES_MAP)?,
            cpus: possible_cpus(COUNTERS_MAP)?,
        })
    }

    /// Writes a fault's parameters and zeroes its counters, before any target points at it.
    pub fn write_fault(&mut self, slot: u32, fault: &StorageFault) -> Result<(), Error> {
        let zero = per_cpu_zero(COUNTERS_MAP, self.cpus)?;
        self.counters
            .set(slot, zero, 0)
            .map_err(map_err(COUNTERS_MAP))?;
        self.failures
            .set(slot, 0, 0)
            .map_err(map_err(FAILURES_MAP))?;
        self.faults.set(slot, fault, 0).map_err(map_err(FAULTS_MAP))
    }

    /// The parameters at a slot.
    pub fn fault(&self, slot: u32) -> Result<StorageFault, Error> {
        self.faults.get(&slot, 0).map_err(map_err(FAULTS_MAP))
    }

    /// Clears a slot's parameters (after no target points at it any more).
    pub fn clear_fault(&mut self, slot: u32) -> Result<(), Error> {
        self.faults
            .set(slot, StorageFault::default(), 0)
            .map_err(map_err(FAULTS_MAP))
    }

    pub fn add_path(&mut self, key: &PathKey) -> Result<(), Error> {
        self.paths.insert(key, 1, 0).map_err(map_err(PATHS_MAP))
    }

    /// Removes a path entry; a missing one is fine (undo must be repeatable).
    pub fn remove_path(&mut self, key: &PathKey) -> Result<(), Error> {
        ignore_missing(self.paths.remove(key)).map_err(map_err(PATHS_MAP))
    }

    /// A slot's counters, summed over CPUs.
    pub fn counters(&self, slot: u32) -> Result<StorageCounters, Error> {
        let values = self.counters.get(&slot, 0).map_err(map_err(COUNTERS_MAP))?;
        Ok(sum_counters(values.iter()))
    }
}
