//! Pod targets in the output: one row per pod a fault matched, targeted or not, and why.
use std::io::Write;

use chaos_proto::v1::{TargetReport, TargetStatus};
use serde::Serialize;

use super::error::CliError;

/// One pod of a pod target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetView {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container: String,
    pub node: String,
    /// targeted, other-node, not-running, unresolved, protected or gone.
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroup_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl From<&TargetReport> for TargetView {
    fn from(r: &TargetReport) -> Self {
        Self {
            namespace: r.namespace.clone(),
            pod: r.pod.clone(),
            uid: r.uid.clone(),
            container: r.container.clone(),
            node: r.node.clone(),
            status: status_name(r.status),
            cgroup_path: r.cgroup_path.clone(),
            reason: r.reason.clone(),
        }
    }
}

/// The status as printed: lowercase, dash-separated.
pub fn status_name(status: i32) -> &'static str {
    match TargetStatus::try_from(status) {
        Ok(TargetStatus::Targeted) => "targeted",
        Ok(TargetStatus::OtherNode) => "other-node",
        Ok(TargetStatus::NotRunning) => "not-running",
        Ok(TargetStatus::Unresolved) => "unresolved",
        Ok(TargetStatus::Protected) => "protected",
        Ok(TargetStatus::Gone) => "gone",
        Ok(TargetStatus::Unspecified) | Err(_) => "unknown",
    }
}

/// The pods as a table: POD, NODE, STATUS, then the cgroup or the reason.
pub fn write_targets(out: &mut dyn Write, targets: &[TargetView]) -> Result<(), CliError> {
    if targets.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 4]> = targets
        .iter()
        .map(|t| {
            let name = if t.container.is_empty() {
                format!("{}/{}", t.namespace, t.pod)
            } else {
                format!("{}/{} ({})", t.namespace, t.pod, t.container)
            };
            let detail = if t.reason.is_empty() {
                t.cgroup_path.clone()
            } else {
                t.reason.clone()
            };
            [name, t.node.clone(), t.status.to_owned(), detail]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(6);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    writeln!(
        out,
        "{:<w0$}  {:<w1$}  {:<w2$}  DETAIL",
        "POD", "NODE", "STATUS"
    )?;
    for [name, node, status, detail] in rows {
        writeln!(out, "{name:<w0$}  {node:<w1$}  {status:<w2$}  {detail}")?;
    }
    Ok(())
}
