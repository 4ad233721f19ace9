//! Serializable views of the API's responses: prost types have no serde, and the JSON
//! output wants stable lowercase names instead of proto enum numbers.

use chaos_proto::v1::{
    fault, network_fault, CapabilitiesResponse, Direction, Fault, FaultState, NetworkFault,
    Protocol,
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
    /// e.g. "network.loss", "network.partition".
    pub kind: &'static str,
    /// What the fault matches and does; `null` when the daemon sent no spec.
    pub spec: Option<NetworkSpecView>,
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
    /// Of those, dropped.
    pub affected: u64,
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
        let network = fault
            .spec
            .as_ref()
            .map(|fault::Spec::Network(network)| network);
        let counters = fault.counters.unwrap_or_default();
        Self {
            id: fault.id.clone(),
            target: fault.target.clone(),
            cgroup_ids: fault.cgroup_ids.clone(),
            state: state_name(fault.state),
            kind: network.map_or("unknown", network_kind),
            spec: network.map(NetworkSpecView::from),
            start_at_unix_ns: fault.start_at_unix_ns,
            end_at_unix_ns: fault.end_at_unix_ns,
            first_affected_unix_ns: fault.first_affected_unix_ns,
            last_affected_unix_ns: fault.last_affected_unix_ns,
            ended_at_unix_ns: fault.ended_at_unix_ns,
            counters: CountersView {
                seen: counters.seen,
                matched: counters.matched,
                affected: counters.affected,
            },
            message: fault.message.clone(),
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

/// The kind of a network fault, named as `capabilities` names it.
pub fn network_kind(network: &NetworkFault) -> &'static str {
    match network.action {
        Some(network_fault::Action::Loss(_)) => "network.loss",
        Some(network_fault::Action::Partition(_)) => "network.partition",
        None => "network",
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
            }),
            message: String::new(),
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

    #[test]
    fn unknown_enum_values_do_not_panic() {
        assert_eq!(state_name(99), "unknown");
        assert_eq!(direction_name(99), "unknown");
        assert_eq!(protocol_name(-1), "unknown");
        assert_eq!(state_name(FaultState::Cancelled as i32), "cancelled");
    }
}
