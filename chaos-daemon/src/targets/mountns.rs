//! Paths as a target sees them: reached from the node through `/proc/PID/root` of one of
//! the target's processes, which walks that process's mount namespace.
//! <https://man7.org/linux/man-pages/man5/proc_pid_root.5.html>
use std::path::{Path, PathBuf};

use crate::{
    cgroupfs::procs::{self, MainSelector},
    error::Error,
};

/// `path` (absolute, in the target's mount namespace) as reachable from the node through
/// the root of the target's oldest process. `what` names the fault kind for the error.
pub fn reach(dirs: &[PathBuf], path: &Path, what: &str) -> Result<PathBuf, Error> {
    let (_, root) = process_root(dirs, what)?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    Ok(root.join(relative))
}

/// The target's oldest process and its root directory as seen from the node
/// (`/proc/PID/root`).
pub fn process_root(dirs: &[PathBuf], what: &str) -> Result<(u32, PathBuf), Error> {
    let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let pid = procs::main_process(&dirs, &MainSelector::default()).map_err(|err| {
        Error::FailedPrecondition(format!(
            "{what} needs a process of the target to see its mount namespace: {err}"
        ))
    })?;
    Ok((pid, PathBuf::from(format!("/proc/{pid}/root"))))
}
