//! Makes a daemon running in a container see the node as the host does: the node's cgroup
//! namespace, and no locked-memory limit on eBPF maps.
//!
//! A container on a cgroup v2 node gets a cgroup namespace of its own, and Kubernetes has no
//! field to share the node's: there `/proc/PID/cgroup` of other pods' processes would read
//! `0::/../..` and their cgroups could not be named. With `hostPID`, `/proc/1` is the node's
//! init, whose namespace is the node's.
use std::os::unix::fs::MetadataExt as _;

use nix::sched::CloneFlags;

/// Why the node's namespaces could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A namespace file could not be read or opened.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: &'static str,
        source: std::io::Error,
    },
    /// setns(2) refused (needs CAP_SYS_ADMIN).
    #[error("setns /proc/1/ns/cgroup: {0}")]
    Setns(nix::Error),
    /// setrlimit(2) refused (needs CAP_SYS_RESOURCE).
    #[error("setrlimit RLIMIT_MEMLOCK: {0}")]
    Memlock(std::io::Error),
}

const OWN: &str = "/proc/self/ns/cgroup";
const INIT: &str = "/proc/1/ns/cgroup";

/// Joins the cgroup namespace of PID 1 when it differs from this process's. Must run before
/// any other thread starts: namespaces are per thread. Returns whether it switched.
pub fn join_init_cgroup_ns() -> Result<bool, Error> {
    let ino = |path: &'static str| {
        std::fs::metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .map_err(|source| Error::Io {
                op: "stat",
                path,
                source,
            })
    };
    // Without the files (an old kernel) there is nothing to join.
    let (Ok(own), Ok(init)) = (ino(OWN), ino(INIT)) else {
        return Ok(false);
    };
    if own == init {
        return Ok(false);
    }
    let file = std::fs::File::open(INIT).map_err(|source| Error::Io {
        op: "open",
        path: INIT,
        source,
    })?;
    nix::sched::setns(file, CloneFlags::CLONE_NEWCGROUP).map_err(Error::Setns)?;
    Ok(true)
}

/// Lifts the locked-memory limit, which kernels before 5.11 charge eBPF maps against.
pub fn raise_memlock() -> Result<(), Error> {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if rc != 0 {
        return Err(Error::Memlock(std::io::Error::last_os_error()));
    }
    Ok(())
}
