//! The one path every fault takes: validate → resolve → journal → arm → watch → disarm.
//!
//! The kernel enforces each window on its own; the engine only arms, reports, and cleans up
//! after the end (or on cancel, shutdown, or the next start after a crash).
use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use aya::{programs::CgroupSkbAttachType, Ebpf};
use chaos_common::net::{TargetSlots, DIR_EGRESS, DIR_INGRESS, SLOTS_PER_TARGET};
use chaos_proto::v1::{fault, inject_request, Counters, Fault, FaultState, InjectRequest};
use prost::Message as _;
use tokio::sync::{broadcast, oneshot, Mutex};
use tracing::{info, info_span, warn, Instrument as _};

use crate::{
    clock::{self, KernelClock},
    error::Error,
    faults::{
        network::{self, NetPlan},
        window::{Limits, Window},
    },
    journal::{self, CgroupRef, Journal, Record, Undo},
    kernel::{
        links::{self, NetLinks},
        netmaps::NetMaps,
        pins::Pins,
        probe::Probe,
    },
    targets::{self, Hierarchy},
};

/// Finished faults kept for `List`/`Get`.
const HISTORY: usize = 1024;
/// Margin after `end` before disarming, so the kernel has closed the window for certain.
const END_MARGIN: Duration = Duration::from_millis(1);

/// The loaded programs and their maps and links.
pub struct Kernel {
    /// Keeps the programs loaded while the engine lives.
    pub ebpf: Ebpf,
    pub net: NetMaps,
    pub links: NetLinks,
    pub clock: KernelClock,
}

/// A fault in the kernel.
struct Armed {
    slot: u32,
    plan: NetPlan,
    cgroups: Vec<CgroupRef>,
}

struct Entry {
    fault: Fault,
    armed: Option<Armed>,
    /// Dropping it ends the fault's lifecycle task.
    stop: Option<oneshot::Sender<()>>,
}

/// All faults of this daemon and what it needs to arm them.
pub struct Engine {
    hier: Option<Hierarchy>,
    kernel: Option<Kernel>,
    pins: Pins,
    journal: Journal,
    probe: Probe,
    limits: Limits,
    faults: BTreeMap<String, Entry>,
    finished: VecDeque<String>,
    free_slots: Vec<u32>,
    events: broadcast::Sender<Fault>,
}

/// The engine behind one lock: requests and lifecycle tasks take turns.
pub type Shared = Arc<Mutex<Engine>>;

impl Engine {
    pub fn new(
        hier: Option<Hierarchy>,
        kernel: Option<Kernel>,
        pins: Pins,
        journal: Journal,
        probe: Probe,
        limits: Limits,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            hier,
            kernel,
            pins,
            journal,
            probe,
            limits,
            faults: BTreeMap::new(),
            finished: VecDeque::new(),
            free_slots: (0..chaos_common::net::MAX_FAULTS).rev().collect(),
            events,
        }
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Fault> {
        self.events.subscribe()
    }

    /// Validates and arms a fault; on any error nothing stays behind.
    pub fn inject(&mut self, shared: &Shared, req: InjectRequest) -> Result<Fault, Error> {
        let window = Window::from_request(&req, &self.limits)?;
        let spec = match &req.spec {
            Some(inject_request::Spec::Network(spec)) => spec,
            None => return Err(Error::invalid("spec", "set a fault kind: network")),
        };
        let plan = network::plan(spec)?;
        if req.target.trim().is_empty() {
            return Err(Error::invalid(
                "target",
                "is required: cgroup:<path>, pid:<pid> or container:<id>",
            ));
        }
        if let Some(reason) = &self.probe.network_refusal {
            return Err(Error::FailedPrecondition(format!(
                "{}: not supported on this node: {reason}",
                plan.kind
            )));
        }
        let hier = self
            .hier
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition("no cgroup v2 hierarchy".into()))?;
        let cgroups: Vec<CgroupRef> = targets::resolve(hier, req.target.trim())?
            .into_iter()
            .map(|c| CgroupRef {
                id: c.id,
                path: c.path,
            })
            .collect();
        let slot = self.free_slots.pop().ok_or_else(|| {
            Error::ResourceExhausted(format!(
                "all {} network fault slots are in use",
                chaos_common::net::MAX_FAULTS
            ))
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        let record = Record {
            id: id.clone(),
            request_hex: journal::to_hex(&req.encode_to_vec()),
            cgroups: cgroups.clone(),
            start_unix_ns: window.start_unix_ns,
            end_unix_ns: window.end_unix_ns,
            undo: Undo::NetworkSlot { slot },
        };
        if let Err(err) = self.journal.write(&record) {
            self.free_slots.push(slot);
            return Err(err.into());
        }
        let armed = Armed {
            slot,
            plan,
            cgroups,
        };
        if let Err(err) = self.arm(&armed, window) {
            self.free_slots.push(slot);
            if let Err(journal_err) = self.journal.remove(&id) {
                warn!(fault.id = %id, error = %journal_err, "removing the journal record of a failed fault");
            }
            return Err(err);
        }
        let fault = Fault {
            id: id.clone(),
            target: req.target.clone(),
            cgroup_ids: armed.cgroups.iter().map(|c| c.id).collect(),
            spec: Some(fault::Spec::Network(spec.clone())),
            start_at_unix_ns: window.start_unix_ns,
            end_at_unix_ns: window.end_unix_ns,
            state: state_at(window, clock::unix_now_ns()) as i32,
            counters: Some(Counters::default()),
            ..Fault::default()
        };
        info!(fault.id = %id, target = %req.target, kind = armed.plan.kind, slot,
            start = window.start_unix_ns, end = window.end_unix_ns, "fault armed");
        self.start_lifecycle(shared, fault, armed);
        self.get(&id)
    }

    /// Writes a fault into the kernel: parameters, attachments, then each attachment's slots.
    /// On failure nothing of it stays.
    fn arm(&mut self, armed: &Armed, window: Window) -> Result<(), Error> {
        let Some(kernel) = self.kernel.as_mut() else {
            return Err(Error::FailedPrecondition(
                "network programs not loaded".into(),
            ));
        };
        let window_ns = (
            kernel.clock.from_unix(window.start_unix_ns),
            kernel.clock.from_unix(window.end_unix_ns),
        );
        let mut result = network::arm(&mut kernel.net, armed.slot, &armed.plan, window_ns);
        for cgroup in &armed.cgroups {
            result = result.and_then(|()| {
                kernel
                    .links
                    .attach(&mut kernel.ebpf, cgroup.id, &cgroup.path, &self.pins)
            });
        }
        let result = result
            .map_err(Error::from)
            .and_then(|()| self.sync_cgroups(&armed.cgroups, Some(armed)));
        if let Err(err) = result {
            if let Err(sync_err) = self.sync_cgroups(&armed.cgroups, None) {
                warn!(error = %sync_err, "undoing the attachments of a failed fault");
            }
            if let Some(kernel) = self.kernel.as_mut() {
                let _ = network::disarm(&mut kernel.net, armed.slot, &armed.plan);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Rewrites each cgroup's per-direction slot lists from the armed faults (plus `extra`,
    /// not registered yet), and detaches cgroups left with no fault.
    fn sync_cgroups(&mut self, cgroups: &[CgroupRef], extra: Option<&Armed>) -> Result<(), Error> {
        let mut plans = Vec::new();
        for cgroup in cgroups {
            let on_it: Vec<&Armed> = self
                .faults
                .values()
                .filter_map(|e| e.armed.as_ref())
                .chain(extra)
                .filter(|a| a.cgroups.iter().any(|c| c.id == cgroup.id))
                .collect();
            let mut per_direction = Vec::new();
            for (direction, _, attach_type) in links::DIRECTIONS {
                let bit = match attach_type {
                    CgroupSkbAttachType::Egress => DIR_EGRESS,
                    CgroupSkbAttachType::Ingress => DIR_INGRESS,
                };
                let tags: Vec<u32> = on_it
                    .iter()
                    .filter(|a| a.plan.fault.directions & bit != 0)
                    .map(|a| a.slot + 1)
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

    /// Registers an armed fault and spawns the task that ends it.
    fn start_lifecycle(&mut self, shared: &Shared, fault: Fault, armed: Armed) {
        let (stop, stopped) = oneshot::channel();
        let id = fault.id.clone();
        let window = Window {
            start_unix_ns: fault.start_at_unix_ns,
            end_unix_ns: fault.end_at_unix_ns,
        };
        self.faults.insert(
            id.clone(),
            Entry {
                fault,
                armed: Some(armed),
                stop: Some(stop),
            },
        );
        self.emit(&id);
        let span = info_span!("fault", fault.id = %id);
        tokio::spawn(lifecycle(Arc::downgrade(shared), id, window, stopped).instrument(span));
    }

    /// Ends a fault: snapshots its counters, disarms it, closes its journal record.
    pub fn finish(&mut self, id: &str, state: FaultState, message: &str) {
        let Some(entry) = self.faults.get_mut(id) else {
            return;
        };
        let Some(armed) = entry.armed.take() else {
            return;
        };
        entry.stop = None;
        if let Some(kernel) = self.kernel.as_ref() {
            refresh(&mut entry.fault, &armed, kernel);
        }
        entry.fault.state = state as i32;
        entry.fault.ended_at_unix_ns = clock::unix_now_ns();
        entry.fault.message = message.to_string();
        // Attachments stop pointing at the slot first, then the slot is cleared.
        if let Err(err) = self.sync_cgroups(&armed.cgroups, None) {
            warn!(fault.id = %id, error = %err, "unlinking the fault from its cgroups");
        }
        if let Some(kernel) = self.kernel.as_mut() {
            if let Err(err) = network::disarm(&mut kernel.net, armed.slot, &armed.plan) {
                warn!(fault.id = %id, error = %err, "disarming");
            }
        }
        self.free_slots.push(armed.slot);
        if let Err(err) = self.journal.remove(id) {
            warn!(fault.id = %id, error = %err, "closing the journal record");
        }
        info!(fault.id = %id, state = ?state, "fault ended");
        self.emit(id);
        self.finished.push_back(id.to_string());
        while self.finished.len() > HISTORY {
            if let Some(old) = self.finished.pop_front() {
                self.faults.remove(&old);
            }
        }
    }

    /// Reports a pending fault's window opening.
    fn opened(&mut self, id: &str) {
        if self.faults.get(id).is_some_and(|e| e.armed.is_some()) {
            info!(fault.id = %id, "window open");
            self.emit(id);
        }
    }

    /// Ends a fault now.
    pub fn cancel(&mut self, id: &str) -> Result<Fault, Error> {
        if !self.faults.contains_key(id) {
            return Err(Error::NotFound(format!("fault {id} does not exist")));
        }
        self.finish(id, FaultState::Cancelled, "cancelled");
        self.get(id)
    }

    /// One fault, counters refreshed from the kernel.
    pub fn get(&mut self, id: &str) -> Result<Fault, Error> {
        let entry = self
            .faults
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("fault {id} does not exist")))?;
        if let (Some(armed), Some(kernel)) = (entry.armed.as_ref(), self.kernel.as_mut()) {
            refresh(&mut entry.fault, armed, kernel);
        }
        Ok(entry.fault.clone())
    }

    /// Every fault, counters refreshed.
    pub fn list(&mut self) -> Vec<Fault> {
        let ids: Vec<String> = self.faults.keys().cloned().collect();
        ids.iter().filter_map(|id| self.get(id).ok()).collect()
    }

    fn emit(&mut self, id: &str) {
        if let Ok(fault) = self.get(id) {
            // No subscriber is fine.
            let _ = self.events.send(fault);
        }
    }

    /// Replays the journal a previous daemon left: faults past their end are undone, the
    /// others re-armed (their pinned map entries and links are adopted, not rebuilt).
    pub fn recover(&mut self, shared: &Shared) -> Result<(), Error> {
        let records = self.journal.load_all()?;
        if let Some(kernel) = self.kernel.as_mut() {
            kernel.links.adopt(&self.pins)?;
        }
        let now = clock::unix_now_ns();
        for record in records {
            let span = info_span!("recover", fault.id = %record.id);
            let _guard = span.enter();
            let Undo::NetworkSlot { slot } = record.undo;
            let plan = match decode(&record) {
                Ok(plan) => plan,
                Err(err) => {
                    warn!(error = %err, "journal record unusable; dropping it");
                    let _ = self.journal.remove(&record.id);
                    continue;
                }
            };
            let Some(position) = self.free_slots.iter().position(|s| *s == slot) else {
                warn!(slot, "slot recorded twice; dropping the record");
                let _ = self.journal.remove(&record.id);
                continue;
            };
            self.free_slots.remove(position);
            let window = Window {
                start_unix_ns: record.start_unix_ns,
                end_unix_ns: record.end_unix_ns,
            };
            let armed = Armed {
                slot,
                plan: plan.0,
                cgroups: record.cgroups.clone(),
            };
            let fault = Fault {
                id: record.id.clone(),
                target: plan.1.target.clone(),
                cgroup_ids: record.cgroups.iter().map(|c| c.id).collect(),
                spec: plan
                    .1
                    .spec
                    .map(|inject_request::Spec::Network(n)| fault::Spec::Network(n)),
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
                self.arm(&armed, window).err().map(|err| {
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
                };
                self.faults.insert(record.id.clone(), entry);
                self.finish(&record.id, state, &message);
                continue;
            }
            info!("fault adopted after restart");
            self.start_lifecycle(shared, fault, armed);
        }
        // Links of cgroups no adopted fault needs any more.
        if let Some(kernel) = self.kernel.as_mut() {
            let stale: Vec<u64> = kernel.links.cgroups().collect();
            for cgroup_id in stale {
                let used = self
                    .faults
                    .values()
                    .filter_map(|e| e.armed.as_ref())
                    .any(|a| a.cgroups.iter().any(|c| c.id == cgroup_id));
                if !used {
                    kernel.links.detach(cgroup_id);
                }
            }
        }
        Ok(())
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
        }
        let now = clock::unix_now_ns();
        let mut closed = 0;
        for (id, entry) in &mut self.faults {
            let Some(armed) = entry.armed.take() else {
                continue;
            };
            entry.stop = None;
            if let Some(kernel) = self.kernel.as_mut() {
                refresh(&mut entry.fault, &armed, kernel);
                if let Err(err) = network::disarm(&mut kernel.net, armed.slot, &armed.plan) {
                    warn!(fault.id = %id, error = %err, "disarming");
                }
            }
            entry.fault.state = FaultState::Cancelled as i32;
            entry.fault.ended_at_unix_ns = now;
            entry.fault.message = "daemon shut down".into();
            if let Err(err) = self.journal.remove_unsynced(id) {
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

/// Re-validates a journal record's request.
fn decode(record: &Record) -> Result<(NetPlan, InjectRequest), String> {
    let bytes = journal::from_hex(&record.request_hex).ok_or("request is not hex")?;
    let req = InjectRequest::decode(bytes.as_slice()).map_err(|err| err.to_string())?;
    let Some(inject_request::Spec::Network(spec)) = &req.spec else {
        return Err("request has no network spec".into());
    };
    let plan = network::plan(spec).map_err(|err| err.to_string())?;
    Ok((plan, req))
}

fn state_at(window: Window, now: u64) -> FaultState {
    if now < window.start_unix_ns {
        FaultState::Pending
    } else if now < window.end_unix_ns {
        FaultState::Active
    } else {
        FaultState::Completed
    }
}

/// Copies a slot's counters and state into the API view.
fn refresh(fault: &mut Fault, armed: &Armed, kernel: &Kernel) {
    match kernel.net.counters(armed.slot) {
        Ok(c) => {
            fault.counters = Some(Counters {
                seen: c.seen,
                matched: c.matched,
                affected: c.dropped,
            });
            fault.first_affected_unix_ns = kernel.clock.to_unix(c.first_ns);
            fault.last_affected_unix_ns = kernel.clock.to_unix(c.last_ns);
        }
        Err(err) => warn!(fault.id = %fault.id, error = %err, "reading counters"),
    }
    let window = Window {
        start_unix_ns: fault.start_at_unix_ns,
        end_unix_ns: fault.end_at_unix_ns,
    };
    fault.state = state_at(window, clock::unix_now_ns()) as i32;
}

/// Waits for the window to open and close, then disarms; ends early when `stopped` fires.
async fn lifecycle(
    engine: std::sync::Weak<Mutex<Engine>>,
    id: String,
    window: Window,
    mut stopped: oneshot::Receiver<()>,
) {
    let at = |unix_ns: u64| {
        tokio::time::Instant::now()
            + Duration::from_nanos(unix_ns.saturating_sub(clock::unix_now_ns()))
    };
    if clock::unix_now_ns() < window.start_unix_ns {
        tokio::select! {
            () = tokio::time::sleep_until(at(window.start_unix_ns)) => {}
            _ = &mut stopped => return,
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.lock().await.opened(&id);
    }
    tokio::select! {
        () = tokio::time::sleep_until(at(window.end_unix_ns) + END_MARGIN) => {}
        _ = &mut stopped => return,
    }
    if let Some(engine) = engine.upgrade() {
        engine.lock().await.finish(&id, FaultState::Completed, "");
    }
}
