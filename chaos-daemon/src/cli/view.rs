//! Serializable views of the API's responses: prost types have no serde, and the JSON
//! output wants stable lowercase names instead of proto enum numbers.

use chaos_proto::v1::{
    fault, network_fault, process_fault, storage_fault, stress_fault, CapabilitiesResponse,
    Direction, Fault, FaultState, NetworkFault, Outcome, ProcessFault, Protocol, StorageFault,
    StorageOperation, StressFault,
};
use serde::Serialize;

/// One fault, as printed by `inject`, `list`, `get`, `cancel` and `watch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultView {
    /// The daemon-assigned id.
    pub id: String,
    /// The target as requested, e.g. "pid:4242".
    pub target: String,
    /// The cgroup v2 ids the target resolved to.
    pub cgroup_ids: Vec<u64>,
    /// pending, active, completed, cancelled or failed.
    pub state: &'static str,
    /// e.g. "network.loss", "process.pause", "stress.cpu".
    pub kind: &'static str,
    /// What a network fault matches and does; `null` for other kinds.
    pub spec: Option<NetworkSpecView>,
    /// What a process fault does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSpecView>,
    /// What a stress fault loads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stress: Option<StressSpecView>,
    /// What a storage fault does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpecView>,
    /// What a process, stress or storage fault did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeView>,
    /// Requested window start, Unix ns.
    pub start_at_unix_ns: u64,
    /// Requested window end (exclusive), Unix ns.
    pub end_at_unix_ns: u64,
    /// When it first affected a packet, Unix ns; 0 = never.
    pub first_affected_unix_ns: u64,
    /// When it last affected a packet, Unix ns; 0 = never.
    pub last_affected_unix_ns: u64,
    /// When the daemon disarmed it, Unix ns; 0 while armed.
    pub ended_at_unix_ns: u64,
    /// Packet counters.
    pub counters: CountersView,
    /// Detail for failed or cancelled faults.
    pub message: String,
    /// The node whose daemon holds it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The answer to `--dry-run`: nothing was armed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// When the fault ends unless its lease is held, Unix ns; 0 = no lease.
    #[serde(skip_serializing_if = "is_zero")]
    pub lease_expires_unix_ns: u64,
    /// Pod targets: every pod matched, and what became of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<super::podview::TargetView>,
}

/// The filters and action of a network fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkSpecView {
    /// egress, ingress or both.
    pub direction: &'static str,
    /// tcp, udp, icmp or any.
    pub protocol: &'static str,
    /// Inclusive port ranges; empty = any port.
    pub ports: Vec<PortRangeView>,
    /// Peer CIDRs; empty = any peer.
    pub peers: Vec<String>,
    /// The loss percentage, for loss faults only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_percent: Option<f64>,
    /// Delay, bandwidth, corruption and duplication, as `inject network` flags say them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub impairments: Vec<String>,
}

/// A process fault's action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessSpecView {
    /// The signal sent (kill, restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Only the main process (kill).
    pub main_only: bool,
    /// The main process asked for, by pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_pid: Option<u32>,
    /// The main process asked for, by command name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_command: Option<String>,
    /// Kill rounds repeat this often (ms); absent = once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<f64>,
}

/// A stress fault's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressSpecView {
    /// CPU workers; 0 = one per CPU allowed to the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_of_limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grow_bytes_per_second: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_oom: bool,
}

/// A storage fault's action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageSpecView {
    /// The path, as the target sees it.
    pub path: String,
    /// errno: the error calls fail with, a name ("EIO") or a number, as requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// errno: the calls failed, e.g. ["read", "fsync"].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<&'static str>,
    /// errno: the percentage of matching calls failed (the request's 0 spelled out as 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// errno: failing stops after this many failures; absent = no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u64>,
    /// disk_fill: fill until the file system is this percent used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill_percent: Option<f64>,
    /// disk_fill: add this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill_bytes: Option<u64>,
    /// io_limit: limits (bytes/s, operations/s); absent = not limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_bytes_per_second: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_bytes_per_second: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_iops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<u64>,
}

impl From<&StorageFault> for StorageSpecView {
    fn from(s: &StorageFault) -> Self {
        let nonzero = |v: u64| (v != 0).then_some(v);
        let mut view = Self {
            path: String::new(),
            errno: None,
            operations: Vec::new(),
            percent: None,
            max_failures: None,
            fill_percent: None,
            fill_bytes: None,
            read_bytes_per_second: None,
            write_bytes_per_second: None,
            read_iops: None,
            write_iops: None,
        };
        match &s.action {
            Some(storage_fault::Action::Errno(e)) => {
                view.path = e.path.clone();
                view.errno = Some(e.errno.clone());
                view.operations = e.operations.iter().copied().map(operation_name).collect();
                view.percent = Some(if e.percent == 0.0 { 100.0 } else { e.percent });
                view.max_failures = nonzero(e.max_failures);
            }
            Some(storage_fault::Action::DiskFill(f)) => {
                view.path = f.path.clone();
                view.fill_percent = (f.percent != 0.0).then_some(f.percent);
                view.fill_bytes = nonzero(f.bytes);
            }
            Some(storage_fault::Action::IoLimit(l)) => {
                view.path = l.path.clone();
                view.read_bytes_per_second = nonzero(l.read_bytes_per_second);
                view.write_bytes_per_second = nonzero(l.write_bytes_per_second);
                view.read_iops = nonzero(l.read_iops);
                view.write_iops = nonzero(l.write_iops);
            }
            None => {}
        }
        view
    }
}

/// What a process, stress or storage fault did (the proto's `Outcome`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeView {
    pub signalled: u64,
    pub rounds: u32,
    pub main_pid: u32,
    pub new_main_pid: u32,
    pub restart_after_ns: u64,
    pub frozen: bool,
    pub workers: u32,
    pub memory_bytes: u64,
    pub oom_kills: u64,
    pub filled_bytes: u64,
    pub filesystem_used_percent: f64,
    /// storage.errno: how each operation is failed on this kernel, e.g.
    /// "open, write: bpf_lsm; fsync: kprobe_override"; absent when the daemon sent none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub backends: String,
}

impl From<&Outcome> for OutcomeView {
    fn from(o: &Outcome) -> Self {
        Self {
            signalled: o.signalled,
            rounds: o.rounds,
            main_pid: o.main_pid,
            new_main_pid: o.new_main_pid,
            restart_after_ns: o.restart_after_ns,
            frozen: o.frozen,
            workers: o.workers,
            memory_bytes: o.memory_bytes,
            oom_kills: o.oom_kills,
            filled_bytes: o.filled_bytes,
            filesystem_used_percent: o.filesystem_used_percent,
            backends: o.backends.clone(),
        }
    }
}

fn millis(d: &prost_types::Duration) -> f64 {
    d.seconds as f64 * 1e3 + f64::from(d.nanos) / 1e6
}

impl From<&ProcessFault> for ProcessSpecView {
    fn from(p: &ProcessFault) -> Self {
        let signal = |s: &str| {
            Some(if s.is_empty() {
                "SIGKILL".to_owned()
            } else {
                s.to_owned()
            })
        };
        let mut view = Self {
            signal: None,
            main_only: false,
            main_pid: None,
            main_command: None,
            interval_ms: None,
        };
        let main = match &p.action {
            Some(process_fault::Action::Kill(k)) => {
                view.signal = signal(&k.signal);
                view.main_only = k.main_only;
                view.interval_ms = k.interval.as_ref().map(millis).filter(|ms| *ms > 0.0);
                k.main.as_ref()
            }
            Some(process_fault::Action::Restart(r)) => {
                view.signal = signal(&r.signal);
                r.main.as_ref()
            }
            Some(process_fault::Action::Pause(_)) | None => None,
        };
        if let Some(main) = main {
            view.main_pid = (main.pid != 0).then_some(main.pid);
            view.main_command = (!main.command.is_empty()).then(|| main.command.clone());
        }
        view
    }
}

impl From<&StressFault> for StressSpecView {
    fn from(s: &StressFault) -> Self {
        let mut view = Self {
            workers: None,
            load_percent: None,
            period_ms: None,
            cpus: Vec::new(),
            memory_bytes: None,
            percent_of_limit: None,
            grow_bytes_per_second: None,
            allow_oom: false,
        };
        match &s.load {
            Some(stress_fault::Load::Cpu(c)) => {
                view.workers = Some(c.workers);
                view.load_percent = Some(c.load_percent);
                view.period_ms = c.period.as_ref().map(millis);
                view.cpus = c.cpus.clone();
            }
            Some(stress_fault::Load::Memory(m)) => {
                view.memory_bytes = (m.bytes != 0).then_some(m.bytes);
                view.percent_of_limit = (m.percent_of_limit != 0.0).then_some(m.percent_of_limit);
                view.grow_bytes_per_second =
                    (m.grow_bytes_per_second != 0).then_some(m.grow_bytes_per_second);
                view.allow_oom = m.allow_oom;
            }
            None => {}
        }
        view
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortRangeView {
    /// First port.
    pub first: u32,
    /// Last port, inclusive (the proto's "0 = same as first" is spelled out).
    pub last: u32,
}

/// A fault's packet counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CountersView {
    /// Packets in the fault's scope while armed.
    pub seen: u64,
    /// Of those, inside the window and passing every filter.
    pub matched: u64,
    /// Of those, dropped or impaired.
    pub affected: u64,
    /// Impairments, packet by packet (absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub delayed: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub queue_dropped: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub corrupted: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What this node supports, as printed by `capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapabilitiesView {
    /// `uname -r` of the node.
    pub kernel_release: String,
    /// Kernel features faultline probes for.
    pub features: Vec<FeatureView>,
    /// Fault kinds and whether `inject` accepts them here.
    pub faults: Vec<FaultSupportView>,
}

/// One probed kernel feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureView {
    /// Stable name, e.g. "cgroup_skb".
    pub name: String,
    /// Whether the kernel has it.
    pub available: bool,
    /// How it was probed, or why it is missing.
    pub detail: String,
}

/// Support for one fault kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultSupportView {
    /// e.g. "network.loss".
    pub kind: String,
    /// Whether `inject` accepts it on this node.
    pub supported: bool,
    /// The kernel mechanism used, or the missing feature.
    pub detail: String,
}

impl From<&Fault> for FaultView {
    fn from(fault: &Fault) -> Self {
        let network = match &fault.spec {
            Some(fault::Spec::Network(network)) => Some(network),
            _ => None,
        };
        let kind = match &fault.spec {
            Some(fault::Spec::Network(network)) => network_kind(network),
            Some(fault::Spec::Process(process)) => process_kind(process),
            Some(fault::Spec::Stress(stress)) => stress_kind(stress),
            Some(fault::Spec::Storage(storage)) => storage_kind(storage),
            None => "unknown",
        };
        let counters = fault.counters.unwrap_or_default();
        Self {
            id: fault.id.clone(),
            target: fault.target.clone(),
            cgroup_ids: fault.cgroup_ids.clone(),
            state: state_name(fault.state),
            kind,
            spec: network.map(NetworkSpecView::from),
            process: match &fault.spec {
                Some(fault::Spec::Process(p)) => Some(ProcessSpecView::from(p)),
                _ => None,
            },
            stress: match &fault.spec {
                Some(fault::Spec::Stress(s)) => Some(StressSpecView::from(s)),
                _ => None,
            },
            storage: match &fault.spec {
                Some(fault::Spec::Storage(s)) => Some(StorageSpecView::from(s)),
                _ => None,
            },
            outcome: fault.outcome.as_ref().map(OutcomeView::from),
            start_at_unix_ns: fault.start_at_unix_ns,
            end_at_unix_ns: fault.end_at_unix_ns,
            first_affected_unix_ns: fault.first_affected_unix_ns,
            last_affected_unix_ns: fault.last_affected_unix_ns,
            ended_at_unix_ns: fault.ended_at_unix_ns,
            counters: CountersView {
                seen: counters.seen,
                matched: counters.matched,
                affected: counters.affected,
                delayed: counters.delayed,
                queue_dropped: counters.queue_dropped,
                corrupted: counters.corrupted,
                duplicated: counters.duplicated,
            },
            message: fault.message.clone(),
            node: fault.node.clone(),
            dry_run: fault.dry_run,
            lease_expires_unix_ns: fault.lease_expires_unix_ns,
            targets: fault
                .targets
                .iter()
                .map(super::podview::TargetView::from)
                .collect(),
        }
    }
}

impl From<&NetworkFault> for NetworkSpecView {
    fn from(network: &NetworkFault) -> Self {
        Self {
            direction: direction_name(network.direction),
            protocol: protocol_name(network.protocol),
            ports: network
                .ports
                .iter()
                .map(|p| PortRangeView {
                    first: p.first,
                    last: if p.last == 0 { p.first } else { p.last },
                })
                .collect(),
            peers: network.peers.clone(),
            loss_percent: match &network.action {
                Some(network_fault::Action::Loss(loss)) => Some(loss.percent),
                _ => None,
            },
            impairments: super::impair::describe(network),
        }
    }
}

impl From<&CapabilitiesResponse> for CapabilitiesView {
    fn from(caps: &CapabilitiesResponse) -> Self {
        Self {
            kernel_release: caps.kernel_release.clone(),
            features: caps
                .features
                .iter()
                .map(|f| FeatureView {
                    name: f.name.clone(),
                    available: f.available,
                    detail: f.detail.clone(),
                })
                .collect(),
            faults: caps
                .faults
                .iter()
                .map(|f| FaultSupportView {
                    kind: f.kind.clone(),
                    supported: f.supported,
                    detail: f.detail.clone(),
                })
                .collect(),
        }
    }
}

/// The lowercase name of a `FaultState`; "unknown" for values a newer daemon may send.
pub fn state_name(state: i32) -> &'static str {
    match FaultState::try_from(state) {
        Ok(FaultState::Pending) => "pending",
        Ok(FaultState::Active) => "active",
        Ok(FaultState::Completed) => "completed",
        Ok(FaultState::Cancelled) => "cancelled",
        Ok(FaultState::Failed) => "failed",
        Ok(FaultState::Unspecified) | Err(_) => "unknown",
    }
}

/// The kind of a process fault, named as `capabilities` names it.
pub fn process_kind(process: &ProcessFault) -> &'static str {
    match process.action {
        Some(process_fault::Action::Kill(_)) => "process.kill",
        Some(process_fault::Action::Pause(_)) => "process.pause",
        Some(process_fault::Action::Restart(_)) => "process.restart",
        None => "process",
    }
}

/// The kind of a storage fault, named as `capabilities` names it.
pub fn storage_kind(storage: &StorageFault) -> &'static str {
    match storage.action {
        Some(storage_fault::Action::Errno(_)) => "storage.errno",
        Some(storage_fault::Action::DiskFill(_)) => "storage.disk_fill",
        Some(storage_fault::Action::IoLimit(_)) => "storage.io_limit",
        None => "storage",
    }
}

/// The kind of a stress fault, named as `capabilities` names it.
pub fn stress_kind(stress: &StressFault) -> &'static str {
    match stress.load {
        Some(stress_fault::Load::Cpu(_)) => "stress.cpu",
        Some(stress_fault::Load::Memory(_)) => "stress.memory",
        None => "stress",
    }
}

/// The kind of a network fault, named as `capabilities` names it.
pub fn network_kind(network: &NetworkFault) -> &'static str {
    match network.action {
        Some(network_fault::Action::Loss(_)) => "network.loss",
        Some(network_fault::Action::Partition(_)) => "network.partition",
        None if network.delay.is_some() => "network.delay",
        None if network.bandwidth.is_some() => "network.bandwidth",
        None if network.corrupt.is_some() => "network.corrupt",
        None if network.duplicate.is_some() => "network.duplicate",
        None => "network",
    }
}

/// The lowercase name of a `StorageOperation`, as `inject storage --ops` spells it;
/// "unknown" for values a newer daemon may send.
pub fn operation_name(operation: i32) -> &'static str {
    match StorageOperation::try_from(operation) {
        Ok(StorageOperation::Open) => "open",
        Ok(StorageOperation::Read) => "read",
        Ok(StorageOperation::Write) => "write",
        Ok(StorageOperation::Fsync) => "fsync",
        Ok(StorageOperation::Fdatasync) => "fdatasync",
        Ok(StorageOperation::SyncFileRange) => "sync_file_range",
        Ok(StorageOperation::Create) => "create",
        Ok(StorageOperation::Mkdir) => "mkdir",
        Ok(StorageOperation::Unlink) => "unlink",
        Ok(StorageOperation::Rmdir) => "rmdir",
        Ok(StorageOperation::Rename) => "rename",
        Ok(StorageOperation::Truncate) => "truncate",
        Ok(StorageOperation::Unspecified) | Err(_) => "unknown",
    }
}

/// The lowercase name of a `Direction`; unset means both, as the proto defines.
pub fn direction_name(direction: i32) -> &'static str {
    match Direction::try_from(direction) {
        Ok(Direction::Egress) => "egress",
        Ok(Direction::Ingress) => "ingress",
        Ok(Direction::Both | Direction::Unspecified) => "both",
        Err(_) => "unknown",
    }
}

/// The lowercase name of a `Protocol`; unset means any, as the proto defines.
pub fn protocol_name(protocol: i32) -> &'static str {
    match Protocol::try_from(protocol) {
        Ok(Protocol::Tcp) => "tcp",
        Ok(Protocol::Udp) => "udp",
        Ok(Protocol::Icmp) => "icmp",
        Ok(Protocol::Any | Protocol::Unspecified) => "any",
        Err(_) => "unknown",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chaos_proto::v1::{Counters, Loss, Partition, PortRange};

    use super::*;

    pub(crate) fn sample_fault() -> Fault {
        Fault {
            id: "f-1".into(),
            target: "pid:4242".into(),
            cgroup_ids: vec![7, 9],
            spec: Some(fault::Spec::Network(NetworkFault {
                direction: Direction::Egress as i32,
                protocol: Protocol::Unspecified as i32,
                ports: vec![PortRange {
                    first: 5432,
                    last: 0,
                }],
                peers: vec!["10.0.0.0/8".into()],
                action: Some(network_fault::Action::Loss(Loss { percent: 30.0 })),
                ..NetworkFault::default()
            })),
            start_at_unix_ns: 1_000,
            end_at_unix_ns: 2_000,
            state: FaultState::Active as i32,
            first_affected_unix_ns: 1_500,
            last_affected_unix_ns: 1_600,
            ended_at_unix_ns: 0,
            counters: Some(Counters {
                seen: 10,
                matched: 5,
                affected: 2,
                ..Counters::default()
            }),
            message: String::new(),
            outcome: None,
            ..Fault::default()
        }
    }

    #[test]
    fn fault_json_shape() {
        let json = serde_json::to_value(FaultView::from(&sample_fault())).ok();
        let expected = serde_json::json!({
            "id": "f-1",
            "target": "pid:4242",
            "cgroup_ids": [7, 9],
            "state": "active",
            "kind": "network.loss",
            "spec": {
                "direction": "egress",
                "protocol": "any",
                "ports": [{"first": 5432, "last": 5432}],
                "peers": ["10.0.0.0/8"],
                "loss_percent": 30.0
            },
            "start_at_unix_ns": 1000,
            "end_at_unix_ns": 2000,
            "first_affected_unix_ns": 1500,
            "last_affected_unix_ns": 1600,
            "ended_at_unix_ns": 0,
            "counters": {"seen": 10, "matched": 5, "affected": 2},
            "message": ""
        });
        assert_eq!(json, Some(expected));
    }

    #[test]
    fn partition_has_no_loss_percent() {
        let mut fault = sample_fault();
        if let Some(fault::Spec::Network(network)) = &mut fault.spec {
            network.action = Some(network_fault::Action::Partition(Partition {}));
        }
        let view = FaultView::from(&fault);
        assert_eq!(view.kind, "network.partition");
        let json = serde_json::to_value(&view).ok();
        assert_eq!(
            json.as_ref().and_then(|j| j["spec"].get("loss_percent")),
            None
        );
    }

    /// An errno fault on PostgreSQL's data directory, with the routes the daemon reports.
    pub(crate) fn errno_fault() -> Fault {
        Fault {
            spec: Some(fault::Spec::Storage(StorageFault {
                action: Some(storage_fault::Action::Errno(chaos_proto::v1::ErrnoFault {
                    errno: "EIO".into(),
                    operations: vec![
                        StorageOperation::Write as i32,
                        StorageOperation::Fsync as i32,
                    ],
                    path: "/var/lib/postgresql/data".into(),
                    percent: 0.0,
                    max_failures: 3,
                })),
            })),
            outcome: Some(Outcome {
                backends: "write: bpf_lsm; fsync: kprobe_override".into(),
                ..Outcome::default()
            }),
            ..sample_fault()
        }
    }

    #[test]
    fn errno_fault_json_shape() {
        let json = serde_json::to_value(FaultView::from(&errno_fault())).ok();
        let json = json.as_ref();
        assert_eq!(json.map(|j| &j["kind"]), Some(&"storage.errno".into()));
        let expected = serde_json::json!({
            "path": "/var/lib/postgresql/data",
            "errno": "EIO",
            "operations": ["write", "fsync"],
            "percent": 100.0,
            "max_failures": 3
        });
        assert_eq!(json.map(|j| &j["storage"]), Some(&expected));
        assert_eq!(
            json.map(|j| &j["outcome"]["backends"]),
            Some(&"write: bpf_lsm; fsync: kprobe_override".into())
        );
    }

    #[test]
    fn empty_backends_are_left_out() {
        let mut fault = errno_fault();
        fault.outcome = Some(Outcome::default());
        let json = serde_json::to_value(FaultView::from(&fault)).ok();
        assert_eq!(
            json.as_ref().and_then(|j| j["outcome"].get("backends")),
            None
        );
    }

    #[test]
    fn operation_names_match_the_flag_values() {
        assert_eq!(
            operation_name(StorageOperation::SyncFileRange as i32),
            "sync_file_range"
        );
        assert_eq!(
            operation_name(StorageOperation::Truncate as i32),
            "truncate"
        );
        assert_eq!(operation_name(0), "unknown");
        assert_eq!(operation_name(99), "unknown");
    }

    #[test]
    fn unknown_enum_values_do_not_panic() {
        assert_eq!(state_name(99), "unknown");
        assert_eq!(direction_name(99), "unknown");
        assert_eq!(protocol_name(-1), "unknown");
        assert_eq!(state_name(FaultState::Cancelled as i32), "cancelled");
    }
}
