//! Replaying a dead daemon's journal at start, and a clean shutdown.
use chaos_proto::v1::{inject_request, Counters, Fault, FaultState, InjectRequest};
use prost::Message as _;
use tracing::{info, info_span, warn};

use super::{fault_spec, state_at, Action, Armed, Engine, Entry, Shared};
use crate::{
    clock,
    error::Error,
    faults::{actor::Actor, fill, iolimit, network, process, storage, stress, window::Window},
    journal::{self, Record, Undo},
    workers::pool,
};

impl Engine {
    /// Replays the journal a previous daemon left: faults past their end are undone, the
    /// others adopted (pinned map entries and links are kept; a freeze stays; stress
    /// workers, which ended with the previous daemon, are started again for the rest of the
    /// window).
    pub fn recover(&mut self, shared: &Shared) -> Result<(), Error> {
        let records = self.journal.load_all()?;
        if let Some(kernel) = self.kernel.as_mut() {
            kernel.links.adopt(&self.pins)?;
            if let Some(storage) = kernel.storage.as_mut() {
                storage.hooks.adopt(&self.pins)?;
            }
        }
        let now = clock::unix_now_ns();
        // Interfaces the records name: those no adopted fault keeps are put back at the end.
        let recorded: Vec<_> = records
            .iter()
            .flat_map(|r| match &r.undo {
                Undo::NetworkSlot { ifaces, .. } => ifaces.clone(),
                _ => Vec::new(),
            })
            .collect();
        for record in records {
            let span = info_span!("recover", fault.id = %record.id);
            let _guard = span.enter();
            let req = match decode(&record) {
                Ok(req) => req,
                Err(err) => {
                    warn!(error = %err, "journal record unusable; undoing what it names");
                    undo_orphan(&record);
                    let _ = self.journal.remove(&record.id);
                    continue;
                }
            };
            let window = Window {
                start_unix_ns: record.start_unix_ns,
                end_unix_ns: record.end_unix_ns,
            };
            let mut armed = match self.rebuild(&record, &req, window) {
                Ok(armed) => armed,
                Err(err) => {
                    warn!(error = %err, "journal record cannot be re-armed; undoing what it names");
                    undo_orphan(&record);
                    let _ = self.journal.remove(&record.id);
                    continue;
                }
            };
            let fault = Fault {
                id: record.id.clone(),
                target: req.target.clone(),
                cgroup_ids: record.cgroups.iter().map(|c| c.id).collect(),
                spec: req.spec.clone().map(fault_spec),
                start_at_unix_ns: record.start_unix_ns,
                end_at_unix_ns: record.end_unix_ns,
                state: state_at(window, now) as i32,
                counters: Some(Counters::default()),
                ..Fault::default()
            };
            let ended = if record.end_unix_ns <= now {
                info!("fault ended while the daemon was down; undoing it");
                Some((
                    FaultState::Completed,
                    "ended while the daemon was down".to_string(),
                ))
            } else {
                self.readopt(&mut armed, window, now).err().map(|err| {
                    warn!(error = %err, "could not re-arm; undoing it");
                    (
                        FaultState::Failed,
                        format!("re-arming after restart: {err}"),
                    )
                })
            };
            if let Some((state, message)) = ended {
                let entry = Entry {
                    fault,
                    armed: Some(armed),
                    stop: None,
                    lease: None,
                    request_hex: record.request_hex.clone(),
                };
                self.faults.insert(record.id.clone(), entry);
                self.finish(&record.id, state, &message);
                continue;
            }
            info!(kind = armed.kind, "fault adopted after restart");
            // A lease restarts from now: its client gets one period to find this daemon again.
            let lease = super::lease::requested(req.lease.as_ref()).ok().flatten();
            self.start_lifecycle(shared, fault, armed, lease, record.request_hex.clone());
        }
        // Links of cgroups no adopted fault needs any more.
        if let Some(kernel) = self.kernel.as_mut() {
            let stale: Vec<u64> = kernel.links.cgroups().collect();
            for cgroup_id in stale {
                let used = self
                    .faults
                    .values()
                    .filter_map(|e| e.armed.as_ref())
                    .filter(|a| a.network().is_some())
                    .any(|a| a.cgroups.iter().any(|c| c.id == cgroup_id));
                if !used {
                    kernel.links.detach(cgroup_id);
                }
            }
        }
        // Storage targets and programs no adopted fault needs any more.
        self.sync_storage(None)?;
        self.sync_shaping(None)?;
        self.put_back_orphans(&recorded);
        Ok(())
    }

    /// The armed form of a journal record, from its request and its undo record.
    fn rebuild(
        &mut self,
        record: &Record,
        req: &InjectRequest,
        window: Window,
    ) -> Result<Armed, Error> {
        let dirs = || {
            record
                .cgroups
                .iter()
                .map(|c| c.path.clone())
                .collect::<Vec<_>>()
        };
        match (&req.spec, &record.undo) {
            (Some(inject_request::Spec::Network(spec)), Undo::NetworkSlot { slot, ifaces }) => {
                let mut plan = network::plan(spec)?;
                plan.ifaces = ifaces.clone();
                let position = self
                    .free_slots
                    .iter()
                    .position(|s| s == slot)
                    .ok_or_else(|| Error::Internal(format!("slot {slot} recorded twice")))?;
                self.free_slots.remove(position);
                Ok(Armed {
                    kind: plan.kind,
                    action: Action::Network { slot: *slot, plan },
                    cgroups: record.cgroups.clone(),
                })
            }
            (Some(inject_request::Spec::Process(spec)), undo) => {
                let plan = process::plan(spec)?;
                let freezers = match undo {
                    Undo::Freeze { freezers } => freezers.clone(),
                    _ => Vec::new(),
                };
                Ok(Armed {
                    kind: plan.kind(),
                    action: Action::Actor(Box::new(process::Run::with_freezers(
                        plan,
                        dirs(),
                        window,
                        freezers,
                    ))),
                    cgroups: record.cgroups.clone(),
                })
            }
            (Some(inject_request::Spec::Stress(spec)), Undo::Workers { cgroup }) => {
                // The workers died with the previous daemon; whatever is left goes.
                pool::remove_cgroup(cgroup)?;
                let plan = stress::plan(spec)?;
                let target = record
                    .cgroups
                    .first()
                    .ok_or_else(|| Error::Internal("stress record without a cgroup".into()))?;
                let run = stress::Run::new(plan, target.path.clone(), &record.id, window)?;
                Ok(Armed {
                    kind: run.kind(),
                    action: Action::Actor(Box::new(run)),
                    cgroups: record.cgroups.clone(),
                })
            }
            (Some(inject_request::Spec::Storage(spec)), undo) => {
                let plan = storage::plan(spec)?;
                if let (storage::Plan::Errno(plan), Undo::ErrnoSlot { slot, inodes }) =
                    (&plan, undo)
                {
                    let position = self
                        .free_storage_slots
                        .iter()
                        .position(|s| s == slot)
                        .ok_or_else(|| {
                            Error::Internal(format!("storage slot {slot} recorded twice"))
                        })?;
                    self.free_storage_slots.remove(position);
                    return Ok(Armed {
                        kind: "storage.errno",
                        action: Action::Errno(super::errnoarm::ErrnoArmed {
                            slot: *slot,
                            plan: plan.clone(),
                            inodes: inodes.clone(),
                        }),
                        cgroups: record.cgroups.clone(),
                    });
                }
                let actor = storage::adopt(plan, dirs(), &record.id, undo)?;
                Ok(Armed {
                    kind: actor.kind(),
                    action: Action::Actor(actor),
                    cgroups: record.cgroups.clone(),
                })
            }
            _ => Err(Error::Internal(
                "the request's kind does not match its undo record".into(),
            )),
        }
    }

    /// Puts an adopted fault back in force for the rest of its window.
    fn readopt(&mut self, armed: &mut Armed, window: Window, now: u64) -> Result<(), Error> {
        match &mut armed.action {
            Action::Network { .. } => self.arm_network(armed, window),
            Action::Errno(_) => self.arm_errno(armed, window, false),
            Action::Actor(actor) => {
                if window.start_unix_ns <= now && actor.reopen_after_restart() {
                    actor.open()?;
                }
                Ok(())
            }
        }
    }

    /// Ends every fault, detaches every program and removes every pin (clean shutdown).
    pub fn shutdown(&mut self) {
        // Every attachment goes first, one unpin per cgroup: then no packet meets a fault,
        // and the faults need no slot-list rewrite each (which is quadratic in their number).
        if let Some(kernel) = self.kernel.as_mut() {
            let attached: Vec<u64> = kernel.links.cgroups().collect();
            for cgroup_id in attached {
                kernel.links.detach(cgroup_id);
            }
            if let Some(storage) = kernel.storage.as_mut() {
                storage.hooks.detach_all();
            }
            if let Some(shape) = kernel.shape.as_mut() {
                shape.shapers.remove_all();
            }
        }
        let now = clock::unix_now_ns();
        let mut closed = 0;
        let ids: Vec<String> = self.faults.keys().cloned().collect();
        for id in ids {
            let Some(armed) = self.conclude(&id, FaultState::Cancelled, "daemon shut down", now)
            else {
                continue;
            };
            if let (Some((slot, plan)), Some(kernel)) = (armed.network(), self.kernel.as_mut()) {
                if let Err(err) = network::disarm(&mut kernel.net, slot, plan) {
                    warn!(fault.id = %id, error = %err, "disarming");
                }
            }
            if let Err(err) = self.journal.remove_unsynced(&id) {
                warn!(fault.id = %id, error = %err, "closing the journal record");
            }
            closed += 1;
        }
        if let Err(err) = self.journal.sync() {
            warn!(error = %err, "syncing the journal");
        }
        info!(faults = closed, "every fault ended");
        self.kernel = None;
        match self.pins.remove_all() {
            Ok(()) => info!(dir = %self.pins.root().display(), "pins removed"),
            Err(err) => warn!(error = %err, "removing pins"),
        }
    }
}

/// The request a journal record was made from.
fn decode(record: &Record) -> Result<InjectRequest, String> {
    let bytes = journal::from_hex(&record.request_hex).ok_or("request is not hex")?;
    InjectRequest::decode(bytes.as_slice()).map_err(|err| err.to_string())
}

/// Undoes what a record names when its fault cannot be rebuilt: a frozen cgroup is never
/// left frozen and a workers' cgroup never left behind. (A network slot needs nothing: its
/// cgroups' links are dropped with the unused ones.)
fn undo_orphan(record: &Record) {
    match &record.undo {
        Undo::Freeze { freezers } => {
            for freezer in freezers {
                if let Err(err) = freezer.thaw() {
                    warn!(error = %err, "thawing");
                }
            }
        }
        Undo::Workers { cgroup } => {
            if let Err(err) = pool::remove_cgroup(cgroup) {
                warn!(error = %err, "removing a stress cgroup");
            }
        }
        Undo::FillFile { file } => {
            let dirs: Vec<_> = record.cgroups.iter().map(|c| c.path.clone()).collect();
            fill::remove_orphan(&dirs, file);
        }
        Undo::Writes { restore } => iolimit::restore_orphan(restore),
        // Map entries need nothing: the maps are rewritten from the adopted faults.
        Undo::NetworkSlot { .. } | Undo::ErrnoSlot { .. } | Undo::Nothing => {}
    }
}
