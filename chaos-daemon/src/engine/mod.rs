//! The one path every fault takes: validate → resolve → journal → arm → watch → disarm.
//!
//! Network and storage errno faults are enforced by the kernel, which opens and closes their
//! windows itself; process, stress and other storage faults ([`Actor`]s) are carried out by the daemon at the window's edges.
//! Either way the engine arms, reports, and cleans up after the end (or on cancel, shutdown,
//! or the next start after a crash).
mod errnoarm;
mod follow;
mod lease;
mod lifecycle;
mod netarm;
mod recover;
mod shapearm;
mod targetlists;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
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
        actor::Actor,
        errno,
        network::{self, NetPlan},
        process, storage, stress,
        window::{Limits, Window},
    },
    journal::{self, CgroupRef, Journal, Record, Undo},
    kernel::{
        hooks::StorageHooks, links::NetLinks, netmaps::NetMaps, pins::Pins, probe::Probe,
        storagemaps::StorageMaps,
    },
    pods::Selected,
    targets::{self, Hierarchy},
};

pub use follow::PodChange;
pub use lease::MIN_LEASE;

/// Finished faults kept for `List`/`Get`.
const HISTORY: usize = 1024;

/// The loaded programs and their maps and links.
pub struct Kernel {
    /// Keeps the programs loaded while the engine lives.
    pub ebpf: Ebpf,
    pub net: NetMaps,
    pub links: NetLinks,
    pub clock: KernelClock,
    /// The storage errno programs and maps, where some route exists.
    pub storage: Option<StorageKernel>,
    /// The network impairment program, its maps and interfaces, where it loaded.
    pub shape: Option<ShapeKernel>,
}

pub use shapearm::ShapeKernel;

/// The storage errno part of the kernel state.
pub struct StorageKernel {
    pub maps: StorageMaps,
    pub hooks: StorageHooks,
}

/// How an armed fault acts.
enum Action {
    /// Parameters in a kernel slot; the programs apply them.
    Network { slot: u32, plan: NetPlan },
    /// Parameters in a storage slot; the programs fail calls with them.
    Errno(errnoarm::ErrnoArmed),
    /// The daemon acts at the edges.
    Actor(Box<dyn Actor>),
}

/// A fault in force.
struct Armed {
    kind: &'static str,
    action: Action,
    cgroups: Vec<CgroupRef>,
}

impl Armed {
    fn network(&self) -> Option<(u32, &NetPlan)> {
        match &self.action {
            Action::Network { slot, plan } => Some((*slot, plan)),
            Action::Errno(_) | Action::Actor(_) => None,
        }
    }

    fn undo(&self) -> Undo {
        match &self.action {
            Action::Network { slot, plan } => Undo::NetworkSlot {
                slot: *slot,
                ifaces: plan.ifaces.clone(),
            },
            Action::Errno(e) => Undo::ErrnoSlot {
                slot: e.slot,
                inodes: e.inodes.clone(),
            },
            Action::Actor(actor) => actor.undo(),
        }
    }
}

struct Entry {
    fault: Fault,
    armed: Option<Armed>,
    /// Dropping it ends the fault's lifecycle task.
    stop: Option<oneshot::Sender<()>>,
    /// The fault ends early unless this is held.
    lease: Option<lease::Lease>,
    /// The request as journaled, for rewriting the record when the fault takes in a cgroup.
    request_hex: String,
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
    free_storage_slots: Vec<u32>,
    events: broadcast::Sender<Fault>,
    /// This node's name, shown on every fault.
    node: String,
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
            free_storage_slots: (0..chaos_common::storage::MAX_FAULTS).rev().collect(),
            events,
            node: String::new(),
        }
    }

    /// Names this node on every fault.
    pub fn set_node(&mut self, node: String) {
        self.node = node;
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    pub fn probe_mut(&mut self) -> &mut Probe {
        &mut self.probe
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Fault> {
        self.events.subscribe()
    }

    /// Validates and arms a fault; on any error nothing stays behind. `pods` is what a pod
    /// target resolved to (the API resolves those through the cluster first). A dry run stops
    /// before the journal: it returns what would be armed, and nothing changes.
    pub fn inject(
        &mut self,
        shared: &Shared,
        req: InjectRequest,
        pods: Option<Selected>,
    ) -> Result<Fault, Error> {
        let window = Window::from_request(&req, &self.limits)?;
        let lease = lease::requested(req.lease.as_ref())?;
        if !(0.0..=100.0).contains(&req.max_percent) {
            return Err(Error::invalid(
                "max_percent",
                format!("must be in [0, 100], got {}", req.max_percent),
            ));
        }
        let spec = req.spec.clone().ok_or_else(|| {
            Error::invalid(
                "spec",
                "set a fault kind: network, process, stress or storage",
            )
        })?;
        // Everything that can be checked without the target first.
        enum Planned {
            Network(NetPlan),
            Process(process::Plan),
            Stress(stress::Plan),
            Errno(errno::Plan),
            Storage(storage::Plan),
        }
        let planned = match &spec {
            inject_request::Spec::Network(n) => Planned::Network(network::plan(n)?),
            inject_request::Spec::Process(p) => Planned::Process(process::plan(p)?),
            inject_request::Spec::Stress(s) => Planned::Stress(stress::plan(s)?),
            inject_request::Spec::Storage(s) => match storage::plan(s)? {
                storage::Plan::Errno(plan) => {
                    self.refuse_unroutable(&plan)?;
                    Planned::Errno(plan)
                }
                other => Planned::Storage(other),
            },
        };
        if req.target.trim().is_empty() {
            return Err(Error::invalid(
                "target",
                "is required: cgroup:<path>, pid:<pid> or container:<id>",
            ));
        }
        if let (Planned::Network(plan), Some(reason)) = (&planned, &self.probe.network_refusal) {
            return Err(Error::FailedPrecondition(format!(
                "{}: not supported on this node: {reason}",
                plan.kind
            )));
        }
        if let Planned::Network(plan) = &planned {
            if plan.fault.shape != 0 {
                self.refuse_unshapeable(plan)?;
            }
        }
        let (cgroups, reports) = match pods {
            Some(selected) => (cgroup_refs(selected.cgroups), selected.reports),
            None => (self.resolve(req.target.trim())?, Vec::new()),
        };
        if cgroups.is_empty() {
            return Err(Error::NotFound(format!(
                "target: {} matches nothing to act on on node {}{}",
                req.target.trim(),
                self.node,
                describe_reports(&reports)
            )));
        }
        if req.max_targets != 0 && cgroups.len() > req.max_targets as usize {
            return Err(Error::FailedPrecondition(format!(
                "target: {} would act on {} cgroups, more than max_targets {}",
                req.target.trim(),
                cgroups.len(),
                req.max_targets
            )));
        }
        let id = if req.dry_run {
            String::new()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let armed = match planned {
            Planned::Network(mut plan) => {
                if plan.fault.shape != 0 {
                    plan.ifaces = self.shape_ifaces(&cgroups, &plan)?;
                }
                let slot = self.free_slots.pop().ok_or_else(|| {
                    Error::ResourceExhausted(format!(
                        "all {} network fault slots are in use",
                        chaos_common::net::MAX_FAULTS
                    ))
                })?;
                Armed {
                    kind: plan.kind,
                    action: Action::Network { slot, plan },
                    cgroups,
                }
            }
            Planned::Process(plan) => {
                if matches!(plan, process::Plan::Pause) {
                    self.refuse_second_pause(&cgroups)?;
                }
                let dirs = cgroups.iter().map(|c| c.path.clone()).collect();
                Armed {
                    kind: plan.kind(),
                    action: Action::Actor(Box::new(process::Run::new(plan, dirs, window)?)),
                    cgroups,
                }
            }
            Planned::Stress(plan) => {
                let [cgroup] = cgroups.as_slice() else {
                    return Err(Error::invalid(
                        "target",
                        "a stress fault needs a target naming exactly one cgroup",
                    ));
                };
                let run = stress::Run::new(plan, cgroup.path.clone(), &id, window)?;
                Armed {
                    kind: run.kind(),
                    action: Action::Actor(Box::new(run)),
                    cgroups,
                }
            }
            Planned::Errno(plan) => {
                let dirs: Vec<_> = cgroups.iter().map(|c| c.path.clone()).collect();
                let inodes = errno::resolve(&dirs, &plan.path)?;
                let slot = self.free_storage_slots.pop().ok_or_else(|| {
                    Error::ResourceExhausted(format!(
                        "all {} storage fault slots are in use",
                        chaos_common::storage::MAX_FAULTS
                    ))
                })?;
                Armed {
                    kind: "storage.errno",
                    action: Action::Errno(errnoarm::ErrnoArmed { slot, plan, inodes }),
                    cgroups,
                }
            }
            Planned::Storage(plan) => {
                let dirs = cgroups.iter().map(|c| c.path.clone()).collect();
                let actor = storage::actor(plan, dirs, &id)?;
                Armed {
                    kind: actor.kind(),
                    action: Action::Actor(actor),
                    cgroups,
                }
            }
        };
        let view = Fault {
            id: id.clone(),
            target: req.target.clone(),
            cgroup_ids: armed.cgroups.iter().map(|c| c.id).collect(),
            spec: Some(fault_spec(spec)),
            start_at_unix_ns: window.start_unix_ns,
            end_at_unix_ns: window.end_unix_ns,
            state: state_at(window, clock::unix_now_ns()) as i32,
            counters: Some(Counters::default()),
            targets: reports,
            dry_run: req.dry_run,
            node: self.node.clone(),
            ..Fault::default()
        };
        if req.dry_run {
            self.release_slot(&armed);
            info!(target = %req.target, kind = armed.kind, cgroups = armed.cgroups.len(),
                "dry run: nothing armed");
            return Ok(view);
        }
        let record = Record {
            id: id.clone(),
            request_hex: journal::to_hex(&req.encode_to_vec()),
            cgroups: armed.cgroups.clone(),
            start_unix_ns: window.start_unix_ns,
            end_unix_ns: window.end_unix_ns,
            undo: armed.undo(),
        };
        let mut armed = armed;
        let result = self
            .journal
            .write(&record)
            .map_err(Error::from)
            .and_then(|()| self.arm(&mut armed, window));
        if let Err(err) = result {
            self.release_slot(&armed);
            if let Err(journal_err) = self.journal.remove(&id) {
                warn!(fault.id = %id, error = %journal_err, "removing the journal record of a failed fault");
            }
            return Err(err);
        }
        info!(fault.id = %id, target = %req.target, kind = armed.kind,
            start = window.start_unix_ns, end = window.end_unix_ns, "fault armed");
        self.start_lifecycle(shared, view, armed, lease, record.request_hex);
        self.get(&id)
    }

    /// Gives back the kernel slot of a fault that was not armed.
    fn release_slot(&mut self, armed: &Armed) {
        match &armed.action {
            Action::Network { slot, .. } => self.free_slots.push(*slot),
            Action::Errno(e) => self.free_storage_slots.push(e.slot),
            Action::Actor(_) => {}
        }
    }

    /// The cgroup directories a non-pod target names (for the cluster's guard rails).
    pub fn resolve_dirs(&self, target: &str) -> Result<Vec<std::path::PathBuf>, Error> {
        Ok(self
            .resolve(target.trim())?
            .into_iter()
            .map(|c| c.path)
            .collect())
    }

    fn resolve(&self, target: &str) -> Result<Vec<CgroupRef>, Error> {
        let hier = self
            .hier
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition("no cgroup v2 hierarchy".into()))?;
        Ok(cgroup_refs(targets::resolve(hier, target)?))
    }

    /// An operation no route can fail here is refused, naming it and what the kernel lacks.
    fn refuse_unroutable(&self, plan: &errno::Plan) -> Result<(), Error> {
        let loaded = self.kernel.as_ref().is_some_and(|k| k.storage.is_some());
        for (_, name, bit) in errno::OPERATIONS {
            if plan.ops & bit == 0 {
                continue;
            }
            let route = self.probe.storage_routes.iter().find(|(op, _)| *op == name);
            let why = match route {
                Some((_, Ok(_))) if loaded => continue,
                Some((_, Err(why))) => why.clone(),
                _ => self.probe.storage_refusal(),
            };
            return Err(Error::FailedPrecondition(format!(
                "storage.errno: this kernel cannot fail {name}: {why}"
            )));
        }
        Ok(())
    }

    /// Two pauses of one cgroup would thaw it at the first one's end: refused.
    fn refuse_second_pause(&self, cgroups: &[CgroupRef]) -> Result<(), Error> {
        for (id, entry) in &self.faults {
            let Some(armed) = &entry.armed else { continue };
            if armed.kind != "process.pause" {
                continue;
            }
            if let Some(c) = armed
                .cgroups
                .iter()
                .find(|c| cgroups.iter().any(|o| o.id == c.id))
            {
                return Err(Error::FailedPrecondition(format!(
                    "{} is already paused by fault {id}",
                    c.path.display()
                )));
            }
        }
        Ok(())
    }

    /// Puts a fault in force: network parameters and attachments, or, for an actor whose
    /// window is already open, its opening action. On failure nothing of it stays.
    fn arm(&mut self, armed: &mut Armed, window: Window) -> Result<(), Error> {
        match &mut armed.action {
            Action::Network { .. } => self.arm_network(armed, window),
            Action::Errno(_) => self.arm_errno(armed, window, true),
            Action::Actor(actor) => {
                if window.start_unix_ns <= clock::unix_now_ns() {
                    actor.open()?;
                }
                Ok(())
            }
        }
    }

    /// Registers an armed fault and spawns the task that ends it (and the one that ends it
    /// early when its lease runs out).
    fn start_lifecycle(
        &mut self,
        shared: &Shared,
        mut fault: Fault,
        armed: Armed,
        lease: Option<std::time::Duration>,
        request_hex: String,
    ) {
        let (stop, stopped) = oneshot::channel();
        let lease = lease.map(|period| lease::Lease::new(period, clock::unix_now_ns()));
        fault.lease_expires_unix_ns = lease.map_or(0, |l| l.expires_unix_ns);
        fault.node.clone_from(&self.node);
        let id = fault.id.clone();
        let window = Window {
            start_unix_ns: fault.start_at_unix_ns,
            end_unix_ns: fault.end_at_unix_ns,
        };
        let edges = matches!(armed.action, Action::Actor(_));
        self.faults.insert(
            id.clone(),
            Entry {
                fault,
                armed: Some(armed),
                stop: Some(stop),
                lease,
                request_hex,
            },
        );
        self.emit(&id);
        let span = info_span!("fault", fault.id = %id);
        if lease.is_some() {
            tokio::spawn(lease::run(Arc::downgrade(shared), id.clone()).instrument(span.clone()));
        }
        tokio::spawn(
            lifecycle::run(Arc::downgrade(shared), id, window, edges, stopped).instrument(span),
        );
    }

    /// Ends a fault: snapshots its counters, disarms it, closes its journal record.
    pub fn finish(&mut self, id: &str, state: FaultState, message: &str) {
        let Some(armed) = self.conclude(id, state, message, clock::unix_now_ns()) else {
            return;
        };
        match &armed.action {
            Action::Network { slot, plan } => {
                self.disarm_network(id, &armed.cgroups, *slot, plan);
            }
            Action::Errno(e) => self.disarm_errno(id, e),
            Action::Actor(_) => {}
        }
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

    /// Takes a fault out of force as the API sees it: stops its lifecycle task, undoes an
    /// actor's effect, snapshots its counters and records how it ended. Returns what was
    /// armed, for the kernel-side cleanup that differs between `finish` and `shutdown`.
    fn conclude(
        &mut self,
        id: &str,
        state: FaultState,
        message: &str,
        ended_at_unix_ns: u64,
    ) -> Option<Armed> {
        let entry = self.faults.get_mut(id)?;
        let mut armed = entry.armed.take()?;
        entry.stop = None;
        let mut fault = std::mem::take(&mut entry.fault);
        if let Action::Actor(actor) = &mut armed.action {
            actor.close();
        }
        self.refresh(&mut fault, &mut armed);
        fault.state = state as i32;
        fault.ended_at_unix_ns = ended_at_unix_ns;
        fault.message = message.to_string();
        if let Some(entry) = self.faults.get_mut(id) {
            entry.fault = fault;
        }
        Some(armed)
    }

    /// The window opens: an actor acts (a network fault is already in the kernel).
    fn opened(&mut self, id: &str) {
        let Some(entry) = self.faults.get_mut(id) else {
            return;
        };
        let Some(armed) = entry.armed.as_mut() else {
            return;
        };
        if let Action::Actor(actor) = &mut armed.action {
            if let Err(err) = actor.open() {
                warn!(fault.id = %id, error = %err, "acting at the window's start");
                self.finish(
                    id,
                    FaultState::Failed,
                    &format!("at the window's start: {err}"),
                );
                return;
            }
        }
        info!(fault.id = %id, "window open");
        self.emit(id);
    }

    /// When the fault's actor next wants a tick.
    fn next_tick(&self, id: &str) -> Option<u64> {
        match &self.faults.get(id)?.armed.as_ref()?.action {
            Action::Actor(actor) => actor.next_tick(),
            Action::Network { .. } | Action::Errno(_) => None,
        }
    }

    /// A kill round, or a look for a restarted process.
    fn tick(&mut self, id: &str) {
        let Some(Action::Actor(actor)) = self
            .faults
            .get_mut(id)
            .and_then(|e| e.armed.as_mut())
            .map(|a| &mut a.action)
        else {
            return;
        };
        let before = actor.next_tick();
        if let Err(err) = actor.tick() {
            warn!(fault.id = %id, error = %err, "tick");
            self.finish(id, FaultState::Failed, &err.to_string());
            return;
        }
        if before.is_some() && actor.next_tick().is_none() {
            self.emit(id);
        }
    }

    /// The end of fault `id`'s window (Unix ns) while it is armed.
    pub fn armed_until(&self, id: &str) -> Option<u64> {
        let entry = self.faults.get(id)?;
        entry.armed.as_ref()?;
        Some(entry.fault.end_at_unix_ns)
    }

    /// The armed faults whose target is a pod target, with their requests (a restarted
    /// daemon follows their pods again).
    pub fn pod_faults(&self) -> Vec<(String, InjectRequest)> {
        self.faults
            .iter()
            .filter(|(_, e)| {
                e.armed.is_some() && crate::pods::Query::is_pod_target(&e.fault.target)
            })
            .filter_map(|(id, e)| {
                let bytes = journal::from_hex(&e.request_hex)?;
                Some((id.clone(), InjectRequest::decode(bytes.as_slice()).ok()?))
            })
            .collect()
    }

    /// Ends every armed fault now (abort-all); returns them as ended.
    pub fn abort_all(&mut self) -> Vec<Fault> {
        let armed: Vec<String> = self
            .faults
            .iter()
            .filter(|(_, e)| e.armed.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        info!(faults = armed.len(), "aborting every fault");
        armed
            .iter()
            .filter_map(|id| {
                self.finish(id, FaultState::Cancelled, "aborted (abort-all)");
                self.get(id).ok()
            })
            .collect()
    }

    /// Ends a fault now.
    pub fn cancel(&mut self, id: &str) -> Result<Fault, Error> {
        if !self.faults.contains_key(id) {
            return Err(Error::NotFound(format!("fault {id} does not exist")));
        }
        self.finish(id, FaultState::Cancelled, "cancelled");
        self.get(id)
    }

    /// One fault, counters refreshed.
    pub fn get(&mut self, id: &str) -> Result<Fault, Error> {
        let entry = self
            .faults
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("fault {id} does not exist")))?;
        let Some(mut armed) = entry.armed.take() else {
            return Ok(entry.fault.clone());
        };
        let mut fault = std::mem::take(&mut entry.fault);
        self.refresh(&mut fault, &mut armed);
        let entry = self
            .faults
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("fault {id} does not exist")))?;
        entry.fault = fault;
        entry.armed = Some(armed);
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

    /// Copies counters, outcome and state into the API view.
    fn refresh(&mut self, fault: &mut Fault, armed: &mut Armed) {
        match &mut armed.action {
            Action::Network { slot, .. } => {
                if let Some(kernel) = self.kernel.as_ref() {
                    netarm::refresh(fault, *slot, kernel);
                }
            }
            Action::Errno(e) => {
                if let Some(kernel) = self.kernel.as_ref() {
                    errnoarm::refresh(fault, e, kernel);
                }
            }
            Action::Actor(actor) => actor.report(fault),
        }
        let window = Window {
            start_unix_ns: fault.start_at_unix_ns,
            end_unix_ns: fault.end_at_unix_ns,
        };
        fault.state = state_at(window, clock::unix_now_ns()) as i32;
    }
}

/// A kernel slot's counters (summed over CPUs) in the API view, times in Unix ns.
fn show_counters(fault: &mut Fault, c: &chaos_common::Counters, clock: KernelClock) {
    fault.counters = Some(Counters {
        seen: c.seen,
        matched: c.matched,
        affected: c.affected,
        ..Counters::default()
    });
    fault.first_affected_unix_ns = clock.to_unix(c.first_ns);
    fault.last_affected_unix_ns = clock.to_unix(c.last_ns);
}

/// The API view of a request's spec.
fn fault_spec(spec: inject_request::Spec) -> fault::Spec {
    match spec {
        inject_request::Spec::Network(n) => fault::Spec::Network(n),
        inject_request::Spec::Process(p) => fault::Spec::Process(p),
        inject_request::Spec::Stress(s) => fault::Spec::Stress(s),
        inject_request::Spec::Storage(s) => fault::Spec::Storage(s),
    }
}

fn cgroup_refs(cgroups: Vec<targets::Cgroup>) -> Vec<CgroupRef> {
    cgroups
        .into_iter()
        .map(|c| CgroupRef {
            id: c.id,
            path: c.path,
        })
        .collect()
}

/// The pods of a target that matched nothing, for the NOT_FOUND message.
fn describe_reports(reports: &[chaos_proto::v1::TargetReport]) -> String {
    if reports.is_empty() {
        return String::new();
    }
    let each: Vec<String> = reports
        .iter()
        .map(|r| format!("{}/{}: {}", r.namespace, r.pod, r.reason))
        .collect();
    format!(" ({})", each.join("; "))
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
