//! Renders responses as aligned tables (RFC 3339 UTC times) or JSON (Unix ns times).

use std::io::Write;
use std::time::SystemTime;

use chaos_proto::v1::{CapabilitiesResponse, Fault};
use serde::Serialize;
use time::OffsetDateTime;

use super::args::OutputFormat;
use super::error::CliError;
use super::table::{Align, Table};
use super::view::{CapabilitiesView, FaultView, PortRangeView};

/// A fault's id, target, kind, state and window: the columns every fault table has
/// (`kubectl chaos` puts its own around them), filled by [`window_cells`].
pub const WINDOW_COLUMNS: &[(&str, Align)] = &[
    ("ID", Align::Left),
    ("TARGET", Align::Left),
    ("KIND", Align::Left),
    ("STATE", Align::Left),
    ("START", Align::Left),
    ("END", Align::Left),
];

/// A fault's packet counters, filled by [`counter_cells`].
pub const COUNTER_COLUMNS: &[(&str, Align)] = &[
    ("SEEN", Align::Right),
    ("MATCHED", Align::Right),
    ("AFFECTED", Align::Right),
];

/// The last column of a fault table.
pub const MESSAGE_COLUMN: (&str, Align) = ("MESSAGE", Align::Left);

/// Prints faults: a table with one row each, or a JSON array (`list`).
pub fn write_faults(
    out: &mut dyn Write,
    format: OutputFormat,
    faults: &[Fault],
) -> Result<(), CliError> {
    let views: Vec<FaultView> = faults.iter().map(FaultView::from).collect();
    match format {
        OutputFormat::Json => write_json(out, &views),
        OutputFormat::Table => {
            let mut table =
                Table::new(&[WINDOW_COLUMNS, COUNTER_COLUMNS, &[MESSAGE_COLUMN]].concat());
            for view in &views {
                let mut row = window_cells(view);
                row.extend(counter_cells(view));
                row.push(view.message.clone());
                table.push(row);
            }
            Ok(table.write(out)?)
        }
    }
}

/// Prints one fault: a one-row table, or one JSON object (`inject`, `cancel`).
pub fn write_fault(
    out: &mut dyn Write,
    format: OutputFormat,
    fault: &Fault,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => write_json(out, &FaultView::from(fault)),
        OutputFormat::Table => write_faults(out, format, std::slice::from_ref(fault)),
    }
}

/// Prints one fault in full: aligned "Field: value" lines, or one JSON object (`get`).
pub fn write_fault_detail(
    out: &mut dyn Write,
    format: OutputFormat,
    fault: &Fault,
) -> Result<(), CliError> {
    let view = FaultView::from(fault);
    if format == OutputFormat::Json {
        return write_json(out, &view);
    }
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "any".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("ID", view.id.clone()),
        ("Target", view.target.clone()),
        (
            "Cgroup IDs",
            view.cgroup_ids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("Kind", view.kind.to_owned()),
    ];
    if let Some(spec) = &view.spec {
        if let Some(percent) = spec.loss_percent {
            fields.push(("Loss", format!("{percent}%")));
        }
        fields.push(("Direction", spec.direction.to_owned()));
        fields.push(("Protocol", spec.protocol.to_owned()));
        fields.push(("Ports", list(spec.ports.iter().map(port_range).collect())));
        fields.push(("Peers", list(spec.peers.clone())));
    }
    if let Some(p) = &view.process {
        if let Some(signal) = &p.signal {
            fields.push(("Signal", signal.clone()));
        }
        if p.main_only || p.main_pid.is_some() || p.main_command.is_some() {
            let chosen = match (&p.main_pid, &p.main_command) {
                (Some(pid), _) => format!("pid {pid}"),
                (None, Some(command)) => format!("oldest {command:?}"),
                (None, None) => "oldest process".to_owned(),
            };
            fields.push(("Main process", chosen));
        }
        if let Some(ms) = p.interval_ms {
            fields.push(("Every", format!("{ms} ms")));
        }
    }
    if let Some(s) = &view.stress {
        if let Some(load) = s.load_percent {
            let workers = match s.workers {
                Some(0) | None => "one per allowed CPU".to_owned(),
                Some(n) => n.to_string(),
            };
            fields.push(("Workers", workers));
            fields.push(("Load", format!("{load}%")));
        }
        if let Some(bytes) = s.memory_bytes {
            fields.push(("Memory", format!("{bytes} bytes")));
        }
        if let Some(percent) = s.percent_of_limit {
            fields.push(("Memory", format!("{percent}% of the limit")));
        }
    }
    fields.extend([
        ("State", view.state.to_owned()),
        ("Start", timestamp(view.start_at_unix_ns)),
        ("End", timestamp(view.end_at_unix_ns)),
        ("First affected", timestamp(view.first_affected_unix_ns)),
        ("Last affected", timestamp(view.last_affected_unix_ns)),
        ("Ended", timestamp(view.ended_at_unix_ns)),
        ("Seen", view.counters.seen.to_string()),
        ("Matched", view.counters.matched.to_string()),
        ("Affected", view.counters.affected.to_string()),
    ]);
    if let Some(s) = &view.storage {
        fields.push(("Path", s.path.clone()));
        if let Some(errno) = &s.errno {
            let percent = s.percent.unwrap_or(100.0);
            let limit = s
                .max_failures
                .map_or_else(|| "no limit".to_owned(), |n| n.to_string());
            fields.extend([
                ("Errno", errno.clone()),
                ("Operations", s.operations.join(", ")),
                ("Failing", format!("{percent}% of calls")),
                ("Max failures", limit),
            ]);
        }
        if let Some(percent) = s.fill_percent {
            fields.push(("Fill to", format!("{percent}% used")));
        }
        if let Some(bytes) = s.fill_bytes {
            fields.push(("Fill", format!("{bytes} bytes")));
        }
        for (name, value, unit) in [
            ("Read limit", s.read_bytes_per_second, "bytes/s"),
            ("Write limit", s.write_bytes_per_second, "bytes/s"),
            ("Read IOPS limit", s.read_iops, "ops/s"),
            ("Write IOPS limit", s.write_iops, "ops/s"),
        ] {
            if let Some(value) = value {
                fields.push((name, format!("{value} {unit}")));
            }
        }
    }
    if let Some(o) = &view.outcome {
        if o.rounds > 0 {
            fields.push((
                "Signalled",
                format!("{} in {} round(s)", o.signalled, o.rounds),
            ));
        }
        if o.main_pid != 0 {
            fields.push(("Main pid", o.main_pid.to_string()));
        }
        if o.new_main_pid != 0 {
            let after = std::time::Duration::from_nanos(o.restart_after_ns);
            fields.push((
                "Restarted",
                format!("pid {} after {after:?}", o.new_main_pid),
            ));
        }
        if view.kind == "process.pause" {
            fields.push(("Frozen", o.frozen.to_string()));
        }
        if view.kind == "storage.disk_fill" {
            fields.push(("Filled", format!("{} bytes", o.filled_bytes)));
            fields.push((
                "File system used",
                format!("{:.1}%", o.filesystem_used_percent),
            ));
        }
        if !o.backends.is_empty() {
            fields.push(("Kernel routes", o.backends.clone()));
        }
        if view.kind.starts_with("stress.") {
            fields.push(("Workers alive", o.workers.to_string()));
            fields.push(("Worker memory", format!("{} bytes", o.memory_bytes)));
            fields.push(("OOM kills", o.oom_kills.to_string()));
        }
    }
    if !view.message.is_empty() {
        fields.push(("Message", view.message.clone()));
    }
    if !view.node.is_empty() {
        fields.push(("Node", view.node.clone()));
    }
    if view.lease_expires_unix_ns != 0 {
        fields.push(("Lease until", timestamp(view.lease_expires_unix_ns)));
    }
    if view.dry_run {
        fields.insert(0, ("Dry run", "nothing was armed".to_owned()));
        fields.retain(|(name, _)| {
            !matches!(*name, "ID" | "Ended" | "First affected" | "Last affected")
        });
    }
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 1;
    for (name, value) in fields {
        writeln!(out, "{:<width$} {value}", format!("{name}:"))?;
    }
    if !view.targets.is_empty() {
        writeln!(out)?;
        super::podview::write_targets(out, &view.targets)?;
    }
    Ok(())
}

/// Prints one `watch` event: a log line stamped with the time it arrived, or one compact
/// JSON object per line so `jq` and line-oriented tools can follow the stream.
pub fn write_event(
    out: &mut dyn Write,
    format: OutputFormat,
    fault: &Fault,
    received: SystemTime,
) -> Result<(), CliError> {
    let view = FaultView::from(fault);
    match format {
        OutputFormat::Json => {
            serde_json::to_writer(&mut *out, &view)?;
            writeln!(out)?;
        }
        OutputFormat::Table => {
            let received = received
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            let mut line = format!(
                "{}  {}  {:<9}  {}  {}  seen={} matched={} affected={}",
                timestamp(received),
                view.id,
                view.state,
                view.kind,
                view.target,
                view.counters.seen,
                view.counters.matched,
                view.counters.affected
            );
            if !view.message.is_empty() {
                line.push_str("  ");
                line.push_str(&view.message);
            }
            writeln!(out, "{line}")?;
        }
    }
    // Each event must reach a pipe as it happens, not when a buffer fills.
    out.flush()?;
    Ok(())
}

/// Prints `capabilities`: the kernel release and two tables (features, fault kinds), or
/// one JSON object.
pub fn write_capabilities(
    out: &mut dyn Write,
    format: OutputFormat,
    caps: &CapabilitiesResponse,
) -> Result<(), CliError> {
    let view = CapabilitiesView::from(caps);
    if format == OutputFormat::Json {
        return write_json(out, &view);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    writeln!(out, "Kernel: {}", view.kernel_release)?;
    writeln!(out)?;
    let mut features = Table::new(&[
        ("FEATURE", Align::Left),
        ("AVAILABLE", Align::Left),
        ("DETAIL", Align::Left),
    ]);
    for f in &view.features {
        features.push(vec![f.name.clone(), yes_no(f.available), f.detail.clone()]);
    }
    features.write(out)?;
    writeln!(out)?;
    let mut faults = Table::new(&[
        ("FAULT", Align::Left),
        ("SUPPORTED", Align::Left),
        ("DETAIL", Align::Left),
    ]);
    for f in &view.faults {
        faults.push(vec![f.kind.clone(), yes_no(f.supported), f.detail.clone()]);
    }
    Ok(faults.write(out)?)
}

/// Formats Unix ns as RFC 3339 UTC with milliseconds (`2030-01-01T12:00:00.000Z`), or
/// "-" for 0, which the API uses for "not yet / never".
pub fn timestamp(unix_ns: u64) -> String {
    if unix_ns == 0 {
        return "-".to_owned();
    }
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ns)) {
        // Formatted by hand: the well-known Rfc3339 format trims sub-second digits,
        // which would make columns ragged.
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        // Unreachable for u64 input (it ends in 2554), but a raw number beats a panic.
        Err(_) => unix_ns.to_string(),
    }
}

/// The cells of `view` under [`WINDOW_COLUMNS`].
pub fn window_cells(view: &FaultView) -> Vec<String> {
    vec![
        view.id.clone(),
        view.target.clone(),
        view.kind.to_owned(),
        view.state.to_owned(),
        timestamp(view.start_at_unix_ns),
        timestamp(view.end_at_unix_ns),
    ]
}

/// The cells of `view` under [`COUNTER_COLUMNS`].
pub fn counter_cells(view: &FaultView) -> [String; 3] {
    [
        view.counters.seen.to_string(),
        view.counters.matched.to_string(),
        view.counters.affected.to_string(),
    ]
}

fn port_range(range: &PortRangeView) -> String {
    if range.first == range.last {
        range.first.to_string()
    } else {
        format!("{}-{}", range.first, range.last)
    }
}

/// One pretty-printed JSON document followed by a newline.
pub fn write_json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chaos_proto::v1::{FaultSupport, Feature};

    use super::*;
    use crate::cli::view::tests::sample_fault;

    fn render(f: impl FnOnce(&mut dyn Write) -> Result<(), CliError>) -> String {
        let mut out = Vec::new();
        assert!(f(&mut out).is_ok());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_ms() {
        assert_eq!(timestamp(0), "-");
        assert_eq!(
            timestamp(1_893_456_000_500_000_000),
            "2030-01-01T00:00:00.500Z"
        );
        assert_eq!(timestamp(1_000), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn fault_table() {
        let text = render(|out| write_fault(out, OutputFormat::Table, &sample_fault()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID   TARGET    KIND          STATE   START"));
        assert!(lines[0].ends_with("SEEN  MATCHED  AFFECTED  MESSAGE"));
        assert!(lines[1].contains("f-1  pid:4242  network.loss  active  1970-01-01T00:00:00.000Z"));
        assert!(lines[1].ends_with("  10        5         2"));
    }

    #[test]
    fn list_json_is_an_array() {
        let text = render(|out| write_faults(out, OutputFormat::Json, &[sample_fault()]));
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        assert_eq!(json.as_ref().and_then(|j| j[0]["id"].as_str()), Some("f-1"));
        let empty = render(|out| write_faults(out, OutputFormat::Json, &[]));
        assert_eq!(empty.trim(), "[]");
    }

    #[test]
    fn detail_lists_the_spec() {
        let text = render(|out| write_fault_detail(out, OutputFormat::Table, &sample_fault()));
        assert!(text.contains("Loss:           30%\n"), "{text}");
        assert!(text.contains("Ports:          5432\n"), "{text}");
        assert!(text.contains("Peers:          10.0.0.0/8\n"), "{text}");
        assert!(text.contains("Ended:          -\n"), "{text}");
    }

    #[test]
    fn detail_lists_an_errno_fault() {
        let fault = crate::cli::view::tests::errno_fault();
        let text = render(|out| write_fault_detail(out, OutputFormat::Table, &fault));
        for line in [
            "Kind:           storage.errno\n",
            "Path:           /var/lib/postgresql/data\n",
            "Errno:          EIO\n",
            "Operations:     write, fsync\n",
            "Failing:        100% of calls\n",
            "Max failures:   3\n",
            "Kernel routes:  write: bpf_lsm; fsync: kprobe_override\n",
        ] {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
    }

    #[test]
    fn watch_json_is_one_line_per_event() {
        let text = render(|out| {
            write_event(
                out,
                OutputFormat::Json,
                &sample_fault(),
                SystemTime::UNIX_EPOCH,
            )
        });
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("{\"id\":\"f-1\""));
    }

    #[test]
    fn capabilities_table_has_two_sections() {
        let caps = CapabilitiesResponse {
            kernel_release: "6.8.0".into(),
            features: vec![Feature {
                name: "cgroup_skb".into(),
                available: true,
                detail: "probed".into(),
            }],
            faults: vec![FaultSupport {
                kind: "network.loss".into(),
                supported: false,
                detail: "needs cgroup_skb".into(),
            }],
        };
        let text = render(|out| write_capabilities(out, OutputFormat::Table, &caps));
        assert_eq!(
            text,
            "Kernel: 6.8.0\n\n\
             FEATURE     AVAILABLE  DETAIL\n\
             cgroup_skb  yes        probed\n\n\
             FAULT         SUPPORTED  DETAIL\n\
             network.loss  no         needs cgroup_skb\n"
        );
        let json = render(|out| write_capabilities(out, OutputFormat::Json, &caps));
        let json: Option<serde_json::Value> = serde_json::from_str(&json).ok();
        assert_eq!(
            json.as_ref()
                .and_then(|j| j["faults"][0]["supported"].as_bool()),
            Some(false)
        );
    }
}
