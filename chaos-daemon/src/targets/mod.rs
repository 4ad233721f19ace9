//! Turns a target string (`cgroup:`, `pid:`, `container:`) into the cgroup v2 directories it names.

mod container;
mod hierarchy;
mod kubelet;
pub mod mountns;

use std::path::{Path, PathBuf};

pub use hierarchy::{Hierarchy, Layout};
pub use kubelet::{container_cgroup, parse_container_id, pod_cgroup};

/// Why a target could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The string is not of a known form; the message says which forms exist.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed, but nothing on this node matches it.
    #[error("{0}")]
    NotFound(String),
    /// The cgroup v2 hierarchy could not be read.
    #[error("{0}")]
    Io(String),
}

/// One cgroup a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// Inode number of the directory: the id `bpf_skb_cgroup_id` and friends return.
    pub id: u64,
    /// Absolute path of the directory.
    pub path: PathBuf,
}

/// Resolves `target` against the v2 hierarchy `hier`.
pub fn resolve(hier: &Hierarchy, target: &str) -> Result<Vec<Cgroup>, Error> {
    let (scheme, value) = target.split_once(':').ok_or_else(|| {
        Error::Invalid(format!(
            "target: {target:?} has no scheme; use cgroup:<path>, pid:<pid> or container:<id>"
        ))
    })?;
    if value.is_empty() {
        return Err(Error::Invalid(format!("target: {scheme}: needs a value")));
    }
    let dir = match scheme {
        "cgroup" => hier.cgroup_dir(value),
        "pid" => {
            let pid: u32 = value.parse().map_err(|_| {
                Error::Invalid(format!("target: pid {value:?} is not a process id"))
            })?;
            hier.cgroup_of_pid(pid)?
        }
        "container" => container::find(hier, value)?,
        other => {
            return Err(Error::Invalid(format!(
                "target: unknown scheme {other:?}; use cgroup:<path>, pid:<pid> or container:<id>"
            )))
        }
    };
    Ok(vec![hier.describe(&dir)?])
}

/// Reads the inode number of a cgroup directory, mapping a missing one to `NotFound`.
fn cgroup_id(dir: &Path) -> Result<u64, Error> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(meta.ino()),
        Ok(_) => Err(Error::NotFound(format!(
            "target: {} is not a cgroup directory",
            dir.display()
        ))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!(
            "target: cgroup {} does not exist",
            dir.display()
        ))),
        Err(err) => Err(Error::Io(format!("stat {}: {err}", dir.display()))),
    }
}
