//! Signals every process of a cgroup tree, including the ones forked while it is done.
use std::{collections::BTreeSet, path::Path};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use super::{procs, write, Error};

/// Passes over the tree before giving up on a cgroup that keeps forking.
const MAX_PASSES: usize = 1000;

/// What one kill round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Killed {
    /// Processes found in the tree.
    pub found: u64,
    /// Processes the signal was delivered to.
    pub signalled: u64,
}

/// Sends `signal` to every process in `dir` and below.
///
/// SIGKILL uses `cgroup.kill` where the kernel has it (5.14+): the kernel kills the whole
/// tree, and processes forked meanwhile, in one write. Otherwise the tree is read and
/// signalled again until a pass finds no process it has not signalled yet, so a child
/// forked after its parent was signalled is caught by the next pass.
/// <https://docs.kernel.org/admin-guide/cgroup-v2.html#core-interface-files>
pub fn kill_tree(dir: &Path, signal: Signal) -> Result<Killed, Error> {
    let cgroup_kill = dir.join("cgroup.kill");
    if signal == Signal::SIGKILL && cgroup_kill.exists() {
        let found = procs::pids(dir)?.len() as u64;
        write(&cgroup_kill, "1")?;
        return Ok(Killed {
            found,
            signalled: found,
        });
    }
    let mut done = BTreeSet::new();
    let mut report = Killed::default();
    for _ in 0..MAX_PASSES {
        let fresh: Vec<u32> = procs::pids(dir)?
            .into_iter()
            .filter(|pid| !done.contains(pid))
            .collect();
        if fresh.is_empty() {
            return Ok(report);
        }
        for pid in fresh {
            done.insert(pid);
            report.found += 1;
            if signal_one(pid, signal)? {
                report.signalled += 1;
            }
        }
    }
    Ok(report)
}

/// Sends `signal` to one process; `false` if it had already exited.
pub fn signal_one(pid: u32, signal: Signal) -> Result<bool, Error> {
    let raw =
        i32::try_from(pid).map_err(|_| Error::NoProcess(format!("pid {pid} is out of range")))?;
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(errno) => Err(Error::Io {
            op: "kill",
            path: format!("/proc/{pid}").into(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        }),
    }
}
