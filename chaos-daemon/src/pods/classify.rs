//! Decides, pod by pod, whether this node's daemon acts on it, and on which cgroup.
use std::path::Path;

use chaos_proto::v1::{TargetReport, TargetStatus};
use k8s_openapi::api::core::v1::Pod;

use crate::{
    clock,
    targets::{self, Cgroup, Hierarchy},
};

/// What the request and the daemon allow.
pub struct Policy<'a> {
    /// This daemon's node.
    pub node: &'a str,
    /// Namespaces a request must allow explicitly.
    pub protected: &'a [String],
    /// The request's `allow_protected_namespaces`.
    pub allowed: &'a [String],
    /// The request's container name, or empty for the whole pod.
    pub container: &'a str,
}

impl Policy<'_> {
    /// True when pods of `namespace` may not be touched by this request.
    pub fn forbids(&self, namespace: &str) -> bool {
        self.protected.iter().any(|p| p == namespace)
            && !self.allowed.iter().any(|a| a == namespace)
    }
}

/// The report for one pod, and its cgroup when this daemon acts on it.
pub fn classify(pod: &Pod, policy: &Policy, hier: &Hierarchy) -> (TargetReport, Option<Cgroup>) {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
    let mut report = TargetReport {
        namespace: meta.namespace.clone().unwrap_or_default(),
        pod: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        container: policy.container.to_string(),
        node: node.clone(),
        since_unix_ns: clock::unix_now_ns(),
        ..TargetReport::default()
    };
    let skip = |report: &mut TargetReport, status: TargetStatus, reason: String| {
        report.status = status as i32;
        report.reason = reason;
    };
    if policy.forbids(&report.namespace) {
        let reason = format!(
            "namespace {} is protected; allow it explicitly to target it",
            report.namespace
        );
        skip(&mut report, TargetStatus::Protected, reason);
        return (report, None);
    }
    if !node.is_empty() && node != policy.node {
        let reason = format!("runs on node {node}");
        skip(&mut report, TargetStatus::OtherNode, reason);
        return (report, None);
    }
    if let Some(reason) = not_running(pod) {
        skip(&mut report, TargetStatus::NotRunning, reason);
        return (report, None);
    }
    let qos = status.and_then(|s| s.qos_class.as_deref());
    let dir = targets::pod_cgroup(hier, &report.uid, qos).and_then(|pod_dir| {
        if policy.container.is_empty() {
            Ok(pod_dir)
        } else {
            container_dir(pod, policy.container, &pod_dir)
        }
    });
    match dir.and_then(|dir| hier.describe(&dir)) {
        Ok(cgroup) => {
            report.status = TargetStatus::Targeted as i32;
            report.cgroup_id = cgroup.id;
            report.cgroup_path = cgroup.path.display().to_string();
            (report, Some(cgroup))
        }
        Err(err) => {
            skip(&mut report, TargetStatus::Unresolved, err.to_string());
            (report, None)
        }
    }
}

/// Why `pod` is no live replica (not scheduled, being deleted, not in phase Running), or
/// `None` when it is one; the daemon and the plugin judge pods by this one rule.
pub fn not_running(pod: &Pod) -> Option<String> {
    let scheduled = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if scheduled.is_none_or(str::is_empty) {
        Some("not scheduled to a node yet".into())
    } else if pod.metadata.deletion_timestamp.is_some() {
        Some("being deleted".into())
    } else if phase != Some("Running") {
        Some(format!("phase {}", phase.unwrap_or("Unknown")))
    } else {
        None
    }
}

/// The cgroup of the pod's container `name`, by the id its status carries.
fn container_dir(
    pod: &Pod,
    name: &str,
    pod_dir: &Path,
) -> Result<std::path::PathBuf, targets::Error> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let Some(status) = statuses.iter().find(|c| c.name == name) else {
        let names: Vec<&str> = statuses.iter().map(|c| c.name.as_str()).collect();
        return Err(targets::Error::NotFound(format!(
            "the pod has no container named {name} (it has: {})",
            names.join(", ")
        )));
    };
    let id = status.container_id.as_deref().unwrap_or_default();
    if id.is_empty() {
        return Err(targets::Error::NotFound(format!(
            "container {name} has not started"
        )));
    }
    targets::container_cgroup(pod_dir, id)
}
