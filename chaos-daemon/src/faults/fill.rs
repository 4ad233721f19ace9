//! `storage.disk_fill`: one file that fills the filesystem holding a path the target sees,
//! removed at the end, on cancel, and by a restarted daemon.
//!
//! The path is resolved through `/proc/PID/root` of the target's oldest process, so it
//! names the file system of the target's mount namespace (a container's volume, not the
//! node's directory of the same name). The daemon keeps the directory open while the fault
//! lasts: the file can be removed even if every process of the target has exited.
use std::{
    fs::File,
    io::Write as _,
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
};

use chaos_proto::v1::{Counters, DiskFill, Fault, Outcome};
use nix::{
    fcntl::{fallocate, FallocateFlags},
    sys::statvfs::fstatvfs,
    unistd::{unlinkat, UnlinkatFlags},
};
use tracing::{info, warn};

use super::actor::Actor;
use crate::{error::Error, journal::Undo, targets::mountns};

/// Written in chunks of this size when the file system cannot `fallocate`.
const CHUNK: usize = 1 << 20;

/// A validated fill.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Absolute path in the target's mount namespace.
    pub path: PathBuf,
    pub amount: Amount,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// Fill until the file system is this percent used.
    UsedPercent(f64),
    /// Add this many bytes (capped by what is free).
    Bytes(u64),
}

/// Validates a `DiskFill`; errors name the field.
pub fn plan(fill: &DiskFill) -> Result<Plan, Error> {
    let path = PathBuf::from(fill.path.trim());
    if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
        return Err(Error::invalid(
            "storage.disk_fill.path",
            format!("{:?} must be an absolute path without '..'", fill.path),
        ));
    }
    let amount = match (fill.percent, fill.bytes) {
        (p, 0) if p > 0.0 && p <= 100.0 => Amount::UsedPercent(p),
        (p, b) if p == 0.0 && b > 0 => Amount::Bytes(b),
        (p, 0) if p != 0.0 => {
            return Err(Error::invalid(
                "storage.disk_fill.percent",
                format!("must be in (0, 100], got {p}"),
            ))
        }
        (0.0, 0) => {
            return Err(Error::invalid(
                "storage.disk_fill.percent",
                "set percent (of the file system used) or bytes",
            ))
        }
        _ => {
            return Err(Error::invalid(
                "storage.disk_fill.bytes",
                "set percent or bytes, not both",
            ))
        }
    };
    Ok(Plan { path, amount })
}

/// The fill file's name in its directory.
fn file_name(fault_id: &str) -> String {
    let short: String = fault_id.chars().filter(|c| *c != '-').take(12).collect();
    format!(".faultline-fill-{short}")
}

fn reach(dirs: &[PathBuf], path: &Path) -> Result<PathBuf, Error> {
    mountns::reach(dirs, path, "storage.disk_fill")
}

/// A fill on one target.
pub struct Run {
    plan: Plan,
    dirs: Vec<PathBuf>,
    name: String,
    /// The directory that holds the file, in the target's namespace.
    ns_dir: PathBuf,
    /// Open while the fault lasts, so the file can be removed whatever the target does.
    dir: Option<File>,
    filled: u64,
    used_percent: f64,
    counters: Counters,
}

impl Run {
    /// Resolves the directory in the target's namespace; the file is made at the start.
    pub fn new(plan: Plan, dirs: Vec<PathBuf>, fault_id: &str) -> Result<Self, Error> {
        let host = reach(&dirs, &plan.path)?;
        let meta = std::fs::metadata(&host).map_err(|err| {
            Error::invalid(
                "storage.disk_fill.path",
                format!(
                    "{} in the target's mount namespace: {err}",
                    plan.path.display()
                ),
            )
        })?;
        let ns_dir = if meta.is_dir() {
            plan.path.clone()
        } else {
            plan.path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| "/".into())
        };
        Ok(Self {
            plan,
            dirs,
            name: file_name(fault_id),
            ns_dir,
            dir: None,
            filled: 0,
            used_percent: 0.0,
            counters: Counters::default(),
        })
    }

    /// Bytes to add to reach the plan, from the file system's counts now.
    fn bytes_to_add(&self, dir: &File) -> Result<u64, Error> {
        let space = Space::of(dir).map_err(|errno| {
            Error::Internal(format!("fstatvfs {}: {errno}", self.ns_dir.display()))
        })?;
        let want = match self.plan.amount {
            Amount::UsedPercent(p) => {
                ((space.total as f64 * p / 100.0) as u64).saturating_sub(space.used)
            }
            Amount::Bytes(b) => b,
        };
        Ok(want.min(space.available))
    }

    fn refresh_use(&mut self) {
        if let Some(Ok(space)) = self.dir.as_ref().map(Space::of) {
            self.used_percent = space.used_percent();
        }
    }
}

/// A file system's size and use, in bytes.
struct Space {
    total: u64,
    used: u64,
    /// Free for unprivileged writers (what a target's process can still fill).
    available: u64,
}

impl Space {
    fn of(dir: &File) -> nix::Result<Self> {
        let fs = fstatvfs(dir.as_fd())?;
        let unit = fs.fragment_size();
        let total = fs.blocks() * unit;
        Ok(Self {
            total,
            used: total.saturating_sub(fs.blocks_free() * unit),
            available: fs.blocks_available() * unit,
        })
    }

    fn used_percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.total as f64
        }
    }
}

/// Allocates `len` bytes in `file`: `fallocate`, or zeros written where the file system has
/// no `fallocate` (stopping at ENOSPC). Returns the bytes now held.
fn allocate(file: &mut File, len: u64) -> std::io::Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    match fallocate(file.as_raw_fd(), FallocateFlags::empty(), 0, len as i64) {
        Ok(()) => return Ok(len),
        Err(nix::errno::Errno::EOPNOTSUPP) => {}
        Err(errno) => return Err(std::io::Error::from_raw_os_error(errno as i32)),
    }
    let zeros = vec![0u8; CHUNK];
    let mut written = 0u64;
    while written < len {
        let n = (len - written).min(CHUNK as u64) as usize;
        match file.write(&zeros[..n]) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(err) => return Err(err),
        }
    }
    file.sync_data()?;
    Ok(written)
}

impl Actor for Run {
    fn kind(&self) -> &'static str {
        "storage.disk_fill"
    }

    fn undo(&self) -> Undo {
        Undo::FillFile {
            file: self.ns_dir.join(&self.name),
        }
    }

    fn open(&mut self) -> Result<(), Error> {
        let host_dir = reach(&self.dirs, &self.ns_dir)?;
        let dir = File::open(&host_dir)
            .map_err(|err| Error::Internal(format!("open {}: {err}", host_dir.display())))?;
        let len = self.bytes_to_add(&dir)?;
        let path = host_dir.join(&self.name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|err| Error::Internal(format!("create {}: {err}", path.display())))?;
        self.dir = Some(dir);
        match allocate(&mut file, len) {
            Ok(filled) => self.filled = filled,
            Err(err) => {
                self.close();
                return Err(Error::Internal(format!(
                    "filling {}: {err}",
                    path.display()
                )));
            }
        }
        self.refresh_use();
        self.counters = Counters {
            seen: 1,
            matched: 1,
            affected: 1,
            ..Counters::default()
        };
        info!(file = %self.ns_dir.join(&self.name).display(), bytes = self.filled,
            used_percent = self.used_percent, "file system filled");
        Ok(())
    }

    fn close(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        match unlinkat(
            Some(dir.as_raw_fd()),
            self.name.as_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {
                info!(file = %self.ns_dir.join(&self.name).display(), "fill file removed");
            }
            Err(errno) => warn!(file = %self.ns_dir.join(&self.name).display(),
                error = %errno, "removing the fill file"),
        }
        self.filled = 0;
    }

    fn report(&mut self, fault: &mut Fault) {
        self.refresh_use();
        fault.counters = Some(self.counters);
        fault.outcome = Some(Outcome {
            filled_bytes: self.filled,
            filesystem_used_percent: self.used_percent,
            ..Outcome::default()
        });
    }

    fn reopen_after_restart(&self) -> bool {
        true
    }
}

/// Removes a fill file a previous daemon left, through any process of the target.
pub fn remove_orphan(dirs: &[PathBuf], file: &Path) {
    match reach(dirs, file) {
        Ok(host) => match std::fs::remove_file(&host) {
            Ok(()) => info!(file = %file.display(), "fill file of a previous daemon removed"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => warn!(file = %host.display(), error = %err, "removing a fill file"),
        },
        Err(err) => warn!(file = %file.display(), error = %err,
            "cannot reach the fill file: no process of the target is left"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(fill: DiskFill) -> String {
        match plan(&fill) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn names_the_bad_field() {
        let fill = |path: &str, percent, bytes| DiskFill {
            path: path.into(),
            percent,
            bytes,
        };
        assert_eq!(field(fill("relative", 50.0, 0)), "storage.disk_fill.path");
        assert_eq!(field(fill("/a/../b", 50.0, 0)), "storage.disk_fill.path");
        assert_eq!(field(fill("/data", 0.0, 0)), "storage.disk_fill.percent");
        assert_eq!(field(fill("/data", 120.0, 0)), "storage.disk_fill.percent");
        assert_eq!(field(fill("/data", 50.0, 10)), "storage.disk_fill.bytes");
        assert!(plan(&fill("/data", 90.0, 0)).is_ok());
        assert!(plan(&fill("/data", 0.0, 4096)).is_ok());
    }
}
