//! Merges the nodes' answers into one row per pod: each pod as its own node's daemon
//! reports it, else as the plugin saw it, else as another node's daemon mentions it.

use std::collections::BTreeMap;

use chaos_proto::v1::Fault;

use crate::cli::podview::TargetView;
use crate::cli::view::FaultView;

/// One pod of the answer, with the fault that holds it when one does.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRow {
    /// The pod and what became of it.
    pub target: TargetView,
    /// The fault of the pod's node that reported it; `None` for the plugin's own rows.
    pub fault: Option<FaultSummary>,
}

/// What the wide table shows of a fault beside each of its pods.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSummary {
    /// The daemon-assigned id; empty for a dry run.
    pub id: String,
    /// e.g. "network.loss".
    pub kind: &'static str,
    /// pending, active, …
    pub state: &'static str,
    /// The window, Unix ns.
    pub start_at_unix_ns: u64,
    /// The window's end, Unix ns.
    pub end_at_unix_ns: u64,
}

impl From<&FaultView> for FaultSummary {
    fn from(view: &FaultView) -> Self {
        Self {
            id: view.id.clone(),
            kind: view.kind,
            state: view.state,
            start_at_unix_ns: view.start_at_unix_ns,
            end_at_unix_ns: view.end_at_unix_ns,
        }
    }
}

/// How much a source of a row is trusted: the pod's own daemon knows best, the API server
/// next, and another node's "runs on node X" least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    OtherNode,
    Plugin,
    OwnDaemon,
}

/// The rows of `faults` (each node's answer) over `seen` (the plugin's own view of the pods
/// matched, e.g. "no faultline daemon on node X"), sorted by namespace and pod.
pub fn merge(seen: Vec<TargetView>, faults: &[Fault]) -> Vec<PodRow> {
    let mut rows: BTreeMap<(String, String, String), (Rank, PodRow)> = BTreeMap::new();
    let mut offer = |rank: Rank, row: PodRow| {
        let key = (
            row.target.namespace.clone(),
            row.target.pod.clone(),
            row.target.uid.clone(),
        );
        match rows.get(&key) {
            Some((held, _)) if *held >= rank => {}
            _ => {
                rows.insert(key, (rank, row));
            }
        }
    };
    for target in seen {
        offer(
            Rank::Plugin,
            PodRow {
                target,
                fault: None,
            },
        );
    }
    for fault in faults {
        let view = FaultView::from(fault);
        let summary = FaultSummary::from(&view);
        for target in view.targets {
            let rank = if target.status == "other-node" {
                Rank::OtherNode
            } else {
                Rank::OwnDaemon
            };
            let fault = (rank == Rank::OwnDaemon).then(|| summary.clone());
            offer(rank, PodRow { target, fault });
        }
    }
    rows.into_values().map(|(_, row)| row).collect()
}

#[cfg(test)]
mod tests {
    use chaos_proto::v1::{TargetReport, TargetStatus};

    use super::*;

    fn seen(pod: &str, node: &str, status: &'static str) -> TargetView {
        TargetView {
            namespace: "db".into(),
            pod: pod.into(),
            uid: format!("uid-{pod}"),
            container: String::new(),
            node: node.into(),
            status,
            cgroup_path: String::new(),
            reason: String::new(),
        }
    }

    fn report(pod: &str, node: &str, status: TargetStatus) -> TargetReport {
        TargetReport {
            namespace: "db".into(),
            pod: pod.into(),
            uid: format!("uid-{pod}"),
            node: node.into(),
            status: status as i32,
            ..TargetReport::default()
        }
    }

    fn fault(id: &str, targets: Vec<TargetReport>) -> Fault {
        Fault {
            id: id.into(),
            targets,
            ..Fault::default()
        }
    }

    #[test]
    fn each_pod_as_its_own_node_reports_it() {
        let a = fault(
            "f-a",
            vec![
                report("p1", "node-a", TargetStatus::Targeted),
                report("p2", "node-b", TargetStatus::OtherNode),
                report("p3", "node-c", TargetStatus::OtherNode),
                report("p4", "node-b", TargetStatus::OtherNode),
            ],
        );
        let b = fault(
            "f-b",
            vec![
                report("p1", "node-a", TargetStatus::OtherNode),
                report("p2", "node-b", TargetStatus::Targeted),
                report("p3", "node-c", TargetStatus::OtherNode),
            ],
        );
        let plugin = vec![
            seen("p3", "node-c", "no-daemon"),
            seen("p2", "node-b", "unknown"),
        ];
        let rows = merge(plugin, &[a, b]);
        let got: Vec<(&str, &str, Option<&str>)> = rows
            .iter()
            .map(|r| {
                (
                    r.target.pod.as_str(),
                    r.target.status,
                    r.fault.as_ref().map(|f| f.id.as_str()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("p1", "targeted", Some("f-a")),
                ("p2", "targeted", Some("f-b")),
                ("p3", "no-daemon", None),
                // Appeared after the plugin listed the pods: only another node mentions it.
                ("p4", "other-node", None),
            ]
        );
    }
}
