//! The processes of a cgroup and its descendants, and which of them is the main one.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use super::Error;

/// Every process in `dir` and its descendant cgroups.
///
/// A process that exits while the tree is walked is simply missing; a cgroup removed while
/// it is walked is skipped.
pub fn pids(dir: &Path) -> Result<BTreeSet<u32>, Error> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut first = true;
    while let Some(dir) = stack.pop() {
        let procs = dir.join("cgroup.procs");
        match std::fs::read_to_string(&procs) {
            Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
            Err(err) if !first && err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Error::Io {
                    op: "read",
                    path: procs,
                    source,
                })
            }
        }
        first = false;
        stack.extend(children(&dir));
    }
    Ok(out)
}

/// Child cgroup directories of `dir` (none if it vanished).
pub fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`), which
/// orders processes by age and tells a reused pid from the original.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The command name of a process (`/proc/PID/comm`).
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// How the main process of a target is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MainSelector {
    /// This pid, which must be in the target.
    pub pid: Option<u32>,
    /// The oldest process with this command name.
    pub command: Option<String>,
}

/// The main process of the cgroups `dirs`: the given pid, or the oldest process (matching the
/// command name when one is given).
pub fn main_process(dirs: &[&Path], selector: &MainSelector) -> Result<u32, Error> {
    let mut all = BTreeSet::new();
    for dir in dirs {
        all.extend(pids(dir)?);
    }
    let names = || {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(pid) = selector.pid {
        return if all.contains(&pid) {
            Ok(pid)
        } else {
            Err(Error::NoProcess(format!(
                "process {pid} is not in the target ({})",
                names()
            )))
        };
    }
    all.into_iter()
        .filter(|pid| {
            selector
                .command
                .as_ref()
                .is_none_or(|want| comm(*pid).as_deref() == Some(want.as_str()))
        })
        .filter_map(|pid| Some((start_time(pid)?, pid)))
        .min()
        .map(|(_, pid)| pid)
        .ok_or_else(|| {
            Error::NoProcess(match &selector.command {
                Some(command) => {
                    format!("no process named {command:?} in the target ({})", names())
                }
                None => format!("the target ({}) has no process", names()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_a_start_time_and_name() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert!(comm(me).is_some_and(|c| !c.is_empty()));
        assert_eq!(start_time(u32::MAX), None);
    }
}
