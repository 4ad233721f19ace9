//! The one path every fault takes: validate → resolve → journal → arm → watch → disarm.
//!
//! The kernel enforces each window on its own; the engine only arms, reports, and cleans up
//! after the end (or on cancel, shutdown, or the next start after a crash).
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use aya::Ebpf;
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
    kernel::{links::NetLinks, netmaps::NetMaps, pins::Pins, probe::Probe},
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
                level: c.level,
                path: c.path,
            })
            .collect();
        if let Some(deep) = cgroups
            .iter()
            .find(|c| c.level > chaos_common::net::MAX_LEVEL)
        {
            return Err(Error::invalid(
                "target",
                format!(
                    "{} is {} levels deep; network faults reach {} levels",
                    deep.path.display(),
                    deep.level,
                    chaos_common::net::MAX_LEVEL
                ),
            ));
        }
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

    /// Writes a fault into the kernel: attachments, levels, then the maps.
    fn arm(&mut self, armed: &Armed, window: Window) -> Result<(), Error> {
        let mut levels = self.levels();
        levels.extend(levels_of(&armed.cgroups));
        let (Some(kernel), Some(hier)) = (self.kernel.as_mut(), self.hier.as_ref()) else {
            return Err(Error::FailedPrecondition(
                "network programs not loaded".into(),
            ));
        };
        let window_ns = (
            kernel.clock.from_unix(window.start_unix_ns),
            kernel.clock.from_unix(window.end_unix_ns),
        );
        let result = kernel
            .net
            .set_levels(&levels)
            .and_then(|()| {
                kernel
                    .links
                    .attach(&mut kernel.ebpf, &hier.mount, &self.pins)
            })
            .and_then(|()| {
                network::arm(
                    &mut kernel.net,
                    armed.slot,
                    &armed.plan,
                    window_ns,
                    &armed.cgroups,
                )
            });
        if let Err(err) = result {
            self.settle_kernel();
            return Err(err.into());
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

    /// The cgroup levels of every armed fault.
    fn levels(&self) -> BTreeSet<u8> {
        self.faults
            .values()
            .filter_map(|e| e.armed.as_ref())
            .flat_map(|a| levels_of(&a.cgroups))
            .collect()
    }

    /// Brings levels and attachments in line with the armed faults (after a disarm or a
    /// failed arm): no armed network fault → no program attached.
    fn settle_kernel(&mut self) {
        let levels = self.levels();
        if let Some(kernel) = self.kernel.as_mut() {
            if let Err(err) = kernel.net.set_levels(&levels) {
                warn!(error = %err, "updating the cgroup level list");
            }
            if levels.is_empty() && kernel.links.attached() {
                kernel.links.detach();
            }
        }
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
        if let Some(kernel) = self.kernel.as_mut() {
            refresh(&mut entry.fault, &armed, kernel);
            if let Err(err) =
                network::disarm(&mut kernel.net, armed.slot, &armed.plan, &armed.cgroups)
            {
                warn!(fault.id = %id, error = %err, "disarming");
            }
        }
        entry.fault.state = state as i32;
        entry.fault.ended_at_unix_ns = clock::unix_now_ns();
        entry.fault.message = message.to_string();
        self.free_slots.push(armed.slot);
        if let Err(err) = self.journal.remove(id) {
            warn!(fault.id = %id, error = %err, "closing the journal record");
        }
        self.settle_kernel();
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
            if record.end_unix_ns <= now {
                info!("fault ended while the daemon was down; undoing it");
                self.faults.insert(
                    record.id.clone(),
                    Entry {
                        fault,
                        armed: Some(armed),
                        stop: None,
                    },
                );
                self.finish(
                    &record.id,
                    FaultState::Completed,
                    "ended while the daemon was down",
                );
                continue;
            }
            if let Err(err) = self.arm(&armed, window) {
                warn!(error = %err, "could not re-arm; undoing it");
                self.faults.insert(
                    record.id.clone(),
                    Entry {
                        fault,
                        armed: Some(armed),
                        stop: None,
                    },
                );
                self.finish(
                    &record.id,
                    FaultState::Failed,
                    &format!("re-arming after restart: {err}"),
                );
                continue;
            }
            info!("fault adopted after restart");
            self.start_lifecycle(shared, fault, armed);
        }
        self.settle_kernel();
        Ok(())
    }

    /// Ends every fault, detaches every program and removes every pin (clean shutdown).
    pub fn shutdown(&mut self) {
        let armed: Vec<String> = self
            .faults
            .iter()
            .filter(|(_, e)| e.armed.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in armed {
            self.finish(&id, FaultState::Cancelled, "daemon shut down");
        }
        if let Some(mut kernel) = self.kernel.take() {
            kernel.links.detach();
            drop(kernel);
        }
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

/// Levels of validated cgroups (inject refuses any deeper than `MAX_LEVEL`).
fn levels_of(cgroups: &[CgroupRef]) -> impl Iterator<Item = u8> + '_ {
    cgroups.iter().filter_map(|c| u8::try_from(c.level).ok())
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
