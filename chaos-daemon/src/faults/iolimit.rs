//! `storage.io_limit`: a slow disk. Limits the target's reads and writes to the block device
//! holding a path, by cgroup v2 `io.max` or, on hybrid hosts, the v1 blkio throttle files
//! of the target's processes; the values found before are restored afterwards.
//! <https://docs.kernel.org/admin-guide/cgroup-v2.html#io-interface-files>
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use chaos_proto::v1::{Counters, Fault, IoLimit, Outcome};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::actor::Actor;
use crate::{
    cgroupfs::{self, v1},
    error::Error,
    journal::Undo,
    targets::mountns,
};

/// A validated limit; 0 = not limited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub path: PathBuf,
    pub read_bps: u64,
    pub write_bps: u64,
    pub read_iops: u64,
    pub write_iops: u64,
}

/// Validates an `IoLimit`; errors name the field.
pub fn plan(spec: &IoLimit) -> Result<Plan, Error> {
    let path = PathBuf::from(spec.path.trim());
    if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
        return Err(Error::invalid(
            "storage.io_limit.path",
            format!("{:?} must be an absolute path without '..'", spec.path),
        ));
    }
    let plan = Plan {
        path,
        read_bps: spec.read_bytes_per_second,
        write_bps: spec.write_bytes_per_second,
        read_iops: spec.read_iops,
        write_iops: spec.write_iops,
    };
    if [
        plan.read_bps,
        plan.write_bps,
        plan.read_iops,
        plan.write_iops,
    ] == [0; 4]
    {
        return Err(Error::invalid(
            "storage.io_limit.write_bytes_per_second",
            "set at least one of read_bytes_per_second, write_bytes_per_second, read_iops, \
             write_iops",
        ));
    }
    Ok(plan)
}

/// One write to a cgroup file, as applied or as the restore of what was there.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileWrite {
    pub file: PathBuf,
    pub value: String,
}

/// The whole disk holding `host_path`, as `MAJ:MIN` (throttling applies to disks, not
/// partitions).
fn disk_of(host_path: &Path, shown: &Path) -> Result<String, Error> {
    let meta = std::fs::metadata(host_path).map_err(|err| {
        Error::invalid(
            "storage.io_limit.path",
            format!("{} in the target's mount namespace: {err}", shown.display()),
        )
    })?;
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if major == 0 || !sys.exists() {
        return Err(Error::FailedPrecondition(format!(
            "{} is on a file system without a block device ({major}:{minor}: tmpfs, overlay, \
             network); storage.io_limit needs one",
            shown.display()
        )));
    }
    if !sys.join("partition").exists() {
        return Ok(format!("{major}:{minor}"));
    }
    // A partition's sysfs directory sits inside its disk's.
    let disk = std::fs::canonicalize(&sys)
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("dev")))
        .and_then(|dev| std::fs::read_to_string(dev).ok())
        .ok_or_else(|| Error::Internal(format!("no disk above partition {major}:{minor}")))?;
    Ok(disk.trim().to_string())
}

/// Where the target's I/O is throttled, and the writes to apply and to restore.
fn writes_for(
    dir: &Path,
    disk: &str,
    plan: &Plan,
) -> Result<(Vec<FileWrite>, Vec<FileWrite>), Error> {
    let max = |v: u64| {
        if v == 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    let io_max = dir.join("io.max");
    if io_max.exists() {
        let current = cgroupfs::read(&io_max)?;
        let previous = current
            .lines()
            .find(|l| l.split_whitespace().next() == Some(disk))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{disk} rbps=max wbps=max riops=max wiops=max"));
        let apply = format!(
            "{disk} rbps={} wbps={} riops={} wiops={}",
            max(plan.read_bps),
            max(plan.write_bps),
            max(plan.read_iops),
            max(plan.write_iops)
        );
        let file = io_max;
        return Ok((
            vec![FileWrite {
                file: file.clone(),
                value: apply,
            }],
            vec![FileWrite {
                file,
                value: previous,
            }],
        ));
    }
    let Some(blkio) = v1::companion(dir, "blkio")? else {
        return Err(Error::FailedPrecondition(format!(
            "{} has no io.max (enable io in its parent's cgroup.subtree_control) and its \
             processes are in no v1 blkio cgroup",
            dir.display()
        )));
    };
    let (mut apply, mut restore) = (Vec::new(), Vec::new());
    for (name, value) in [
        ("blkio.throttle.read_bps_device", plan.read_bps),
        ("blkio.throttle.write_bps_device", plan.write_bps),
        ("blkio.throttle.read_iops_device", plan.read_iops),
        ("blkio.throttle.write_iops_device", plan.write_iops),
    ] {
        if value == 0 {
            continue;
        }
        let file = blkio.join(name);
        let previous = cgroupfs::read(&file)?
            .lines()
            .find(|l| l.split_whitespace().next() == Some(disk))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            // 0 removes the rule.
            .unwrap_or_else(|| "0".into());
        apply.push(FileWrite {
            file: file.clone(),
            value: format!("{disk} {value}"),
        });
        restore.push(FileWrite {
            file,
            value: format!("{disk} {previous}"),
        });
    }
    Ok((apply, restore))
}

/// A limit on one target.
pub struct Run {
    apply: Vec<FileWrite>,
    restore: Vec<FileWrite>,
    applied: bool,
}

impl Run {
    /// Finds the disk and the files, and reads what they hold now (to restore it).
    pub fn new(plan: &Plan, dirs: &[PathBuf]) -> Result<Self, Error> {
        let [dir] = dirs else {
            return Err(Error::invalid(
                "target",
                "storage.io_limit needs a target naming exactly one cgroup",
            ));
        };
        let host = mountns::reach(dirs, &plan.path, "storage.io_limit")?;
        let disk = disk_of(&host, &plan.path)?;
        let (apply, restore) = writes_for(dir, &disk, plan)?;
        Ok(Self {
            apply,
            restore,
            applied: false,
        })
    }

    /// A limit recorded in the journal: re-applied for the rest of the window, and restored
    /// to what was there before the first daemon applied it.
    pub fn with_restore(
        plan: &Plan,
        dirs: &[PathBuf],
        restore: Vec<FileWrite>,
    ) -> Result<Self, Error> {
        let mut run = Self::new(plan, dirs)?;
        run.restore = restore;
        // In force since the previous daemon applied it: the end must write the restore.
        run.applied = true;
        Ok(run)
    }
}

/// Writes each value; stops at the first error and returns it.
fn write_all(writes: &[FileWrite]) -> Result<(), cgroupfs::Error> {
    writes
        .iter()
        .try_for_each(|w| cgroupfs::write(&w.file, &w.value))
}

/// Restores what a journal record names, when its fault cannot be rebuilt.
pub fn restore_orphan(restore: &[FileWrite]) {
    for write in restore {
        if let Err(err) = cgroupfs::write(&write.file, &write.value) {
            warn!(error = %err, "restoring an I/O limit");
        }
    }
}

impl Actor for Run {
    fn kind(&self) -> &'static str {
        "storage.io_limit"
    }

    fn undo(&self) -> Undo {
        Undo::Writes {
            restore: self.restore.clone(),
        }
    }

    fn open(&mut self) -> Result<(), Error> {
        if let Err(err) = write_all(&self.apply) {
            restore_orphan(&self.restore);
            return Err(err.into());
        }
        self.applied = true;
        info!(writes = ?self.apply, "I/O limited");
        Ok(())
    }

    fn close(&mut self) {
        if std::mem::take(&mut self.applied) {
            restore_orphan(&self.restore);
            info!("I/O limit restored");
        }
    }

    fn report(&mut self, fault: &mut Fault) {
        let on = u64::from(self.applied);
        fault.counters = Some(Counters {
            seen: 1,
            matched: 1,
            affected: on,
            ..Counters::default()
        });
        fault.outcome = Some(Outcome::default());
    }

    fn reopen_after_restart(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_bad_field() {
        let spec = |path: &str, wbps| IoLimit {
            path: path.into(),
            write_bytes_per_second: wbps,
            ..IoLimit::default()
        };
        let field = |spec: IoLimit| match plan(&spec) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert_eq!(field(spec("data", 1)), "storage.io_limit.path");
        assert_eq!(
            field(spec("/data", 0)),
            "storage.io_limit.write_bytes_per_second"
        );
        assert!(plan(&spec("/data", 1 << 20)).is_ok());
    }
}
