//! Real processes placed in test cgroups before they exec, a supervisor that restarts one,
//! and v1 memory cgroups for hybrid hosts (where the memory controller is not on v2).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::util::{unique_name, wait_until};

/// A child process that is killed and reaped when dropped, so no test leaves a zombie.
#[derive(Debug)]
pub struct Spawned(Child);

impl Spawned {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }

    /// Kills it (if still running) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `sh -c script` with the child already in each cgroup directory of `cgroups` when
/// it execs (it writes itself into their `cgroup.procs` between fork and exec).
pub fn spawn_in(cgroups: &[&Path], script: &str) -> Spawned {
    let files: Vec<CString> = cgroups
        .iter()
        .map(|dir| {
            CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
                .expect("path without NUL")
        })
        .collect();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only open/write/close, async-signal-safe, on memory prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            for file in &files {
                let fd = libc::open(file.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if written != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Spawned(cmd.spawn().expect("spawn sh in the test cgroup"))
}

/// CPU time used by a v2 cgroup and below, in µs (`usage_usec` of its `cpu.stat`); 0 if
/// it cannot be read.
pub fn cpu_usage_usec(dir: &Path) -> u64 {
    chaos_daemon::cgroupfs::usage::cpu_usage_usec(dir).unwrap_or(0)
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.get(stat.rfind(')')? + 2..)?.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// A thread that keeps one `sleep` running in the cgroups, starting a new one whenever the
/// last exits, like a container runtime restarting a container's init.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    current: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(cgroups: &[&Path]) -> Supervisor {
        let dirs: Vec<PathBuf> = cgroups.iter().map(|p| p.to_path_buf()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicU32::new(0));
        let (stop2, current2) = (stop.clone(), current.clone());
        let thread = std::thread::spawn(move || {
            let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
            while !stop2.load(Ordering::SeqCst) {
                let mut child = spawn_in(&dirs, "exec sleep 1000");
                current2.store(child.id(), Ordering::SeqCst);
                loop {
                    if stop2.load(Ordering::SeqCst) {
                        child.stop();
                        return;
                    }
                    if child.exited() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        let sup = Supervisor {
            stop,
            current,
            thread: Some(thread),
        };
        assert!(
            wait_until(Duration::from_secs(10), || sup.pid() != 0),
            "supervised process never started"
        );
        sup
    }

    /// The pid of the process it runs now.
    pub fn pid(&self) -> u32 {
        self.current.load(Ordering::SeqCst)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A v1 cgroup `<v1 mount of a controller>/fl-XXXXXXXX`, for the target's processes on a
/// hybrid host (where that controller is not on v2); killed and removed on drop.
pub struct V1Cgroup {
    path: PathBuf,
}

impl V1Cgroup {
    /// `None` on a host without a v1 hierarchy of `controller`.
    pub fn of(controller: &str) -> Option<V1Cgroup> {
        let mount = v1_mount(controller)?;
        let path = mount.join(unique_name("fl-"));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Some(V1Cgroup { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for V1Cgroup {
    fn drop(&mut self) {
        let procs = || {
            fs::read_to_string(self.path.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        };
        for pid in procs() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until(Duration::from_secs(10), || procs().is_empty());
        if !wait_until(Duration::from_secs(10), || {
            fs::remove_dir(&self.path).is_ok()
        }) {
            eprintln!("warning: rmdir {} failed", self.path.display());
        }
    }
}

/// Mount point of the v1 hierarchy of `controller`, if any.
pub fn v1_mount(controller: &str) -> Option<PathBuf> {
    chaos_daemon::cgroupfs::v1::mounts()
        .into_iter()
        .find(|m| m.controllers.iter().any(|c| c == controller))
        .map(|m| m.point)
}
