//! The workers of one stress fault, in a cgroup of their own under the target.
//!
//! The child cgroup `faultline-stress-<id>` makes the target's accounting (memory.current,
//! cpu.stat, limits) see the workers while keeping them apart from the target's own
//! processes: stopping them is one `cgroup.kill` of that cgroup, and nothing else is touched.
use std::{
    io::Read as _,
    os::{fd::AsFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use nix::{
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::signal::Signal,
};
use tracing::{info, warn};

use super::{
    spawner,
    spec::{Spec, WORKER_ARG},
    Error,
};
use crate::cgroupfs::{self, kill, procs, v1};

/// How long a worker may take to join its cgroups and report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long stopped workers may take to leave their cgroup before it is removed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The workers' cgroup for a fault under `target`.
pub fn cgroup_for(target: &Path, fault_id: &str) -> PathBuf {
    let short: String = fault_id.chars().filter(|c| *c != '-').take(12).collect();
    target.join(format!("faultline-stress-{short}"))
}

struct Worker {
    pid: u32,
    child: Child,
    exit: Option<ExitStatus>,
}

/// Running workers and their cgroup.
pub struct Pool {
    cgroup: PathBuf,
    workers: Vec<Worker>,
}

/// What the workers are doing now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub alive: u32,
    /// Resident bytes of the live workers.
    pub resident_bytes: u64,
    /// Workers killed by SIGKILL before being stopped (the OOM killer, or someone else).
    pub killed: u32,
}

impl Pool {
    /// Creates `cgroup`, starts one worker per spec in it (and in the target's v1 cgroups),
    /// and returns once each has joined them and reported ready. On failure nothing is left.
    pub fn start(target: &Path, cgroup: PathBuf, specs: Vec<Spec>) -> Result<Self, Error> {
        if cgroup.exists() {
            remove_cgroup(&cgroup)?;
        }
        std::fs::create_dir(&cgroup).map_err(|source| cgroupfs::Error::Io {
            op: "mkdir",
            path: cgroup.clone(),
            source,
        })?;
        let mut pool = Self {
            cgroup,
            workers: Vec::new(),
        };
        match pool.spawn_all(target, specs) {
            Ok(()) => Ok(pool),
            Err(err) => {
                pool.stop();
                Err(err)
            }
        }
    }

    fn spawn_all(&mut self, target: &Path, specs: Vec<Spec>) -> Result<(), Error> {
        let mut join = vec![self.cgroup.join("cgroup.procs")];
        join.extend(
            v1::placement(target)?
                .into_iter()
                .map(|dir| dir.join("cgroup.procs")),
        );
        for mut spec in specs {
            spec.join = join.clone();
            let (pid, child, ready) = start_one(&spec, Attach::DiesWithDaemon)?;
            self.workers.push(Worker {
                pid,
                child,
                exit: None,
            });
            ready.map_err(|reason| Error::NotReady { pid, reason })?;
        }
        info!(cgroup = %self.cgroup.display(), workers = self.workers.len(), "stress workers running");
        Ok(())
    }

    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// Reaps exited workers and sums what the live ones hold.
    pub fn status(&mut self) -> Status {
        let mut status = Status::default();
        for worker in &mut self.workers {
            if worker.exit.is_none() {
                worker.exit = worker.child.try_wait().ok().flatten();
            }
            match worker.exit {
                None => {
                    status.alive += 1;
                    status.resident_bytes += resident_bytes(worker.pid);
                }
                Some(exit) => {
                    use std::os::unix::process::ExitStatusExt as _;
                    if exit.signal() == Some(libc::SIGKILL) {
                        status.killed += 1;
                    }
                }
            }
        }
        status
    }

    /// Kills every worker, reaps them and removes their cgroup.
    pub fn stop(&mut self) {
        if let Err(err) = remove_cgroup(&self.cgroup) {
            warn!(cgroup = %self.cgroup.display(), error = %err, "removing the stress cgroup");
        }
        for worker in &mut self.workers {
            if worker.exit.is_none() {
                let _ = kill::signal_one(worker.pid, Signal::SIGKILL);
                worker.exit = worker.child.wait().ok();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.workers.iter().any(|w| w.exit.is_none()) || self.cgroup.exists() {
            self.stop();
        }
    }
}

/// How a worker relates to the daemon's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attach {
    /// Killed by the kernel when the daemon dies (`PR_SET_PDEATHSIG`).
    DiesWithDaemon,
    /// In a session of its own, outliving the daemon (a pause's thaw guard).
    Outlives,
}

/// Starts one worker from the spawner thread and waits for its readiness line; the child
/// is returned even when it is not ready, so the caller can reap it.
fn start_one(spec: &Spec, attach: Attach) -> Result<(u32, Child, Result<(), String>), Error> {
    let exe = std::env::current_exe().map_err(|source| Error::Spawn {
        exe: "/proc/self/exe".into(),
        source,
    })?;
    let mut spec = spec.clone();
    spec.parent = std::process::id();
    let json = serde_json::to_string(&spec).map_err(|err| Error::Spawn {
        exe: exe.display().to_string(),
        source: std::io::Error::other(err),
    })?;
    let mut command = Command::new(&exe);
    command
        .arg(WORKER_ARG)
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: prctl and setsid are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            let rc = match attach {
                Attach::DiesWithDaemon => libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL),
                // Out of the daemon's process group: a signal to the group spares it.
                Attach::Outlives => libc::setsid(),
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = spawner::spawn(command).map_err(|source| Error::Spawn {
        exe: exe.display().to_string(),
        source,
    })?;
    let ready = wait_ready(&mut child);
    Ok((child.id(), child, ready))
}

/// A pause's thaw guard: a process that thaws the target at the window's end even if the
/// daemon was killed meanwhile. The daemon stops it when it thaws first (end, cancel,
/// shutdown).
pub struct Guard {
    child: Child,
}

impl Guard {
    pub fn start(spec: &Spec) -> Result<Self, Error> {
        let (pid, mut child, ready) = start_one(spec, Attach::Outlives)?;
        if let Err(reason) = ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::NotReady { pid, reason });
        }
        Ok(Self { child })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills whatever is in a workers' cgroup and removes it; used at stop and by a restarted
/// daemon for the cgroups its predecessor left.
pub fn remove_cgroup(cgroup: &Path) -> Result<(), cgroupfs::Error> {
    if !cgroup.exists() {
        return Ok(());
    }
    kill::kill_tree(cgroup, Signal::SIGKILL)?;
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        let populated = procs::pids(cgroup).map(|p| !p.is_empty()).unwrap_or(false);
        if !populated {
            match std::fs::remove_dir(cgroup) {
                Ok(()) => return Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                // EBUSY while the last exits are accounted.
                Err(err) if Instant::now() >= deadline => {
                    return Err(cgroupfs::Error::Io {
                        op: "rmdir",
                        path: cgroup.to_path_buf(),
                        source: err,
                    })
                }
                Err(_) => {}
            }
        } else if Instant::now() >= deadline {
            return Err(cgroupfs::Error::Io {
                op: "rmdir",
                path: cgroup.to_path_buf(),
                source: std::io::Error::other("processes did not exit after SIGKILL"),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads the worker's first line: "ready", or the error that stopped it.
fn wait_ready(child: &mut Child) -> Result<(), String> {
    let Some(mut stdout) = child.stdout.take() else {
        return Err("no stdout pipe".into());
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Err(format!("not ready after {READY_TIMEOUT:?}")),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(format!("poll on its stdout: {errno}")),
        }
        let n = stdout
            .read(&mut buf)
            .map_err(|err| format!("reading its stdout: {err}"))?;
        if n == 0 {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!("exited before it was ready ({status})"));
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            return if text == "ready" { Ok(()) } else { Err(text) };
        }
    }
}

/// `VmRSS` of a process in bytes; 0 if it is gone.
fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kb = line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}
