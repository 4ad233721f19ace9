//! Reads and writes cgroup files for the faults that act on processes: their processes,
//! signals, the freezer, limits and usage, and the v1 cgroups beside a v2 one on hybrid hosts.

pub mod freeze;
pub mod kill;
pub mod procs;
pub mod usage;
pub mod v1;

use std::path::{Path, PathBuf};

/// A cgroup file operation failed; the message names the file and the call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or listing a cgroup or /proc file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The cgroup has no process matching what was asked.
    #[error("{0}")]
    NoProcess(String),
    /// This node has no interface for the operation (e.g. no freezer at all).
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { op, path, source }
    }
}

/// Reads a whole cgroup or /proc file.
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(Error::io("read", path))
}

/// Writes a value to a cgroup file in one `write`, as the kernel expects.
pub fn write(path: &Path, value: &str) -> Result<(), Error> {
    std::fs::write(path, value).map_err(Error::io("write", path))
}

/// The value of `key` in a flat-keyed file such as `cgroup.events` or `memory.events`.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}
