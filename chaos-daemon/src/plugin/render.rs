//! Prints the plugin's answers: per-pod and per-fault tables (plain or wide), or the
//! daemons' faults as JSON or YAML.

use std::io::Write;

use chaos_proto::v1::Fault;
use serde::Serialize;

use super::args::Format;
use super::error::PluginError;
use super::rows::PodRow;
use crate::cli::args::OutputFormat;
use crate::cli::output::{
    counter_cells, timestamp, window_cells, write_fault_detail, write_json, COUNTER_COLUMNS,
    MESSAGE_COLUMN, WINDOW_COLUMNS,
};
use crate::cli::table::{Align, Table};
use crate::cli::view::FaultView;

/// The pod table's first columns, wide or not.
const POD_COLUMNS: &[(&str, Align)] = &[
    ("POD", Align::Left),
    ("NODE", Align::Left),
    ("STATUS", Align::Left),
    ("FAULT ID", Align::Left),
];

/// What the wide pod table adds before DETAIL.
const WIDE_POD_COLUMNS: &[(&str, Align)] = &[
    ("KIND", Align::Left),
    ("STATE", Align::Left),
    ("START", Align::Left),
    ("END", Align::Left),
    ("UID", Align::Left),
    ("CGROUP", Align::Left),
];

/// The pod table's last column.
const DETAIL_COLUMN: (&str, Align) = ("DETAIL", Align::Left);

/// The column the fault table adds before chaosctl's [`WINDOW_COLUMNS`].
const NODE_COLUMN: (&str, Align) = ("NODE", Align::Left);

/// The column the fault table adds after [`WINDOW_COLUMNS`]: the pods targeted.
const PODS_COLUMN: (&str, Align) = ("PODS", Align::Right);

/// The column the wide fault table adds after chaosctl's [`COUNTER_COLUMNS`].
const LEASE_COLUMN: (&str, Align) = ("LEASE UNTIL", Align::Left);

/// Prints an inject's answer: one row per pod, or the nodes' faults as a JSON/YAML array.
pub fn write_pods(
    out: &mut dyn Write,
    format: Format,
    rows: &[PodRow],
    faults: &[Fault],
) -> Result<(), PluginError> {
    let wide = match format {
        Format::Json | Format::Yaml => return write_document(out, format, &views(faults)),
        Format::Table => false,
        Format::Wide => true,
    };
    let wide_columns: &[_] = if wide { WIDE_POD_COLUMNS } else { &[] };
    let mut table = Table::new(&[POD_COLUMNS, wide_columns, &[DETAIL_COLUMN]].concat());
    for row in rows {
        let t = &row.target;
        let pod = if t.container.is_empty() {
            format!("{}/{}", t.namespace, t.pod)
        } else {
            format!("{}/{} ({})", t.namespace, t.pod, t.container)
        };
        let fault = row.fault.as_ref();
        let id = fault
            .map(|f| f.id.clone())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| "-".to_owned());
        let mut cells = vec![pod, t.node.clone(), t.status.to_owned(), id];
        let detail = if wide {
            let text = |value: Option<&str>| value.unwrap_or("-").to_owned();
            cells.extend([
                text(fault.map(|f| f.kind)),
                text(fault.map(|f| f.state)),
                timestamp(fault.map_or(0, |f| f.start_at_unix_ns)),
                timestamp(fault.map_or(0, |f| f.end_at_unix_ns)),
                t.uid.clone(),
                t.cgroup_path.clone(),
            ]);
            t.reason.clone()
        } else if t.reason.is_empty() {
            t.cgroup_path.clone()
        } else {
            t.reason.clone()
        };
        cells.push(detail);
        table.push(cells);
    }
    Ok(table.write(out)?)
}

/// Prints faults of several nodes: one row each with its node, or a JSON/YAML array.
pub fn write_faults(
    out: &mut dyn Write,
    format: Format,
    faults: &[Fault],
) -> Result<(), PluginError> {
    let views = views(faults);
    let wide = match format {
        Format::Json | Format::Yaml => return write_document(out, format, &views),
        Format::Table => false,
        Format::Wide => true,
    };
    let mut columns = vec![NODE_COLUMN];
    columns.extend(WINDOW_COLUMNS);
    columns.push(PODS_COLUMN);
    if wide {
        columns.extend(COUNTER_COLUMNS);
        columns.push(LEASE_COLUMN);
    }
    columns.push(MESSAGE_COLUMN);
    let mut table = Table::new(&columns);
    for view in &views {
        let pods = if view.targets.is_empty() {
            "-".to_owned()
        } else {
            let targeted = view.targets.iter().filter(|t| t.status == "targeted");
            targeted.count().to_string()
        };
        let mut row = vec![view.node.clone()];
        row.extend(window_cells(view));
        row.push(pods);
        if wide {
            row.extend(counter_cells(view));
            row.push(timestamp(view.lease_expires_unix_ns));
        }
        row.push(view.message.clone());
        table.push(row);
    }
    Ok(table.write(out)?)
}

/// Prints one fault: chaosctl's detail (fields, then its pods), or one JSON/YAML object.
pub fn write_fault(out: &mut dyn Write, format: Format, fault: &Fault) -> Result<(), PluginError> {
    match format {
        Format::Json | Format::Yaml => write_document(out, format, &FaultView::from(fault)),
        Format::Table | Format::Wide => Ok(write_fault_detail(out, OutputFormat::Table, fault)?),
    }
}

fn views(faults: &[Fault]) -> Vec<FaultView> {
    faults.iter().map(FaultView::from).collect()
}

/// One pretty JSON document or one YAML document, ending in a newline.
fn write_document<T: Serialize>(
    out: &mut dyn Write,
    format: Format,
    value: &T,
) -> Result<(), PluginError> {
    if format == Format::Yaml {
        // Plain scalars, as kubectl prints them: no folded `>-` blocks for long paths.
        let mut options = serde_saphyr::SerializerOptions::default();
        options.prefer_block_scalars = false;
        let text = serde_saphyr::to_string_with_options(value, options)
            .map_err(|e| PluginError::Yaml(e.to_string()))?;
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
        return Ok(());
    }
    Ok(write_json(out, value)?)
}

#[cfg(test)]
mod tests {
    use chaos_proto::v1::{FaultState, TargetReport, TargetStatus};

    use super::*;
    use crate::plugin::rows::merge;

    fn fault() -> Fault {
        Fault {
            id: "f-1".into(),
            target: "pods:db?labelSelector=app=pg".into(),
            node: "node-a".into(),
            state: FaultState::Active as i32,
            start_at_unix_ns: 1_000_000_000,
            end_at_unix_ns: 31_000_000_000,
            targets: vec![
                TargetReport {
                    namespace: "db".into(),
                    pod: "pg-0".into(),
                    uid: "u0".into(),
                    node: "node-a".into(),
                    status: TargetStatus::Targeted as i32,
                    cgroup_path: "/kubepods/pod-u0".into(),
                    ..TargetReport::default()
                },
                TargetReport {
                    namespace: "db".into(),
                    pod: "pg-1".into(),
                    uid: "u1".into(),
                    node: "node-b".into(),
                    status: TargetStatus::OtherNode as i32,
                    reason: "runs on node node-b".into(),
                    ..TargetReport::default()
                },
            ],
            ..Fault::default()
        }
    }

    fn render(f: impl FnOnce(&mut dyn Write) -> Result<(), PluginError>) -> String {
        let mut out = Vec::new();
        if let Err(e) = f(&mut out) {
            panic!("{e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn pod_rows() {
        let faults = [fault()];
        let rows = merge(Vec::new(), &faults);
        let text = render(|out| write_pods(out, Format::Table, &rows, &faults));
        assert_eq!(
            text,
            "POD      NODE    STATUS      FAULT ID  DETAIL\n\
             db/pg-0  node-a  targeted    f-1       /kubepods/pod-u0\n\
             db/pg-1  node-b  other-node  -         runs on node node-b\n"
        );
        let wide = render(|out| write_pods(out, Format::Wide, &rows, &faults));
        let header: Vec<&str> = wide
            .lines()
            .next()
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        assert_eq!(
            header,
            [
                "POD", "NODE", "STATUS", "FAULT", "ID", "KIND", "STATE", "START", "END", "UID",
                "CGROUP", "DETAIL"
            ]
        );
        assert!(wide.contains("1970-01-01T00:00:31.000Z"), "{wide}");
    }

    #[test]
    fn documents_are_arrays_of_fault_views() {
        let faults = [fault()];
        let json = render(|out| write_pods(out, Format::Json, &[], &faults));
        let json: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(json[0]["id"], "f-1");
        assert_eq!(json[0]["targets"][1]["status"], "other-node");
        let yaml = render(|out| write_faults(out, Format::Yaml, &faults));
        assert!(yaml.starts_with("- id: f-1\n"), "{yaml}");
        assert!(yaml.contains("status: other-node"), "{yaml}");
        let long = format!("/sys/fs/cgroup/kubepods/{}", "burstable/".repeat(12));
        let fault = Fault {
            message: long.clone(),
            ..fault()
        };
        let yaml = render(|out| write_fault(out, Format::Yaml, &fault));
        assert!(yaml.contains(&format!("message: {long}\n")), "{yaml}");
    }

    #[test]
    fn fault_table_has_a_node_column() {
        let text = render(|out| write_faults(out, Format::Table, &[fault()]));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE    ID   TARGET"), "{text}");
        assert!(
            lines[1].starts_with("node-a  f-1  pods:db?labelSelector=app=pg"),
            "{text}"
        );
        assert!(lines[1].ends_with("  1"), "{text}");
    }
}
