//! Network impairments in the kernel: who is targeted (the ancestor-cgroup lists of the
//! impairment program) and which interfaces carry `fq` and the program's filter.
use std::collections::{BTreeMap, BTreeSet};

use aya::programs::SchedClassifier;
use chaos_proto::v1::Fault;
use tracing::warn;

use super::{Armed, Engine, Kernel};
use crate::{
    cgroupfs,
    error::Error,
    faults::network::NetPlan,
    journal::CgroupRef,
    kernel::{
        ifaces::{self, Iface},
        loader,
        shapemaps::ShapeMaps,
        shaper::{self, Shapers},
    },
};
use chaos_common::{
    net::{TargetSlots, SHAPE_EGRESS, SHAPE_INGRESS, SLOTS_PER_TARGET},
    shape::MAX_IFACES,
};

/// The impairment program's maps and the interfaces it is attached to.
pub struct ShapeKernel {
    pub maps: ShapeMaps,
    pub shapers: Shapers,
    /// Ingress route tags whose lists are set.
    pub tags: BTreeSet<u16>,
}

impl Engine {
    /// Why impairments cannot run here, if they cannot.
    pub(super) fn refuse_unshapeable(&self, plan: &NetPlan) -> Result<(), Error> {
        let loaded = self.kernel.as_ref().is_some_and(|k| k.shape.is_some());
        match (&self.probe.impairment_refusal(paced(plan)), loaded) {
            (None, true) => Ok(()),
            (Some(why), _) => Err(Error::FailedPrecondition(format!(
                "{}: not supported on this node: {why}",
                plan.kind
            ))),
            (None, false) => Err(Error::FailedPrecondition(format!(
                "{}: the impairment program is not loaded",
                plan.kind
            ))),
        }
    }

    /// The interfaces a new fault's impairments need, found from the target's processes:
    /// its own for egress, the other ends of its veths for ingress, tagged (a device
    /// another fault already uses keeps its tag).
    pub(super) fn shape_ifaces(
        &self,
        cgroups: &[CgroupRef],
        plan: &NetPlan,
    ) -> Result<Vec<Iface>, Error> {
        let mut pids = Vec::new();
        for cgroup in cgroups {
            pids.extend(cgroupfs::procs::pids(&cgroup.path)?);
        }
        let (own, mut ingress) =
            ifaces::interfaces_of(pids, plan.fault.shape & SHAPE_INGRESS != 0)?;
        let known: Vec<Iface> = self
            .faults
            .values()
            .filter_map(|e| e.armed.as_ref()?.network())
            .flat_map(|(_, p)| p.ifaces.iter().filter(|i| i.tag != 0).cloned())
            .collect();
        let mut used: Vec<u16> = known.iter().map(|i| i.tag).collect();
        for iface in &mut ingress {
            iface.tag = match known.iter().find(|k| k.same_device(iface)) {
                Some(k) => k.tag,
                None => {
                    let tag = (1..=MAX_IFACES as u16)
                        .find(|t| !used.contains(t))
                        .ok_or_else(|| {
                            Error::ResourceExhausted(format!(
                                "all {MAX_IFACES} ingress routes are in use"
                            ))
                        })?;
                    used.push(tag);
                    tag
                }
            };
        }
        let mut all = if plan.fault.shape & SHAPE_EGRESS != 0 {
            own
        } else {
            Vec::new()
        };
        all.extend(ingress);
        Ok(all)
    }

    /// Rewrites the impairment program's target lists (cgroups for egress, interface tags for
    /// ingress) and the shaped interfaces from the armed faults (plus `extra`, not
    /// registered yet). Lists go first, so a new interface meets whole faults; interfaces no
    /// fault needs are put back last.
    pub(super) fn sync_shaping(&mut self, extra: Option<&Armed>) -> Result<(), Error> {
        let mut per_cgroup: BTreeMap<u64, (Vec<u32>, &CgroupRef)> = BTreeMap::new();
        let mut per_tag: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
        let mut wanted: Vec<(Iface, bool)> = Vec::new();
        for armed in self
            .faults
            .values()
            .filter_map(|e| e.armed.as_ref())
            .chain(extra)
        {
            let Some((slot, plan)) = armed.network() else {
                continue;
            };
            if plan.fault.shape == 0 {
                continue;
            }
            if plan.fault.shape & SHAPE_EGRESS != 0 {
                for cgroup in &armed.cgroups {
                    let entry = per_cgroup.entry(cgroup.id).or_insert((Vec::new(), cgroup));
                    entry.0.push(slot + 1);
                }
            }
            for iface in &plan.ifaces {
                if iface.tag != 0 {
                    per_tag.entry(iface.tag).or_default().push(slot + 1);
                }
                match wanted.iter_mut().find(|(i, _)| i == iface) {
                    Some((_, fq)) => *fq |= paced(plan),
                    None => wanted.push((iface.clone(), paced(plan))),
                }
            }
        }
        let (levels, lists) = self.target_lists(&per_cgroup, "network impairment")?;
        let Some(Kernel {
            ebpf,
            shape: Some(shape),
            ..
        }) = self.kernel.as_mut()
        else {
            return Ok(());
        };
        shape.maps.targets.replace(levels, &lists)?;
        for (tag, tags) in &per_tag {
            if tags.len() > SLOTS_PER_TARGET {
                return Err(Error::ResourceExhausted(format!(
                    "an interface already carries {SLOTS_PER_TARGET} ingress impairment \
                     faults, the most one can"
                )));
            }
            let mut slots = TargetSlots::default();
            slots.slots[..tags.len()].copy_from_slice(tags);
            shape.maps.set_iface(*tag, &slots)?;
        }
        let program: &SchedClassifier = ebpf
            .program(loader::NET_SHAPE)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::Internal("the impairment program is missing".into()))?;
        let fd = program
            .fd()
            .map_err(|err| Error::Internal(format!("the impairment program: {err}")))?;
        shape.shapers.sync(&wanted, std::os::fd::AsFd::as_fd(fd))?;
        // Tags no route uses any more: their filters are gone, their lists cleared.
        for tag in std::mem::take(&mut shape.tags) {
            if !per_tag.contains_key(&tag) {
                shape.maps.set_iface(tag, &TargetSlots::default())?;
            }
        }
        shape.tags = per_tag.keys().copied().collect();
        Ok(())
    }

    /// Puts back interfaces a previous daemon shaped that no adopted fault needs.
    pub(super) fn put_back_orphans(&mut self, recorded: &[Iface]) {
        let installed: Vec<Iface> = self
            .kernel
            .as_ref()
            .and_then(|k| k.shape.as_ref())
            .map(|s| s.shapers.installed().cloned().collect())
            .unwrap_or_default();
        for iface in recorded {
            if !installed.contains(iface) {
                let last = !installed.iter().any(|i| i.same_device(iface));
                shaper::remove_orphan(iface, last);
            }
        }
    }
}

/// Whether a fault gives departure times (delay, bandwidth), which need `fq`.
fn paced(plan: &NetPlan) -> bool {
    plan.fault.delay_ns != 0 || plan.fault.jitter_ns != 0 || plan.fault.rate_bits != 0
}

/// Adds a slot's impairment counters to the API view.
pub(super) fn refresh(fault: &mut Fault, slot: u32, kernel: &Kernel) {
    let Some(shape) = kernel.shape.as_ref() else {
        return;
    };
    let c = match shape.maps.counters(slot) {
        Ok(c) => c,
        Err(err) => {
            warn!(fault.id = %fault.id, error = %err, "reading impairment counters");
            return;
        }
    };
    let counters = fault.counters.get_or_insert_with(Default::default);
    counters.delayed = c.delayed;
    counters.queue_dropped = c.dropped;
    counters.corrupted = c.corrupted;
    counters.duplicated = c.duplicated;
    // Packets dropped by loss (the loss program's count) plus packets impaired here.
    counters.affected += c.affected;
    let first = kernel.clock.to_unix(c.first_ns);
    if first != 0 && (fault.first_affected_unix_ns == 0 || first < fault.first_affected_unix_ns) {
        fault.first_affected_unix_ns = first;
    }
    fault.last_affected_unix_ns = fault
        .last_affected_unix_ns
        .max(kernel.clock.to_unix(c.last_ns));
}
