//! An armed fault follows its pods: a pod that replaces a targeted one during the window
//! (same target, new UID) is taken in, one that goes away is marked gone, and each change
//! reaches `Watch` subscribers.
use chaos_proto::v1::{TargetReport, TargetStatus};
use tracing::{info, warn};

use super::{errnoarm::path_keys, Action, Armed, Engine};
use crate::{
    error::Error,
    faults::errno,
    journal::{CgroupRef, Record},
    targets::Cgroup,
};

/// What became of a pod the fault's target matched.
pub enum PodChange {
    /// Took it in (or already had it).
    Taken,
    /// Could not take it in: its report says why.
    Refused,
    /// The fault has ended: stop following.
    Ended,
}

impl Engine {
    /// Takes a newly matched pod's cgroup into fault `id` while it is armed; the journal
    /// record is rewritten first, so a restarted daemon keeps it too.
    pub fn add_pod(&mut self, id: &str, cgroup: Cgroup, mut report: TargetReport) -> PodChange {
        let Some(entry) = self.faults.get_mut(id) else {
            return PodChange::Ended;
        };
        if entry.armed.is_none() {
            return PodChange::Ended;
        }
        let known = entry
            .fault
            .targets
            .iter()
            .any(|r| r.uid == report.uid && r.status == TargetStatus::Targeted as i32);
        if known {
            return PodChange::Taken;
        }
        if entry.fault.cgroup_ids.contains(&cgroup.id) {
            // Already in the fault (a restarted daemon's first look): only the report is new.
            upsert(&mut entry.fault.targets, report);
            return PodChange::Taken;
        }
        let Some(mut armed) = entry.armed.take() else {
            return PodChange::Ended;
        };
        let request_hex = entry.request_hex.clone();
        let window = (entry.fault.start_at_unix_ns, entry.fault.end_at_unix_ns);
        let added = CgroupRef {
            id: cgroup.id,
            path: cgroup.path,
        };
        let result = self.take_in(id, &mut armed, &added, &request_hex, window);
        let change = match &result {
            Ok(()) => {
                report.reason = "picked up during the window".into();
                info!(fault.id = %id, pod = %report.pod, cgroup = %added.path.display(),
                    "pod taken in");
                PodChange::Taken
            }
            Err(err) => {
                warn!(fault.id = %id, pod = %report.pod, error = %err, "pod not taken in");
                report.status = TargetStatus::Unresolved as i32;
                report.reason = format!("matched during the window, not taken in: {err}");
                report.cgroup_id = 0;
                PodChange::Refused
            }
        };
        if let Some(entry) = self.faults.get_mut(id) {
            entry.armed = Some(armed);
            if result.is_ok() {
                entry.fault.cgroup_ids.push(added.id);
            }
            upsert(&mut entry.fault.targets, report);
        }
        self.emit(id);
        change
    }

    /// Marks a targeted pod of fault `id` gone (deleted, or no longer running); its cgroup
    /// stays in the fault until the end, harmless once empty.
    pub fn pod_gone(&mut self, id: &str, uid: &str, reason: &str) -> PodChange {
        let Some(entry) = self.faults.get_mut(id) else {
            return PodChange::Ended;
        };
        if entry.armed.is_none() {
            return PodChange::Ended;
        }
        let Some(report) = entry
            .fault
            .targets
            .iter_mut()
            .find(|r| r.uid == uid && r.status == TargetStatus::Targeted as i32)
        else {
            return PodChange::Taken;
        };
        report.status = TargetStatus::Gone as i32;
        report.reason = reason.to_string();
        report.since_unix_ns = crate::clock::unix_now_ns();
        info!(fault.id = %id, pod = %report.pod, reason, "pod gone");
        self.emit(id);
        PodChange::Taken
    }

    /// Adds `added` to `armed` (taken out of its entry meanwhile): journal first, then the
    /// kernel. On failure `armed` and the journal are as they were.
    fn take_in(
        &mut self,
        id: &str,
        armed: &mut Armed,
        added: &CgroupRef,
        request_hex: &str,
        (start_unix_ns, end_unix_ns): (u64, u64),
    ) -> Result<(), Error> {
        let record = |armed: &Armed| Record {
            id: id.to_string(),
            request_hex: request_hex.to_string(),
            cgroups: armed.cgroups.clone(),
            start_unix_ns,
            end_unix_ns,
            undo: armed.undo(),
        };
        let before = snapshot(armed);
        armed.cgroups.push(added.clone());
        let result = self.widen(armed, added).and_then(|()| {
            self.journal.write(&record(armed))?;
            self.apply(armed, added)
        });
        if result.is_err() {
            restore(armed, before);
            if let Err(err) = self.journal.write(&record(armed)) {
                warn!(fault.id = %id, error = %err, "restoring the journal record");
            }
            let _ = self.sync_cgroups(std::slice::from_ref(added), Some(armed));
            let _ = self.sync_shaping(Some(armed));
            let _ = self.sync_storage(Some(armed));
        }
        result
    }

    /// Extends what `armed` acts on to `added`, in memory: a network fault's interfaces, an
    /// errno fault's paths as the new pod sees them, an actor's cgroups.
    fn widen(&mut self, armed: &mut Armed, added: &CgroupRef) -> Result<(), Error> {
        let cgroups = armed.cgroups.clone();
        match &mut armed.action {
            Action::Network { plan, .. } => {
                if plan.fault.shape != 0 {
                    plan.ifaces = self.shape_ifaces(&cgroups, plan)?;
                }
                Ok(())
            }
            Action::Errno(e) => {
                for inode in errno::resolve(std::slice::from_ref(&added.path), &e.plan.path)? {
                    if !e.inodes.contains(&inode) {
                        e.inodes.push(inode);
                    }
                }
                Ok(())
            }
            Action::Actor(actor) => actor.add_cgroup(&added.path),
        }
    }

    /// Puts the widened fault in force for `added`.
    fn apply(&mut self, armed: &Armed, added: &CgroupRef) -> Result<(), Error> {
        match &armed.action {
            Action::Network { .. } => {
                if let Some(kernel) = self.kernel.as_mut() {
                    kernel
                        .links
                        .attach(&mut kernel.ebpf, added.id, &added.path, &self.pins)?;
                }
                self.sync_cgroups(std::slice::from_ref(added), Some(armed))?;
                self.sync_shaping(Some(armed))
            }
            Action::Errno(e) => {
                if let Some(storage) = self.kernel.as_mut().and_then(|k| k.storage.as_mut()) {
                    for key in path_keys(e.slot, &e.inodes) {
                        storage.maps.add_path(&key)?;
                    }
                }
                self.sync_storage(Some(armed))
            }
            Action::Actor(_) => Ok(()),
        }
    }
}

/// What `widen` may change, to put back on failure.
struct Snapshot {
    cgroups: usize,
    ifaces: Option<Vec<crate::kernel::ifaces::Iface>>,
    inodes: Option<usize>,
}

fn snapshot(armed: &Armed) -> Snapshot {
    Snapshot {
        cgroups: armed.cgroups.len(),
        ifaces: match &armed.action {
            Action::Network { plan, .. } => Some(plan.ifaces.clone()),
            _ => None,
        },
        inodes: match &armed.action {
            Action::Errno(e) => Some(e.inodes.len()),
            _ => None,
        },
    }
}

fn restore(armed: &mut Armed, before: Snapshot) {
    armed.cgroups.truncate(before.cgroups);
    match &mut armed.action {
        Action::Network { plan, .. } => {
            if let Some(ifaces) = before.ifaces {
                plan.ifaces = ifaces;
            }
        }
        Action::Errno(e) => {
            if let Some(n) = before.inodes {
                e.inodes.truncate(n);
            }
        }
        Action::Actor(_) => {}
    }
}

/// Replaces the report of the same pod (by UID), or adds it.
fn upsert(targets: &mut Vec<TargetReport>, report: TargetReport) {
    match targets.iter_mut().find(|r| r.uid == report.uid) {
        Some(old) => *old = report,
        None => targets.push(report),
    }
}
