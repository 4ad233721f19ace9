//! Storage errno faults in the kernel: parameters and path set at a slot, each targeted
//! cgroup's slot list, the depths targets sit at, and the programs the operations need.
use std::collections::BTreeMap;

use chaos_common::storage::{PathKey, StorageFault};
use chaos_proto::v1::{Fault, Outcome};
use tracing::warn;

use super::{Action, Armed, Engine, Kernel};
use crate::{
    error::Error,
    faults::{
        errno::{Inode, Plan},
        window::Window,
    },
    journal::CgroupRef,
};

/// What an armed errno fault holds.
#[derive(Clone, Debug)]
pub(super) struct ErrnoArmed {
    pub slot: u32,
    pub plan: Plan,
    pub inodes: Vec<Inode>,
}

pub(super) fn path_keys(slot: u32, inodes: &[Inode]) -> impl Iterator<Item = PathKey> + '_ {
    inodes.iter().map(move |i| PathKey {
        slot,
        dev: i.dev,
        ino: i.ino,
    })
}

impl Engine {
    /// Writes an errno fault into the kernel: parameters and paths, then the targets' slot
    /// lists and the programs. `fresh` is false when re-arming after a restart, which keeps
    /// the counters and the failure count. On failure nothing of it stays.
    pub(super) fn arm_errno(
        &mut self,
        armed: &Armed,
        window: Window,
        fresh: bool,
    ) -> Result<(), Error> {
        let Action::Errno(errno) = &armed.action else {
            return Ok(());
        };
        let kernel = self.kernel.as_mut().ok_or_else(not_loaded)?;
        let storage = kernel.storage.as_mut().ok_or_else(not_loaded)?;
        let fault = StorageFault {
            start_ns: kernel.clock.from_unix(window.start_unix_ns),
            end_ns: kernel.clock.from_unix(window.end_unix_ns),
            threshold: errno.plan.threshold,
            max_failures: errno.plan.max_failures,
            ops: errno.plan.ops,
            errno: errno.plan.errno,
        };
        let mut result = if fresh || storage.maps.fault(errno.slot)? != fault {
            storage.maps.write_fault(errno.slot, &fault)
        } else {
            Ok(())
        };
        for key in path_keys(errno.slot, &errno.inodes) {
            result = result.and_then(|()| storage.maps.add_path(&key));
        }
        let result = result
            .map_err(Error::from)
            .and_then(|()| self.sync_storage(Some(armed)));
        if let Err(err) = result {
            if let Err(sync_err) = self.sync_storage(None) {
                warn!(error = %sync_err, "undoing the targets of a failed storage fault");
            }
            self.clear_errno(errno);
            return Err(err);
        }
        Ok(())
    }

    /// Takes an errno fault out of the kernel (it is no longer among the armed faults):
    /// targets first, then its slot.
    pub(super) fn disarm_errno(&mut self, id: &str, errno: &ErrnoArmed) {
        if let Err(err) = self.sync_storage(None) {
            warn!(fault.id = %id, error = %err, "unlinking the fault from its cgroups");
        }
        self.clear_errno(errno);
        self.free_storage_slots.push(errno.slot);
    }

    fn clear_errno(&mut self, errno: &ErrnoArmed) {
        let Some(storage) = self.kernel.as_mut().and_then(|k| k.storage.as_mut()) else {
            return;
        };
        for key in path_keys(errno.slot, &errno.inodes) {
            if let Err(err) = storage.maps.remove_path(&key) {
                warn!(error = %err, "removing a storage path entry");
            }
        }
        if let Err(err) = storage.maps.clear_fault(errno.slot) {
            warn!(error = %err, "clearing a storage fault slot");
        }
    }

    /// Rewrites every targeted cgroup's slot list, the target depths and the attached
    /// programs from the armed errno faults (plus `extra`, not registered yet); cgroups left
    /// with none are removed.
    pub(super) fn sync_storage(&mut self, extra: Option<&Armed>) -> Result<(), Error> {
        let mut per_cgroup: BTreeMap<u64, (Vec<u32>, &CgroupRef)> = BTreeMap::new();
        let mut ops = 0;
        for armed in self
            .faults
            .values()
            .filter_map(|e| e.armed.as_ref())
            .chain(extra)
        {
            let Action::Errno(errno) = &armed.action else {
                continue;
            };
            ops |= errno.plan.ops;
            for cgroup in &armed.cgroups {
                let entry = per_cgroup.entry(cgroup.id).or_insert((Vec::new(), cgroup));
                entry.0.push(errno.slot + 1);
            }
        }
        let (levels, lists) = self.target_lists(&per_cgroup, "storage errno")?;
        let Some(kernel) = self.kernel.as_mut() else {
            return Ok(());
        };
        let Kernel {
            ebpf,
            storage: Some(storage),
            ..
        } = kernel
        else {
            return Ok(());
        };
        // Lists first, programs last, so a fault is whole before the first call meets it.
        storage.maps.targets.replace(levels, &lists)?;
        storage.hooks.sync(ebpf, &self.pins, ops)?;
        Ok(())
    }
}

fn not_loaded() -> Error {
    Error::FailedPrecondition("storage.errno: the storage programs are not loaded".into())
}

/// Copies a slot's counters and the routes used into the API view.
pub(super) fn refresh(fault: &mut Fault, errno: &ErrnoArmed, kernel: &Kernel) {
    let Some(storage) = kernel.storage.as_ref() else {
        return;
    };
    match storage.maps.counters(errno.slot) {
        Ok(c) => super::show_counters(fault, &c, kernel.clock),
        Err(err) => warn!(fault.id = %fault.id, error = %err, "reading counters"),
    }
    fault.outcome = Some(Outcome {
        backends: storage.hooks.describe(errno.plan.ops),
        ..Outcome::default()
    });
}
