//! Network faults in the kernel: parameters at a slot, attachments per cgroup, and each
//! attachment's list of slots.
use aya::programs::CgroupSkbAttachType;
use chaos_common::net::{TargetSlots, DIR_EGRESS, DIR_INGRESS, SLOTS_PER_TARGET};
use chaos_proto::v1::Fault;
use tracing::warn;

use super::{Armed, Engine, Kernel};
use crate::{
    error::Error,
    faults::{network, window::Window},
    journal::CgroupRef,
    kernel::links,
};

impl Engine {
    /// Writes a network fault into the kernel: parameters, attachments, then each
    /// attachment's slots. On failure nothing of it stays.
    pub(super) fn arm_network(&mut self, armed: &Armed, window: Window) -> Result<(), Error> {
        let Some((slot, plan)) = armed.network() else {
            return Ok(());
        };
        let Some(kernel) = self.kernel.as_mut() else {
            return Err(Error::FailedPrecondition(
                "network programs not loaded".into(),
            ));
        };
        let window_ns = (
            kernel.clock.from_unix(window.start_unix_ns),
            kernel.clock.from_unix(window.end_unix_ns),
        );
        let mut result = network::arm(&mut kernel.net, slot, plan, window_ns).and_then(|fresh| {
            if fresh {
                if let Some(shape) = kernel.shape.as_mut() {
                    shape.maps.reset(slot)?;
                }
            }
            Ok(())
        });
        for cgroup in &armed.cgroups {
            result = result.and_then(|()| {
                kernel
                    .links
                    .attach(&mut kernel.ebpf, cgroup.id, &cgroup.path, &self.pins)
            });
        }
        let result = result
            .map_err(Error::from)
            .and_then(|()| self.sync_cgroups(&armed.cgroups, Some(armed)))
            .and_then(|()| self.sync_shaping(Some(armed)));
        if let Err(err) = result {
            if let Err(sync_err) = self.sync_shaping(None) {
                warn!(error = %sync_err, "undoing the impairments of a failed fault");
            }
            if let Err(sync_err) = self.sync_cgroups(&armed.cgroups, None) {
                warn!(error = %sync_err, "undoing the attachments of a failed fault");
            }
            if let Some(kernel) = self.kernel.as_mut() {
                let _ = network::disarm(&mut kernel.net, slot, plan);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Unlinks a network fault from its cgroups, clears its slot and frees it.
    pub(super) fn disarm_network(
        &mut self,
        id: &str,
        cgroups: &[CgroupRef],
        slot: u32,
        plan: &network::NetPlan,
    ) {
        // Attachments stop pointing at the slot first, then the slot is cleared.
        if let Err(err) = self.sync_shaping(None) {
            warn!(fault.id = %id, error = %err, "taking the fault's impairments out");
        }
        if let Err(err) = self.sync_cgroups(cgroups, None) {
            warn!(fault.id = %id, error = %err, "unlinking the fault from its cgroups");
        }
        if let Some(kernel) = self.kernel.as_mut() {
            if let Err(err) = network::disarm(&mut kernel.net, slot, plan) {
                warn!(fault.id = %id, error = %err, "disarming");
            }
        }
        self.free_slots.push(slot);
    }

    /// Rewrites each cgroup's per-direction slot lists from the armed faults (plus `extra`,
    /// not registered yet), and detaches cgroups left with no network fault.
    pub(super) fn sync_cgroups(
        &mut self,
        cgroups: &[CgroupRef],
        extra: Option<&Armed>,
    ) -> Result<(), Error> {
        let mut plans = Vec::new();
        for cgroup in cgroups {
            let on_it: Vec<(u32, &network::NetPlan)> = self
                .faults
                .values()
                .filter_map(|e| e.armed.as_ref())
                .chain(extra)
                .filter(|a| a.cgroups.iter().any(|c| c.id == cgroup.id))
                .filter_map(Armed::network)
                .collect();
            let mut per_direction = Vec::new();
            for (direction, _, attach_type) in links::DIRECTIONS {
                let bit = match attach_type {
                    CgroupSkbAttachType::Egress => DIR_EGRESS,
                    CgroupSkbAttachType::Ingress => DIR_INGRESS,
                };
                let tags: Vec<u32> = on_it
                    .iter()
                    .filter(|(_, plan)| plan.fault.directions & bit != 0)
                    .map(|(slot, _)| slot + 1)
                    .collect();
                if tags.len() > SLOTS_PER_TARGET {
                    return Err(Error::ResourceExhausted(format!(
                        "{} already has {SLOTS_PER_TARGET} {direction} network faults, the most one cgroup can have",
                        cgroup.path.display()
                    )));
                }
                let mut slots = TargetSlots::default();
                slots.slots[..tags.len()].copy_from_slice(&tags);
                per_direction.push((attach_type, slots));
            }
            plans.push((cgroup.id, on_it.is_empty(), per_direction));
        }
        let Some(kernel) = self.kernel.as_mut() else {
            return Ok(());
        };
        for (cgroup_id, unused, per_direction) in plans {
            if unused {
                kernel.links.detach(cgroup_id);
                continue;
            }
            for (attach_type, slots) in per_direction {
                kernel.net.write_slots(cgroup_id, attach_type, &slots)?;
            }
        }
        Ok(())
    }
}

/// Copies a slot's counters into the API view.
pub(super) fn refresh(fault: &mut Fault, slot: u32, kernel: &Kernel) {
    match kernel.net.counters(slot) {
        Ok(c) => super::show_counters(fault, &c, kernel.clock),
        Err(err) => warn!(fault.id = %fault.id, error = %err, "reading counters"),
    }
    super::shapearm::refresh(fault, slot, kernel);
}
